"""How a model runs: the best available device, repeatable seeds, the precision, eval mode (lessons 05, 06, 14).

Lessons call these so that the same notebook runs on a laptop CPU, an Apple
GPU or a CUDA card without edits; bfloat16 autocast is lesson 14's.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager, nullcontext
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel


def get_device(prefer: str | None = None) -> torch.device:
    """cuda if available, else mps (Apple silicon), else cpu. `prefer` (or GPTLAB_DEVICE) forces one."""
    prefer = prefer or os.environ.get("GPTLAB_DEVICE") or None
    if prefer is not None:
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} requested but CUDA is not available on this machine")
        if prefer == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("device 'mps' requested but the Apple MPS backend is not available on this machine")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 1337) -> None:
    """Seed Python, NumPy and PyTorch (every device). On the CPU a seed then gives the same numbers run after run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively (CUDA Ampere+, CPUs with AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def resolve_bf16(setting: bool | str, device: torch.device) -> bool:
    return bf16_supported(device) if setting == "auto" else bool(setting)


@contextmanager
def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast: matmuls run in bf16, weights and AdamW's state stay fp32.

    On the CPU, PyTorch's fused (flash) attention kernel is slower in bf16 than
    its plain math composition, which keeps the softmax in fp32 (measured on an
    AVX-512 BF16 CPU, block 64: a training step 1.2x faster), so there we ask
    scaled_dot_product_attention for the math kernel.
    """
    if not enabled:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        with sdpa_kernel([SDPBackend.MATH]) if device.type == "cpu" else nullcontext():
            yield


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate without dropout, then put the model back in the mode it was in, even after an error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
