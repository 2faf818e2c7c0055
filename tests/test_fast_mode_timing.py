"""benchmarks/fast_mode.py: how long each lesson's fast-mode Run All takes, and the instructor guide's table of it."""

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import fast_mode  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "fast_mode.json"
GUIDE = ROOT / "docs" / "teaching.md"
ZH_GUIDE = ROOT / "notebooks" / "zh" / "teaching.md"


def test_table_lists_every_lesson_and_marks_a_failed_one():
    figures = {"lessons": {"01_tokens": {"cpu_s": 3.04, "skipped": []}, "00_setup_and_tour": {"cpu_s": 12.0},
                           "09_gpt2_weights": {"error": "DataUnavailableError: offline"},
                           "13_summarization": {"cpu_s": 9.0, "skipped": ["skipped: no GPT-2 weights"]}}, "total_cpu_s": 24.04}
    assert fast_mode.table(figures).splitlines() == [
        "| lesson | CPU time (s) |", "|---|---:|",
        "| 00 setup and tour | 12.0 |", "| 01 tokens | 3.0 |", "| 09 gpt2 weights | failed |", "| 13 summarization | 9.0 * |",
        "| all 4 lessons | 24.0 |", "",
        "\\* the lesson left a part out on this machine, and said so: 13: `skipped: no GPT-2 weights`",
    ]


def test_a_lesson_is_timed_in_its_own_kernel_and_left_untouched(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = sum(range(10**5))"),
                                         nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell("print(x)\nprint('skipped: x')")])
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    monkeypatch.setattr(fast_mode, "NOTEBOOKS", tmp_path)
    got = fast_mode.run_lesson(path)
    assert got["code_cells"] == 2 and got["cpu_s"] >= 0 and got["wall_s"] >= 0 and got["skipped"] == ["skipped: x"]
    assert got["wall_with_kernel_start_s"] >= got["wall_s"]  # the lesson's span excludes the kernel's start
    assert path.read_bytes() == before  # the timing cells were added in memory only


def test_every_lesson_has_a_committed_timing():
    figures = json.loads(RESULT.read_text())["figures"]
    lessons = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(figures["lessons"]) == lessons
    assert figures["threads"] == 1


def _between_markers(text: str) -> str:
    m = re.search(r"<!-- fast-mode table[^>]*-->\n(.*?)\n<!-- end of fast-mode table -->", text, re.S)
    assert m, "the fast-mode table markers are missing"
    return m.group(1)


def test_the_guide_shows_what_the_results_file_holds():
    """docs/teaching.md quotes benchmarks/results/fast_mode.json exactly (re-run: `python benchmarks/fast_mode.py --table`)."""
    table = fast_mode.table(json.loads(RESULT.read_text())["figures"])
    assert _between_markers(GUIDE.read_text(encoding="utf-8")) == table
    zh_numbers = re.findall(r"\d+(?:\.\d+)?", _between_markers(ZH_GUIDE.read_text(encoding="utf-8")))
    assert zh_numbers == re.findall(r"\d+(?:\.\d+)?", table)  # the Chinese guide: the same figures
