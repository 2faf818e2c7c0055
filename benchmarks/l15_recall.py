"""Lesson 15's recall task, trained longer: does the LSTM learn to recall the symbol d = 16 back?

The lesson trains each model 300 steps at lr 3e-3 and the LSTM stays at chance at d = 16.
That alone cannot tell "cannot" from "not yet". Here the same LSTM (same size, task and loop)
trains 1,000 steps at a lower learning rate (1e-3; the lesson's is 3e-3), 2 seeds, and at 300 and 1,000 steps
we record its recall accuracy and the gradient that reaches the input d positions back
(the norm of d loss(last position) / d embedding(last - k), mean over 64 sequences, for
every k), at initialisation too. About 40 CPU-seconds on one core (the default).
The committed results file, which lesson 15 reads, is the longer run: 3,000 steps at the
lesson's rate and at a third of it, two seeds each (about 3 CPU-minutes):

    python benchmarks/l15_recall.py --steps 3000 --checkpoints 300 1000 3000 --lrs 1e-3 3e-3
    python benchmarks/l15_recall.py [--d 16] [--steps 1000] [--lrs 1e-3] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402
from l15_common import fit  # noqa: E402

from gptlab import GPT, GPTConfig  # noqa: E402
from gptlab.rnn import CharLSTM, gradient_by_distance, hidden_for_params  # noqa: E402

V, SCORED = 8, 32  # the lesson's alphabet and scored positions per sequence


def recall_batch(d, batch_size=32):
    def batch_fn(g):
        x = torch.randint(0, V, (batch_size, d + SCORED), generator=g)
        y = torch.full_like(x, -100)
        y[:, d:] = x[:, :-d]
        return x, y

    return batch_fn


@torch.no_grad()
def recall_accuracy(model, d):
    model.eval()
    x, y = recall_batch(d, 512)(torch.Generator().manual_seed(12345))
    pred = model(x)[0].argmax(-1)
    mask = y != -100
    return (pred[mask] == y[mask]).float().mean().item()


def grad_profile(model, d):
    x, y = recall_batch(d, 64)(torch.Generator().manual_seed(7))
    return [round(v, 8) for v in gradient_by_distance(model, x, y).tolist()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[300, 1000])
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = args.d
    n_gpt = GPT(GPTConfig(vocab_size=V, block_size=d + SCORED, n_layer=2, n_head=4, n_embd=64, dropout=0.0)).get_num_params()
    hidden = hidden_for_params(n_gpt, V, 32)
    runs = []
    for lr in args.lrs:
        for seed in args.seeds:
            torch.manual_seed(seed)
            lstm = CharLSTM(V, 32, hidden)  # the lesson's probe LSTM
            rec = {"lr": lr, "seed": seed, "at": [{"step": 0, "accuracy": recall_accuracy(lstm, d), "grad": grad_profile(lstm, d)}]}

            def on_eval(model, step, rec=rec):
                if step in args.checkpoints:
                    rec["at"].append({"step": step, "accuracy": recall_accuracy(model, d), "grad": grad_profile(model, d)})

            log = fit(lstm, args.steps, recall_batch(d), lr=lr, seed=seed, eval_every=100, eval_fn=lambda m: 0.0, on_eval=on_eval)
            rec["cpu_seconds"] = round(log[-1][1], 1)
            runs.append(rec)
            write(d, hidden, args, runs)  # after every run: a partial file is still a record of what ran
            print(f"lr {lr:g} seed {seed}: "
                  + "  ".join(f"step {a['step']}: {a['accuracy']:.1%} (grad d={d}: {a['grad'][d]:.2e})" for a in rec["at"]), flush=True)


def write(d, hidden, args, runs):
    results.write("l15_recall", {"d": d, "hidden": hidden, "lstm_params": CharLSTM(V, 32, hidden).get_num_params(), "steps": args.steps,
                                 "lrs": sorted({r["lr"] for r in runs}), "runs": runs}, seeds=sorted({r["seed"] for r in runs}),
                  notes="LSTM on the lesson's recall task; grad[k] = mean norm of d loss(last position) / d embedding(last - k)")


if __name__ == "__main__":
    main()
