"""An encoder-decoder Transformer (Vaswani et al., 2017) built from gptlab's GPT pieces (lessons 12 and 15).

GPT is decoder-only: one stream of tokens, causal self-attention, nothing else.
The original Transformer for translation has two stacks:

- an **encoder** reads the source with *bidirectional* self-attention (every source
  token sees every other, nothing is predicted there, so nothing needs hiding), and
- a **decoder** that is a GPT plus one extra sub-layer per block: *cross-attention*,
  whose queries come from the target tokens and whose keys and values come from the
  encoder's output.

The decoder's causal self-attention, its MLP and its KV cache are gptlab.model's
own (`Block`, `CausalSelfAttention`, `KVCache`); this module adds the one new piece,
`Attention` (queries from one sequence, keys/values from another, padding masked),
used for the encoder's self-attention and for cross-attention. `ConditionedDecoder`
fixes one batch of encoder outputs and then looks like a GPT to
gptlab.generation, so greedy decoding and beam search are the course's own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.nn import functional as F

from gptlab.config import GPTConfig
from gptlab.model import IGNORE_INDEX, MLP, Block, KVCache, attend, attention_weights, init_gpt2_weights


@dataclass
class Seq2SeqConfig:
    vocab_size: int = 4000  # one joint vocabulary for source and target (embeddings shared)
    block_size: int = 64  # the longest source, and the longest target, in tokens
    n_encoder_layer: int = 2
    n_decoder_layer: int = 3
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("n_encoder_layer", "n_decoder_layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Seq2SeqConfig.{name} must be a positive integer, got {value!r}")
        self.decoder_config()  # GPTConfig checks the other fields

    def decoder_config(self) -> GPTConfig:
        """The GPTConfig of the decoder stack (n_layer = n_decoder_layer), for Block and KVCache."""
        return GPTConfig(
            vocab_size=self.vocab_size, block_size=self.block_size, n_layer=self.n_decoder_layer,
            n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _key_mask(mask: torch.Tensor | None, B: int, S: int, device: torch.device) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.shape != (B, S) or mask.dtype != torch.bool:
        raise ValueError(f"memory_mask must be a (batch, source_len) = {(B, S)} bool tensor (True = a real token), "
                         f"got {tuple(mask.shape)} {mask.dtype}")
    return mask.to(device)


class Attention(nn.Module):
    """Multi-head attention with queries from `x` (B, T, C) and keys/values from `memory` (B, S, C).

    memory=None attends `x` to itself: the encoder's *bidirectional* self-attention
    (no causal mask). With the encoder's output as memory it is the decoder's
    cross-attention. memory_mask (B, S), True for real tokens, hides padding: a
    padded key gets weight exactly 0. Same parameter count as CausalSelfAttention
    (c_q: C x C, c_kv: C x 2C, c_proj: C x C).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_q = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_kv = nn.Linear(config.n_embd, 2 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.flash = True  # as in CausalSelfAttention: False writes the softmax out
        self.capture = False  # keep the weights (B, n_head, T, S) in self.att for pictures
        self.att: torch.Tensor | None = None

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """softmax(q k^T / sqrt(head_size)) over the keys, padded keys masked out."""
        return attention_weights(q, k, None if key_mask is None else key_mask[:, None, None, :])

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.size()
        memory = x if memory is None else memory
        S = memory.size(1)
        if memory.size(0) == 1 and B > 1:  # one source for several rows (beams): share it
            memory = memory.expand(B, S, C)
            memory_mask = None if memory_mask is None else memory_mask.expand(B, S)
        key_mask = _key_mask(memory_mask, B, S, x.device)
        hs = C // self.n_head
        q = self.c_q(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k, v = self.c_kv(memory).split(self.n_embd, dim=2)
        k = k.view(B, S, self.n_head, hs).transpose(1, 2)  # (B, nh, S, hs)
        v = v.view(B, S, self.n_head, hs).transpose(1, 2)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        y, att = attend(q, k, v, mask, self.attn_dropout, flash=self.flash)
        if self.capture:
            self.att = (att if att is not None else self.attention_weights(q, k, key_mask)).detach()
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class EncoderBlock(nn.Module):
    """Block with bidirectional self-attention: x + attn(ln(x), padding hidden), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), memory_mask=mask)
        return x + self.mlp(self.ln_2(x))


class DecoderBlock(Block):
    """GPT's Block (causal self-attention, MLP) with cross-attention to the encoder in between."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.ln_x = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.cross = Attention(config)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None,
        cache: KVCache | None = None, layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)  # causal: target token t sees targets <= t
        x = x + self.cross(self.ln_x(x), memory, memory_mask)  # and every (real) source token
        return x + self.mlp(self.ln_2(x))


def _stack(config: GPTConfig, block: type[nn.Module], n: int) -> nn.ModuleDict:
    """Position embeddings, dropout, n blocks and a final LayerNorm: one stack, named as in GPT."""
    return nn.ModuleDict(
        dict(
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([block(config) for _ in range(n)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        )
    )


class EncoderDecoder(nn.Module):
    """Source ids (B, S) and target ids (B, T) -> next-target-token logits (B, T, vocab_size).

    One token embedding serves the source, the target and the output layer (a joint
    vocabulary, tied as in GPT); each stack has its own learned position embeddings.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"EncoderDecoder expects a Seq2SeqConfig, got {type(config).__name__}")
        self.config = config
        dec = config.decoder_config()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.encoder = _stack(dec, EncoderBlock, config.n_encoder_layer)
        self.decoder = _stack(dec, DecoderBlock, config.n_decoder_layer)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        init_gpt2_weights(self, config.n_encoder_layer + config.n_decoder_layer)  # GPT-2's init, as GPT's

    def get_num_params(self) -> int:
        """Parameters, each counted once (the tied embedding/head matrix once)."""
        return sum(p.numel() for p in self.parameters())

    def _check_ids(self, ids: torch.Tensor, name: str, start: int = 0) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"{name} must be a (batch, time) torch.long tensor of token ids, got {getattr(ids, 'shape', type(ids))}")
        if start + ids.size(1) > self.config.block_size:
            raise ValueError(f"{name} has {start + ids.size(1)} positions; block_size is {self.config.block_size}")
        if ids.numel() and ids.device.type == "cpu":
            lo, hi = (int(v) for v in torch.aminmax(ids))
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(f"{name}: token ids must lie in [0, {self.config.vocab_size}), got [{lo}, {hi}]")

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Source ids (B, S) -> memory (B, S, C). src_mask (B, S) bool, True = a real token (not padding)."""
        self._check_ids(src, "src")
        B, S = src.shape
        pos = torch.arange(S, device=src.device)
        x = self.encoder.drop(self.wte(src) + self.encoder.wpe(pos))
        for block in self.encoder.h:
            x = block(x, src_mask)
        return self.encoder.ln_f(x)

    def decode(
        self, idx: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None,
        targets: torch.Tensor | None = None, cache: KVCache | None = None, last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Target ids (B, T) and the encoder's memory -> logits (B, T, V) and the loss (IGNORE_INDEX targets skipped), like GPT.forward."""
        start = cache.pos if cache is not None else 0
        self._check_ids(idx, "idx (the target ids)", start)
        if memory.size(0) not in (1, idx.size(0)):  # one memory row may serve every row: the beams of beam_search
            raise ValueError(f"idx (the target ids) has {idx.size(0)} rows but the memory holds {memory.size(0)} source "
                             "sentences: they must match, or be one sentence shared by every row (beam search conditions "
                             "on one source at a time: model.condition(src[i : i + 1]))")
        T = idx.size(1)
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.decoder.drop(self.wte(idx) + self.decoder.wpe(pos))
        for i, block in enumerate(self.decoder.h):
            x = block(x, memory, memory_mask, cache, i)
        if cache is not None:
            cache.advance(T)
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(self.decoder.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss

    def forward(
        self, src: torch.Tensor, idx: torch.Tensor, targets: torch.Tensor | None = None, src_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(src, torch.Tensor) and isinstance(idx, torch.Tensor) and src.dim() == idx.dim() == 2 and len(src) != len(idx):
            raise ValueError(f"src has {len(src)} rows but idx (the target ids) has {len(idx)}: each source sentence needs "
                             "its own target row; pass batches of equal size")
        return self.decode(idx, self.encode(src, src_mask), src_mask, targets)

    def condition(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> "ConditionedDecoder":
        """Encode `src` once; return the decoder bound to it, ready for gptlab.generation."""
        return ConditionedDecoder(self, self.encode(src, src_mask), src_mask)


class ConditionedDecoder(nn.Module):
    """The decoder with one batch of encoder outputs fixed: to gptlab.generation it is a GPT.

    generate() (greedy, sampling, stop tokens, KV cache) and beam_search() (batch 1:
    the single memory row is shared by every beam) then work unchanged.
    """

    def __init__(self, model: EncoderDecoder, memory: torch.Tensor, memory_mask: torch.Tensor | None) -> None:
        super().__init__()
        self.model = model
        self.memory = memory
        self.memory_mask = memory_mask
        self.config = model.config.decoder_config()

    def new_cache(self, max_len: int | None = None) -> KVCache:
        return KVCache(self.config, max_len)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None, last_only: bool = False):
        return self.model.decode(idx, self.memory, self.memory_mask, targets, cache, last_only)


def source_mask(src: torch.Tensor, pad: int) -> torch.Tensor:
    """(B, S) True for real source tokens: each row's real tokens, then `pad` to the right.
    Position 0 is always real (every source starts with <|en|>)."""
    real = src != pad
    real[:, 0] = True
    return real.cummin(dim=1).values  # padding only at the end: once False, False
