"""Fast-mode Run All, lesson by lesson: the CPU time (and wall time) of each lesson's kernel.

    python benchmarks/fast_mode.py            # every lesson, in order (about 10 CPU-minutes)
    python benchmarks/fast_mode.py 08 12      # only these; the others keep their last figures
    python benchmarks/fast_mode.py --table    # the table for docs/teaching.md, from the results file

After a run, paste the table into docs/teaching.md between its "fast-mode table" markers (and the
same numbers into notebooks/zh/teaching.md): tests/test_fast_mode_timing.py fails until the guide
shows what the results file holds.

Each lesson runs as `make lab FAST=1` then Run All would run it: a fresh kernel, GPTLAB_FAST=1,
every cell in order (as nbval and tools/nb.py execute it), the notebook itself left untouched.
One thread (OMP_NUM_THREADS=1): the machine that made the committed figures is shared, so the
instructor guide (docs/teaching.md) quotes the kernel's CPU time, which load does not inflate;
the wall time is recorded too, with the load average at the end of each lesson, to show how far
apart they were. A first cell and a last cell are added in memory only: they read the kernel's
CPU time (its own and its finished child processes') before and after the lesson's cells, so
kernel start-up is not counted, as it is not when a learner presses Run All in an open notebook.

Lessons that need a course checkpoint (lesson 06's model, for 07, 08, 10, 15) load it when it is
present and train it first otherwise, which costs more the first time; the results file lists
which checkpoints were present.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAME = "fast_mode"
TIMEOUT_S = 1800  # per cell

START = """import resource as _r, time as _t
def _cpu():
    a, b = _r.getrusage(_r.RUSAGE_SELF), _r.getrusage(_r.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
_fast_mode_start = (_cpu(), _t.perf_counter())"""
END = """import json as _j
print("FAST_MODE_TIMING", _j.dumps({"cpu_s": _cpu() - _fast_mode_start[0], "wall_s": _t.perf_counter() - _fast_mode_start[1]}))"""


def run_lesson(path: Path) -> dict:
    """Execute one lesson in fast mode in a fresh kernel; its kernel's CPU and wall seconds."""
    nb = nbformat.read(path, as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    nb.cells = [nbformat.v4.new_code_cell(START), *nb.cells, nbformat.v4.new_code_cell(END)]
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outside = time.perf_counter() - t0  # with kernel start and shutdown
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    timing = json.loads(text.split("FAST_MODE_TIMING", 1)[1])
    printed = [ln.strip() for c in nb.cells[1:-1] if c.cell_type == "code" for o in c.outputs
               if o.get("output_type") == "stream" for ln in o.get("text", "").splitlines()]
    skipped = sorted({ln for ln in printed if ln.lower().startswith("skipped")})  # e.g. "skipped: no GPT-2 weights"
    return {
        "cpu_s": round(timing["cpu_s"], 1),
        "wall_s": round(timing["wall_s"], 1),
        "wall_with_kernel_start_s": round(outside, 1),
        "code_cells": n_code,
        "skipped": skipped,  # what the lesson said it left out here (missing weights, other platforms)
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table(figures: dict) -> str:
    """The instructor guide's table: each lesson's fast-mode Run All in CPU-seconds, one thread."""
    rows = ["| lesson | CPU time (s) |", "|---|---:|"]
    for stem, v in sorted(figures["lessons"].items()):
        cpu = f"{v['cpu_s']:.1f}" + (" *" if v.get("skipped") else "") if "cpu_s" in v else "failed"
        rows.append(f"| {stem[:2]} {stem[3:].replace('_', ' ')} | {cpu} |")
    rows.append(f"| all {len(figures['lessons'])} lessons | {figures['total_cpu_s']:.1f} |")
    notes = [f"{stem[:2]}: " + "; ".join(f"`{m}`" for m in v["skipped"])
             for stem, v in sorted(figures["lessons"].items()) if v.get("skipped")]
    if notes:
        rows += ["", "\\* the lesson left a part out on this machine, and said so: " + " · ".join(notes)]
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if argv == ["--table"]:
        print(table(json.loads((results.RESULTS / f"{NAME}.json").read_text())["figures"]))
        return 0
    lessons = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if argv:
        unknown = [a for a in argv if not any(p.name.startswith(a) for p in lessons)]
        if unknown:
            sys.exit(f"no lesson starts with {unknown}; lessons: {', '.join(p.name[:2] for p in lessons)}")
        lessons = [p for p in lessons if any(p.name.startswith(a) for a in argv)]
    os.environ.update(GPTLAB_FAST="1", OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    os.environ.pop("MPLBACKEND", None)  # the kernel's own inline backend, as in JupyterLab: figures are drawn
    ckpt = Path(os.environ.get("GPTLAB_CHECKPOINT_DIR", ROOT / "checkpoints"))
    present = sorted(p.name for p in ckpt.iterdir() if p.is_dir()) if ckpt.is_dir() else []

    previous = results.RESULTS / f"{NAME}.json"  # a partial run keeps the other lessons' figures
    figures = json.loads(previous.read_text())["figures"] if previous.exists() else {}
    per = figures.setdefault("lessons", {})
    for path in lessons:
        print(f"{path.name} ...", flush=True)
        try:
            per[path.stem] = run_lesson(path)
        except Exception as e:  # a lesson that fails is recorded as failed; the others still run
            per[path.stem] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]}
        print(f"  {per[path.stem]}", flush=True)
    ok = [v for v in per.values() if "cpu_s" in v]
    figures["total_cpu_s"] = round(sum(v["cpu_s"] for v in ok), 1)
    figures["slowest_cpu_s"] = max((v["cpu_s"] for v in ok), default=None)
    figures["checkpoints_present_at_start"] = present
    figures["threads"] = 1
    out = results.write(NAME, figures, notes="Run All of each lesson in fast mode (GPTLAB_FAST=1), one thread, fresh "
                        "kernel; cpu_s = the kernel's CPU time from its first to its last cell (children included), "
                        "wall_s = the same span in wall time on a shared machine (see load_average_at_end).")
    print(f"wrote {out.relative_to(ROOT)}: total {figures['total_cpu_s']} CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
