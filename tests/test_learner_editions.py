"""What a learner and a reader see by default: tools/student.py's learner copies (`make lab` opens them)
and tools/kit.py's reader edition (the decks and the site): exercises unsolved, no grading or test markers."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import kit  # noqa: E402
import student  # noqa: E402

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "NBVAL_")
LESSONS = kit.lessons()
WITH_EXERCISES = [p for p in LESSONS if any(student.is_exercise_cell(c) for c in nbformat.read(p, as_version=4).cells)]


def _code(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_strip_test_markers_removes_only_whole_marker_lines():
    src = "# NBVAL_CHECK_OUTPUT\nx = 1  # NBVAL_SKIP stays: not a marker line\n  # NBVAL_IGNORE_OUTPUT\nprint(x)\n"
    assert student.strip_test_markers(src) == "x = 1  # NBVAL_SKIP stays: not a marker line\nprint(x)\n"
    assert student.strip_test_markers("# NBVAL_CHECK_OUTPUT\n\nimport torch") == "import torch"
    assert student.strip_test_markers("# a comment\nprint(1)") == "# a comment\nprint(1)"


def test_learner_copies_are_unsolved_link_the_solved_lesson_and_are_never_overwritten(tmp_path):
    paths = WITH_EXERCISES[:2]
    written, kept = student.learner_copies(paths, tmp_path)
    assert [p.name for p in written] == [p.name for p in paths] and kept == []
    for src, copy in zip(paths, written):
        nb = nbformat.read(copy, as_version=4)
        assert not any(m in _code(nb) for m in MARKERS)
        assert student.STUB in _code(nb)
        exercises = [c for c in nb.cells if student.STUB in c.source]
        assert exercises and all(c.outputs == [] for c in exercises), "no ✓ from a solved exercise"
        first = next(c for c in nb.cells if c.cell_type == "markdown")
        assert f"](../notebooks/{src.name})" in first.source  # the solution: one deliberate click away
    mine = written[0]
    mine.write_text(mine.read_text(encoding="utf-8").replace("NotImplementedError", "NotImplementedError  # my work"), encoding="utf-8")
    before = mine.read_text(encoding="utf-8")
    written2, kept2 = student.learner_copies(paths, tmp_path)
    assert written2 == [] and sorted(kept2) == sorted(written)
    assert mine.read_text(encoding="utf-8") == before


def test_the_learner_command_line_reports_what_it_did(tmp_path, capsys):
    assert student.main(["--learner", str(tmp_path / "mine"), str(WITH_EXERCISES[0])]) == 0
    assert "1 new lesson copies with the exercises unsolved" in capsys.readouterr().out
    assert (tmp_path / "mine" / WITH_EXERCISES[0].name).is_file()
    assert student.main(["--learner", str(tmp_path / "mine"), str(WITH_EXERCISES[0])]) == 0
    assert "1 of yours kept as they are" in capsys.readouterr().out


@pytest.mark.parametrize("path", LESSONS, ids=[p.name[:2] for p in LESSONS])
def test_reader_edition_shows_no_marker_and_no_solution(path):
    nb = nbformat.read(path, as_version=4)
    reader = kit.reader_edition(nb)
    assert not any(m in _code(reader) for m in MARKERS), path.name
    assert len(reader.cells) == len(nb.cells)
    assert all(c.outputs == [] for c in reader.cells if student.STUB in c.source)
    assert nb.cells[1].source == reader.cells[1].source  # the kit cell, untouched


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=[p.name[:2] for p in WITH_EXERCISES])
def test_solutions_edition_puts_each_solution_under_a_collapsed_toggle(path):
    nb = nbformat.read(path, as_version=4)
    reader = kit.reader_edition(nb, solutions=True)
    solved = [c for c in nb.cells if student.is_exercise_cell(c)]
    toggles = [c for c in reader.cells if c.cell_type == "markdown" and c.source.startswith(":::{admonition} Solution\n:class: dropdown")]
    assert len(toggles) == len(solved) > 0
    for cell, toggle in zip(solved, toggles):
        i = reader.cells.index(toggle)
        assert student.STUB in reader.cells[i - 1].source  # right below its unsolved exercise
        assert not any(m in toggle.source for m in MARKERS)
        body = re.search(r"^(`{4,})python\n(.*)\n\1\n:::$", toggle.source, re.S | re.M).group(2)
        inside = re.search(r"### BEGIN SOLUTION[ \t]*\n(.*?)\n[ \t]*### END SOLUTION", cell.source, re.S).group(1)
        assert inside in body  # the solution itself, indentation kept


def test_the_site_is_built_from_reader_editions(tmp_path):
    out = tmp_path / "book"
    stage = kit.stage_book_sources(out / "src", solutions=False, skip=out)
    assert (stage / "README.md").read_text(encoding="utf-8") == (ROOT / "README.md").read_text(encoding="utf-8")
    assert (stage / "book" / "_toc.yml").is_file() and not (stage / "build").exists() and not (stage / ".git").exists()
    for p in LESSONS:
        staged = nbformat.read(stage / "notebooks" / p.name, as_version=4)
        assert not any(m in _code(staged) for m in MARKERS), p.name


def _make_n(*args: str) -> str:
    out = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout


def test_make_lab_opens_the_learner_copies_and_book_hides_solutions_unless_asked():
    lab = _make_n("lab")
    assert "tools/student.py --learner mine" in lab and "mine/00_setup_and_tour.ipynb" in lab
    assert lab.index("tools/student.py --learner mine") < lab.index("jupyter lab")
    assert "--solutions" not in _make_n("book") and "--solutions" in _make_n("book", "SOLUTIONS=1")
