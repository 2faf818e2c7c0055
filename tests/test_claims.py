"""tools/claims.py: every measured number in the lessons' prose is backed by an output or cited."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import claims  # noqa: E402


def _nb(tmp_path: Path, markdown: str, output: str, code: str = "print(x)") -> Path:
    nb = {
        "cells": [
            {"cell_type": "code", "id": "c0", "metadata": {}, "execution_count": 1, "source": code,
             "outputs": [{"output_type": "stream", "name": "stdout", "text": output}]},
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": markdown},
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    path = tmp_path / "99_test.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def _unbacked(tmp_path: Path, markdown: str, output: str, code: str = "print(x)") -> list[str]:
    return [p.number for p in claims.check_notebook(_nb(tmp_path, markdown, output, code))]


def test_catches_a_planted_mismatch_and_names_file_cell_and_number(tmp_path, capsys):
    path = _nb(tmp_path, "The loss ends at 2.31 after training.", "val loss 2.2941\n")
    problems = claims.check_notebook(path)
    assert [p.number for p in problems] == ["2.31"]
    assert "cell 1 (id m1)" in str(problems[0]) and "99_test.ipynb" in str(problems[0])
    assert claims.main([str(path)]) == 1
    assert "'2.31'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("prose", "output"),
    [
        ("The loss ends at 2.29.", "val loss 2.2941"),
        ("It takes 15.9 s.", "took 15.87s"),
        ("The cache is 1.2× faster.", "speed-up 1.23x"),
        ("The formula is 0.8 % high.", "the formula is 0.8% high"),
        ("The formula is 0.8% high.", "relative error 0.008"),
        ("The model has 1,590,272 parameters.", "params: 1590272"),
        ("The minimum is −0.129 there.", "min -0.1294"),
        ("It falls by 0.38 nats.", "delta -0.38"),
        ("GPT-2 small has 124M parameters.", "124,439,808"),
        ("The difference is 2.4e-07.", "max diff 2.38e-07"),
    ],
)
def test_accepts_rounding_and_formats(tmp_path, prose, output):
    assert _unbacked(tmp_path, prose, output) == []


@pytest.mark.parametrize(
    ("prose", "output"),
    [
        ("The loss ends at 2.30.", "val loss 2.2941"),  # 2.2941 rounds to 2.29, not 2.30
        ("It takes 15.8 s.", "took 15.87s"),
        ("Our cache is 1.3× faster.", "speed-up 1.23x"),
        ("The model has 1,590,273 parameters.", "params: 1590272"),
    ],
)
def test_rejects_numbers_that_do_not_round_to_the_output(tmp_path, prose, output):
    assert _unbacked(tmp_path, prose, output) != []


def test_ignores_code_formulas_years_references_and_names(tmp_path):
    prose = (
        "## 3. Results\n\nCall `train(lr=3.14159)` and see $\\sigma = 0.0123$ and $$x = 7.77$$. "
        "Vaswani's paper (June 2017) is lesson 12's topic; see exercise 3 and lessons 11–13, section 4.2, "
        "table 1.1, GPT-2, AVX-512, bf16, the 12th row, 12 layers, 1024 tokens, "
        "[the docs](https://example.org/v2.71/page) and <!-- 8.88 -->.\n\n1. a numbered item\n"
    )
    assert _unbacked(tmp_path, prose, "nothing printed") == []


def test_a_setting_from_the_code_is_backed(tmp_path):
    assert _unbacked(tmp_path, "We train with a rate of 3e-4 for 2500 steps.", "", "lr = 3e-4\nsteps = 2500") == []


def test_citations_outside_are_trusted_and_repository_files_are_searched(tmp_path):
    cited = "GPT-2 was trained on 40 GB of text ([Radford et al.](https://example.org/gpt2.pdf))."
    assert _unbacked(tmp_path, cited, "") == []
    assert _unbacked(tmp_path, "Kaplan et al. fit an exponent of 0.076.", "") == []
    marker = "<!-- cited: Radford et al. 2019, table 2 -->\nThe large model reaches 35.76 perplexity."
    assert _unbacked(tmp_path, marker, "") == []
    (tmp_path / "results.md").write_text("| run | 17.25 |\n", encoding="utf-8")
    assert _unbacked(tmp_path, "<!-- cited: results.md -->\nThe benchmark gave 17.3 there.", "") == []
    assert _unbacked(tmp_path, "<!-- cited: results.md -->\nThe benchmark gave 17.9 there.", "") == ["17.9"]
    # a sentence-level marker covers its sentence only
    two = "The benchmark gave 17.3 <!-- cited: results.md -->. The lesson got 4.56 here."
    assert _unbacked(tmp_path, two, "") == ["4.56"]


def test_reference_and_exercise_cells_are_not_claims(tmp_path):
    assert _unbacked(tmp_path, "## References\n\n- A. Gage, 1994, arXiv:1609.08144, 37.5 pages", "") == []
    assert _unbacked(tmp_path, "## Exercises\n\n1. Sweep the rate over 0.25, 1.5 and 2.5.", "") == []


def test_every_lesson_and_the_readme_pass():
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(lessons) == 16
    problems = [str(p) for lesson in lessons for p in claims.check_notebook(lesson)]
    problems += [str(p) for p in claims.check_readme(ROOT / "README.md", lessons)]
    assert problems == [], "\n".join(problems)


def _lessons() -> dict[int, dict]:
    return {int(p.name[:2]): json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}


def test_a_dangling_reference_is_caught():
    lessons = _lessons()
    text = ("Exercise 9 asks you to look, and section 42 shows it. Lesson 16 comes next; lessons 11–13 apply it. "
            "Lesson 06's section 99 trains it, and exercise 8 of lesson 08 ablates it.")
    problems = claims.check_references(text, "planted", 9, lessons)
    assert [p.split("'")[1] for p in problems] == ["exercise 9", "section 42", "lesson 16", "section 99", "exercise 8"]
    assert "of lesson 06" in problems[3] and "of lesson 08" in problems[4]


def test_references_to_papers_and_existing_parts_pass():
    lessons = _lessons()
    ok = ("See exercise 1 and section 2, lesson 05's section 9 and lessons 11–13. "
          "The GPT-2 paper ([Radford et al., 2019, section 3.6](https://example.org/gpt2.pdf)) drops 6.4 points.")
    assert claims.check_references(ok, "fine", 9, lessons) == []


def test_every_exercise_section_and_lesson_reference_resolves():
    """Lessons' markdown, docs/teaching.md and docs/exercises.md: 'exercise N' exists in that lesson, 'lesson NN' is a file."""
    problems = claims.check_all_references()
    assert problems == [], "\n".join(problems)
