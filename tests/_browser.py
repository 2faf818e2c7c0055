"""Headless Chromium for the browser tests: Debian's package through playwright, nothing downloaded.

Without a browser (or playwright) a test is skipped locally and fails in CI, where .ci/run
installs chromium, so a broken CI setup cannot hide it.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GPTLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]


def need_browser():
    problem = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed"
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {problem}")
        pytest.skip(problem)
