"""Write the student edition and the solution notebooks from the lessons (one source of truth).

    python tools/student.py [--out build] [notebooks/NN_x.ipynb ...]   # default: every lesson

The lessons in notebooks/ hold the exercise solutions between nbgrader's markers:

    def causal_mask(T):
        ### BEGIN SOLUTION
        return torch.ones(T, T, dtype=torch.bool).tril()
        ### END SOLUTION

    check.causal_mask(causal_mask)

build/student/NN_x.ipynb: the same lesson with each marked block replaced by a stub that raises
NotImplementedError (the check then prints one line: "not implemented yet"), and the outputs of
exercise cells cleared. build/solutions/NN_x_solutions.ipynb: the exercise section alone, solved,
with its outputs. Teachers who use nbgrader can use the lessons directly (same markers).

    python tools/student.py --learner mine      # what `make lab` opens: your own copies, exercises unsolved

mine/NN_x.ipynb: the learner edition, written only where mine/ has no such file yet (your work is never
overwritten; delete a copy to get the lesson's latest version). It is the student edition without the
test markers (`# NBVAL_CHECK_OUTPUT`), and its first cell links the solved lesson in notebooks/, one
deliberate click away.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("exercise: write your code here, then run this cell; the check prints one line")'
ANSWER_STUB = "*Your answer here.*"  # what a marked block in a markdown or raw cell (a written answer) becomes
_BLOCK = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[ \t]*\n.*?^[ \t]*{re.escape(END)}[ \t]*$", re.M | re.S)


def strip_solutions(source: str, stub: str = STUB) -> str:
    """Replace every marked solution block by `stub` (indented like the block): NotImplementedError for code.

    A marker left over (one that does not stand on its own line) is an error, not a published solution.
    """
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in a cell starting {source[:60]!r}")
    out = _BLOCK.sub(lambda m: m.group(1) + stub, source)
    if BEGIN in out or END in out:
        raise ValueError(f"a solution marker in a cell starting {source[:60]!r} does not stand on its own line; "
                         f"put {BEGIN!r} and {END!r} on lines of their own")
    return out


def is_exercise_cell(cell) -> bool:
    return cell.cell_type == "code" and BEGIN in cell.source


def exercise_section(nb) -> list:
    """Cells from the '## Exercises' heading up to the next '## ' heading (References) or the end."""
    start = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("## Exercises")), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(nb.cells)) if nb.cells[i].cell_type == "markdown"
                and nb.cells[i].source.lstrip().startswith("## ")), len(nb.cells))
    return nb.cells[start:end]


def student_edition(nb):
    """The lesson with every marked solution removed: code cells get a stub (and lose their outputs);
    markdown and raw cells (a written answer) get ANSWER_STUB."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if is_exercise_cell(cell):
            cell.source = strip_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
        elif BEGIN in cell.source or END in cell.source:
            cell.source = strip_solutions(cell.source, STUB if cell.cell_type == "code" else ANSWER_STUB)
    return out


def solutions_notebook(nb, lesson: str):
    cells = [nbformat.v4.new_markdown_cell(f"# Solutions: {lesson}\n\nThe exercises of `notebooks/{lesson}.ipynb`, solved. "
                                           "Run the lesson first if an exercise uses its variables.")]
    cells += [copy.deepcopy(c) for c in exercise_section(nb)]
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = copy.deepcopy(nb.metadata)
    return out


def build(paths: list[Path], out_dir: Path) -> list[Path]:
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for sub, book in (("student", student_edition(nb)), ("solutions", solutions_notebook(nb, path.stem))):
            target = out_dir / sub / (path.name if sub == "student" else f"{path.stem}_solutions.ipynb")
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(book, target)
            written.append(target)
    return written


# ---------------------------------------------------------------- what a learner (and the website) reads

_TEST_MARKER = re.compile(r"^[ \t]*#[ \t]*NBVAL_[A-Z_]+[ \t]*(?:\n|$)", re.M)


def strip_test_markers(source: str) -> str:
    """The source without nbval's marker lines (`# NBVAL_CHECK_OUTPUT`, ...): they steer the tests, readers need not see them."""
    out = _TEST_MARKER.sub("", source)
    return out.lstrip("\n") if out != source else out


def without_test_markers(nb):
    """A copy of the notebook whose code cells carry no nbval markers."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.source = strip_test_markers(cell.source)
    return out


def learner_edition(nb, lesson: str):
    """The student edition, without test markers, its first cell pointing at the solved lesson."""
    out = without_test_markers(student_edition(nb))
    note = (f"\n\n> **Your copy** (yours to change): the exercises are unsolved. The solved lesson is "
            f"[notebooks/{lesson}.ipynb](../notebooks/{lesson}.ipynb), for when you want to compare.")
    first = next((c for c in out.cells if c.cell_type == "markdown"), None)
    if first is not None:
        first.source = first.source.rstrip("\n") + note
    return out


def learner_copies(paths: list[Path], dest: Path) -> tuple[list[Path], list[Path]]:
    """Write the learner edition of each lesson into dest/ unless a file of that name is there; (written, kept)."""
    dest.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for path in paths:
        target = dest / path.name
        if target.exists():
            kept.append(target)
            continue
        nb = learner_edition(nbformat.read(path, as_version=4), path.stem)
        tmp = target.with_name(f".{target.name}.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(target)  # a copy is whole or absent, never half written
        written.append(target)
    return written, kept


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "build")
    ap.add_argument("--learner", type=Path, metavar="DIR",
                    help="write your own copies (exercises unsolved) into DIR, keeping any already there")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.learner:
        written, kept = learner_copies(paths, args.learner)
        print(f"{args.learner.name}/: {len(written)} new lesson copies with the exercises unsolved"
              + (f", {len(kept)} of yours kept as they are" if kept else "")
              + " (the solved lessons stay in notebooks/)")
        return 0
    written = build(paths, args.out)
    print(f"wrote {len(written) // 2} student notebooks to {args.out.name}/student and their solutions to {args.out.name}/solutions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
