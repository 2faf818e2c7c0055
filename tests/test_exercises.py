"""Exercises: every lesson has checked ones, and `make student` strips the solutions cleanly.

The lessons are the one source: solutions sit between nbgrader's markers. The student edition
must hold no solution text, its checks must fail in one line on the stubs, and the solutions
must pass when run again (each exercise cell is self-contained, so it runs here on its own).
"""

import contextlib
import io
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import student  # noqa: E402

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LEVEL = re.compile(r"\((easy|medium|hard)\)", re.I)


def _run(source: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(source, "<exercise>", "exec"), {"__name__": "__main__"})
    return buf.getvalue()


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_has_three_to_six_exercises_two_of_them_checked(path):
    nb = nbformat.read(path, as_version=4)
    section = student.exercise_section(nb)
    assert section, f"{path.name} has no '## Exercises' section"
    levels = [m.group(1).lower() for c in section if c.cell_type == "markdown" for m in LEVEL.finditer(c.source)]
    assert 3 <= len(levels) <= 6, f"{path.name}: {len(levels)} exercises marked easy/medium/hard"
    checked = [c for c in section if student.is_exercise_cell(c)]
    assert len(checked) >= 2, f"{path.name}: {len(checked)} checked exercises"
    for c in checked:
        assert re.search(r"\bcheck\.\w+\(", c.source), f"{path.name}: an exercise cell calls no check: {c.source[:80]!r}"


def test_strip_solutions_keeps_the_indentation_and_the_rest():
    src = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n\ncheck.f(f)\n"
    out = student.strip_solutions(src)
    assert "y = x + 1" not in out and "BEGIN SOLUTION" not in out
    assert out == "def f(x):\n    '''doc'''\n    " + student.STUB + "\n\ncheck.f(f)\n"
    with pytest.raises(ValueError, match="unbalanced"):
        student.strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_student_edition_strips_solutions_in_markdown_and_raw_cells_too():
    import nbformat

    md = "## Exercises\nExplain why.\n### BEGIN SOLUTION\nThe answer is 42.\n### END SOLUTION\nThen move on."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(md),
                                         nbformat.v4.new_raw_cell("### BEGIN SOLUTION\nraw answer 43\n### END SOLUTION"),
                                         nbformat.v4.new_code_cell("x = 1  # no exercise here")])
    out = student.student_edition(nb)
    text = "\n".join(c.source for c in out.cells)  # the sources only: random cell ids may hold "42" too
    assert "42" not in text and "43" not in text and "SOLUTION" not in text
    assert out.cells[0].source == "## Exercises\nExplain why.\n" + student.ANSWER_STUB + "\nThen move on."
    assert out.cells[1].source == student.ANSWER_STUB and out.cells[2].source == "x = 1  # no exercise here"
    assert "42" in nb.cells[0].source  # the lesson itself is untouched
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Answer: ### BEGIN SOLUTION 42 ### END SOLUTION")])
    with pytest.raises(ValueError, match="does not stand on its own line"):  # never published by accident
        student.student_edition(bad)


def test_student_edition_has_stubs_that_fail_in_one_line_and_solutions_that_pass(tmp_path):
    written = student.build(LESSONS, tmp_path)
    assert len(written) == 2 * len(LESSONS)
    n = 0
    for path in LESSONS:
        nb = nbformat.read(path, as_version=4)
        st = nbformat.read(tmp_path / "student" / path.name, as_version=4)
        sol = nbformat.read(tmp_path / "solutions" / f"{path.stem}_solutions.ipynb", as_version=4)
        assert len(st.cells) == len(nb.cells)
        assert sum(student.is_exercise_cell(c) for c in sol.cells) == sum(student.is_exercise_cell(c) for c in nb.cells)
        for orig, stub in zip(nb.cells, st.cells):
            if not student.is_exercise_cell(orig):
                assert stub.source == orig.source
                continue
            n += 1
            assert student.BEGIN not in stub.source and student.END not in stub.source
            assert stub.get("outputs") == []
            for block in re.findall(r"### BEGIN SOLUTION\n(.*?)\n\s*### END SOLUTION", orig.source, re.S):
                code = [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
                assert not any(ln in stub.source for ln in code if len(ln) > 12), f"{path.name}: solution text left in the student edition"
            out = _run(stub.source).strip().splitlines()
            assert len(out) == 1 and out[0].startswith("✗") and "not implemented yet" in out[0], (path.name, out)
            good = _run(orig.source).strip().splitlines()
            assert good and all(line.startswith("✓") for line in good), (path.name, good)
    assert n >= 2 * len(LESSONS)


def test_make_student_writes_into_an_ignored_build_folder():
    assert "build/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "student:" in (ROOT / "Makefile").read_text()
