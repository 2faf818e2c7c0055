"""A GPT-2 style decoder-only Transformer, small enough to read in one sitting (lessons 03, 04, 05; 14's switches).

GPT is *decoder-only*: every position attends only to itself and earlier
positions (causal attention). That is what lets one forward pass train on every
next-token prediction in a sequence at once, and what lets generation reuse the
keys and values of earlier tokens (the KV cache below). Names follow GPT-2's
checkpoint (`c_attn`, `c_proj`, `ln_1`, ...) so loading its weights is a
one-to-one mapping.

A few GPTConfig switches (pos_emb, norm, mlp, qk_norm, tie_weights) turn on the
changes later small-GPT recipes make, for lesson 14 to measure; each is a short
`if` beside the GPT-2 line it replaces, and the defaults are GPT-2 exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from gptlab.config import GPTConfig

IGNORE_INDEX = -100  # a target with this value adds nothing to the loss (PyTorch's cross_entropy default)


def causal_mask(T: int, L: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, L) booleans: query i (the last T of L positions) may see key j iff j <= L - T + i."""
    return torch.ones(T, L, dtype=torch.bool, device=device).tril(diagonal=L - T)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_size)), with keys where `mask` is False hidden (weight exactly 0)."""
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))
    return F.softmax(att, dim=-1)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout: nn.Dropout,
    *, is_causal: bool = False, flash: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention's output (B, nh, T, hs), and its weights when written out (flash=False), else None.

    The one attention kernel of the package: GPT's causal self-attention and the
    encoder-decoder's attentions (gptlab.seq2seq) both call it. flash=True uses the
    fused F.scaled_dot_product_attention; flash=False computes the same softmax
    explicitly (they agree to float rounding, ~1e-6 in fp32). `mask` (broadcast to
    (B, nh, T, L)): True where a query may see a key; is_causal=True is the square
    causal mask without building it.
    """
    if flash:
        p = dropout.p if dropout.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal), None
    if is_causal:
        mask = causal_mask(q.size(-2), k.size(-2), q.device)
    att = attention_weights(q, k, mask)
    return dropout(att) @ v, att


def init_gpt2_weights(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation, for GPT and the encoder-decoder alike.

    N(0, 0.02) for every Linear and Embedding weight, zero biases; then the
    projections that write into the residual stream (c_proj) get std
    0.02 / sqrt(2 * n_layer), so the stream's variance does not grow with depth.
    """

    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    model.apply(init)  # children before parents, as nn.Module.apply always goes: the RNG order is GPT-2's
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))


class RMSNorm(nn.RMSNorm):
    """RMSNorm (Zhang & Sennrich, 2019): x / RMS(x) * weight; no mean subtraction, no bias.

    Under bf16 autocast the activations arrive in bf16 while the weight stays fp32, and
    F.rms_norm then warns "Mismatch dtype ... Cannot dispatch to fused implementation"
    and takes its slow path. Casting the weight to the input's dtype (the gradient still
    reaches the fp32 weight) keeps the two equal: the fused kernel where PyTorch has one
    (CUDA), and no warning anywhere. On a CPU, torch 2.13 has no fused RMSNorm kernel:
    both dtypes run the composite ops (lesson 14 measures what that costs).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


def make_norm(config: GPTConfig, dim: int | None = None) -> nn.Module:
    """GPT-2's LayerNorm, or RMSNorm: no mean subtraction, no bias, fewer operations."""
    dim = dim or config.n_embd
    return nn.LayerNorm(dim, bias=config.bias) if config.norm == "layernorm" else RMSNorm(dim, eps=1e-5)


def rotary_cos_sin(pos: torch.Tensor, head_size: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (T, head_size // 2), of the angles by which rotary embeddings turn positions `pos`.

    Dimension pair i of a query or key at position p turns by p * theta^(-2i / head_size):
    q.k then depends only on how far apart the two positions are (Su et al., 2021).
    """
    inv_freq = theta ** (-torch.arange(0, head_size, 2, dtype=torch.float32, device=pos.device) / head_size)
    angles = pos.float()[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each pair (x[..., i], x[..., i + hs/2]) of x (B, nh, T, hs) by the angle whose cos/sin are given."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).type_as(x)


class KVCache:
    """The keys and values every layer has computed for the tokens seen so far.

    Without it, generating token t re-runs the whole prefix (O(t^2) work per
    token); with it each new token only computes its own query, key and value.
    Memory is allocated once, for `max_len` positions, on first use.
    """

    def __init__(self, config: GPTConfig, max_len: int | None = None) -> None:
        self.n_layer = config.n_layer
        self.max_len = max_len or config.block_size
        self.k: torch.Tensor | None = None  # (n_layer, B, n_head, max_len, head_size)
        self.v: torch.Tensor | None = None
        self.pos = 0  # how many positions are filled

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's (B, n_head, T, head_size) keys/values; return all keys/values so far."""
        B, nh, T, hs = k.shape
        if self.k is None:
            shape = (self.n_layer, B, nh, self.max_len, hs)
            self.k = torch.empty(shape, dtype=k.dtype, device=k.device)  # only filled positions are read
            self.v = torch.empty(shape, dtype=v.dtype, device=v.device)
        end = self.pos + T
        if end > self.max_len:
            raise ValueError(f"KV cache is full: {self.pos} + {T} positions > max_len {self.max_len}")
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, T: int) -> None:
        self.pos += T

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the batch rows named by `index` (in that order), e.g. the surviving beams."""
        if self.k is not None:
            self.k = self.k.index_select(1, index)
            self.v = self.v.index_select(1, index)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        # q, k and v for all heads in one matmul (one weight of shape (3C, C)).
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        if config.qk_norm:  # QK-norm: each head's q and k RMS-normalised (learned gain), so q.k stays bounded
            self.q_norm = RMSNorm(config.head_size, eps=1e-5)  # whatever config.norm is: modded-nanoGPT's choice
            self.k_norm = RMSNorm(config.head_size, eps=1e-5)
        self.qk_norm = config.qk_norm
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # flash: use the fused F.scaled_dot_product_attention kernel. False runs the same
        # math written out; the two agree to float rounding (~1e-6 in fp32).
        self.flash = True
        # capture: also keep this layer's attention weights (B, n_head, T, L) in self.att,
        # for visualisation; the output itself is computed exactly as without it.
        self.capture = False
        self.att: torch.Tensor | None = None

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T / sqrt(head_size)) with future positions masked out."""
        return attention_weights(q, k, causal_mask(q.size(-2), k.size(-2), q.device))

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, rope: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        B, T, C = x.size()  # batch, time (sequence length), channels (n_embd)
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:  # rotary: turn q and k by their (absolute) positions before the cache stores k
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nh, L, hs): every position so far
        L = k.size(2)
        if T == L:  # plain causal attention (training, or a cache's first chunk)
            y, att = attend(q, k, v, None, self.attn_dropout, is_causal=True, flash=self.flash)
        elif T == 1:  # one new token may see every cached position: no mask needed
            y, att = attend(q, k, v, None, self.attn_dropout, flash=self.flash)
        else:  # a chunk of new tokens after a cached prefix
            y, att = attend(q, k, v, causal_mask(T, L, x.device), self.attn_dropout, flash=self.flash)
        # y: (B, nh, T, L) x (B, nh, L, hs) -> (B, nh, T, hs)
        if self.capture:
            self.att = (att if att is not None else self.attention_weights(q, k)).detach()
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: widen 4x, GELU, project back.

    mlp="relu2" swaps GELU for relu(x)^2 (So et al., 2021); mlp="swiglu" computes
    silu(gate) * up (Shazeer, 2020) at 2/3 the width, so the parameter count stays.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.kind = config.mlp
        hidden = 4 * config.n_embd if config.mlp != "swiglu" else 2 * (4 * config.n_embd * 2 // 3)  # gate and up
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2 used the tanh approximation
        self.c_proj = nn.Linear(hidden if config.mlp != "swiglu" else hidden // 2, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if self.kind == "gelu":
            h = self.gelu(h)
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:  # swiglu
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attn(ln(x)), then x + mlp(ln(x)).

    Normalising *before* each sub-layer keeps the residual stream an untouched
    sum, so gradients reach early layers directly (GPT-2's change to the
    original post-LN Transformer).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, rope: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, rope)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
                wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embeddings
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=make_norm(config),
            )
        )
        if config.pos_emb == "rotary":  # positions enter through q and k instead (apply_rotary)
            del self.transformer["wpe"]
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: the matrix that turns a token id into a vector also scores vectors
        # against every token at the output. Saves vocab_size * n_embd parameters
        # (38.6M for GPT-2 small) and tends to help (Press & Wolf, 2017).
        if config.tie_weights:
            self.transformer.wte.weight = self.lm_head.weight
        init_gpt2_weights(self, config.n_layer)

    def get_num_params(self, non_embedding: bool = False) -> int:
        """Parameters, each counted once (the tied embedding/head matrix once).

        non_embedding=True leaves out the position embeddings, the convention for
        scaling laws (the token embedding still counts: as lm_head it does compute).
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        if non_embedding and not self.config.tie_weights:  # an untied wte is a lookup only
            n -= self.transformer.wte.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None, training: bool = False) -> int:
        """Approximate FLOPs to process one token with `seq_len` tokens of context.

        Each weight is one multiply-add (2 FLOPs) per token; attention adds
        q.k and att.v over the context: 2 * 2 * n_layer * seq_len * n_embd
        (counting the full T x T square, as PaLM's appendix B does). The backward
        pass costs about twice the forward, so training is 3x.
        """
        cfg = self.config
        T = cfg.block_size if seq_len is None else seq_len
        forward = 2 * self.get_num_params(non_embedding=True) + 4 * cfg.n_layer * T * cfg.n_embd
        return 3 * forward if training else forward

    def hidden_states(self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """idx: (B, T) token ids -> (B, T, n_embd): embeddings, the blocks, then the final norm.

        Everything forward does except the lm_head matmul: what a classification head
        (gptlab.finetune, lesson 11) or any other head reads. last_only=True keeps the
        last position only (B, 1, n_embd). Input checks are forward's: ids must be a 2-D
        integer tensor with a row, at most block_size positions, inside the vocabulary.
        """
        if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int32, torch.int64):
            raise ValueError(f"idx must be a (batch, time) tensor of integer token ids, got {tuple(idx.shape)} {idx.dtype}")
        B, T = idx.size()
        if B == 0:
            raise ValueError(f"idx has batch size 0 (shape {tuple(idx.shape)}); pass at least one sequence")
        start = cache.pos if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(
                f"cannot run {start + T} positions: block_size (the context length) is {self.config.block_size}; "
                "crop the input to its last block_size tokens"
            )
        if T > 0 and idx.device.type == "cpu":  # on a GPU this check would force a sync every step
            lo, hi = (int(v) for v in torch.aminmax(idx))
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}), got [{lo}, {hi}]")
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
        rope = None
        if self.config.pos_emb == "learned":
            x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        else:
            x = self.transformer.drop(self.transformer.wte(idx))
            rope = rotary_cos_sin(pos, self.config.head_size, self.config.rope_theta)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i, rope)
        if cache is not None:
            cache.advance(T)
        if last_only:
            x = x[:, -1:]
        return self.transformer.ln_f(x)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx: (B, T) token ids -> logits (B, T, vocab_size), and the mean
        cross-entropy against `targets` (B, T) if given (IGNORE_INDEX = -100 marks positions to ignore).

        last_only=True returns logits (B, 1, vocab_size) for the last position only: all that
        generation needs, and it skips the biggest matmul (n_embd x vocab_size) for the rest."""
        if last_only and targets is not None:
            raise ValueError("last_only=True gives one position's logits; a loss needs all of them")
        logits = self.lm_head(self.hidden_states(idx, cache, last_only))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss

    def crop_block_size(self, block_size: int) -> None:
        """Shrink the context length, e.g. to fine-tune GPT-2 (1024) on short texts cheaply."""
        if not 0 < block_size <= self.config.block_size:
            raise ValueError(f"block_size must be in [1, {self.config.block_size}], got {block_size}")
        self.config.block_size = block_size
        if "wpe" in self.transformer:
            self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size].detach().clone())

    def new_cache(self, max_len: int | None = None) -> KVCache:
        return KVCache(self.config, max_len)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
        """Continue `idx` by `max_new_tokens` tokens; see gptlab.generation.generate for the options."""
        from gptlab.generation import generate

        return generate(self, idx, max_new_tokens, **kwargs)
