"""Lesson 14's race and switch ablation, measured the fair way; writes benchmarks/results/l14_*.json.

The race (issue 28): nanoGPT's CPU recipe (benchmarks/nanogpt_peer.py), gptlab's
`shakespeare-char` preset (the same recipe on gptlab's GPT-2-style model) and
gptlab's `speedrun` preset, on Tiny Shakespeare, one thread each.
- The clock is this process's CPU time spent *training* (time.process_time, one
  thread); every evaluation is taken off every clock, so no recipe gains by
  evaluating less.
- Every recipe is scored by the same estimator: the mean val loss over the same
  200 x 12 windows of 64 characters (fixed seed), in fp32, whatever precision the
  recipe trained in.
- Each run is its own process, and the runs are interleaved (seed by seed, recipe by
  recipe) so a slower or faster spell of the shared machine hits every recipe.
- Settings (the speedrun's step counts) are chosen on tuning seeds (`tune`) and the
  verdict is reported on other seeds (`race`).

The ablation: the speedrun minus one switch at a time, each run given the same CPU
budget: a short calibration measures the variant's CPU time per step, and the run
gets as many steps as fit the budget (its schedule scaled to them).

    python benchmarks/l14_race.py tune --seeds 11 12             # -> results/l14_tune.json
    python benchmarks/l14_race.py race --seeds 1 2 3 --jobs 2    # -> results/l14_race.json
    python benchmarks/l14_race.py ablate --seeds 1 2 --budget 45 # -> results/l14_ablation.json
    python benchmarks/l14_race.py one --recipe speedrun --seed 1 --steps 400   # one run, printed
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
sys.path.insert(0, str(HERE))

EVAL_BATCHES, EVAL_BATCH, EVAL_SEED, BLOCK = 200, 12, 0, 64
TUNE_NANO, TUNE_SPEED = 300, 150  # steps of the tuning runs that measure each recipe's CPU time per step
FULL, HALF = 0.92, 0.45  # fractions of nanoGPT's CPU time the speedrun's step counts aim at (margin for drift)
RUNS = Path(os.environ.get("L14_RUNS", "/tmp/l14_runs"))  # one file per run (scratch), so an interrupted sweep resumes

# the speedrun minus one switch (and plus Muon, which the preset leaves off on a CPU)
ABLATIONS: dict[str, tuple[dict, dict]] = {
    "speedrun (all switches)": ({}, {}),
    "- rotary (learned positions)": (dict(pos_emb="learned"), {}),
    "- RMSNorm (LayerNorm)": (dict(norm="layernorm"), {}),
    "- relu² (GELU)": (dict(mlp="gelu"), {}),
    "- QK-norm": (dict(qk_norm=False), {}),
    "- untied head (tied)": (dict(tie_weights=True), {}),
    "- WSD (cosine)": ({}, dict(schedule="cosine")),
    "+ Muon": ({}, dict(optimizer="muon")),
}


def load_data():
    from gptlab.data import split_tokens
    from gptlab.datasets import read_text
    from gptlab.tokenizers import CharTokenizer

    text = read_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    train_data, val_data = split_tokens(tok.encode(text), val_fraction=0.1)
    return tok, train_data, val_data


class Clock:
    """CPU seconds spent training: process time, minus what evaluation spent."""

    def __init__(self) -> None:
        self.start, self.excluded = time.process_time(), 0.0

    def __call__(self) -> float:
        return time.process_time() - self.start - self.excluded


def make_estimator(val_data, clock: Clock):
    """The one val-loss estimate: 200 batches of 12 windows from a fixed seed, fp32, off the clock."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(EVAL_SEED)
    ix = torch.cat([torch.randint(len(val_data) - BLOCK, (EVAL_BATCH,), generator=g) for _ in range(EVAL_BATCHES)])
    windows = val_data[ix[:, None] + torch.arange(BLOCK + 1)]

    @torch.no_grad()
    def estimate(model) -> float:
        c0 = time.process_time()
        was_training = model.training
        model.eval()
        total = 0.0
        for chunk in windows.split(10 * EVAL_BATCH):  # 20 forward passes of 120 windows: the same numbers, fewer calls
            logits = model(chunk[:, :-1])[0]
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), chunk[:, 1:].reshape(-1), reduction="sum").item()
        model.train(was_training)
        clock.excluded += time.process_time() - c0
        return total / windows[:, 1:].numel()

    return estimate


def run_one(recipe: str, seed: int, steps: int | None, n_evals: int, model_kw: dict | None = None,
            train_kw: dict | None = None, budget: float | None = None) -> dict:
    """Train one recipe for one seed in this process; return its curve [(step, CPU s, val)] and totals."""
    import torch

    torch.set_num_threads(1)
    tok, train_data, val_data = load_data()
    points: list[tuple[int, float, float]] = []
    if recipe == "nanogpt":
        from nanogpt_peer import nano_train

        steps = steps or 2000
        every = max(1, steps // n_evals)
        clock = Clock()
        estimate = make_estimator(val_data, clock)

        def on_eval(it, model):
            if it > 0 and (it % every == 0 or it == steps):
                points.append((it, round(clock(), 2), round(estimate(model), 4)))

        nano_train(train_data, val_data, tok.n_vocab, seed=seed, max_iters=steps, on_eval=on_eval, eval_interval=every)
        return dict(recipe=recipe, seed=seed, steps=steps, points=points, cpu_s=points[-1][1], val=points[-1][2],
                    bf16=False)
    from gptlab import GPT, GPTConfig
    from gptlab.config import TrainConfig
    from gptlab.data import draw_batch
    from gptlab.device import resolve_bf16
    from gptlab.training import fit

    preset = "shakespeare-char" if recipe == "gptlab" else "speedrun"
    cfg = TrainConfig.from_preset(preset, seed=seed, progress=False, **(train_kw or {}))
    device = torch.device("cpu")
    use_bf16 = resolve_bf16(cfg.bf16, device)
    mcfg = GPTConfig.from_preset(preset, vocab_size=tok.n_vocab, **(model_kw or {}))
    per_step = None
    if budget is not None:  # calibrate: CPU time per step of this variant, then as many steps as fit the budget
        torch.manual_seed(seed + 10_000)
        m = GPT(mcfg)
        for n in (3, 10):  # 3 steps to warm up, 10 timed
            probe = TrainConfig.from_preset(preset, progress=False, max_steps=n, warmup_steps=0, lr_decay_steps=None,
                                            **(train_kw or {}))
            c0 = time.process_time()
            fit(m, lambda s, mi, g, bs=probe.batch_size: draw_batch(train_data, BLOCK, bs, g, device), lambda net, b: net(*b)[1],
                probe, device=device)
            per_step = (time.process_time() - c0) / n
        steps = planned = max(20, int(budget / per_step))
    if steps is not None:
        warm = min(cfg.warmup_steps, steps // 10)
        cfg = TrainConfig.from_preset(preset, seed=seed, progress=False, max_steps=steps, lr_decay_steps=steps,
                                      warmup_steps=warm, **(train_kw or {}))
    steps = cfg.max_steps
    # with a budget: evaluate-free checkpoints at 40% and 80% of the planned steps; at the first, the run's own CPU
    # time per step so far resets the step count to fit the budget (before WSD's decay starts at 70%)
    every = max(1, int(0.4 * steps)) if budget is not None else max(1, steps // n_evals)
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "eval_interval": every})
    torch.manual_seed(seed)
    model = GPT(mcfg)
    clock = Clock()
    estimate = make_estimator(val_data, clock)
    pending: list = []
    seen = [0]

    def next_batch(step, micro, g):
        seen[0] = step + 1  # steps taken once this one is
        return draw_batch(train_data, BLOCK, cfg.batch_size, g, device)

    def evaluate(net):
        pending[:] = [clock(), True]  # the clock before the estimate, which takes its own time off
        if budget is not None and seen[0] < cfg.max_steps:
            pending[1] = False
            if len(adjusted) == 0:
                adjusted.append(seen[0])
                cfg.max_steps = cfg.lr_decay_steps = max(seen[0] + 1, int(budget * seen[0] / clock()))
            return {}
        return {"val_loss": estimate(net)}

    adjusted: list[int] = []

    def callback(step, m, history):
        if pending[1]:
            points.append((step, round(pending[0], 2), round(history.eval_val_loss[-1], 4)))

    fit(model, next_batch, lambda net, b: net(*b)[1], cfg, evaluate=evaluate, eval_at_start=False, device=device,
        callback=callback)
    steps = cfg.max_steps
    out = dict(recipe=recipe, seed=seed, steps=steps, points=points, cpu_s=points[-1][1], val=points[-1][2], bf16=use_bf16,
               model=mcfg.to_dict(), train={k: v for k, v in cfg.to_dict().items() if k in (
                   "max_steps", "batch_size", "lr", "min_lr", "warmup_steps", "schedule", "decay_frac", "optimizer", "muon_lr")})
    if per_step is not None:
        out.update(budget=budget, per_step_cpu_s=round(per_step, 4), planned_steps=planned, adjusted_at=adjusted[:1])
    return out


# ---------------------------------------------------------------- driver: runs as child processes, interleaved


def job_name(job: dict) -> str:
    parts = [job["recipe"], str(job.get("steps") or "preset"), f"s{job['seed']}"]
    if job.get("variant"):
        parts.insert(0, job["variant"])
    return "-".join(parts).replace(" ", "_").replace("/", "_")


class _Waiting:
    """Stands in for a run started by another driver: done when its file appears."""

    returncode = 0

    def __init__(self, path: Path) -> None:
        self.path = path

    def poll(self) -> int | None:
        return 0 if self.path.exists() else None


def run_jobs(jobs: list[dict], n_parallel: int) -> list[dict]:
    """Run each job as `python l14_race.py one ...` (n_parallel at a time), in the given order; reuse finished ones."""
    RUNS.mkdir(parents=True, exist_ok=True)
    pending, running, out = list(jobs), [], {}
    for job in jobs:
        f = RUNS / f"{job_name(job)}.json"
        if f.exists():
            out[job_name(job)] = json.loads(f.read_text())
    pending = [j for j in jobs if job_name(j) not in out]
    while pending or running:
        while pending and len(running) < n_parallel:
            job = pending.pop(0)
            lock = RUNS / f"{job_name(job)}.pid"  # a run another driver started: wait for its file instead
            if lock.exists() and Path(f"/proc/{lock.read_text().strip()}").exists():
                running.append((job, _Waiting(RUNS / f"{job_name(job)}.json")))
                continue
            cmd = [sys.executable, __file__, "one", "--json", json.dumps(job), "--write", str(RUNS / f"{job_name(job)}.json")]
            proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
            (RUNS / f"{job_name(job)}.pid").write_text(str(proc.pid))
            running.append((job, proc))
        time.sleep(1)
        for job, p in list(running):
            if p.poll() is not None:
                running.remove((job, p))
                if p.returncode != 0:
                    raise SystemExit(f"run {job_name(job)} failed (exit {p.returncode})")
                r = json.loads((RUNS / f"{job_name(job)}.json").read_text())
                out[job_name(job)] = r
                print(f"{job_name(job):48s} val {r['val']:.4f} after {r['steps']} steps, {r['cpu_s']:.1f} CPU-s", flush=True)
    return [out[job_name(j)] for j in jobs]


def ci(xs: list[float]) -> list[float]:
    """mean and a 95% t-interval half-width over runs (n >= 2)."""
    from math import sqrt

    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57}
    m = statistics.mean(xs)
    h = t.get(len(xs), 2.0) * statistics.stdev(xs) / sqrt(len(xs)) if len(xs) > 1 else float("nan")
    return [round(m, 4), round(h, 4)]


def crossing(points, target: float) -> float | None:
    """CPU seconds at which a curve first reaches `target` (linear between evaluations), or None."""
    prev = (0.0, float("inf"))
    for _, c, v in points:
        if v <= target:
            if prev[1] == float("inf"):
                return c
            return prev[0] + (c - prev[0]) * (prev[1] - target) / (prev[1] - v)
        prev = (c, v)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["one", "tune", "race", "all", "ablate"])
    p.add_argument("--recipe", choices=["nanogpt", "gptlab", "speedrun"], default="speedrun")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--evals", type=int, default=4, help="evaluations per run (the curve's points)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (each one thread)")
    p.add_argument("--budget", type=float, default=45.0, help="ablate: CPU seconds of training per run")
    p.add_argument("--full-steps", type=int, default=None, help="race: the speedrun's steps within nanoGPT's time")
    p.add_argument("--half-steps", type=int, default=None, help="race: the speedrun's steps within half nanoGPT's time")
    p.add_argument("--tune-seeds", type=int, nargs="+", default=[11], help="tune: seeds for choosing the step counts")
    p.add_argument("--gptlab-seeds", type=int, default=2, help="race: how many of --seeds also run gptlab's recipe")
    p.add_argument("--json", default=None, help="one: the job as JSON (used by the driver)")
    p.add_argument("--write", default=None, help="one: write the run here")
    args = p.parse_args()
    from results import write

    if args.what == "one":
        job = json.loads(args.json) if args.json else dict(recipe=args.recipe, seed=args.seed, steps=args.steps, evals=args.evals)
        r = run_one(job["recipe"], job["seed"], job.get("steps"), job.get("evals", 4), job.get("model_kw"), job.get("train_kw"),
                    job.get("budget"))
        r["variant"] = job.get("variant")
        if args.write:
            Path(args.write).write_text(json.dumps(r) + "\n")
        else:
            print(json.dumps(r, indent=1))
        return
    if args.what in ("tune", "all"):
        tune_seeds = args.tune_seeds
        # short runs give each recipe's CPU time per step on this machine; nanoGPT's recipe is 2000 steps
        runs = run_jobs([j for s in tune_seeds for j in (dict(recipe="nanogpt", seed=s, steps=TUNE_NANO, evals=1),
                                                          dict(recipe="speedrun", seed=s, steps=TUNE_SPEED, evals=1))], args.jobs)
        nano_s = statistics.mean(2000 * r["cpu_s"] / r["steps"] for r in runs if r["recipe"] == "nanogpt")
        step_s = statistics.mean(r["cpu_s"] / r["steps"] for r in runs if r["recipe"] == "speedrun")
        # the rule: as many speedrun steps as fit in FULL / HALF of nanoGPT's CPU time, with a margin for drift
        args.full_steps = args.full_steps or int(FULL * nano_s / step_s)
        args.half_steps = args.half_steps or int(HALF * nano_s / step_s)
        write("l14_tune", {"runs": runs, "nanogpt_cpu_s": round(nano_s, 1), "speedrun_cpu_s_per_step": round(step_s, 4),
                           "full_fraction": FULL, "half_fraction": HALF, "full_steps": args.full_steps,
                           "half_steps": args.half_steps}, seeds=tune_seeds,
              notes="tuning seeds only: the speedrun's step counts for the race are fixed here from CPU time per step, "
              "and the verdict is reported on other seeds (l14_race)")
        print(f"tuning: nanoGPT {nano_s:.1f} CPU-s, speedrun {1000 * step_s:.1f} ms/step -> full {args.full_steps}, "
              f"half {args.half_steps} steps", flush=True)
        if args.what == "tune":
            return
    if args.what in ("race", "all"):
        jobs = []
        for s in args.seeds:  # interleaved: every recipe once per seed, in a rotating order
            seed_jobs = [dict(recipe="nanogpt", seed=s, evals=2), dict(recipe="speedrun", seed=s, steps=args.full_steps, evals=3),
                         dict(recipe="speedrun", seed=s, steps=args.half_steps, evals=1)]
            k = args.seeds.index(s) % len(seed_jobs)
            jobs += seed_jobs[k:] + seed_jobs[:k]
        # gptlab's recipe (the third curve, not part of the targets) on the first seeds, last
        jobs += [dict(recipe="gptlab", seed=s, evals=2) for s in args.seeds[:args.gptlab_seeds]]
        runs = run_jobs(jobs, args.jobs)
        def by(recipe, steps=None):
            return [r for r in runs if r["recipe"] == recipe and (steps is None or r["steps"] == steps)]

        nano, full, half = by("nanogpt"), by("speedrun", args.full_steps), by("speedrun", args.half_steps)
        per_seed = []
        for s in args.seeds:
            n = next(r for r in nano if r["seed"] == s)
            f = next(r for r in full if r["seed"] == s)
            h = next(r for r in half if r["seed"] == s)
            per_seed.append(dict(
                seed=s, nanogpt_cpu_s=n["cpu_s"], nanogpt_val=n["val"],
                full_cpu_s=f["cpu_s"], full_val=f["val"], full_time_ratio=round(f["cpu_s"] / n["cpu_s"], 3),
                half_cpu_s=h["cpu_s"], half_val=h["val"], half_time_ratio=round(h["cpu_s"] / n["cpu_s"], 3),
                target1_met=h["cpu_s"] <= 0.5 * n["cpu_s"] and h["val"] <= n["val"],
                target2_met=f["cpu_s"] <= n["cpu_s"] and f["val"] <= 1.70))
        summary = {
            "nanogpt_val": ci([r["val"] for r in nano]), "nanogpt_cpu_s": ci([r["cpu_s"] for r in nano]),
            "gptlab_val": ci([r["val"] for r in by("gptlab")]), "gptlab_cpu_s": ci([r["cpu_s"] for r in by("gptlab")]),
            "full_val": ci([r["val"] for r in full]), "full_time_ratio": ci([d["full_time_ratio"] for d in per_seed]),
            "half_val_minus_nanogpt": ci([d["half_val"] - d["nanogpt_val"] for d in per_seed]),
            "half_time_ratio": ci([d["half_time_ratio"] for d in per_seed]),
            "full_val_minus_1.70": ci([d["full_val"] - 1.70 for d in per_seed]),
        }
        write("l14_race", {"per_seed": per_seed, "summary": summary, "runs": runs,
                           "full_steps": args.full_steps, "half_steps": args.half_steps,
                           "estimator": f"{EVAL_BATCHES} batches x {EVAL_BATCH} windows x {BLOCK} chars of val, seed {EVAL_SEED}, fp32"},
              seeds=args.seeds, notes="clock: CPU seconds of training only (evaluation excluded from every clock), one thread, "
              "each run its own process, runs interleaved; intervals: mean and 95% t half-width over seeds")
        for d in per_seed:
            print(d)
        print(json.dumps(summary, indent=1))
        return
    if args.what == "ablate":
        jobs = []
        for s in args.seeds:
            names = list(ABLATIONS)
            k = args.seeds.index(s) % len(names)
            for name in names[k:] + names[:k]:
                mk, tk = ABLATIONS[name]
                jobs.append(dict(recipe="speedrun", seed=s, evals=1, model_kw=mk, train_kw=tk, budget=args.budget,
                                 variant=name.split(" (")[0].replace("- ", "minus_").replace("+ ", "plus_").replace("²", "2")
                                 .replace(" ", "_") + f"-b{int(args.budget)}"))
        runs = run_jobs(jobs, args.jobs)
        rows = {}
        for name in ABLATIONS:
            rs = [r for r, j in zip(runs, jobs) if j["model_kw"] == ABLATIONS[name][0] and j["train_kw"] == ABLATIONS[name][1]]
            rows[name] = dict(val=ci([r["val"] for r in rs]), vals=[r["val"] for r in rs], steps=[r["steps"] for r in rs],
                              cpu_s=[r["cpu_s"] for r in rs], per_step_ms=[round(1000 * r["per_step_cpu_s"], 1) for r in rs])
        base = rows["speedrun (all switches)"]["vals"]
        for name, row in rows.items():  # paired by seed: the switch's own effect, seed noise mostly cancelled
            row["minus_full"] = ci([v - b for v, b in zip(row["vals"], base)]) if name != "speedrun (all switches)" else None
        write("l14_ablation", {"budget_cpu_s": args.budget, "rows": rows, "runs": runs}, seeds=args.seeds,
              notes="each run: the speedrun preset with one change, as many steps as fit the CPU budget (calibrated per "
              "variant), schedule scaled to them; val on the 200-batch estimator; intervals: mean, 95% t half-width")
        for name, row in rows.items():
            print(f"{name:32s} val {row['val'][0]:.4f} ± {row['val'][1]:.4f}  steps {row['steps']}  vs full {row['minus_full']}")


if __name__ == "__main__":
    main()
