"""Author and refresh the course notebooks.

    python tools/nb.py build SRC.py OUT.ipynb   # percent-format script -> notebook (no outputs)
    python tools/nb.py run NB.ipynb [...]       # execute in place (full mode unless GPTLAB_FAST=1), then clean
    python tools/nb.py clean NB.ipynb [...]     # strip volatile metadata only
    python tools/nb.py script NB.ipynb OUT.py   # notebook -> percent-format script, for editing

Percent format: a line `# %%` starts a code cell, `# %% [markdown]` a markdown
cell whose lines are written as `# text`. Cleaning keeps outputs, tags and slide types
(`tools/kit.py` sets those) but drops timings, widget state and machine paths so diffs stay
small and nothing local leaks. `build` starts from bare cells: run `python tools/kit.py apply`
on the notebook afterwards to add the first cell and the slide types again.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import nbformat

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
ROOT = Path(__file__).resolve().parents[1]


def build(src: Path, out: Path) -> None:
    cells, kind, lines = [], None, []

    def flush() -> None:
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(re.sub(r"^# ?", "", ln) for ln in text.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "code" and text.strip():
            cells.append(nbformat.v4.new_code_cell(text))

    for line in src.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    nbformat.write(nb, out)


def script(nb_path: Path, out: Path) -> None:
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for c in nb.cells:
        if c.cell_type == "markdown":
            parts.append("# %% [markdown]\n" + "\n".join("# " + ln if ln else "#" for ln in c.source.splitlines()))
        else:
            parts.append("# %%\n" + c.source)
    out.write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def clean(nb_path: Path) -> None:
    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for i, c in enumerate(nb.cells):
        c.metadata = {k: v for k, v in c.metadata.items() if k in ("tags", "slideshow")}  # slideshow: tools/kit.py
        c.id = f"cell-{i:03d}"
        for o in c.get("outputs", []):
            o.pop("metadata", None) if o.get("output_type") == "stream" else None
            if "text" in o:
                o["text"] = _scrub(o["text"])
            if "data" in o and "text/plain" in o["data"]:
                o["data"]["text/plain"] = _scrub(o["data"]["text/plain"])
    nbformat.validate(nb)
    nbformat.write(nb, nb_path)


def _scrub(text: str) -> str:
    text = text.replace(str(ROOT), ".")
    return re.sub(r"/(?:root|home/[^/\s]+|tmp|work)/[^\s'\"]*", "<path>", text)


def run(nb_path: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(nb_path, as_version=4)
    t0 = time.time()
    env_fast = os.environ.get("GPTLAB_FAST", "0")
    os.environ["GPTLAB_FAST"] = env_fast
    NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    nbformat.write(nb, nb_path)
    clean(nb_path)
    print(f"{nb_path.name}: ran in {time.time() - t0:.1f}s (GPTLAB_FAST={env_fast})")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "build":
        build(Path(args[0]), Path(args[1]))
    elif cmd == "script":
        script(Path(args[0]), Path(args[1]))
    elif cmd in ("run", "clean"):
        for a in args:
            (run if cmd == "run" else clean)(Path(a))
    else:
        sys.exit(__doc__)
