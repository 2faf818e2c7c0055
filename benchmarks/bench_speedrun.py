"""Training speed and the speedrun: gptlab against nanoGPT's own model, optimizer and recipe.

Peer: nanoGPT's model, AdamW and CPU loop (benchmarks/nanogpt_peer.py restates
them; nanoGPT is not installed), at the shakespeare-char shapes.

--part speed: training tokens/s of one step (forward, backward, clip, optimizer)
  for gptlab's default path (GPTConfig/TrainConfig "shakespeare-char":
  make_optimizer's fused AdamW, bf16 autocast where the hardware has it) and for
  nanoGPT (fp32, for-loop AdamW), plus gptlab's "speedrun" model, in alternating
  rounds in this one process on the same batches; median of --rounds.
  Target: gptlab / nanoGPT >= 1.5x.
--part race: val loss against seconds for three recipes, each for --seeds:
  nanoGPT's CPU recipe (2000 steps, batch 12), gptlab's shakespeare-char preset
  (the same recipe) and gptlab's speedrun preset. Target: the speedrun's val loss
  <= 1.75 within the seconds nanoGPT's recipe takes (same seed, same machine).
  Seconds are both wall-clock and this process's CPU time (fairer on a shared
  machine); evaluations are timed in, as each recipe runs them.
--part switches: CPU time per training step with each GPTConfig switch alone.

    python benchmarks/bench_speedrun.py --part speed
    python benchmarks/bench_speedrun.py --part switches   # each model switch's cost per step
    python benchmarks/bench_speedrun.py --part race --seeds 1337 1 2 --plot speedrun.png
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nanogpt_peer import NanoConfig, NanoGPT, nano_train  # noqa: E402

from gptlab import GPT, GPTConfig  # noqa: E402
from gptlab.config import TrainConfig
from gptlab.data import get_batch
from gptlab.device import autocast, resolve_bf16
from gptlab.training import make_optimizer, train  # noqa: E402

TARGET_SPEED, TARGET_LOSS = 1.5, 1.75


def load_data():
    from gptlab.data import split_tokens
    from gptlab.datasets import read_text
    from gptlab.tokenizers import CharTokenizer

    text = read_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    train_data, val_data = split_tokens(tok.encode(text), val_fraction=0.1)
    return tok, train_data, val_data


def speed(args, train_data, vocab: int) -> None:
    device = torch.device("cpu")
    tcfg = TrainConfig.from_preset("shakespeare-char")
    bf16 = resolve_bf16(tcfg.bf16, device)
    contenders = {}
    for name in ("shakespeare-char", "speedrun"):
        torch.manual_seed(0)
        m = GPT(GPTConfig.from_preset(name, vocab_size=vocab))
        contenders[f"gptlab {name}"] = (m, make_optimizer(m, TrainConfig.from_preset(name), device), bf16, tcfg.batch_size)
    torch.manual_seed(0)
    nano = NanoGPT(NanoConfig(vocab_size=vocab))
    contenders["nanoGPT"] = (nano, nano.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu"), False, tcfg.batch_size)
    block = 64
    g = torch.Generator().manual_seed(0)

    def run(model, opt, use_bf16, batch, steps):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            x, y = get_batch(train_data, block, batch, g)
            with autocast(device, use_bf16):
                logits, _ = model(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        tokens = batch * block * steps
        return tokens / (time.perf_counter() - w0), tokens / (time.process_time() - c0)

    for m, o, b, bs in contenders.values():
        run(m, o, b, bs, args.warmup_steps)
    wall = {k: [] for k in contenders}
    cpu = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for k, (m, o, b, bs) in contenders.items():
            w, c = run(m, o, b, bs, args.speed_steps)
            wall[k].append(w)
            cpu[k].append(c)
    print(f"training tokens/s, batch {tcfg.batch_size} x block {block}, bf16 autocast {'on' if bf16 else 'off (not native here)'}, "
          f"median of {args.rounds} alternating rounds x {args.speed_steps} steps, {torch.get_num_threads()} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}:")
    print(f"  {'':28s} {'wall-clock':>11s} {'CPU-time':>11s}")
    for k in contenders:
        print(f"  {k:28s} {statistics.median(wall[k]):11,.0f} {statistics.median(cpu[k]):11,.0f}")
    for k in ("gptlab shakespeare-char", "gptlab speedrun"):
        rw = statistics.median(wall[k]) / statistics.median(wall["nanoGPT"])
        rc = statistics.median(cpu[k]) / statistics.median(cpu["nanoGPT"])
        met = "met" if rc >= TARGET_SPEED else "not met"
        print(f"  {k} / nanoGPT: {rw:.2f}x wall, {rc:.2f}x CPU time (target >= {TARGET_SPEED}x: {met})")


SWITCHES = {"GPT-2 default": {}, "no bias": dict(bias=False), "rotary": dict(pos_emb="rotary"), "RMSNorm": dict(norm="rmsnorm"),
            "relu2": dict(mlp="relu2"), "SwiGLU": dict(mlp="swiglu"), "QK-norm": dict(qk_norm=True), "untied head": dict(tie_weights=False)}


def switch_costs(args, vocab: int) -> None:
    """Seconds of CPU time per training step with each switch alone, relative to the GPT-2 default."""
    models = {}
    for name, kw in [*SWITCHES.items(), ("speedrun (all)", None)]:
        torch.manual_seed(0)
        cfg = (GPTConfig.from_preset("speedrun", vocab_size=vocab) if kw is None
               else GPTConfig.from_preset("shakespeare-char", vocab_size=vocab, **kw))
        m = GPT(cfg)
        models[name] = (m, make_optimizer(m, TrainConfig(), torch.device("cpu")))
    x, y = torch.randint(0, vocab, (12, 64)), torch.randint(0, vocab, (12, 64))

    def run(m, o, n):
        c0 = time.process_time()
        for _ in range(n):
            m(x, y)[1].backward()
            o.step()
            o.zero_grad(set_to_none=True)
        return (time.process_time() - c0) / n

    for m, o in models.values():
        run(m, o, 2)
    t = {k: [] for k in models}
    for _ in range(args.rounds):
        for k, (m, o) in models.items():
            t[k].append(run(m, o, args.speed_steps))
    base = statistics.median(t["GPT-2 default"])
    print(f"\nCPU time per training step (batch 12 x 64, fp32), median of {args.rounds} rounds x {args.speed_steps} steps:")
    for k in models:
        print(f"  {k:16s} {1000 * statistics.median(t[k]):7.1f} ms  {statistics.median(t[k]) / base:.2f}x")


def race(args, tok, train_data, val_data) -> None:
    results = {}  # recipe -> list of runs, each [(step, cpu_s, wall_s, val)]
    for seed in args.seeds:
        results.setdefault("nanoGPT", []).append(nano_train(train_data, val_data, tok.n_vocab, seed=seed)[0])
        for name in args.recipes:
            results.setdefault(f"gptlab {name}", []).append(_gptlab_timed(name, tok, train_data, val_data, seed))
        for k, runs in results.items():
            s, c, w, v = runs[-1][-1]
            print(f"seed {seed}: {k:24s} val {v:.4f} after {s} steps, {c:6.1f} s CPU, {w:6.1f} s wall", flush=True)
    print(f"\nsummary over seeds {args.seeds} (final val loss: 20-batch estimate, as nanoGPT; load average {os.getloadavg()[0]:.1f}):")
    for k, runs in results.items():
        vals = [r[-1][3] for r in runs]
        cpus = [r[-1][1] for r in runs]
        walls = [r[-1][2] for r in runs]
        print(f"  {k:24s} val {statistics.mean(vals):.4f} (seeds: {', '.join(f'{v:.3f}' for v in vals)}), "
              f"median {statistics.median(cpus):.1f} s CPU, {statistics.median(walls):.1f} s wall")
    for i, seed in enumerate(args.seeds):
        budget = results["nanoGPT"][i][-1][1]
        run = results["gptlab speedrun"][i]
        within = [p for p in run if p[1] <= budget]
        best = min(p[3] for p in within) if within else float("nan")
        final_ok = run[-1][1] <= budget
        print(f"  seed {seed}: speedrun val {run[-1][3]:.4f} in {run[-1][1]:.1f} s CPU vs nanoGPT's {budget:.1f} s "
              f"({'within' if final_ok else 'over'} budget; best val within budget {best:.4f}); target <= {TARGET_LOSS}: "
              f"{'met' if final_ok and run[-1][3] <= TARGET_LOSS else 'not met'}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for (k, runs), color in zip(results.items(), ("tab:gray", "tab:blue", "tab:red")):
            for j, r in enumerate(runs):
                ax.plot([p[1] for p in r], [p[3] for p in r], "o-", color=color, alpha=0.7, label=k if j == 0 else None)
        ax.axhline(TARGET_LOSS, ls="--", color="k", lw=0.8, label=f"target {TARGET_LOSS}")
        ax.set(xlabel="seconds of CPU time (evaluations included)", ylabel="val loss (20 batches)", ylim=(1.4, 3.0),
               title="Tiny Shakespeare: val loss against time")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")


def _gptlab_timed(name, tok, train_data, val_data, seed):
    points = []
    c0, w0 = time.process_time(), time.perf_counter()

    def cb(step, model, history):
        points.append((step, time.process_time() - c0, time.perf_counter() - w0, history.eval_val_loss[-1]))

    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_preset(name, vocab_size=tok.n_vocab))
    train(model, train_data, val_data, TrainConfig.from_preset(name, seed=seed, progress=False), callback=cb)
    return points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["speed", "switches", "race", "all"], default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    p.add_argument("--recipes", nargs="+", choices=["shakespeare-char", "speedrun"], default=["shakespeare-char", "speedrun"],
                   help="gptlab recipes to race against nanoGPT (both by default)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--speed-steps", type=int, default=30)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (on a CPU shared with other jobs, 1)")
    p.add_argument("--plot", default=None, help="save the loss-vs-seconds figure here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tok, train_data, val_data = load_data()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}")
    if args.part in ("speed", "all"):
        speed(args, train_data, tok.n_vocab)
    if args.part in ("switches", "all"):
        switch_costs(args, tok.n_vocab)
    if args.part in ("race", "all"):
        race(args, tok, train_data, val_data)


if __name__ == "__main__":
    main()
