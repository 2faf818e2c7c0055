"""int8 weights for decoding: PyTorch's dynamic quantization against the same model in fp32.

torch.ao.quantization.quantize_dynamic swaps every nn.Linear for one that keeps
int8 weights (one scale per output row) and quantizes each activation on the fly.
Peer: the fp32 model it was made from, in this one process, alternating runs.

- size: bytes of the state dict (weights + quantization scales), fp32 vs int8;
- speed: greedy KV-cache decoding (gptlab.generation), batch 1, --new-tokens new
  tokens from a 10-token prompt, GPT-2 124M shapes with seeded random weights;
  median of --repeats, the two alternating;
- quality: perplexity (gptlab.metrics.perplexity) on the first --ppl-tokens
  characters of Tiny Shakespeare's val split under the trained lesson-06 model
  (gptlab.course.shakespeare_char_model), fp32 vs int8.

    python benchmarks/bench_quantization.py [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
import warnings

import torch
from torch.ao.quantization import quantize_dynamic

from gptlab import GPT, GPTConfig
from gptlab.metrics import perplexity


def int8(model: torch.nn.Module) -> torch.nn.Module:
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao (not installed here)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def state_bytes(model: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def decode_speed(model, prompt, new_tokens: int) -> float:
    t0 = time.perf_counter()
    model.generate(prompt, new_tokens, do_sample=False)
    return new_tokens / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ppl-tokens", type=int, default=20000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="GPT-2 shapes with 4 layers, fewer tokens: a smoke test")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.new_tokens, args.repeats, args.ppl_tokens = 16, 2, 2000
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}")

    torch.manual_seed(0)
    big = GPT(GPTConfig.from_preset("gpt2", **({"n_layer": 4} if args.quick else {}))).eval()
    q_big = int8(big)
    fp32_mb, int8_mb = state_bytes(big) / 1e6, state_bytes(q_big) / 1e6
    print(f"\nGPT-2 124M shapes{' (4 layers, --quick)' if args.quick else ''}: state dict {fp32_mb:.1f} MB fp32, {int8_mb:.1f} MB int8 "
          f"({fp32_mb / int8_mb:.2f}x smaller; embeddings stay fp32, and the tied matrix is now stored twice)")
    prompt = torch.randint(0, 50257, (1, 10), generator=torch.Generator().manual_seed(0))
    for m in (big, q_big):
        decode_speed(m, prompt, 4)  # warm-up
    speeds = {"fp32": [], "int8": []}
    for _ in range(args.repeats):
        speeds["fp32"].append(decode_speed(big, prompt, args.new_tokens))
        speeds["int8"].append(decode_speed(q_big, prompt, args.new_tokens))
    f, q = statistics.median(speeds["fp32"]), statistics.median(speeds["int8"])
    same = torch.equal(big.generate(prompt, 16, do_sample=False), q_big.generate(prompt, 16, do_sample=False))
    print(f"greedy decode, {args.new_tokens} new tokens, median of {args.repeats}: fp32 {f:.1f} tok/s, int8 {q:.1f} tok/s "
          f"({q / f:.2f}x); first 16 greedy ids identical: {same}")

    from gptlab.course import shakespeare_char_model
    from gptlab.data import split_tokens
    from gptlab.datasets import read_text

    model, tok, _ = shakespeare_char_model()
    model.eval()
    _, val = split_tokens(tok.encode(read_text("tinyshakespeare")), val_fraction=0.1)
    ids = val[: args.ppl_tokens]
    q_model = int8(model)
    p32, p8 = perplexity(model, ids), perplexity(q_model, ids)
    print(f"\nshakespeare-char model ({model.get_num_params():,} parameters), perplexity on {len(ids):,} val characters: "
          f"fp32 {p32:.4f}, int8 {p8:.4f} ({100 * (p8 / p32 - 1):+.2f}%); state dict {state_bytes(model) / 1e6:.2f} MB fp32, "
          f"{state_bytes(q_model) / 1e6:.2f} MB int8")


if __name__ == "__main__":
    main()
