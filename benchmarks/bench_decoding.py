"""Decoding speed: gptlab's KV-cache greedy decoding vs Hugging Face `generate()`.

Peer: transformers' GPT2LMHeadModel.generate on the *same* random weights
(GPT-2 124M shapes), greedy, batch 1, 128 new tokens from a fixed 10-token
prompt. Both must produce identical ids (checked; a mismatch in fp32 fails the
run). Prints tokens/s for each and the ratio gptlab / transformers, in fp32 and
bf16 (both models cast with .to(torch.bfloat16)), then gptlab's cached vs
uncached decode speed at growing sequence lengths.

Timings: one warm-up, then the median of --repeats runs, the two libraries
alternating run by run; torch's default thread count (--threads to change it).
Shared machines make absolute numbers noisy: the load average is printed next
to them; compare the ratios.

Seen on a shared 2-core AMD EPYC (load average 3-7 from other jobs), torch 2.13,
transformers 5.24. fp32 ratio gptlab/transformers: 1.6-2.8x with the default 2
threads (probably: under load every thread hand-off is slow, and transformers
runs more small ops per token); 0.97x with --threads 1, where nn.Linear's
(out, in) weights make batch-1 x @ W.T 10-20% slower than x @ W with the
(in, out) Conv1D layout transformers keeps, which gptlab's leaner step almost
makes up. bf16: 1.1-2.2x (2 threads), 1.14x (1 thread); ids diverge at token 83,
where the top two logits tie exactly in bf16 (fp32 gap 0.001). Cached decoding:
5-10x the uncached speed at L = 64..512.

    python benchmarks/bench_decoding.py                 # CPU, the full run
    python benchmarks/bench_decoding.py --device cuda
    python benchmarks/bench_decoding.py --quick         # fewer tokens/lengths, a smoke test
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

from gptlab.generation import generate
from gptlab.model import GPT
from gptlab.pretrained import load_hf_gpt2

# "The quick brown fox jumps over the lazy dog." in GPT-2's BPE.
PROMPT = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_pair(fa, fb, device: torch.device, repeats: int) -> tuple[float, float, object, object]:
    """Median seconds of `repeats` calls of fa and of fb after one warm-up each, and their last results.

    The two alternate (a, b, a, b, ...) so that load from other processes on a shared
    machine hits both alike; the ratio is steadier than either number."""
    out_a, out_b = fa(), fb()  # warm-up: allocations, kernel selection, lazy init
    ta, tb = [], []
    for _ in range(repeats):
        for f, times in ((fa, ta), (fb, tb)):
            sync(device)
            t0 = time.perf_counter()
            out = f()
            sync(device)
            times.append(time.perf_counter() - t0)
            if f is fa:
                out_a = out
            else:
                out_b = out
    return statistics.median(ta), statistics.median(tb), out_a, out_b


def build_models(device: torch.device):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf_cfg = GPT2Config(
        vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu_new",
    )
    hf = GPT2LMHeadModel(hf_cfg).eval()
    with tempfile.TemporaryDirectory() as d:  # the real path: an HF folder read by gptlab's loader
        hf.save_pretrained(d)
        ours = load_hf_gpt2(d)
    hf.generation_config.eos_token_id = None  # random weights: never stop early
    hf.generation_config.pad_token_id = 50256
    return hf.to(device), ours.to(device)


def hf_greedy(hf, idx: torch.Tensor, n: int) -> torch.Tensor:
    return hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, do_sample=False, num_beams=1)


def compare(hf, ours, device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> tuple[float, float, bool]:
    hf, ours = hf.to(dtype), ours.to(dtype)
    idx = torch.tensor([PROMPT], device=device)
    t_hf, t_us, out_hf, out_us = timed_pair(
        lambda: hf_greedy(hf, idx, n), lambda: generate(ours, idx, n, do_sample=False), device, repeats
    )
    assert out_us.shape == (1, len(PROMPT) + n), out_us.shape
    same = out_hf.shape == out_us.shape and torch.equal(out_hf.cpu(), out_us.cpu())
    name = str(dtype).removeprefix("torch.")
    if not same:
        a, b = out_hf[0, len(PROMPT):].tolist(), out_us[0, len(PROMPT):].tolist()
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"  {name}: ids differ from token {first} of {n} on "
              f"(near-tied logits; {sum(x == y for x, y in zip(a, b))}/{n} positions equal)")
    print(f"  {name:8s}  transformers {n / t_hf:7.1f} tok/s   gptlab {n / t_us:7.1f} tok/s   "
          f"ratio {t_hf / t_us:5.2f}x   identical ids: {same}")
    return n / t_hf, n / t_us, same


@torch.no_grad()
def decode_rate(model: GPT, device: torch.device, length: int, steps: int, use_cache: bool, repeats: int) -> float:
    """Tokens/s of the decode steps that take the sequence from length-steps to length tokens
    (greedy; the prompt's prefill is not timed), exactly the per-step work generate() does."""
    g = torch.Generator().manual_seed(length)
    prompt = torch.randint(0, model.config.vocab_size, (1, length - steps), generator=g).to(device)
    cache = None

    def setup():
        nonlocal cache
        if use_cache:
            cache = model.new_cache()
            model(prompt, cache=cache)

    def run():
        seq, nxt = prompt, prompt
        for _ in range(steps):
            logits, _ = model(nxt, cache=cache) if use_cache else model(seq)
            tok = logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, tok], dim=1)
            nxt = tok
        return seq

    setup()
    run()  # warm-up
    times = []
    for _ in range(repeats):
        setup()
        sync(device)
        t0 = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - t0)
    return steps / statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lengths", default="64,128,256,512")
    ap.add_argument("--steps", type=int, default=4,
                    help="uncached decode steps timed per length in the table (cached: 4x as many)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--quick", action="store_true", help="16 new tokens, 1 repeat, lengths 64,128")
    args = ap.parse_args()
    if args.quick:
        args.new_tokens, args.repeats, args.lengths = 16, 1, "64,128"
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}, "
          f"device {device}{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cpus, load average {load[0]:.1f}")
    hf, ours = build_models(device)
    print(f"GPT-2 124M shapes, random weights ({ours.get_num_params() / 1e6:.1f}M parameters), "
          f"HF attention: {hf.config._attn_implementation}")
    with torch.no_grad():  # the weights really are the same
        x = torch.tensor([PROMPT], device=device)
        diff = (hf(x).logits - ours(x)[0]).abs().max().item()
    print(f"max |logits difference| on the prompt, fp32: {diff:.2e}")

    print(f"\nGreedy, batch 1, {len(PROMPT)}-token prompt, {args.new_tokens} new tokens "
          f"(median of {args.repeats} after 1 warm-up; prefill included):")
    ok = True
    for dtype in (torch.float32, torch.bfloat16):
        _, _, same = compare(hf, ours, device, dtype, args.new_tokens, args.repeats)
        ok &= same or dtype != torch.float32

    ours = ours.to(torch.float32)
    lengths = [int(s) for s in args.lengths.split(",") if s.strip()]  # --lengths "" skips the table
    if lengths:
        print(f"\ngptlab fp32 decode speed at sequence length L (greedy; the last {4 * args.steps} cached / "
              f"{args.steps} uncached steps up to L; prefill not timed):")
        print(f"  {'L':>5s}  {'cached tok/s':>12s}  {'uncached tok/s':>14s}  {'speed-up':>8s}")
    for L in lengths:
        c = decode_rate(ours, device, L, 4 * args.steps, True, args.repeats)  # cheap: more steps, less noise
        u = decode_rate(ours, device, L, args.steps, False, args.repeats)
        print(f"  {L:5d}  {c:12.1f}  {u:14.1f}  {c / u:7.1f}x")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\nload average at the end: {load[0]:.1f} (1 min), {load[1]:.1f} (5 min)")
    if not ok:
        print("FAIL: fp32 ids differ between gptlab and transformers", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
