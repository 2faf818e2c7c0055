"""Tokenizer speed: BPE training time, and encode throughput next to tiktoken's own GPT-2.

    GPTLAB_DATA_MIRROR=/work/shared/data python benchmarks/bench_tokenizers.py

Prints:
1. gptlab.train_bpe, vocab 4,096 on Tiny Shakespeare (target <= 10 s), and on a
   small slice side by side with tiktoken's educational trainer
   (tiktoken._educational.bpe_train, the textbook loop that recounts every pair
   after every merge);
2. encode throughput (MB/s, tokens/s) of gptlab.gpt2() vs tiktoken.get_encoding("gpt2")
   on the same text (same Rust core, so the ratio should be ~1.0), of the
   trained 4,096-token BPE, and of its pure-Python reference encoder.

Runs offline: the data comes through gptlab.data (mirror), and tiktoken's
"gpt2" files are put in a temporary TIKTOKEN_CACHE_DIR by tiktoken_offline_cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable

import tiktoken
from tiktoken._educational import bpe_train as tiktoken_educational_bpe_train

from gptlab.datasets import read_text
from gptlab.tokenizers import GPT2_SPLIT_PATTERN, gpt2, tiktoken_offline_cache, train_bpe


def timed(fn: Callable[[], object], repeat: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (the best is reported)")
    ap.add_argument("--peer-chars", type=int, default=50_000, help="slice for the side-by-side training run")
    ap.add_argument("--peer-vocab", type=int, default=300, help="vocab for the side-by-side training run")
    args = ap.parse_args()

    text = read_text("tinyshakespeare")
    n_bytes = len(text.encode("utf-8"))
    print(f"Tiny Shakespeare: {n_bytes / 1e6:.2f} MB, {os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}")

    # 1. training
    print(f"\n== BPE training: vocab {args.vocab_size:,} on the full text (target <= 10 s)")
    times, tok = timed(lambda: train_bpe(text, args.vocab_size), args.repeat)
    verdict = "OK" if min(times) <= 10 else "SLOWER THAN TARGET"
    print(f"gptlab.train_bpe      best {min(times):6.2f} s   median {statistics.median(times):6.2f} s   ({verdict})")
    print(f"  first merges: {[tok.vocab[256 + i].decode() for i in range(12)]}")

    small = text[: args.peer_chars]
    print(f"\n== BPE training side by side: vocab {args.peer_vocab} on the first {len(small):,} characters")
    ours_t, ours = timed(lambda: train_bpe(small, args.peer_vocab), 1)
    peer_t, peer_ranks = timed(lambda: tiktoken_educational_bpe_train(small, args.peer_vocab, GPT2_SPLIT_PATTERN, visualise=None), 1)
    same = set(peer_ranks) == set(ours.vocab)
    print(f"gptlab.train_bpe                     {ours_t[0]:7.2f} s")
    print(f"tiktoken._educational.bpe_train      {peer_t[0]:7.2f} s   -> gptlab is {peer_t[0] / ours_t[0]:.0f}x faster; "
          f"same tokens learned: {same}")

    # 2. encode throughput
    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(tiktoken_offline_cache(cache))
        try:
            peer = tiktoken.get_encoding("gpt2")
        finally:
            if old is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = old
    ours_gpt2 = gpt2()

    def row(name: str, encode: Callable[[str], list[int]], data: str, repeat: int) -> float:
        size = len(data.encode("utf-8"))
        times, ids = timed(lambda: encode(data), repeat)
        best = min(times)
        print(f"{name:<34} {size / best / 1e6:8.2f} MB/s {len(ids) / best / 1e6:8.2f} M tokens/s   "
              f"{len(ids):>9,} tokens ({size / len(ids):.2f} bytes/token)")
        return best

    print(f"\n== encode throughput, one thread, best of {args.repeat + 2} ({n_bytes / 1e6:.2f} MB)")
    assert ours_gpt2.encode_ordinary(text) == peer.encode_ordinary(text), "gptlab.gpt2() disagrees with tiktoken"
    t_ours = row("gptlab.gpt2()", ours_gpt2.encode_ordinary, text, args.repeat + 2)
    t_peer = row('tiktoken.get_encoding("gpt2")', peer.encode_ordinary, text, args.repeat + 2)
    print(f"  ratio gptlab / tiktoken speed: {t_peer / t_ours:.2f} (1.00 = same; identical token ids: True)")
    row(f"gptlab BPE {tok.n_vocab:,} (tiktoken core)", tok.encode, text, args.repeat + 2)
    slice_ = text[:100_000]
    assert tok.encode_slow(slice_) == tok.encode(slice_), "reference encoder disagrees with tiktoken"
    row("gptlab BPE encode_slow (Python)", tok.encode_slow, slice_, 1)


if __name__ == "__main__":
    main()
