"""Training: does the shakespeare-char recipe reach nanoGPT's val loss, and how fast is a step?

Quality: gptlab.training.train with the `shakespeare-char` presets (nanoGPT's CPU
recipe: 4 layers, 4 heads, 128 dims, block 64, batch 12, 2000 steps, lr 1e-3 with
100 warmup steps and a cosine to 1e-4, AdamW betas (0.9, 0.99), weight decay 0.1,
clip 1.0, dropout 0) on a 90/10 split of Tiny Shakespeare. nanoGPT publishes val
loss 1.88 for this recipe; the target is <= 1.88.

Speed: tokens/s of one training step (forward, backward, clip, AdamW) for gptlab's
GPT and for transformers' GPT2LMHeadModel built with the same shapes, the same
optimizer (gptlab.training.make_optimizer) and the same batches and loss, run in
alternating rounds in this one process so both see the same machine load.
Reported for fp32 and bf16 autocast separately, with the ratio gptlab / peer.

    python benchmarks/bench_training.py                 # both parts (the quality run takes minutes)
    python benchmarks/bench_training.py --skip-quality  # speed only
    python benchmarks/bench_training.py --compile       # also time torch.compile'd gptlab
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from gptlab import GPT, GPTConfig
from gptlab.config import TrainConfig
from gptlab.data import get_batch
from gptlab.device import autocast, bf16_supported, resolve_bf16
from gptlab.training import estimate_loss, make_optimizer, train

NANOGPT_VAL_LOSS = 1.88  # nanoGPT README, shakespeare-char on CPU


def load_data():
    from gptlab.data import split_tokens
    from gptlab.datasets import read_text
    from gptlab.tokenizers import CharTokenizer

    text = read_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    train_data, val_data = split_tokens(tok.encode(text), val_fraction=0.1)
    return tok, train_data, val_data


def hf_peer(cfg: GPTConfig):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
    )
    hf_cfg._attn_implementation = "sdpa"  # the fused attention kernel, as gptlab uses
    return GPT2LMHeadModel(hf_cfg)


def speed(args, device, train_data) -> None:
    mcfg = GPTConfig.from_preset("shakespeare-char")
    tcfg = TrainConfig.from_preset("shakespeare-char")
    precisions = [False] + ([True] if bf16_supported(device) or args.force_bf16 else [])

    def ours(m, x):
        return m(x)[0]

    def theirs(m, x):
        return m(input_ids=x).logits

    def plain_autocast(device, bf16):  # what a transformers user writes
        return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    contenders = []  # (label, bf16, model, optimizer, logits_fn, autocast_fn)
    for bf16 in precisions:
        tag = "bf16" if bf16 else "fp32"
        torch.manual_seed(0)
        m = GPT(mcfg).to(device)
        contenders.append((f"gptlab {tag}", bf16, m, make_optimizer(m, tcfg, device), ours, autocast))
        if args.compile:
            torch.manual_seed(0)
            m = GPT(mcfg).to(device)
            contenders.append((f"gptlab {tag} compiled", bf16, torch.compile(m), make_optimizer(m, tcfg, device), ours, autocast))
        torch.manual_seed(0)
        m = hf_peer(mcfg).to(device)
        contenders.append((f"HF {tag}", bf16, m, make_optimizer(m, tcfg, device), theirs, plain_autocast))
        if bf16:  # the peer again, with gptlab's bf16 context (its choice of attention kernel)
            torch.manual_seed(0)
            m = hf_peer(mcfg).to(device)
            contenders.append((f"HF {tag} + gptlab autocast", bf16, m, make_optimizer(m, tcfg, device), theirs, autocast))
    n_ours = sum(p.numel() for p in contenders[0][2].parameters())
    n_peer = sum(p.numel() for p in contenders[-1][2].parameters())
    print(f"parameters: gptlab {n_ours:,}, HF GPT2LMHeadModel {n_peer:,}; both: fused AdamW with the same decay groups")

    g = torch.Generator().manual_seed(0)
    tokens = tcfg.batch_size * mcfg.block_size

    def run(model, opt, logits_fn, ctx, bf16, steps):
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            x, y = get_batch(train_data, mcfg.block_size, tcfg.batch_size, g, device)
            with ctx(device, bf16):
                logits = logits_fn(model, x)
            # the same loss for both: fp32 cross-entropy over every position (what GPT.forward computes)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
        loss.item()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return tokens * steps / (time.perf_counter() - w0), tokens * steps / (time.process_time() - c0)

    for _label, bf16, model, opt, fn, ctx in contenders:  # warm-up (and compilation)
        run(model, opt, fn, ctx, bf16, args.warmup_steps)
    wall = {c[0]: [] for c in contenders}
    cpu = {c[0]: [] for c in contenders}
    for _ in range(args.rounds):
        for label, bf16, model, opt, fn, ctx in contenders:
            w, c = run(model, opt, fn, ctx, bf16, args.speed_steps)
            wall[label].append(w)
            cpu[label].append(c)
    # On a shared CPU, wall time depends on what else runs; CPU time (process_time) counts only this
    # process's own cycles, so it is the fairer clock there. On a GPU only wall time means anything.
    primary = cpu if device.type == "cpu" else wall
    clock = "CPU-time" if device.type == "cpu" else "wall-clock"
    print(f"\ntraining speed, batch {tcfg.batch_size} x block {mcfg.block_size}, median of {args.rounds} alternating "
          f"rounds x {args.speed_steps} steps, tokens/s:")
    print(f"  {'':34s} {'wall-clock':>12s} {'CPU-time':>12s}")
    med = {k: statistics.median(v) for k, v in primary.items()}
    for label in wall:
        print(f"  {label:34s} {statistics.median(wall[label]):12,.0f} {statistics.median(cpu[label]):12,.0f}")
    print(f"ratios ({clock} tokens/s):")
    for bf16 in precisions:
        tag = "bf16" if bf16 else "fp32"
        print(f"  gptlab / HF, {tag}: {med[f'gptlab {tag}'] / med[f'HF {tag}']:.2f}x (target >= 1.5x)")
        if bf16:
            print(f"  gptlab / (HF + gptlab autocast), bf16: {med['gptlab bf16'] / med['HF bf16 + gptlab autocast']:.2f}x")
        if args.compile:
            print(f"  compiled / eager gptlab, {tag}: {med[f'gptlab {tag} compiled'] / med[f'gptlab {tag}']:.2f}x")
    if len(precisions) == 2:
        print(f"  bf16 / fp32, gptlab: {med['gptlab bf16'] / med['gptlab fp32']:.2f}x; "
              f"HF: {med['HF bf16'] / med['HF fp32']:.2f}x")


def quality(args, device, tok, train_data, val_data) -> None:
    cfg = TrainConfig.from_preset("shakespeare-char", max_steps=args.steps, lr_decay_steps=args.steps, device=device.type,
                                  bf16=args.bf16, progress=not args.no_progress, seed=args.seed)
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig.from_preset("shakespeare-char", vocab_size=tok.n_vocab, **({"bias": False} if args.no_bias else {})))
    print(f"\nquality: shakespeare-char, {args.steps} steps, bf16={cfg.bf16} ({'on' if resolve_bf16(cfg.bf16, device) else 'off'}) "
          f"on {device}, seed {cfg.seed}, bias {model.config.bias}, {model.get_num_params():,} parameters")
    t0 = time.perf_counter()
    history = train(model, train_data, val_data, cfg, tokenizer=tok)
    wall = time.perf_counter() - t0
    for s, tr, va in zip(history.eval_steps, history.eval_train_loss, history.eval_val_loss):
        print(f"  step {s:5d}: train {tr:.4f}  val {va:.4f}")
    big = estimate_loss(model, {"train": train_data, "val": val_data}, block_size=model.config.block_size,
                        batch_size=cfg.batch_size, eval_iters=200, seed=1, bf16=False)
    tps = statistics.median(history.tokens_per_s[1:] or history.tokens_per_s)
    print(f"  wall time {wall:.0f} s; train() throughput, median of its records: {tps:,.0f} tokens/s")
    print(f"  final val loss: {history.val_loss:.4f} (eval_iters={cfg.eval_iters}, as nanoGPT), "
          f"{big['val']:.4f} (200 fp32 batches); train {big['train']:.4f}")
    # nanoGPT's figure is one 20-batch estimate (noise about +-0.02), published to two decimals.
    for name, value in (("20-batch estimate", history.val_loss), ("200-batch estimate", big["val"])):
        verdict = "<=" if value <= NANOGPT_VAL_LOSS else ">"
        print(f"  {name}: {value:.4f} {verdict} {NANOGPT_VAL_LOSS} (nanoGPT); to nanoGPT's two decimals: {value:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="training steps of the quality run (recipe: 2000)")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--speed-steps", type=int, default=40, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads; on a CPU shared with other "
                   "jobs use 1 (idle OpenMP threads spin and wait on each other); default: torch's choice")
    p.add_argument("--device", default=None)
    p.add_argument("--bf16", default="auto", choices=["auto", "on", "off"], help="precision of the quality run")
    p.add_argument("--seed", type=int, default=1337, help="seed of the quality run")
    p.add_argument("--no-bias", action="store_true", help="quality run without biases (nanoGPT's train.py default)")
    p.add_argument("--force-bf16", action="store_true", help="time bf16 even where the hardware lacks it")
    p.add_argument("--compile", action="store_true", help="also time torch.compile(gptlab GPT)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    args.bf16 = {"auto": "auto", "on": True, "off": False}[args.bf16]
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("GPTLAB_DATA_MIRROR", "/work/shared/data") if os.path.isdir("/work/shared/data") else None
    from gptlab.device import get_device

    device = get_device(args.device)
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}, "
          f"threads {torch.get_num_threads()}, native bf16: {bf16_supported(device)}, load avg {os.getloadavg()[0]:.1f}")
    tok, train_data, val_data = load_data()
    print(f"Tiny Shakespeare: {len(train_data):,} train / {len(val_data):,} val characters, vocab {tok.n_vocab}")
    if not args.skip_speed:
        speed(args, device, train_data)
    if not args.skip_quality:
        quality(args, device, tok, train_data, val_data)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
