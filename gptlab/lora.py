"""LoRA: fine-tune a big matrix through a small low-rank update (Hu et al., 2021).

A fine-tuned weight W' = W + dW rarely needs a full-rank dW. LoRA writes
dW = (alpha / r) * B @ A with A (r, in) and B (out, r), trains only A and B, and
keeps W frozen: for GPT-2's fused c_attn (768 -> 2304) and r = 8 that is 24,576
trainable numbers instead of 1,769,472. B starts at zero, so an adapted model
computes exactly what the original did until training moves B; merge_lora folds
B @ A into W afterwards, so inference costs nothing extra. Only A and B need
saving: a few hundred kilobytes next to a shared base model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

DEFAULT_TARGETS = ("c_attn",)  # the fused q, k, v projection; Hu et al. adapt q and v only


class LoRALinear(nn.Module):
    """base(x) + (alpha / r) * x A^T B^T, with `base` (an nn.Linear) frozen.

    On the fused c_attn layer one A (r, n_embd) feeds all of q, k and v and B
    (3 n_embd, r) writes all three, so the rank-r update is shared by them.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        self.base = base
        self.r, self.alpha = r, float(alpha)
        self.scaling = self.alpha / r
        p = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=p.device, dtype=p.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=p.device, dtype=p.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear (and Hu et al.'s code) initialise A
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for q in base.parameters():
            q.requires_grad_(False)

    def delta_weight(self) -> torch.Tensor:
        """(out, in): what merging adds to base.weight."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}"


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, each shared tensor (GPT's tied wte/lm_head) counted once."""
    params = list(model.parameters())  # parameters() yields a shared tensor once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """{module name: LoRALinear} of every adapter in `model`."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def _matches(name: str, targets: Iterable[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_lora(
    model: nn.Module, r: int = 8, alpha: float = 16.0, targets: Iterable[str] = DEFAULT_TARGETS,
    *, dropout: float = 0.0, freeze_rest: bool = True,
) -> list[str]:
    """Wrap every nn.Linear of `model` whose name ends with one of `targets` in a LoRALinear; return their names.

    targets: module-name suffixes, e.g. ("c_attn",) or ("c_attn", "attn.c_proj", "c_fc")
    or full names such as "transformer.h.3.attn.c_attn". freeze_rest=True freezes every
    other parameter of `model` too, so only the adapters train; pass a classifier's
    body (clf.gpt) to keep its head trainable.
    """
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"r (the adapter rank) must be a positive integer, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"alpha must be a number > 0 (the update is scaled by alpha / r), got {alpha!r}")
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets:
        raise ValueError("targets is empty: name at least one layer, e.g. targets=('c_attn',)")
    if lora_layers(model):
        raise ValueError("the model already has LoRA adapters; merge_lora(model) first, or load another adapter into a fresh model")
    chosen = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and _matches(name, targets)]
    if not chosen:
        linears = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"no nn.Linear matches targets {list(targets)}; this model's Linear layers end with {linears}")
    if freeze_rest:
        for p in model.parameters():
            p.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    return chosen


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight (W += alpha / r * B A) and put the plain nn.Linear back.

    The merged layer computes the same function with one matmul instead of three.
    Its weight stays frozen if it was; `model` is changed in place and returned.
    """
    for name, m in lora_layers(model).items():
        m.base.weight += m.delta_weight().to(m.base.weight.dtype)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, m.base)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters' A and B tensors, by their names in `model`."""
    return {k: v for k, v in model.state_dict().items() if k.endswith((".lora_A", ".lora_B"))}


def lora_config(model: nn.Module) -> dict[str, Any] | None:
    """{"r", "alpha", "targets"} of the adapters in `model` (targets as full module names), or None."""
    layers = lora_layers(model)
    if not layers:
        return None
    first = next(iter(layers.values()))
    if any(m.r != first.r or m.alpha != first.alpha for m in layers.values()):
        raise ValueError("the adapters in this model differ in r or alpha; save_lora expects one setting for all")
    return {"r": first.r, "alpha": first.alpha, "targets": sorted(layers)}


def save_lora(model: nn.Module, path: str | Path) -> Path:
    """Write the adapters alone to a .safetensors file; r, alpha and targets go into its metadata."""
    from safetensors.torch import save_file

    cfg = lora_config(model)
    if cfg is None:
        raise ValueError("the model has no LoRA adapters to save; call apply_lora first")
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in lora_state_dict(model).items()}
    save_file(tensors, path, metadata={"format": "gptlab-lora", "lora": json.dumps(cfg)})
    return path


def load_lora(model: nn.Module, path: str | Path, *, freeze_rest: bool = True) -> nn.Module:
    """Load adapters saved by save_lora into `model`, adding them first if it has none.

    Every tensor must match an adapter of the same name and shape: a file made for
    another model fails here with the names, not later as wrong outputs.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no LoRA adapter file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(path, device="cpu")
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} cannot be read as safetensors: {e}") from None
    if meta.get("format") != "gptlab-lora" or "lora" not in meta:
        raise ValueError(f"{path} is not a gptlab LoRA adapter file (its metadata has no format 'gptlab-lora')")
    cfg = json.loads(meta["lora"])
    if not lora_layers(model):
        apply_lora(model, cfg["r"], cfg["alpha"], cfg["targets"], freeze_rest=freeze_rest)
    own = lora_state_dict(model)
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ValueError(f"{path} does not fit this model's adapters: missing {missing[:4]}, unexpected {unexpected[:4]}")
    for k, v in tensors.items():
        if v.shape != own[k].shape:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, the model's adapter has {tuple(own[k].shape)} (another r or model size)")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v)
    return model
