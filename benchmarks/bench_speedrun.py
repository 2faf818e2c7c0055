"""Training speed and the speedrun: gptlab against nanoGPT's own model, optimizer and recipe.

Peer: nanoGPT's model, AdamW and CPU loop (benchmarks/nanogpt_peer.py restates
them; nanoGPT is not installed), at the shakespeare-char shapes.

--part speed: training tokens/s of one step (forward, backward, clip, optimizer)
  for gptlab's default path (GPTConfig/TrainConfig "shakespeare-char":
  make_optimizer's fused AdamW, bf16 autocast where the hardware has it) and for
  nanoGPT (fp32, for-loop AdamW), plus gptlab's "speedrun" model, in alternating
  rounds in this one process on the same batches; median of --rounds.
  Target: gptlab / nanoGPT >= 1.5x.
--part switches: CPU time per training step with each GPTConfig switch alone.
The race of the three recipes (val loss against CPU time, several seeds) and the
switch ablation are benchmarks/l14_race.py.

    python benchmarks/bench_speedrun.py --part speed
    python benchmarks/bench_speedrun.py --part switches   # each model switch's cost per step
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
from nanogpt_peer import NanoConfig, NanoGPT  # noqa: E402

from gptlab import GPT, GPTConfig  # noqa: E402
from gptlab.config import TrainConfig
from gptlab.data import get_batch
from gptlab.device import autocast, resolve_bf16
from gptlab.training import make_optimizer  # noqa: E402

TARGET_SPEED = 1.5


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["speed", "switches", "all"], default="all")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--speed-steps", type=int, default=30)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (on a CPU shared with other jobs, 1)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tok, train_data, val_data = load_data()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}")
    if args.part in ("speed", "all"):
        speed(args, train_data, tok.n_vocab)
    if args.part in ("switches", "all"):
        switch_costs(args, tok.n_vocab)


if __name__ == "__main__":
    main()
