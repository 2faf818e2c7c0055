"""The numbers that fix a GPT's shape (lesson 05) and a training run (lesson 06), and the presets.

Two flat dataclasses, checked when they are made, so a bad setting fails here with
a sentence that says what to change rather than deep inside a matmul or after an
hour of training. PRESETS is the one table of named recipes: a model shape and, for
those the course trains, its training settings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch


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
    qk_norm: bool = False  # RMSNorm on each head's queries and keys before q.k (bounds the logits), whatever `norm` is
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
        return cls.from_dict({**PRESETS[name]["model"], **overrides})


# ---------------------------------------------------------------- training


@dataclass
class TrainConfig:
    """Every knob of a training run. The defaults are nanoGPT's shakespeare-char CPU recipe."""

    max_steps: int = 2000  # optimizer updates
    batch_size: int = 12  # sequences per micro-batch
    lr: float = 1e-3  # peak learning rate, reached at the end of warmup
    min_lr: float = 1e-4  # where the cosine ends (nanoGPT: lr / 10)
    warmup_steps: int = 100  # linear warmup: Adam's moment estimates are poor for the first steps
    lr_decay_steps: int | None = None  # the cosine reaches min_lr here; None: at max_steps
    weight_decay: float = 0.1  # applied to matrices only, never to biases or LayerNorm gains
    betas: tuple[float, float] = (0.9, 0.99)  # beta2 0.99 (not 0.999): few tokens per step, noisy gradients
    grad_clip: float = 1.0  # largest global gradient norm; 0 turns clipping off
    grad_accum: int = 1  # micro-batches per update: effective batch = batch_size * grad_accum
    eval_interval: int = 250  # estimate train and val loss every this many steps (and at the end)
    eval_iters: int = 20  # batches per estimate
    bf16: bool | str = "auto"  # bfloat16 autocast: "auto" uses it where the CPU or GPU computes it natively
    device: str | None = None  # None: cuda, else mps, else cpu (or GPTLAB_DEVICE)
    seed: int = 1337  # seeds batch sampling and dropout
    log_interval: int = 10  # record the training loss every this many steps (each record costs a host sync)
    ckpt_dir: str | None = None  # where to save checkpoints; None saves nothing
    ckpt_interval: int | None = None  # save every this many steps; None: at every evaluation. Always at the end.
    compile: bool | str = False  # torch.compile the model (opt-in: slow first steps, needs a C++ compiler on CPU); "auto": on CUDA
    progress: bool = True  # show a progress bar and print each evaluation
    preset: str | None = None  # the recipe these settings came from (from_preset sets it), kept for the record
    schedule: str = "cosine"  # or "wsd": warmup, stable at lr, then a linear decay over the last decay_frac (lesson 14)
    decay_frac: float = 0.2  # wsd only: the fraction of the lr_decay_steps (or max_steps) spent decaying
    optimizer: str = "adamw"  # or "muon": Muon for the blocks' matrices, AdamW for embeddings, head and gains
    muon_lr: float = 0.02  # Muon's peak learning rate (it follows the same schedule, scaled by muon_lr / lr)

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> ValueError:
            return ValueError(f"TrainConfig.{name} must be {want}, got {getattr(self, name)!r}")

        for name in ("max_steps", "batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(name, "a positive integer")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise bad("warmup_steps", "an integer >= 0")
        for name in ("lr_decay_steps", "ckpt_interval"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise bad(name, "None or a positive integer")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise bad(name, "a finite number > 0" if name == "lr" else "a finite number >= 0")
        if self.min_lr > self.lr:
            raise ValueError(f"TrainConfig.min_lr ({self.min_lr}) must not exceed lr ({self.lr}): the cosine decays from lr down to min_lr")
        if self.lr_decay_steps is not None and self.lr_decay_steps < self.warmup_steps:
            raise ValueError(
                f"TrainConfig.lr_decay_steps ({self.lr_decay_steps}) must be >= warmup_steps ({self.warmup_steps}): "
                "decay starts after warmup"
            )
        betas = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else ()
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas):
            raise bad("betas", "two numbers in [0, 1), e.g. (0.9, 0.99)")
        self.betas = (float(betas[0]), float(betas[1]))
        if self.bf16 not in ("auto", True, False):
            raise bad("bf16", "'auto', True or False")
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise bad("device", "None or a device such as 'cpu', 'cuda' or 'mps'") from None
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise bad("seed", "an integer in [0, 2**63)")
        if not isinstance(self.progress, bool):
            raise bad("progress", "True or False")
        if self.compile not in (True, False, "auto") or not isinstance(self.compile, (bool, str)):
            raise bad("compile", "True, False or 'auto' (compile on CUDA only)")
        if self.preset is not None and not isinstance(self.preset, str):
            raise bad("preset", "None or a preset name")
        if self.schedule not in ("cosine", "wsd"):
            raise bad("schedule", "'cosine' or 'wsd'")
        if isinstance(self.decay_frac, bool) or not isinstance(self.decay_frac, (int, float)) or not 0 < self.decay_frac <= 1:
            raise bad("decay_frac", "a number in (0, 1]")
        if self.optimizer not in ("adamw", "muon"):
            raise bad("optimizer", "'adamw' or 'muon'")
        if isinstance(self.muon_lr, bool) or not isinstance(self.muon_lr, (int, float)) or not 0 < self.muon_lr < math.inf:
            raise bad("muon_lr", "a finite number > 0")
        if self.optimizer == "muon" and self.ckpt_dir is not None:
            raise ValueError("TrainConfig.optimizer='muon' cannot be checkpointed (resuming restores AdamW state only); "
                             "set ckpt_dir=None or use optimizer='adamw'")
        if self.ckpt_dir is not None:
            self.ckpt_dir = str(self.ckpt_dir)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return from_known_fields(cls, d)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "TrainConfig":
        recipes = sorted(n for n, p in PRESETS.items() if "train" in p)
        if name not in PRESETS or "train" not in PRESETS[name]:
            raise ValueError(f"unknown training preset {name!r}; choose one of {recipes}")
        return cls.from_dict({**PRESETS[name]["train"], "preset": name, **overrides})


# ---------------------------------------------------------------- presets: one table, a model shape and its recipe

# name -> {"model": GPTConfig fields, "train": TrainConfig fields}. A preset without "train"
# is a shape only (GPT-2's released sizes are loaded, not trained here). `gptlab train
# --preset NAME` uses both halves; GPTConfig.from_preset and TrainConfig.from_preset one each.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The four released GPT-2 sizes (Radford et al., 2019).
    "gpt2": {"model": dict(n_layer=12, n_head=12, n_embd=768)},  # 124M
    "gpt2-medium": {"model": dict(n_layer=24, n_head=16, n_embd=1024)},  # 350M
    "gpt2-large": {"model": dict(n_layer=36, n_head=20, n_embd=1280)},  # 774M
    "gpt2-xl": {"model": dict(n_layer=48, n_head=25, n_embd=1600)},  # 1558M
    # nanoGPT's config/train_shakespeare_char.py with its CPU settings (README: val loss 1.88), 65 characters.
    "shakespeare-char": {
        "model": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        "train": dict(
            max_steps=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_steps=100, lr_decay_steps=2000,
            weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, eval_interval=250, eval_iters=20, log_interval=10,
        ),
    },
    # GPT-2 124M on a web corpus, after nanoGPT's train_gpt2.py / build-nanogpt and llm.c's GPT-2 (124M) run:
    # 64 x 1024 tokens per micro-batch x 8 micro-batches = 524,288 (~0.5M) tokens per step on ONE process;
    # with N processes pass --grad-accum 8/N to keep 0.5M (tokens per step = batch x block x grad_accum x N).
    # 19,073 steps x 0.5M = 10B tokens (FineWeb-Edu's 10BT sample, one epoch). lr 6e-4 (GPT-3 paper, 125M), warmup
    # 715 steps, cosine to 6e-5, betas (0.9, 0.95), weight decay 0.1; bf16 and torch.compile where the GPU has them.
    "gpt2-124m": {
        "model": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.0),
        "train": dict(
            max_steps=19073, batch_size=64, grad_accum=8, lr=6e-4, min_lr=6e-5, warmup_steps=715, lr_decay_steps=19073,
            weight_decay=0.1, betas=(0.9, 0.95), grad_clip=1.0, eval_interval=250, eval_iters=20, log_interval=10,
            ckpt_interval=1000, bf16="auto", compile="auto",
        ),
    },
    # Lesson 14's speedrun: the shakespeare-char shape with the modern switches, a bigger batch at a higher
    # learning rate, and a warmup-stable-decay schedule; benchmarks/l14_race.py races it against nanoGPT's recipe.
    # 1,075 steps: as many as fit in 0.92x the CPU time of nanoGPT's 2000-step recipe on the course's CPU (AVX-512
    # BF16, where this preset trains in bf16), measured on a tuning seed (benchmarks/results/l14_tune.json).
    "speedrun": {
        "model": dict(
            vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
            pos_emb="rotary", norm="rmsnorm", mlp="relu2", qk_norm=True, tie_weights=False,
        ),
        "train": dict(
            max_steps=1075, batch_size=24, lr=3e-3, min_lr=3e-4, warmup_steps=50, lr_decay_steps=1075, schedule="wsd",
            decay_frac=0.3, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, eval_interval=250, eval_iters=20,
            log_interval=10,
        ),
    },
    # Small enough for unit tests and a notebook's fast mode; a few seconds of training.
    "tiny": {
        "model": dict(vocab_size=96, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0),
        "train": dict(max_steps=50, batch_size=8, lr=1e-3, min_lr=1e-4, warmup_steps=5, eval_interval=25, eval_iters=4,
                      log_interval=5),
    },
}
