"""Read a model's attention: capture every head's weights, and score what each head does (lesson 08).

Attention weights are the one part of a Transformer you can look at directly:
row i of a head's (T, T) matrix says how much position i takes from each
earlier position. `get_attention` runs the model once and returns all of them,
(n_layer, n_head, T, T), next to the token strings, without changing a single
output value (the weights are recomputed from the same q and k the layer uses).

Looking at 144 heatmaps by eye does not scale, so, as TransformerLens does, we
also *score* heads for the patterns that recur in trained models:

- previous-token heads: position i looks at i - 1 (they build bigram features);
- first-token heads ("attention sinks"): a head with nothing to do parks its
  attention on position 0, because softmax weights must sum to 1;
- induction heads: on a sequence repeated twice, a token in the second copy
  looks at the token that *followed* its earlier occurrence. Together with a
  previous-token head this copies patterns ("A B ... A -> B"), the mechanism
  behind in-context learning (Olsson et al., 2022).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from gptlab.device import eval_mode
from gptlab.model import GPT, CausalSelfAttention
from gptlab.tokenizers import token_strings


@dataclass
class AttentionMaps:
    """Every attention weight of one forward pass over one sequence.

    weights: (n_layer, n_head, T, T) float32 on the CPU; row i is query position i,
             column j key position j; zero above the diagonal (causal).
    tokens:  T readable token strings (for labels).
    ids:     (T,) the token ids that were run.
    logits:  (T, vocab_size) the model's outputs, identical to a plain forward.
    """

    weights: torch.Tensor
    tokens: list[str]
    ids: torch.Tensor
    logits: torch.Tensor

    @property
    def n_layer(self) -> int:
        return self.weights.size(0)

    @property
    def n_head(self) -> int:
        return self.weights.size(1)

    @property
    def T(self) -> int:
        return self.weights.size(-1)

    def head(self, layer: int, head: int) -> torch.Tensor:
        """The (T, T) weights of one head."""
        check_index("layer", layer, self.n_layer)
        check_index("head", head, self.n_head)
        return self.weights[layer, head]

    def window(self, start: int = 0, end: int | None = None) -> "AttentionMaps":
        """Tokens start..end-1 only (for long inputs). Rows then sum to <= 1: the
        weight on tokens before `start` is cut away, not renormalised."""
        start, end = window_bounds(start, end, self.T)
        return AttentionMaps(
            self.weights[..., start:end, start:end],
            self.tokens[start:end],
            self.ids[start:end],
            self.logits[start:end],
        )


def check_index(name: str, value: int, n: int) -> None:
    """Refuse a layer/head index outside [0, n) with a message naming it (shared with gptlab.viz)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < n:
        raise ValueError(f"{name} must be an integer in [0, {n}), got {value!r}")


def window_bounds(start: int | None, end: int | None, T: int) -> tuple[int, int]:
    """[start, end) of a token window, Python-style negatives allowed, checked to lie inside [0, T]."""
    start = 0 if start is None else start
    end = T if end is None else end
    if start < 0:
        start += T
    if end < 0:
        end += T
    if not 0 <= start < end <= T:
        raise ValueError(f"token window [{start}, {end}) must be non-empty and lie inside [0, {T}]")
    return start, end


def attention_layers(model: torch.nn.Module) -> list[CausalSelfAttention]:
    """The model's CausalSelfAttention modules, first layer first."""
    layers = [m for m in model.modules() if isinstance(m, CausalSelfAttention)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no gptlab CausalSelfAttention layers to capture")
    return layers


@contextlib.contextmanager
def capture_attention(model: torch.nn.Module) -> Iterator[list[CausalSelfAttention]]:
    """Switch on `capture` in every attention layer for the duration of a `with` block.

    Afterwards each layer's flag is back to what it was and the stored weights are
    dropped, so a model used for training or generation never keeps paying for them.
    """
    layers = attention_layers(model)
    before = [(m.capture, m.att) for m in layers]
    for m in layers:
        m.capture, m.att = True, None
    try:
        yield layers
    finally:
        for m, (flag, att) in zip(layers, before):
            m.capture, m.att = flag, att


@torch.no_grad()
def capture_weights(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `idx` (B, T) in eval mode; return logits (B, T, V) and weights (B, n_layer, n_head, T, T).

    Eval mode because dropout would make the outputs (and the weights) random;
    the model's train/eval mode is restored afterwards.
    """
    with eval_mode(model), capture_attention(model) as layers:
        logits, _ = model(idx)
        weights = torch.stack([m.att for m in layers], dim=1)
    return logits, weights.float()


def _token_strings(tokenizer: Any, ids: list[int]) -> list[str]:
    return list(token_strings(tokenizer, ids))


def get_attention(
    model: GPT,
    text_or_ids: str | Sequence[int] | torch.Tensor,
    tokenizer: Any = None,
    *,
    truncate: bool = False,
) -> AttentionMaps:
    """Run one sequence and return every layer's and head's attention weights.

    text_or_ids: a string (needs `tokenizer`), or token ids as a list or a (T,) / (1, T) tensor.
    truncate: keep the last block_size tokens of a longer input instead of raising.
    Token strings come from `gptlab.tokenizers.token_strings` (or "#<id>" without a tokenizer).
    """
    if isinstance(text_or_ids, str):
        if tokenizer is None:
            raise ValueError("get_attention got text but no tokenizer; pass tokenizer=... or token ids")
        ids = torch.tensor(tokenizer.encode(text_or_ids), dtype=torch.long)
    else:
        ids = torch.as_tensor(text_or_ids, dtype=torch.long).cpu()
        if ids.dim() == 2 and ids.size(0) == 1:
            ids = ids[0]
        if ids.dim() != 1:
            raise ValueError(f"get_attention runs one sequence: pass (T,) or (1, T) ids, got shape {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ValueError("get_attention needs at least one token; the text encoded to nothing")
    block = model.config.block_size
    if ids.numel() > block:
        if not truncate:
            raise ValueError(
                f"{ids.numel()} tokens do not fit the model's context of {block} (block_size); "
                "shorten the text or pass truncate=True to keep the last block_size tokens"
            )
        ids = ids[-block:]
    device = next(model.parameters()).device
    logits, weights = capture_weights(model, ids[None].to(device))
    tokens = _token_strings(tokenizer, ids.tolist()) if tokenizer is not None else [f"#{i}" for i in ids.tolist()]
    return AttentionMaps(weights[0].cpu(), tokens, ids, logits[0].cpu())


# ---------------------------------------------------------------- head scores


def _as_weights(maps_or_weights: AttentionMaps | torch.Tensor) -> torch.Tensor:
    w = maps_or_weights.weights if isinstance(maps_or_weights, AttentionMaps) else maps_or_weights
    if w.dim() < 2 or w.size(-1) != w.size(-2):
        raise ValueError(f"expected attention weights (..., T, T), got shape {tuple(w.shape)}")
    return w.float()


def previous_token_scores(maps_or_weights: AttentionMaps | torch.Tensor) -> torch.Tensor:
    """Mean weight from position i to i - 1 (over i >= 1): 1.0 for a pure previous-token head.

    Accepts AttentionMaps or weights (..., T, T); returns the leading shape, e.g. (n_layer, n_head).
    """
    w = _as_weights(maps_or_weights)
    if w.size(-1) < 2:
        raise ValueError("previous-token scores need at least 2 tokens")
    return w.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)


def first_token_scores(maps_or_weights: AttentionMaps | torch.Tensor) -> torch.Tensor:
    """Mean weight from positions i >= 1 to position 0 (position 0 has no choice, so it is left out)."""
    w = _as_weights(maps_or_weights)
    if w.size(-1) < 2:
        raise ValueError("first-token scores need at least 2 tokens")
    return w[..., 1:, 0].mean(-1)


def mean_attention_distance(maps_or_weights: AttentionMaps | torch.Tensor) -> torch.Tensor:
    """How far back a head looks, in tokens: sum_j w[i, j] * (i - j), averaged over queries i >= 1.

    A previous-token head scores 1, a first-token head T / 2, uniform attention T / 4
    (position 0 can only look at itself, so it is left out as in the other scores).
    """
    w = _as_weights(maps_or_weights)
    T = w.size(-1)
    if T < 2:
        raise ValueError("attention distances need at least 2 tokens")
    pos = torch.arange(T, dtype=w.dtype)
    dist = (pos[:, None] - pos[None, :]).clamp(min=0)  # (T, T): i - j below the diagonal
    return (w * dist).sum(-1)[..., 1:].mean(-1)


def induction_scores_from_weights(weights: torch.Tensor, period: int) -> torch.Tensor:
    """Induction score on a sequence whose second half repeats its first `period` tokens.

    A token at position i >= period occurred before at i - period; an induction head
    looks at what came next there, position i - period + 1. Score = mean of those
    weights over the second repeat. weights (..., T, T) with T >= period + 1.
    """
    w = _as_weights(weights)
    T = w.size(-1)
    if not 1 <= period < T:
        raise ValueError(f"period must be in [1, {T - 1}] for {T} tokens, got {period}")
    i = torch.arange(period, T)
    return w[..., i, i - period + 1].mean(-1)


@torch.no_grad()
def induction_scores(
    model: GPT,
    seq_len: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    vocab_range: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Score every head (n_layer, n_head) for induction on random tokens repeated twice.

    Random tokens make the copy the *only* way to predict the second half, so what a
    head does there is about repetition, not about language. seq_len (the length of one
    repeat) defaults to min(block_size // 2, 64); tokens are drawn uniformly from
    vocab_range (default: the whole vocabulary) with a fixed seed.
    """
    cfg = model.config
    n = seq_len if seq_len is not None else min(cfg.block_size // 2, 64)
    if not 2 <= n <= cfg.block_size // 2:
        raise ValueError(f"seq_len must be in [2, {cfg.block_size // 2}] (two repeats must fit block_size {cfg.block_size}), got {n}")
    lo, hi = vocab_range if vocab_range is not None else (0, cfg.vocab_size)
    if not 0 <= lo < hi <= cfg.vocab_size:
        raise ValueError(f"vocab_range must satisfy 0 <= lo < hi <= {cfg.vocab_size}, got {vocab_range}")
    g = torch.Generator().manual_seed(seed)
    first = torch.randint(lo, hi, (batch_size, n), generator=g)
    idx = torch.cat([first, first], dim=1).to(next(model.parameters()).device)
    _, weights = capture_weights(model, idx)  # (B, L, H, 2n, 2n)
    return induction_scores_from_weights(weights.cpu(), n).mean(0)


def head_scores(maps: AttentionMaps) -> dict[str, torch.Tensor]:
    """The text-based scores of every head, each (n_layer, n_head), by name (for plotting)."""
    return {
        "previous token": previous_token_scores(maps),
        "first token": first_token_scores(maps),
        "mean distance": mean_attention_distance(maps),
    }


def top_heads(scores: torch.Tensor, k: int = 3) -> list[tuple[int, int, float]]:
    """The k best (layer, head, score) of an (n_layer, n_head) score table, best first."""
    flat = scores.flatten()
    k = min(k, flat.numel())
    vals, idx = flat.topk(k)
    n_head = scores.size(-1)
    return [(int(i) // n_head, int(i) % n_head, float(v)) for v, i in zip(vals, idx)]
