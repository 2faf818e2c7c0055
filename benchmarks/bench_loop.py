"""The training loop's own cost: gptlab.training.train against nanoGPT's loop, and against another checkout.

Each round runs, in fresh processes one after the other, the shakespeare-char
recipe (nanoGPT's CPU recipe: 4 layers, 128 wide, block 64, batch 12) for
`--steps` steps with evaluation switched off, through
- gptlab's loop (`gptlab.training.train`) of this checkout,
- nanoGPT's loop re-stated in `nanogpt_peer.py` (fp32 AdamW for-loop, as nanoGPT runs on a CPU),
- and, with `--compare-to DIR`, gptlab's loop of another checkout (e.g. a worktree of
  the commit before a change), so "the new loop is no slower" is measured side by side.
Rounds alternate the order so a drift of the machine hits every side alike; the
figure is CPU seconds per step of the training process (one thread), median over
rounds, with the min-max range. CPU time, not wall time: it is what the process
itself spent, so other jobs on the machine inflate it less.

    python benchmarks/bench_loop.py --rounds 5 --steps 150
    python benchmarks/bench_loop.py --compare-to ../gptlab-before   # a checkout of the old commit
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
kind, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    from gptlab.datasets import read_text
except ImportError:  # a checkout from before gptlab.datasets existed
    from gptlab.data import read_text
from gptlab.data import split_tokens
from gptlab.tokenizers import CharTokenizer
text = read_text("tinyshakespeare")
tok = CharTokenizer.from_text(text)
train_data, val_data = split_tokens(tok.encode(text))
if kind == "nanogpt":
    sys.path.insert(0, sys.argv[4])
    from nanogpt_peer import nano_train
    c0 = time.process_time()
    nano_train(train_data, val_data, tok.n_vocab, seed=seed, max_iters=steps, eval_interval=10**9, eval_iters=1)
    cpu = time.process_time() - c0
else:
    from gptlab import GPT, GPTConfig
    from gptlab.training import TrainConfig, train  # (TrainConfig's home is gptlab.config; main had it in training)
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_preset("shakespeare-char", vocab_size=tok.n_vocab))
    cfg = TrainConfig.from_preset("shakespeare-char", seed=seed, max_steps=steps, eval_interval=10**9, eval_iters=1,
                                  progress=False, bf16=False)
    c0 = time.process_time()
    train(model, train_data, val_data, cfg)
    cpu = time.process_time() - c0
print(json.dumps({"cpu_per_step": cpu / steps}))
"""


def run(kind: str, checkout: Path, steps: int, seed: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _CHILD, kind, str(steps), str(seed), str(HERE)], env=env, cwd=checkout,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["cpu_per_step"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=150, help="training steps per run (evaluation off)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--compare-to", type=Path, default=None, help="another gptlab checkout whose loop to time alongside")
    args = p.parse_args()
    sides = [("gptlab (this checkout)", "gptlab", ROOT), ("nanoGPT loop", "nanogpt", ROOT)]
    if args.compare_to is not None:
        sides.append((f"gptlab ({args.compare_to})", "gptlab", args.compare_to.resolve()))
    times: dict[str, list[float]] = {name: [] for name, _, _ in sides}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for name, kind, checkout in order:
            times[name].append(run(kind, checkout, args.steps, args.seed))
        print(f"round {r + 1}: " + ", ".join(f"{n} {1000 * times[n][-1]:.1f} ms" for n, _, _ in sides), flush=True)
    print(f"\nCPU ms per training step, shakespeare-char shapes, {args.steps} steps, 1 thread, median of {args.rounds} "
          f"alternating rounds (min-max); load average at the end {os.getloadavg()[0]:.2f}; {time.perf_counter() - t0:.0f} s")
    base = statistics.median(times[sides[0][0]])
    for name, _, _ in sides:
        t = times[name]
        print(f"  {name:40s} {1000 * statistics.median(t):7.2f} ms ({1000 * min(t):.2f}-{1000 * max(t):.2f})  "
              f"its time / this checkout's: {statistics.median(t) / base:.3f}x")


if __name__ == "__main__":
    main()
