"""Fast mode still shows what each lesson teaches: the guard on the lessons' signal cells.

How the phenomenon itself is checked, without running any lesson a second time: CI's `make test`
already executes every lesson in fast mode under nbval, and a cell marked `# NBVAL_CHECK_OUTPUT`
must print exactly its committed output (a full run's). Where fast mode used to show nothing
(lesson 08's induction head, lesson 12's translations, lesson 13's summaries, lesson 06's over-fitting), the lesson now
ends the section with a *signal cell*: one line of yes/no answers about what the section shows,
with thresholds both modes clear ("an induction head formed: True", "GPT test BLEU above 1: True").
If fast mode stops showing it, that line prints False and nbval fails the lesson, in CI time that
is already spent. This file checks that the signal cells stay what they must be: checked by nbval,
all True in the committed output, mode-blind (no FAST in them), and placed after what they judge.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# What this section shows"

# lesson -> {signal cell id: (the cell it must follow, words its committed line must hold)}
SIGNALS = {
    "06_pretraining.ipynb": {"signal-overfitting": ("cell-048", ["val loss lowest before the end: True",
                                                                 "train loss still falling after it: True"])},
    "08_attention_maps.ipynb": {"signal-induction": ("cell-030", ["below 0.2 at step 300: True",
                                                                 "an induction head (score above 0.5): True"])},
    "10_evaluating_generated_text.ipynb": {"signal-decoding": ("cell-028", ["every continuation non-empty: True",
                                                                          "judge ahead of the graded model on val: True",
                                                                          "human text shares word trigrams with the training text: True"])},
    "11_sentiment.ipynb": {"signal-pretraining": ("cell-030", ["pretrained + all layers 5 points above the majority class on dev: True",
                                                             "from scratch too: True",
                                                             "bag of words (sentences) above both: True"])},
    "12_translation.ipynb": {"signal-translation": ("cell-032", ["at least 95% of the test sentences: True",
                                                                "GPT test BLEU above 1: True"])},
    "13_summarization.ipynb": {"signal-summaries": ("cell-034", ["a summary for at least 95% of the test papers: True",
                                                                "GPT test ROUGE-1 above 10: True",
                                                                "GPT ROUGE-2 below lead-1's: True"])},
    "15_before_and_beyond.ipynb": {"signal-recall": ("cell-014", ["d = 16: GPT above 90%: True",
                                                                 "LSTM below 20% (chance 12.5%): True"])},
}


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.parametrize("lesson", sorted(SIGNALS))
def test_signal_cells_are_checked_all_true_and_mode_blind(lesson):
    nb = nbformat.read(ROOT / "notebooks" / lesson, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    for cell_id, (after, words) in SIGNALS[lesson].items():
        assert cell_id in ids, f"{lesson}: the signal cell {cell_id} is gone"
        cell = nb.cells[ids.index(cell_id)]
        assert cell.cell_type == "code" and cell.source.startswith("# NBVAL_CHECK_OUTPUT\n" + MARKER)
        assert ids.index(after) < ids.index(cell_id), f"{cell_id} must come after {after}, whose results it judges"
        assert "FAST" not in cell.source, "a signal must not depend on the mode"
        assert isinstance(cell.execution_count, int), "nbval refuses a cell with outputs but no execution count"
        out = _stdout(cell)
        assert out.count("\n") == 1 and re.findall(r"\b(True|False)\b", out) and "False" not in out, out
        for w in words:
            assert w in out, (cell_id, w)


def test_every_signal_cell_is_listed_here():
    """A signal cell added to a lesson is listed (and so guarded) here."""
    found = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = [c.get("id") for c in nb.cells if c.cell_type == "code" and MARKER in c.source]
        if cells:
            found[path.name] = set(cells)
    assert found == {k: set(v) for k, v in SIGNALS.items()}


def test_ci_runs_the_lessons_in_fast_mode_under_nbval():
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^test:.*\n\t(.*)", make, re.M).group(1)
    assert "GPTLAB_FAST=1" in recipe and "notebooks" in recipe and "--nbval-lax" in recipe
