"""Small helpers the lesson notebooks share.

Fast mode: every notebook reads FAST (GPTLAB_FAST=1, or any CI run) and then
trains fewer steps on smaller slices, so the whole course validates in minutes.
The committed notebooks show the outputs of a full run (GPTLAB_FAST=0).
"""

from __future__ import annotations

import os


def fast_mode() -> bool:
    """True when GPTLAB_FAST is set to 1/true/yes, or when CI is set (and GPTLAB_FAST does not say 0)."""
    flag = os.environ.get("GPTLAB_FAST", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return bool(os.environ.get("CI"))


FAST = fast_mode()
