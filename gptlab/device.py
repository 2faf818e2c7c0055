"""Pick the best available device and make runs repeatable.

Lessons call these two so that the same notebook runs on a laptop CPU, an
Apple GPU or a CUDA card without edits.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


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
