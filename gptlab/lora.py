"""LoRA: fine-tune a big matrix through a small low-rank update (Hu et al., 2021; lessons 11 and 14).

A fine-tuned weight W' = W + dW rarely needs a full-rank dW. LoRA writes
dW = (alpha / r) * B @ A with A (r, in) and B (out, r), trains only A and B, and
keeps W frozen: for GPT-2's fused c_attn (768 -> 2304) and r = 8 that is 24,576
trainable numbers instead of 1,769,472. B starts at zero, so an adapted model
computes exactly what the original did until training moves B; merge_lora folds
B @ A into W afterwards, so inference costs nothing extra. Only A and B need
saving: a few hundred kilobytes next to a shared base model (save_lora writes them as
a gptlab checkpoint folder holding the adapters alone; lesson 11).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from gptlab.checkpoint import CheckpointError, load_trained, save_checkpoint
from gptlab.model import GPT

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
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < math.inf:
        raise ValueError(f"alpha must be a finite number > 0 (the update is scaled by alpha / r), got {alpha!r}")
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets:
        raise ValueError("targets is empty: name at least one layer, e.g. targets=('c_attn',)")
    if lora_layers(model):
        raise ValueError("the model already has LoRA adapters; merge_lora(model) first, or load another adapter into a fresh model")
    chosen = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and _matches(name, targets)]
    if not chosen:
        linears = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"no nn.Linear matches targets {list(targets)}; this model's Linear layers end with {linears}")
    for name in chosen:
        _check_target(model, name, model.get_submodule(name), r)
    if freeze_rest:
        for p in model.parameters():
            p.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    return chosen


def _check_target(model: nn.Module, name: str, layer: nn.Linear, r: int) -> None:
    """An adapter of rank r fits `layer` only if r <= min(in, out), and only if no other module shares its weight."""
    if r > min(layer.in_features, layer.out_features):
        raise ValueError(f"r={r} is larger than {name} allows: a rank-r update of a {layer.out_features} x {layer.in_features} "
                         f"matrix needs r <= {min(layer.in_features, layer.out_features)}")
    owners = [n for n, m in model.named_modules() if m is not layer and any(p is layer.weight for p in m.parameters(recurse=False))]
    if owners:
        raise ValueError(f"{name} shares its weight with {owners[0]} (tied embeddings): merging an adapter would change "
                         f"{owners[0]} too; leave {name} out of targets, or build the model with tie_weights=False")


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


def save_lora(model: GPT, path: str | Path) -> Path:
    """Write the adapters alone as a checkpoint folder (gptlab.checkpoint: adapters.safetensors, with r, alpha,
    targets and the base model's config in checkpoint.json), atomically and under the writer lock."""
    if not isinstance(model, GPT):
        raise TypeError(f"save_lora saves the adapters of a gptlab GPT (for a classifier, pass clf.gpt), got {type(model).__name__}")
    cfg = lora_config(model)
    if cfg is None:
        raise ValueError("the model has no LoRA adapters to save; call apply_lora first")
    return save_checkpoint(path, model, lora=cfg, adapters=lora_state_dict(model))


def load_lora(model: GPT, path: str | Path, *, freeze_rest: bool = True) -> GPT:
    """Load adapters saved by save_lora into `model`, adding them first if it has none.

    The whole folder is checked before `model` changes at all: the schema (r, a finite
    alpha > 0, targets), the base config against `model`'s, every target against a
    Linear layer of `model` (r at most its size, no tied weight), every tensor's name
    and shape in the safetensors header before it is read, finiteness. A model that
    already has adapters must have them on the same layers with the same r and alpha.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"load_lora loads adapters into a gptlab GPT (for a classifier, pass clf.gpt), got {type(model).__name__}")
    path = Path(path)
    if path.is_file():
        raise ValueError(f"{path} is a file, not an adapter folder: save_lora writes a gptlab checkpoint folder "
                         "(checkpoint.json + adapters.safetensors); pass that folder")
    have = lora_layers(model)

    def expected(meta: dict[str, Any]) -> dict[str, tuple]:
        lc = meta.get("lora")
        if not lc or "adapters.safetensors" not in meta["files"]:
            raise CheckpointError(f"{path} is not a LoRA adapter checkpoint (save_lora writes one)")
        if meta["model_config"] != model.config.to_dict():
            raise CheckpointError(f"{path} holds adapters for another base model (its config differs from this model's)")
        if have and (set(have) != set(lc["targets"]) or any(m.r != lc["r"] or m.alpha != float(lc["alpha"]) for m in have.values())):
            raise CheckpointError(f"{path} holds adapters with r={lc['r']}, alpha={lc['alpha']} on {len(lc['targets'])} layers, "
                                  "but the model "
                                  f"already has others ({lora_config(model)}); load it into a model without adapters")
        shapes = {}
        for name in lc["targets"]:
            try:
                layer = model.get_submodule(name)
            except AttributeError:
                raise CheckpointError(f"{path} targets {name!r}, which this model does not have") from None
            layer = layer.base if isinstance(layer, LoRALinear) else layer
            if not isinstance(layer, nn.Linear):
                raise CheckpointError(f"{path} targets {name!r}, which is not a Linear layer")
            try:
                _check_target(model, name, layer, lc["r"])
            except ValueError as e:
                raise CheckpointError(f"{path} does not fit this model: {e}") from None
            shapes[f"{name}.lora_A"] = (lc["r"], layer.in_features)
            shapes[f"{name}.lora_B"] = (layer.out_features, lc["r"])
        return shapes

    meta, tensors, _ = load_trained(path, expected)
    if not have:
        lc = meta["lora"]
        apply_lora(model, lc["r"], lc["alpha"], lc["targets"], freeze_rest=freeze_rest)
    own = lora_state_dict(model)
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v)
    return model
