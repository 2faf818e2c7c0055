"""The handful of numbers that fix a GPT's shape.

One flat dataclass, checked when it is made, so a bad shape fails here with a
sentence that says what to change rather than deep inside a matmul.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


def from_known_fields(cls: type, d: dict[str, Any]) -> Any:
    """cls(**d), but a misspelt key (say `n_layers`) is an error that lists the real ones, not a TypeError."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known fields are {sorted(known)}")
    return cls(**d)


POS_EMBS = ("learned", "rotary")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "relu2")


_GPT2_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias")


@dataclass
class GPTConfig:
    vocab_size: int = 50257  # GPT-2: 50,000 BPE merges + 256 bytes + <|endoftext|>
    block_size: int = 1024  # the context length: the most tokens the model sees at once
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2 has them
    # Switches for the changes later small-GPT recipes make (lesson 14). The defaults are GPT-2.
    pos_emb: str = "learned"  # "learned": GPT-2's wpe table; "rotary": rotate q and k by position (RoPE)
    norm: str = "layernorm"  # or "rmsnorm": scale by 1/RMS only, no mean subtraction, no bias
    mlp: str = "gelu"  # or "swiglu" (silu(gate) * up, 2/3 the width: same parameters) or "relu2" (relu(x)^2)
    qk_norm: bool = False  # RMS-normalise each head's queries and keys before q.k (bounds the logits)
    tie_weights: bool = True  # lm_head shares wte's matrix; False gives the head its own
    rope_theta: float = 10000.0  # rotary base: head dim pair i turns by pos * theta^(-2i/head_size)

    def __repr__(self) -> str:
        """GPT-2's fields always; a lesson-14 switch only when it is on, so a GPT-2 config prints as GPT-2."""
        return f"GPTConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                f"each head gets n_embd // n_head dimensions; try n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be a number in [0, 1), got {self.dropout!r}")
        for name in ("bias", "qk_norm", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GPTConfig.{name} must be True or False, got {getattr(self, name)!r}")
        for name, choices in (("pos_emb", POS_EMBS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"GPTConfig.{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.pos_emb == "rotary" and self.head_size % 2:
            raise ValueError(
                f"GPTConfig.pos_emb='rotary' turns pairs of dimensions, so the head size n_embd // n_head "
                f"({self.head_size}) must be even; change n_embd or n_head"
            )
        theta = self.rope_theta
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not math.isfinite(theta) or theta <= 1:
            raise ValueError(f"GPTConfig.rope_theta must be a finite number > 1, got {theta!r}")

    @property
    def is_gpt2(self) -> bool:
        """True when every switch is at GPT-2's setting, so the weights map one-to-one onto GPT-2's."""
        return (self.bias, self.pos_emb, self.norm, self.mlp, self.qk_norm, self.tie_weights) == (
            True, "learned", "layernorm", "gelu", False, True)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        """GPT-2's fields, plus each lesson-14 switch that is on: a GPT-2 config is written as it always was."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in _GPT2_FIELDS or getattr(self, f.name) != f.default}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GPTConfig":
        return from_known_fields(cls, d)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "GPTConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    # The four released GPT-2 sizes (Radford et al., 2019).
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    # nanoGPT's CPU recipe for character-level Tiny Shakespeare (65 characters).
    "shakespeare-char": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
    # The model of the gpt2-124m training recipe (gptlab.training.PRESETS): GPT-2 small, trained from scratch.
    "gpt2-124m": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.0),
    # Lesson 14's speedrun: the shakespeare-char shape with the modern switches (see training.PRESETS).
    "speedrun": dict(
        vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
        pos_emb="rotary", norm="rmsnorm", mlp="relu2", qk_norm=True, tie_weights=False,
    ),
    # Small enough for unit tests and a notebook's fast mode.
    "tiny": dict(vocab_size=96, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0),
}
