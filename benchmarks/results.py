"""One format for results files: every figure a lesson quotes from a run too long for the lesson.

A script in `benchmarks/` runs the experiment and calls `write(name, figures, seeds=...)`;
the file `benchmarks/results/<name>.json` records the figures together with the command
that made them, the date, the machine, the library versions, the seeds and the CPU time
spent, so a reader can find and re-run every number the prose quotes (developers' guide:
"never quote a run the reader cannot find"). A lesson reads it with
`gptlab.course.results(name)`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import shlex
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU model, cores the process may use, load, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (what the work cost, load aside)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def write(name: str, figures: dict[str, Any], *, seeds: list[int] | None = None, notes: str = "") -> Path:
    """Write `benchmarks/results/<name>.json` (figures first, then how they were made)."""
    RESULTS.mkdir(exist_ok=True)
    record = {
        "name": name,
        "figures": figures,
        "seeds": seeds,
        "notes": notes,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_seconds": round(cpu_seconds(), 1),
        "machine": machine(),
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
