"""Turning next-token logits into text: greedy, sampling, beam search, streaming (lesson 07).

A GPT only ever answers one question: given these tokens, how likely is each
possible next token? Generation asks it again and again, appending one choice
each time. Everything here is about *which* token to append:

    logits --repetition penalty--> --temperature--> --top-k--> --top-p--> softmax -> sample
    (greedy, do_sample=False, skips the last four and takes the argmax)

The filters are small pure functions on a (..., vocab) tensor so a lesson can
call them on one row of logits and plot what they keep.

The context window (cropping rule). A GPT with learned absolute position
embeddings can see at most `block_size` tokens. When the sequence is longer,
the model always sees exactly its **last `block_size` tokens** (a sliding
window, as nanoGPT does), with and without the KV cache. Sliding the window
shifts every token's position by one, and a cached key was computed with its old
position mixed in, so cached keys cannot be reused once the sequence overflows:
the cached path then rebuilds the cache from the window (one full-window forward
per new token, the same cost as uncached decoding). Below `block_size` the cache
makes each new token cost one position instead of the whole prefix. Both paths
feed the model the same tokens at the same positions, so cached and uncached
decoding give the same tokens (up to float rounding, which in fp32 only matters
for near-exact ties).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn
from torch.nn import functional as F

from gptlab.device import eval_mode

__all__ = [
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "apply_repetition_penalty",
    "ban_repeated_ngrams",
    "sample_next",
    "generate",
    "beam_search",
    "stream",
]


# ----------------------------------------------------------------------------- argument checks


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_sampling(do_sample: bool, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not isinstance(do_sample, bool):
        raise ValueError(f"do_sample must be True (sample) or False (greedy), got {do_sample!r}")
    if not _is_number(temperature) or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number, got {temperature!r}")
    if do_sample and temperature <= 0:
        raise ValueError(
            f"temperature must be > 0 when sampling, got {temperature}; "
            "for greedy decoding (always the most likely token) pass do_sample=False"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer (or None to keep every token), got {top_k!r}")
    if top_p is not None and (not _is_number(top_p) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (or None to keep every token), got {top_p!r}")


def _check_penalty(penalty: float) -> None:
    if not _is_number(penalty) or not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1.0 means no penalty, >1 discourages repeats), got {penalty!r}")


def _check_idx(idx: Any) -> None:
    if not isinstance(idx, torch.Tensor):
        raise ValueError(f"idx must be a torch.LongTensor of token ids, got {type(idx).__name__}")
    if idx.dim() != 2 or idx.dtype != torch.long:
        hint = " (add a batch dimension: idx[None] or idx.unsqueeze(0))" if idx.dim() == 1 else ""
        raise ValueError(
            f"idx must be a 2-D (batch, time) torch.long tensor of token ids, got shape {tuple(idx.shape)} "
            f"dtype {idx.dtype}{hint}; e.g. torch.tensor([ids], dtype=torch.long)"
        )
    if idx.size(0) == 0:
        raise ValueError(f"idx has batch size 0 (shape {tuple(idx.shape)}); pass at least one prompt")
    if idx.size(1) == 0:
        raise ValueError(
            "the prompt is empty (idx has 0 tokens): the model needs at least one token to condition on; "
            "start from a token such as '\\n' for a character model or <|endoftext|> (id 50256) for GPT-2"
        )


def _check_max_new_tokens(n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {n!r}")


def _stop_list(stop_tokens: int | Iterable[int] | None, vocab_size: int) -> list[int]:
    if stop_tokens is None:
        return []
    bad = ValueError(f"stop_tokens must be a token id or a list of ids in [0, {vocab_size}), got {stop_tokens!r}")
    if isinstance(stop_tokens, torch.Tensor):
        stop_tokens = stop_tokens.flatten().tolist()
    raw = list(stop_tokens) if isinstance(stop_tokens, Iterable) else [stop_tokens]
    if any(isinstance(t, bool) for t in raw):
        raise bad
    try:
        ids = [operator.index(t) for t in raw]  # ints, numpy ints
    except TypeError:
        raise bad from None
    if any(not 0 <= t < vocab_size for t in ids):
        raise bad
    return ids


# ----------------------------------------------------------------------------- logits -> token


def apply_temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    """logits / t. t < 1 sharpens the distribution (t -> 0 approaches greedy), t > 1 flattens it."""
    if not _is_number(t) or not t > 0:
        raise ValueError(f"temperature must be > 0, got {t!r}; for greedy decoding use do_sample=False")
    return logits / t


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (exactly k; ties broken by torch.topk), set the rest to -inf.

    k larger than the vocabulary keeps everything. Cutting the long tail stops the
    sampler from ever picking one of the thousands of individually unlikely tokens.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be a positive integer, got {k!r}")
    if k >= logits.size(-1):
        return logits.clone()
    keep = torch.topk(logits, k, dim=-1).indices
    out = torch.full_like(logits, float("-inf"))
    return out.scatter(-1, keep, logits.gather(-1, keep))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al., 2019): keep the smallest set of most likely
    tokens whose probabilities sum to >= p; the rest become -inf.

    Unlike top-k the set adapts: a confident model keeps one or two tokens, an
    unsure one keeps many. The most likely token is always kept; p = 1 keeps all.
    """
    if not _is_number(p) or not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p!r}")
    if p >= 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = F.softmax(sorted_logits.float(), dim=-1)
    before = probs.cumsum(dim=-1) - probs  # probability mass of the tokens ranked above this one
    drop_sorted = before >= p  # the set above already reached p; the top token has before == 0 < p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def apply_repetition_penalty(logits: torch.Tensor, idx: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens already present in `idx` (B, T) less likely in `logits` (B, V).

    The CTRL rule (Keskar et al., 2019), as Hugging Face applies it: a present
    token's positive logit is divided by `penalty`, a negative one multiplied by
    it, so penalty > 1 always lowers it. Each present token is penalised once,
    however often it occurs. penalty = 1 changes nothing; < 1 encourages repeats.
    """
    _check_penalty(penalty)
    if penalty == 1.0:
        return logits.clone()
    score = logits.gather(-1, idx)
    score = torch.where(score > 0, score / penalty, score * penalty)
    return logits.scatter(-1, idx, score)


def _check_no_repeat(n: Any) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"no_repeat_ngram_size must be None (no limit) or a positive integer such as 3, got {n!r}")


def ban_repeated_ngrams(logits: torch.Tensor, generated: torch.Tensor, n: int) -> torch.Tensor:
    """Set to -inf every token that would complete an n-gram already present in `generated` (B, t).

    The guard against loops of Paulus et al. (2017) ("no trigram twice", n = 3):
    if the last n-1 tokens of a row occurred before, the tokens that followed them
    then are banned now. Only the *generated* tokens count, not the prompt: a
    summary may copy a phrase of the abstract once, it just may not repeat itself
    (Hugging Face's decoder-only generate also scans the prompt, which forbids
    copying any n-gram of it). n = 1 bans every token generated so far.
    """
    _check_no_repeat(n)
    B, t = generated.shape
    if t < n:
        return logits
    out = logits.clone()
    rows = generated.tolist()
    for b, row in enumerate(rows):
        tail = row[t - n + 1 :] if n > 1 else []
        banned = {row[i + n - 1] for i in range(t - n + 1) if row[i : i + n - 1] == tail}
        if banned:
            out[b, list(banned)] = float("-inf")
    return out


def sample_next(
    logits: torch.Tensor,
    *,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one next token per row of `logits` (B, V) -> (B, 1) token ids.

    do_sample=False is greedy (argmax; temperature, top_k and top_p do not change
    the argmax, so they are ignored). Otherwise: temperature, then top-k, then
    top-p, then draw from the softmax using `generator` (same seed, same draw).
    """
    _check_sampling(do_sample, temperature, top_k, top_p)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, vocab_size), got shape {tuple(logits.shape)}")
    if not do_sample:
        return logits.argmax(dim=-1, keepdim=True)
    if temperature < 1e-2:  # logits / t could overflow to inf (NaN probabilities); softmax ignores a shift, so shift first
        logits = logits - logits.amax(dim=-1, keepdim=True)
    logits = apply_temperature(logits.float(), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


# ----------------------------------------------------------------------------- the decoding loop


def _cache_len(model: nn.Module, T: int, max_new_tokens: int) -> int:
    """Positions the cache needs: the prompt and all but the last new token, at most block_size.
    A cache sized to the job, not to block_size, is quicker to allocate and keeps each
    head's keys close together in memory (GPT-2: 138 positions instead of 1024)."""
    return max(1, min(model.config.block_size, T + max_new_tokens - 1))


@torch.no_grad()
def _next_logits(model: nn.Module, seq: torch.Tensor, cache: Any | None) -> torch.Tensor:
    """Float logits (B, V) for the token after `seq` (B, n), under the sliding-window rule.

    Uncached: run the last block_size tokens. Cached: feed only what the cache has
    not seen yet; once n > block_size, rebuild the cache from the last block_size
    tokens (positions shifted, so old keys are stale) -- the same tokens at the
    same positions as the uncached path.
    """
    n, block = seq.size(1), model.config.block_size
    if cache is None:
        logits, _ = model(seq[:, -block:], last_only=True)
    elif n > block:
        cache.pos = 0  # overwrite in place: the buffers stay allocated
        logits, _ = model(seq[:, -block:], cache=cache, last_only=True)
    else:
        logits, _ = model(seq[:, cache.pos :], cache=cache, last_only=True)
    return logits[:, -1, :].float()


def _decode_steps(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    do_sample: bool,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float,
    stop_tokens: int | Iterable[int] | None,
    use_cache: bool,
    generator: torch.Generator | None,
    no_repeat_ngram_size: int | None = None,
) -> Iterator[torch.Tensor]:
    """Check every argument now, then return an iterator of next tokens (B, 1), one per step.

    The model is put in eval mode while the iterator runs and restored when it is
    exhausted or closed. Gradients are off only inside each step, never between yields.
    The iterator's return value (StopIteration.value) says why it ended: "max_new_tokens",
    "stop_tokens" (every row stopped) or "no_repeat_ngram_size" (the ban left some
    row no token at all: rather than emit a banned token, or crash drawing from
    all-zero probabilities, decoding ends there for every row).
    """
    _check_idx(idx)
    _check_max_new_tokens(max_new_tokens)
    _check_sampling(do_sample, temperature, top_k, top_p)
    _check_penalty(repetition_penalty)
    _check_no_repeat(no_repeat_ngram_size)
    stops = _stop_list(stop_tokens, model.config.vocab_size)
    if not isinstance(use_cache, bool):
        raise ValueError(f"use_cache must be True or False, got {use_cache!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator (or None), got {type(generator).__name__}")
    if generator is not None and do_sample and generator.device.type != idx.device.type:
        raise ValueError(
            f"the generator is on {generator.device} but idx is on {idx.device}; "
            f"make it there: torch.Generator(device={str(idx.device)!r}).manual_seed(seed)"
        )

    def steps() -> Generator[torch.Tensor, None, str]:
        B, T = idx.shape
        # Grown as needed (doubling), not allocated for max_new_tokens up front: a huge max_new_tokens must not fail here.
        seq = torch.empty(B, T + min(max_new_tokens, 4096), dtype=torch.long, device=idx.device)
        seq[:, :T] = idx
        n = T
        stop_t = torch.tensor(stops, dtype=torch.long, device=idx.device)
        finished = torch.zeros(B, 1, dtype=torch.bool, device=idx.device)
        pad = torch.zeros(B, 1, dtype=torch.long, device=idx.device)  # the stop token each finished row emitted
        with eval_mode(model):
            cache = model.new_cache(_cache_len(model, T, max_new_tokens)) if use_cache else None
            for _ in range(max_new_tokens):
                logits = _next_logits(model, seq[:, :n], cache)
                if repetition_penalty != 1.0:
                    logits = apply_repetition_penalty(logits, seq[:, :n], repetition_penalty)
                if no_repeat_ngram_size is not None:
                    logits = ban_repeated_ngrams(logits, seq[:, T:n], no_repeat_ngram_size)
                    if bool(((logits == float("-inf")).all(dim=-1, keepdim=True) & ~finished).any()):
                        return "no_repeat_ngram_size"  # (never with stop tokens: an unfinished row has not used them)
                nxt = sample_next(
                    logits, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
                )
                if stops:
                    nxt = torch.where(finished, pad, nxt)
                    hit = torch.isin(nxt, stop_t) & ~finished
                    pad = torch.where(hit, nxt, pad)
                    finished = finished | hit
                if n == seq.size(1):
                    seq = torch.cat([seq, torch.empty_like(seq)], dim=1)
                seq[:, n : n + 1] = nxt
                n += 1
                yield nxt
                if stops and bool(finished.all()):
                    return "stop_tokens"
            return "max_new_tokens"

    return steps()


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop_tokens: int | Iterable[int] | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    no_repeat_ngram_size: int | None = None,
) -> torch.Tensor:
    """Continue each row of `idx` (B, T) by up to `max_new_tokens` tokens -> (B, T + n).

    do_sample=False is greedy decoding; otherwise sampling with `temperature`,
    `top_k`, `top_p` (see sample_next) and a `generator` for repeatable draws.
    repetition_penalty > 1 discourages every token already in the row, prompt
    included. stop_tokens: a row stops after emitting one of them; later positions
    of a finished row repeat that stop token, and generation ends (n < max_new_tokens)
    once every row has stopped. no_repeat_ngram_size=n: no n-gram of the new
    tokens occurs twice (see ban_repeated_ngrams); once the ban leaves a row no
    token at all (n = 1 and the whole vocabulary used), generation ends there, for
    every row. The result's `stopped_because` attribute says why it ended:
    "max_new_tokens", "stop_tokens" or "no_repeat_ngram_size". Prompts longer than block_size, and sequences that
    grow past it, follow the sliding-window rule in the module docstring; cached
    (use_cache=True, the default) and uncached decoding give the same tokens.
    Runs in eval mode without gradients and restores the model's training mode.
    """
    steps = _decode_steps(model, idx, max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                          repetition_penalty=repetition_penalty, stop_tokens=stop_tokens, use_cache=use_cache,
                          generator=generator, no_repeat_ngram_size=no_repeat_ngram_size)
    new: list[torch.Tensor] = []
    while True:
        try:
            new.append(next(steps))
        except StopIteration as end:
            out = torch.cat([idx, *new], dim=1)
            out.stopped_because = end.value  # a plain tensor with one attribute more: every use of the result still works
            return out


# ----------------------------------------------------------------------------- beam search


@torch.no_grad()
def beam_search(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    num_beams: int = 4,
    length_penalty: float = 1.0,
    stop_tokens: int | Iterable[int] | None = None,
    use_cache: bool = True,
    no_repeat_ngram_size: int | None = None,
) -> torch.Tensor:
    """Keep the `num_beams` most likely continuations at every step; return the best (1, T + n).

    Greedy commits to the single best token each step and can miss a sequence
    whose first token is slightly worse but whose continuation is much better.
    Beam search keeps several candidates (the KV cache's rows, reordered with
    KVCache.reorder as beams are kept or dropped). A finished beam (one that
    emitted a stop token, included in it) and, at the end, every running beam is
    scored by its total log-probability divided by (number of new tokens) **
    length_penalty: 0 compares raw totals (favours short), 1 the mean per token.
    Like Hugging Face's default, the search ends early once num_beams beams have
    finished and no running beam currently scores better than the worst of them.
    no_repeat_ngram_size=n bans, in every beam, the tokens that would repeat
    one of its n-grams (see ban_repeated_ngrams); when the ban leaves no beam a
    token, the running beams compete as they are, so the best of them is returned
    (shorter than max_new_tokens) rather than nothing. As with generate, the
    result's `stopped_because` says why the best beam ended: "max_new_tokens",
    "stop_tokens" or "no_repeat_ngram_size". Batch 1 only. use_cache=False
    recomputes every beam's prefix each step (same result; there to check the
    cache's reordering against).
    """
    _check_idx(idx)
    _check_max_new_tokens(max_new_tokens)
    if idx.size(0) != 1:
        raise ValueError(f"beam_search handles one prompt at a time (batch 1), got batch {idx.size(0)}; loop over the rows")
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive integer, got {num_beams!r}")
    if not _is_number(length_penalty):
        raise ValueError(f"length_penalty must be a number, got {length_penalty!r}")
    _check_no_repeat(no_repeat_ngram_size)
    stops = set(_stop_list(stop_tokens, model.config.vocab_size))
    if not isinstance(use_cache, bool):
        raise ValueError(f"use_cache must be True or False, got {use_cache!r}")

    with eval_mode(model):
        cache = model.new_cache(_cache_len(model, idx.size(1), max_new_tokens)) if use_cache else None
        seqs = idx  # (beams, n): one row per running beam
        scores = torch.zeros(1, device=idx.device)  # total log-prob of each beam's new tokens
        done: list[tuple[float, torch.Tensor, str]] = []  # (normalised score, (1, n) sequence, why it ended)
        running, why = max_new_tokens > 0, "max_new_tokens"
        for step in range(1, max_new_tokens + 1):
            logp = F.log_softmax(_next_logits(model, seqs, cache), dim=-1)  # (beams, V)
            if no_repeat_ngram_size is not None:
                logp = ban_repeated_ngrams(logp, seqs[:, idx.size(1) :], no_repeat_ngram_size)
            V = logp.size(-1)
            cand = (scores[:, None] + logp).view(-1)
            top_scores, top_idx = cand.topk(min(2 * num_beams, cand.numel()))
            keep_beam: list[int] = []
            keep_tok: list[int] = []
            keep_score: list[float] = []
            banned_out = False
            for rank, (s, i) in enumerate(zip(top_scores.tolist(), top_idx.tolist())):
                if s == float("-inf"):  # only banned continuations are left
                    banned_out = True
                    break
                b, t = divmod(i, V)
                if t in stops:
                    if rank < num_beams:  # a finished beam must be among the num_beams best to count
                        tok = torch.tensor([[t]], device=idx.device)
                        done.append((s / step**length_penalty, torch.cat([seqs[b : b + 1], tok], dim=1), "stop_tokens"))
                    continue
                keep_beam.append(b)
                keep_tok.append(t)
                keep_score.append(s)
                if len(keep_beam) == num_beams:
                    break
            if not keep_beam:  # every candidate stopped, or the ban left none: the running beams compete as they are
                running, why = banned_out, "no_repeat_ngram_size"
                break
            order = torch.tensor(keep_beam, device=idx.device)
            if cache is not None:
                cache.reorder(order)  # cache row j now holds the keys/values of the beam it extends
            seqs = torch.cat([seqs[order], torch.tensor(keep_tok, device=idx.device)[:, None]], dim=1)
            scores = torch.tensor(keep_score, device=idx.device)
            if len(done) >= num_beams:
                worst_kept = sorted((d[0] for d in done), reverse=True)[num_beams - 1]
                if max(keep_score) / step**length_penalty <= worst_kept:
                    running = False  # no running beam can beat the finished ones (heuristic)
                    break
        n_new = seqs.size(1) - idx.size(1)
        if running and n_new:  # beams still running at max_new_tokens (or stuck under the ban) compete too
            for b in range(seqs.size(0)):
                done.append((scores[b].item() / n_new**length_penalty, seqs[b : b + 1], why))
        if not done:
            out = idx.clone()
            out.stopped_because = "max_new_tokens"  # max_new_tokens=0
            return out
        best = max(range(len(done)), key=lambda j: done[j][0])  # first of equals
        out = done[best][1].clone()
        out.stopped_because = done[best][2]
        return out


# ----------------------------------------------------------------------------- streaming text


def _encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    try:
        import tiktoken

        if isinstance(tokenizer, tiktoken.Encoding):
            # Let "<|endoftext|>" in the prompt be the special token: it is GPT-2's usual start.
            return tokenizer.encode(prompt, allowed_special="all")
    except ImportError:  # pragma: no cover - tiktoken is a dependency
        pass
    return list(tokenizer.encode(prompt))


def stream(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    max_new_tokens: int,
    *,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop_tokens: int | Iterable[int] | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    no_repeat_ngram_size: int | None = None,
) -> Iterator[str]:
    """Generate from `prompt` and yield the new text piece by piece as tokens arrive.

        for piece in stream(model, tok, "ROMEO:", 200, temperature=0.8):
            print(piece, end="", flush=True)

    With byte-level BPE (GPT-2, gptlab's BPE) one character can span several
    tokens, and decoding half of it gives the replacement character U+FFFD. So
    after each token the new ids so far are decoded and trailing U+FFFD are held
    back until a later token completes them (or generation ends). The pieces
    joined equal tokenizer.decode(all new ids), stop token included. Works with
    anything that has encode/decode (CharTokenizer, BPETokenizer, tiktoken.Encoding).
    Sampling options are generate()'s; they are checked when stream() is called.
    Like generate, it ends early when every row stopped or the no-repeat ban leaves no token.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
    ids = _encode_prompt(tokenizer, prompt)
    if not ids:
        raise ValueError(
            "the prompt is empty (it encodes to 0 tokens): the model needs at least one token to condition on; "
            "start from e.g. '\\n' for a character model or '<|endoftext|>' for GPT-2"
        )
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    steps = _decode_steps(
        model,
        idx,
        max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        stop_tokens=stop_tokens,
        use_cache=use_cache,
        generator=generator,
        no_repeat_ngram_size=no_repeat_ngram_size,
    )

    def pieces() -> Iterator[str]:
        new: list[int] = []
        emitted = ""
        try:
            for nxt in steps:
                new.append(int(nxt[0, 0]))
                stable = tokenizer.decode(new).rstrip("\ufffd")  # hold back a half-decoded character
                if len(stable) > len(emitted) and stable.startswith(emitted):
                    yield stable[len(emitted) :]
                    emitted = stable
        finally:
            steps.close()  # restores the model's mode if the caller stops early
        text = tokenizer.decode(new) if new else ""
        if len(text) > len(emitted) and text.startswith(emitted):
            yield text[len(emitted) :]

    return pieces()
