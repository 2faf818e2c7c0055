"""What a newcomer types first: the README's commands, `make test`'s fast mode, `make lab`'s root."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _make_n(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -n prints the commands without running them; the target's own command is the last line
    # (install steps, if the stamp is stale, come before it).
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [ln for ln in out.stdout.splitlines() if ln.strip() and not ln.startswith("make")][-1]


def test_make_test_runs_the_notebooks_in_fast_mode_and_test_full_does_not():
    fast = _make_n("test")
    assert "GPTLAB_FAST=1" in fast and "pytest tests notebooks" in fast and "--nbval-lax" in fast
    full = _make_n("test-full")
    assert "GPTLAB_FAST=0" in full and "notebooks" in full
    assert "make test" in README and "make test-full" in README


def test_make_lab_roots_at_the_repository_and_opens_lesson_00():
    cmd = _make_n("lab")
    assert "--ServerApp.root_dir=." in cmd and "mine/00_setup_and_tour.ipynb" in cmd  # your copies: tools/student.py --learner
    assert "GPTLAB_FAST" not in cmd  # full lessons unless asked
    fast = _make_n("lab", "FAST=1")
    assert fast.startswith("GPTLAB_FAST=1 ") and "jupyter lab" in fast
    assert "make lab FAST=1" in README


def test_readme_cli_commands_work_as_written_after_install():
    # The README activates .venv, then runs `gptlab --help` and `python -m gptlab --help`.
    assert "source .venv/bin/activate" in README and "gptlab --help" in README
    bindir = Path(sys.executable).parent
    script = bindir / "gptlab"
    assert script.exists(), "the console script `gptlab` is not installed next to python"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for cmd in (["gptlab", "--help"], [sys.executable, "-m", "gptlab", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        for sub in ("data", "train", "generate", "info", "attention"):
            assert re.search(rf"\b{sub}\b", out.stdout), (sub, out.stdout)


def test_licence_covers_code_and_content():
    lic = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert lic.startswith("MIT License") and "CC BY 4.0" in lic
    assert "CC BY 4.0" in README


def test_mine_copies_are_ignored_by_git():
    assert "mine/" in (ROOT / ".gitignore").read_text().splitlines()


def test_make_lab_installs_the_course_extra_only_and_shows_pips_progress():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "-B", "install"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    pip = [ln for ln in out.splitlines() if "pip install" in ln and "-e " in ln]
    assert pip == [pip[0]] and '".[course]"' in pip[0] and "--quiet" not in pip[0], out
    quick = _make_n("test-quick")
    assert '-m "not slow and not browser and not docs and not subprocess"' in quick
    assert "test-quick" in (ROOT / "docs" / "CONTRIBUTING.md").read_text()


def test_python_m_gptlab_works_when_a_folder_named_gptlab_shadows_the_package(tmp_path):
    """The newcomer trial: `python -m gptlab` from the folder above the clone. The clone folder `gptlab/` is
    imported as a namespace package; gptlab/__main__.py (found by the editable install) must repair that."""
    clone = tmp_path / "gptlab"
    (clone / "data").mkdir(parents=True)  # a clone's folder: no __init__.py, as in the trial
    code = ("import runpy, sys, types\n"
            f"ns = types.ModuleType('gptlab'); ns.__path__ = [{str(clone)!r}]; sys.modules['gptlab'] = ns\n"
            "sys.argv = ['gptlab', '--help']\n"
            f"runpy.run_path({str(ROOT / 'gptlab' / '__main__.py')!r}, run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "ImportError" not in out.stderr, out.stderr
    assert re.search(r"\bgenerate\b", out.stdout), out.stdout


def test_python_m_gptlab_from_the_folder_above_a_clone(tmp_path):
    """The same, for real, where this checkout is the installed (editable) gptlab: `cd ..; python -m gptlab --help`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([sys.executable, "-c", "import gptlab; print(gptlab.__file__)"], cwd=tmp_path, capture_output=True,
                           text=True, env=env, timeout=60).stdout.strip()
    if not where or Path(where).resolve() != (ROOT / "gptlab" / "__init__.py").resolve():
        pytest.skip(f"this checkout is not the installed gptlab (that is {where or 'none'}); make install makes it")
    (tmp_path / "gptlab").symlink_to(ROOT, target_is_directory=True)
    out = subprocess.run([sys.executable, "-m", "gptlab", "--help"], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"\bgenerate\b", out.stdout), out.stdout
