"""Lesson 15's scaling sweep with several seeds: 6 GPT sizes x 4 token budgets x 3 seeds.

The lesson runs seed 0 itself (the same loop, the same configuration); this script adds
seeds 1 and 2, so the lesson can put bootstrap intervals on the fitted exponents (resample
runs, refit). Each run trains at a constant learning rate and is read at 4 budgets, as in
the lesson. About 5 CPU-minutes on one core.

    python benchmarks/l15_scaling.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402
from l15_common import T, batch_fn, fit, shakespeare, val_loss_fn  # noqa: E402

from gptlab import GPT, GPTConfig  # noqa: E402

SIZES = [(1, 16, 2), (1, 32, 2), (2, 32, 4), (2, 48, 4), (2, 64, 4), (3, 96, 4)]  # (n_layer, n_embd, n_head), as in the lesson
BUDGET_STEPS = [50, 100, 200, 400]
BATCH = 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok, train, val = shakespeare()
    runs = []
    for seed in args.seeds:
        for n_layer, n_embd, n_head in SIZES:
            torch.manual_seed(seed)
            model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=T, n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=0.0))
            N = model.get_num_params(non_embedding=True)
            log = fit(model, BUDGET_STEPS[-1], batch_fn(train, BATCH), eval_every=BUDGET_STEPS[0], eval_fn=val_loss_fn(val), seed=seed)
            points = [{"D": step * BATCH * T, "val_loss": round(loss, 5)} for step, _, loss in log if step in BUDGET_STEPS]
            runs.append({"seed": seed, "n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "N": N, "points": points,
                         "cpu_seconds": round(log[-1][1], 2)})
            print(f"seed {seed} n_layer {n_layer} n_embd {n_embd:3d} N {N:7,d}: "
                  + "  ".join(f"{p['D']:,}: {p['val_loss']:.3f}" for p in points), flush=True)
    results.write("l15_scaling", {"runs": runs, "budget_steps": BUDGET_STEPS, "batch": BATCH, "block_size": T, "lr": 2e-3},
                  seeds=args.seeds, notes="one run per (size, seed) at a constant lr, read at 4 budgets; seed 0 is the lesson's own run")


if __name__ == "__main__":
    main()
