"""Other platforms' first hour, as far as Linux can check it: docs/windows.md's commands are the
Makefile's, and lesson 14's multi-process cell skips itself, saying why, where it cannot fork."""

import io
import re
import shlex
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "windows.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def _powershell_block() -> list[str]:
    block = re.search(r"```powershell\n(.*?)```", DOC, re.S).group(1)
    return [ln.strip() for ln in block.splitlines() if ln.strip()]


def _recipe(target: str) -> str:
    return re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", MAKEFILE, re.M).group(1)


def test_the_windows_steps_are_the_makefiles():
    steps = _powershell_block()
    install = _recipe("$(VENV)/.course")
    extras = re.search(r"\$\(PIP\) (-e \"[^\"]+\")", install).group(1)
    assert "PIP    := $(PY) -m pip install -c constraints.txt" in MAKEFILE
    assert any(s.endswith(f"pip install -c constraints.txt {extras}") for s in steps), "the same package set and pins as make lab"
    assert any("ipykernel install --sys-prefix --name python3" in s for s in steps)
    mine = re.search(r"tools/student.py .*", _recipe("mine")).group(0).strip()
    assert any(s.endswith(mine) for s in steps), "make mine"
    lab = _recipe("lab")
    assert "mine/00_setup_and_tour.ipynb" in MAKEFILE and "--ServerApp.root_dir=." in lab
    assert steps[-1] == r".venv\Scripts\jupyter lab --ServerApp.root_dir=. mine/00_setup_and_tour.ipynb"
    for target, words in (("student", "tools/student.py --out build"), ("slides", "tools/kit.py slides --out build/slides"),
                          ("book", "tools/kit.py book --out build/book")):
        assert words in _recipe(target) and words in DOC, target
    assert "--nbval-lax --nbval-current-env" in _recipe("test") and "--nbval-lax --nbval-current-env" in DOC
    assert "[docs/windows.md](docs/windows.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_windows_steps_run_here_where_they_can(tmp_path):
    """The steps that need neither a new venv nor a browser, run as written with this interpreter."""
    ran = 0
    for step in _powershell_block():
        words = shlex.split(step.replace("\\", "/"))
        if words[0] != ".venv/Scripts/python" or "pip" in words or "ipykernel" in words:
            continue
        cmd = [sys.executable, *words[1:]]
        if cmd[1] == "tools/student.py":
            cmd[cmd.index("mine")] = str(tmp_path / "mine")
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (step, out.stderr)
        ran += 1
    lessons = sorted(p.name for p in ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
    assert ran == 1 and sorted(p.name for p in (tmp_path / "mine").glob("*.ipynb")) == lessons


def _cells(lesson: str, *ids: str) -> list[str]:
    nb = nbformat.read(ROOT / "notebooks" / lesson, as_version=4)
    by_id = {c.get("id"): c.source for c in nb.cells}
    return [by_id[i] for i in ids]


def test_lesson_14_skips_its_forking_cell_where_fork_is_unsafe(monkeypatch):
    import time

    run_cell, check_cell = _cells("14_optimization.ipynb", "cell-062", "cell-063")
    assert 'start_method="fork"' in run_cell  # Linux keeps the committed path
    for platform in ("win32", "darwin"):
        monkeypatch.setattr(sys, "platform", platform)
        ns = {"mp": mp, "time": time}
        out = io.StringIO()
        with redirect_stdout(out):
            exec(compile(run_cell, "cell-062", "exec"), ns)
            exec(compile(check_cell, "cell-063", "exec"), ns)
        lines = out.getvalue().splitlines()
        assert lines[0].startswith(f"skipped on {platform}: this cell forks processes") and "torchrun" in lines[0]
        assert lines[1] == "skipped (see above)"
