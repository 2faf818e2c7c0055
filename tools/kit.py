"""The teaching kit: run anywhere, present from the notebooks, publish the course as a website.

    python tools/kit.py apply [NB.ipynb ...]    # first cell + slide metadata + launch links (idempotent)
    python tools/kit.py check [NB.ipynb ...]    # exit 1 if `apply` would change anything
    python tools/kit.py slides [--out DIR] [NB.ipynb ...]   # reveal.js decks, offline (make slides)
    python tools/kit.py book [--out DIR] [--solutions]   # the course website, Jupyter Book 1 (make book)
    python tools/kit.py links                   # Colab and Binder links, one line per lesson
    python tools/kit.py publish https://github.com/OWNER/NAME   # set the repository URL, then `apply`

Without notebook arguments every lesson `notebooks/NN_*.ipynb` is meant, so a new lesson needs
nothing but `python tools/kit.py apply` once it exists.

**One repository URL.** `[project.urls] Repository` in pyproject.toml is the only place that
names the repository: the first cell's `pip install`, the Colab and Binder links and the book's
launch buttons are all generated from it. Change it there, then run `apply` (and rebuild).

**The first cell** (the *kit cell*) is the first code cell of every lesson, right after the
objectives. On Google Colab, or in any fresh kernel that cannot import gptlab, it installs the
package from the repository (gptlab alone, plus the one or two packages that lesson's code imports,
never the `course` extra's JupyterLab and nbval), points the data and checkpoint folders at the
working directory and fetches the datasets that lesson names (`lesson_needs`); anywhere else (a
checkout, Binder, CI) it does nothing and prints nothing. On Colab it also turns fast mode on
(GPTLAB_FAST=1 unless set) and says so, with how to get the full runs, and keeps trained models
on Google Drive (`/content/drive/MyDrive/gptlab-checkpoints`, via GPTLAB_CHECKPOINT_DIR) when
Drive is mounted; when it is not, they stay in the runtime's `gptlab-checkpoints/` (lost with the
runtime) and the cell says how to mount Drive and run it again. After changing a lesson's imports
or data, `python tools/kit.py apply` regenerates its first cell.

**Slide rules** (`metadata.slideshow.slide_type`), applied to every cell each time:

- the title cell and every cell with a `#` or `##` heading start a *slide*; a `###` heading a
  *subslide* (a heading may follow an `<a id>` anchor or text in the same cell);
- a markdown cell right before a cell that draws a figure starts a *subslide* (text + figure);
- *skip*: the kit cell, exercise solutions (`### BEGIN SOLUTION`), code cells that only import,
  and code cells longer than 30 lines that draw nothing;
- everything else continues the current slide (`-`).

**What readers see.** A widget output whose state the notebook does not save (lesson 08's explorer)
shows its static picture in decks and on the site (`static_widgets`): without a kernel the widget
itself would draw nothing. Decks and site never show the tests' markers (`# NBVAL_CHECK_OUTPUT`) nor
the grading markers (`### BEGIN SOLUTION`): the site shows each exercise unsolved, as the student
edition does (`tools/student.py`), and with `book --solutions` (`make book SOLUTIONS=1`, for after
a deadline) its solution below it, collapsed under a "Solution" toggle.

A tag overrides the rules for one cell: `slideshow:slide`, `slideshow:subslide`,
`slideshow:fragment`, `slideshow:skip`, `slideshow:notes` or `slideshow:-`
(tags survive `tools/nb.py`'s cleaning, so do the slideshow fields).

**Whose HTML runs.** A deck or a page shows the notebook's raw HTML and JavaScript as the
notebook does (the lessons' interactive attention views are HTML and scripts). The course's own
lessons (`notebooks/NN_*.ipynb`, reviewed in git) are trusted; they are all the book ever builds
(book/_toc.yml globs them, and Jupyter Book passes raw HTML through by design). Any other
notebook given to `slides` is not: its markdown and text/html outputs are sanitized (script,
event handlers, javascript: links and every tag outside a plain-document allowlist are shown as
text) and its application/javascript outputs are dropped, so a deck made from a notebook from
untrusted hands runs none of its code when opened.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSON = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
BRANCH = "main"
SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")
LONG_CELL = 30  # lines: longer code cells that draw nothing are skipped in the slides

KIT_FIRST_LINE = "# Colab or a fresh kernel without gptlab: install the package and fetch the data."
DRIVE = "/content/drive/MyDrive"  # where Colab mounts Google Drive (drive.mount("/content/drive"))
KIT_HEAD = f'''\
{KIT_FIRST_LINE}
# Wherever gptlab is already installed (your checkout, Binder, CI) this cell does nothing.
import importlib.util, os, subprocess, sys
if "google.colab" in sys.modules or importlib.util.find_spec("gptlab") is None:
    local = os.path.abspath("gptlab-checkpoints")
    if "google.colab" in sys.modules:  # fast mode, and trained models kept on Google Drive when it is mounted
        os.environ.setdefault("GPTLAB_FAST", "1")
        fast = os.environ["GPTLAB_FAST"].strip().lower() not in ("0", "false", "no", "off")
        print(f"Colab: fast mode is {{'ON' if fast else 'off'}} (GPTLAB_FAST={{os.environ['GPTLAB_FAST']}}): " + (
            "every model trains briefly, so results show at lower quality; for the full runs (much slower on Colab's CPU), "
            "restart the session and run os.environ['GPTLAB_FAST'] = '0' before this cell" if fast else "the full runs"))
        if os.path.isdir("{DRIVE}") and os.environ.get("GPTLAB_CHECKPOINT_DIR", local) == local:
            os.environ["GPTLAB_CHECKPOINT_DIR"] = "{DRIVE}/gptlab-checkpoints"
        if os.environ.get("GPTLAB_CHECKPOINT_DIR", local) != local:
            print("trained models are kept in " + os.environ["GPTLAB_CHECKPOINT_DIR"] + ": they survive a new runtime")
        else:
            print("trained models are kept in " + local + " for this runtime only (a new one retrains them); to keep them, "
                  "run from google.colab import drive; drive.mount('/content/drive') and then this cell again")
    os.environ.setdefault("GPTLAB_DATA_DIR", os.path.abspath("gptlab-data"))
    os.environ.setdefault("GPTLAB_CHECKPOINT_DIR", local)
    if importlib.util.find_spec("gptlab") is None:'''
KIT_INSTALL = '''
        print("installing gptlab (about a minute)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", {packages}], check=True)
        importlib.invalidate_caches()'''
KIT_NOT_PUBLISHED = '''
        raise RuntimeError("gptlab is not installed, and the course has no public repository to install it from yet: "
                           "run the lessons from a copy of the course (make lab, see its README)")'''
KIT_FETCH = '''
    subprocess.run([sys.executable, "-m", "gptlab", "data", "fetch", {names}], check=True)  # any other data: on first use'''

# What a lesson's code needs beyond gptlab itself: pip packages (Colab has both preinstalled; pip checks)
# and datasets, found by the names and calls in its code cells.
LESSON_PACKAGES = {r"\btransformers\b": "transformers", r"\b(ipywidgets|AttentionExplorer|explore)\b": "ipywidgets"}
LESSON_DATA_CALLS = {r"\bsst2\(": ("sst2_train", "sst2_dev"), r"\bscitldr\(": ("scitldr_a_train", "scitldr_a_dev", "scitldr_a_test"),
                     r"\bgpt2(_tokenizer)?\(\)": ("gpt2_tiktoken",)}
PLACEHOLDER = "https://github.com/gptlab-course/gptlab"  # pyproject.toml's Repository until the course is published

LINKS_START = "<!-- launch links: generated by `python tools/kit.py apply` from pyproject.toml's Repository URL -->"
LINKS_END = "<!-- end of launch links -->"
LINK_PAGES = ("README.md", "docs/teaching.md")


# ---------------------------------------------------------------- the repository and its links

def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The one configured repository URL: pyproject.toml's [project.urls] Repository (a GitHub URL)."""
    urls = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("urls", {})
    url = urls.get("Repository", "").rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"[project.urls] Repository in {pyproject.name} must be https://github.com/OWNER/NAME "
                         f"(Colab and Binder open GitHub repositories), got {url!r}")
    return url


def published(repo: str | None = None) -> bool:
    """Whether the course has its public home: the repository URL is no longer the placeholder."""
    return (repo or repository_url()) != PLACEHOLDER


def publish(url: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Set [project.urls] Repository to `url` (a public GitHub repository), then regenerate every link (`apply`)."""
    url = url.rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url) or url.endswith(".git"):
        raise ValueError(f"publish needs the repository's address, https://github.com/OWNER/NAME (Colab and Binder open "
                         f"public GitHub repositories), got {url!r}")
    text = pyproject.read_text(encoding="utf-8")
    new, n = re.subn(r'^(Repository\s*=\s*)"[^"]*"', lambda m: f'{m.group(1)}"{url}"', text, flags=re.M)
    if n != 1:
        raise ValueError(f"{pyproject.name} must hold exactly one `Repository = \"...\"` line under [project.urls], found {n}")
    pyproject.write_text(new, encoding="utf-8")
    if repository_url(pyproject) != url:  # what every link is generated from
        raise ValueError(f"{pyproject.name}: the Repository line is not under [project.urls]")
    return [pyproject.name, *apply(lessons())]


def lessons() -> list[Path]:
    """Every lesson notebook, in course order (its number)."""
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb") if LESSON.match(p.name))


def colab_url(rel: str, repo: str | None = None) -> str:
    owner_name = (repo or repository_url()).removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{BRANCH}/{rel}"


def binder_url(rel: str, repo: str | None = None) -> str:
    owner_name = (repo or repository_url()).removeprefix("https://github.com/")
    return f"https://mybinder.org/v2/gh/{owner_name}/{BRANCH}?labpath={rel}"


def title(nb) -> str:
    """A lesson's title: the first heading of its first cell, without the `NN ·` prefix."""
    first = nb.cells[0].source.strip().splitlines()[0] if nb.cells else ""
    return re.sub(r"^#+\s*(\d\d\s*·\s*)?", "", first).strip()


def links_table(repo: str | None = None) -> str:
    """Markdown: one row per lesson with its Colab and Binder links."""
    repo = repo or repository_url()
    if not published(repo):
        return _UNPUBLISHED
    rows = ["| # | lesson | run it |", "|---|---|---|"]
    for p in lessons():
        rel = f"notebooks/{p.name}"
        nb = nbformat.read(p, as_version=4)
        rows.append(f"| {p.name[:2]} | {title(nb)} | [Colab]({colab_url(rel, repo)}) · [Binder]({binder_url(rel, repo)}) |")
    return "\n".join(rows)


_UNPUBLISHED = ("**Colab and Binder: not yet.** The course has no public repository yet, so there are no working "
                "Colab (colab.research.google.com) or Binder (mybinder.org) links: run it on your machine (the "
                "README's Quickstart). Publishing is one command, `python tools/kit.py publish "
                "https://github.com/OWNER/NAME`: it sets the repository URL and writes the links here, in the README "
                "and in every lesson's first cell; then commit and rebuild the site.")


def launch_block(page: str, repo: str | None = None) -> str:
    """What goes between the markers: one line for the README, the per-lesson table for the guide."""
    if page != "README.md" or not published(repo):
        return links_table(repo)
    first = "notebooks/00_setup_and_tour.ipynb"
    return (f"Run it without installing anything: [lesson 00 on Colab]({colab_url(first, repo)}) · "
            f"[the whole course on Binder]({binder_url(first, repo)}); every lesson's links are in "
            "[the instructor guide](docs/teaching.md#launch-links).")


def with_links(text: str, table: str) -> str:
    """`text` with the block between the launch-link markers replaced by `table` (unchanged if no markers)."""
    if LINKS_START not in text:
        return text
    head, rest = text.split(LINKS_START, 1)
    if LINKS_END not in rest:
        raise ValueError(f"a launch-links block opens with {LINKS_START!r} but never closes with {LINKS_END!r}")
    tail = rest.split(LINKS_END, 1)[1]
    return f"{head}{LINKS_START}\n{table}\n{LINKS_END}{tail}"


# ---------------------------------------------------------------- the kit cell and the slide rules

def lesson_needs(nb) -> tuple[list[str], list[str]]:
    """(pip packages beyond gptlab, datasets) that a lesson's code cells use, in a stable order."""
    from gptlab.datasets import DATASETS

    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and not is_kit(c))
    packages = sorted({pkg for pattern, pkg in LESSON_PACKAGES.items() if re.search(pattern, code)})
    data = {name for name in DATASETS if re.search(rf"[\"']{name}[\"']", code)}
    data |= {name for pattern, names in LESSON_DATA_CALLS.items() if re.search(pattern, code) for name in names}
    return packages, [name for name in DATASETS if name in data]


def kit_source(repo: str | None = None, nb=None) -> str:
    """The first code cell of a lesson (`nb`; None: a lesson that needs nothing beyond gptlab and fetches no data)."""
    repo = repo or repository_url()
    packages, data = lesson_needs(nb) if nb is not None else ([], [])
    install = (KIT_INSTALL.format(packages=", ".join(json.dumps(p) for p in [f"gptlab @ git+{repo}", *packages]))
               if published(repo) else KIT_NOT_PUBLISHED)
    fetch = KIT_FETCH.format(names=", ".join(json.dumps(n) for n in data)) if data else ""
    return KIT_HEAD + install + fetch


def is_kit(cell) -> bool:
    return cell.cell_type == "code" and cell.source.startswith(KIT_FIRST_LINE)


def _draws(cell) -> bool:
    return any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {}) for o in cell.get("outputs", []))


def _only_imports(cell) -> bool:
    lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    joined = "\n".join(lines)
    # parenthesised multi-line imports: drop their continuation lines
    joined = re.sub(r"\(\s*[^()]*\)", "()", joined)
    return bool(lines) and all(re.match(r"(import|from)\s", ln) for ln in joined.splitlines())


def _override(cell) -> str | None:
    for tag in cell.metadata.get("tags", []):
        if tag.startswith("slideshow:"):
            kind = tag.split(":", 1)[1]
            if kind not in SLIDE_TYPES:
                raise ValueError(f"cell tag {tag!r}: the slide type must be one of {', '.join(SLIDE_TYPES)}")
            return kind
    return None


def slide_type(cells, i: int) -> str:
    """The slide type of cells[i] under the rules of the module docstring."""
    cell = cells[i]
    kind = _override(cell)
    if kind:
        return kind
    if i == 0:
        return "slide"
    if cell.cell_type == "markdown":
        levels = [len(m.group(1)) for m in re.finditer(r"^(#{1,3})\s", cell.source, re.M)]
        if levels and min(levels) <= 2:
            return "slide"
        if levels:
            return "subslide"
        if i + 1 < len(cells) and cells[i + 1].cell_type == "code" and _draws(cells[i + 1]):
            return "subslide"
        return "-"
    if cell.cell_type != "code":
        return "-"
    if is_kit(cell) or "### BEGIN SOLUTION" in cell.source or _only_imports(cell):
        return "skip"
    if len(cell.source.splitlines()) > LONG_CELL and not _draws(cell):
        return "skip"
    return "-"


def kit(nb, repo: str | None = None):
    """Put the kit cell first among the code cells (after the objectives) and set every cell's slide type."""
    src = kit_source(repo, nb)
    old = [c for c in nb.cells if is_kit(c)]
    nb.cells = [c for c in nb.cells if not is_kit(c)]
    cell = old[0] if old else nbformat.v4.new_code_cell(src)
    cell.source, cell.outputs = src, []  # it prints nothing where it runs; its execution count may stay
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, cell)
    if not old:
        cell.id = "gptlab-kit"  # tools/nb.py renumbers every cell later; any unique id will do
    for i, c in enumerate(nb.cells):
        kind = slide_type(nb.cells, i)
        if kind == "-":  # the default: written nowhere, so most cells' metadata stays empty
            c.metadata.pop("slideshow", None)
        else:
            c.metadata["slideshow"] = {"slide_type": kind}
    return nb


def apply(paths: list[Path], write: bool = True) -> list[str]:
    """Apply the kit to notebooks and the launch-link blocks; return the files that changed (or would)."""
    repo = repository_url()
    changed = []
    for p in paths:
        before = p.read_text(encoding="utf-8")
        nb = kit(nbformat.read(p, as_version=4), repo)
        nbformat.validate(nb)
        after = nbformat.writes(nb) + "\n"
        if after != before:
            changed.append(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p))
            if write:
                p.write_text(after, encoding="utf-8")
    for rel in LINK_PAGES:
        page = ROOT / rel
        if page.exists():
            before = page.read_text(encoding="utf-8")
            after = with_links(before, launch_block(rel, repo))
            if after != before:
                changed.append(rel)
                if write:
                    page.write_text(after, encoding="utf-8")
    return changed


# ---------------------------------------------------------------- what a reader of the decks and the site sees

_GRADING_MARKER = re.compile(r"^[ \t]*### (?:BEGIN|END) SOLUTION[ \t]*(?:\n|$)", re.M)


def _student():
    """tools/student.py, the one place that knows the exercise markers (imported by path: tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("gptlab_student_tool", ROOT / "tools" / "student.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def solution_dropdown(source: str) -> str:
    """A markdown cell's text: the solved exercise code, without any marker, under a collapsed "Solution" toggle."""
    code = _GRADING_MARKER.sub("", _student().strip_test_markers(source)).strip("\n")
    fence = "`" * max(4, 1 + max((len(m) for m in re.findall(r"`+", code)), default=0))
    return f":::{{admonition}} Solution\n:class: dropdown\n\n{fence}python\n{code}\n{fence}\n:::"


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def static_widgets(nb):
    """`nb` with each widget output whose state was not saved shown as its static fallback (issue 30, A5).

    A widget output is a reference to a model that lives in the kernel; a page or a deck that has no
    kernel and no saved state (notebook metadata `widgets`) draws nothing for it, and renderers pick
    the widget view over every other representation. The course's widgets (lesson 08's explorer)
    also carry a PNG snapshot and a text line: drop the dead reference so those show instead.
    """
    saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            view = data.get(WIDGET_VIEW)
            if view is not None and view.get("model_id") not in saved and set(data) - {WIDGET_VIEW}:
                del data[WIDGET_VIEW]
    return nb


def reader_edition(nb, solutions: bool = False):
    """The lesson as decks and the site show it: no test markers, each exercise unsolved (the student
    edition's stub, its output cleared), and with `solutions` the solution in a collapsed toggle below it."""
    student = _student()
    solved = {c.get("id"): c.source for c in nb.cells if student.is_exercise_cell(c)}
    out = student.student_edition(nb)
    cells = []
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.source = student.strip_test_markers(cell.source)
        cells.append(cell)
        if solutions and cell.get("id") in solved:
            cells.append(nbformat.v4.new_markdown_cell(solution_dropdown(solved[cell.get("id")])))
    out.cells = cells
    return static_widgets(out)


def stage_book_sources(stage: Path, solutions: bool = False, skip: Path | None = None) -> Path:
    """A copy of the course's sources in `stage`, its lessons replaced by their reader edition; the site is built from it."""
    top_level = {".git", "build", "data", "checkpoints", "runs", "mine", ".pytest_cache", ".whl", ".gl"}
    anywhere = {"__pycache__", ".ipynb_checkpoints"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder).resolve()
        out = {n for n in names if n in anywhere or n.endswith(".egg-info") or n.startswith(".venv")}
        if here == ROOT:
            out |= {n for n in names if n in top_level}
        if skip is not None:
            out |= {n for n in names if (here / n).resolve() == skip.resolve()}
        return out

    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(ROOT, stage, ignore=ignore)
    for p in lessons():
        nbformat.write(reader_edition(nbformat.read(p, as_version=4), solutions), stage / "notebooks" / p.name)
    return stage


# ---------------------------------------------------------------- what fits on a slide (issue 30, A11)
# The deck is drawn on reveal.js's 960 × 700 canvas (scaled to the screen: 1280 × 720 shows it whole) with
# nbconvert's sizes: text 20 px (a line about 32 px high and 95 characters wide), code 19 px (about 26 px high,
# 80 characters wide). The numbers below are in those pixels; tests/test_course_site.py measures a built deck.
SLIDE_HEIGHT = 600      # px of cell content per slide, below reveal's margins
FIGURE_HEIGHT = 380     # px: the deck's CSS caps every image at this height (gptlab_reveal template)
CODE_LINES = 14         # a longer code cell shows its first CODE_LINES - 1 lines and a "… N more lines" line
FIGURE_CODE_LINES = 6   # the same for a cell that draws: its figure needs the room
CODE_WIDTH = 80         # characters: longer lines wrap (CSS pre-wrap), counted here as the lines they take
OUTPUT_LINES = 8        # a longer text output shows its first OUTPUT_LINES - 1 lines and a "… N more lines" line
TEXT_WIDTH = 95         # characters per line of markdown text
TEXT_HEIGHT = 440       # px: the text of a markdown cell beyond this goes to the speaker notes (press S)


def _wrapped(lines: list[str], width: int) -> int:
    return sum(max(1, -(-len(ln.expandtabs()) // width)) for ln in lines)


def _png_size(b64: str) -> tuple[int, int] | None:
    """(width, height) from a base64 PNG's IHDR chunk, or None."""
    import base64

    head = base64.b64decode(b64[:44] + "=" * (-len(b64[:44]) % 4), validate=False)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _markdown_height(text: str) -> int:
    px = 0
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        heading = re.match(r"^(#{1,6})\s", block)
        if heading:
            px += {1: 70, 2: 58, 3: 46}.get(len(heading.group(1)), 40) + 32 * (len(lines) - 1)
        elif block.lstrip().startswith("$$") or block.lstrip().startswith("\\["):
            px += 70 + 20 * len(lines)
        elif block.lstrip().startswith("|"):  # a table: its rows wrap in their columns (links show their text only)
            px += sum(16 + 30 * max(1, -(-len(re.sub(r"\]\([^)]*\)", "]", ln)) // 110)) for ln in lines
                      if not re.match(r"^\|[-:| ]+\|$", ln.strip()))
        elif block.lstrip().startswith("<img") or "![" in block:
            px += FIGURE_HEIGHT
        else:
            px += 32 * _wrapped(lines, TEXT_WIDTH) + 16
    return px


def _output_height(out) -> int:
    data = out.get("data", {})
    if "image/png" in data:
        size = _png_size(data["image/png"])
        return min(FIGURE_HEIGHT, int(size[1] * min(1.0, 900 / max(size[0], 1)))) if size else FIGURE_HEIGHT
    if "image/svg+xml" in data:
        return FIGURE_HEIGHT
    if "text/html" in data:
        html = "".join(data["text/html"])
        return min(SLIDE_HEIGHT, 40 + 30 * html.count("<tr") + 24 * html.count("<br"))
    text = out.get("text") if out.get("output_type") == "stream" else data.get("text/plain", "")
    return 16 + 24 * _wrapped(("".join(text) if isinstance(text, list) else text or "").splitlines(), CODE_WIDTH)


def cell_height(cell) -> int:
    """Estimated px that `cell` takes on a slide (code, its outputs, or rendered markdown)."""
    if cell.cell_type == "markdown":
        return _markdown_height(cell.source)
    if cell.cell_type != "code":
        return 32 * _wrapped(cell.source.splitlines(), TEXT_WIDTH)
    px = 20 + 26 * _wrapped(cell.source.splitlines(), CODE_WIDTH) if cell.source.strip() else 0
    return px + sum(_output_height(o) for o in cell.get("outputs", []))


def _cut(lines: list[str], keep: int, more: str) -> list[str]:
    return lines if len(lines) <= keep + 1 else [*lines[:keep], more.format(n=len(lines) - keep)]


def _merge_streams(outputs: list) -> list:
    """Consecutive prints to the same stream as one output, as Jupyter shows them (so they are cut as one)."""
    merged = []
    for out in outputs:
        if (merged and out.get("output_type") == "stream" and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == out.get("name")):
            merged[-1]["text"] = "".join(merged[-1]["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


def _fit_code(cell) -> None:
    """Shorten a code cell's source (then its text outputs) until the cell fits on one slide, or nothing is left to cut."""
    lines = cell.source.splitlines()
    body = [ln for ln in lines if not ln.startswith("# … ")]
    keep = len(body)
    while cell_height(cell) > SLIDE_HEIGHT and keep > 3:
        keep -= 1
        cell.source = "\n".join(_cut(body, keep, "# … {n} more lines in the notebook"))
    if cell_height(cell) > SLIDE_HEIGHT:
        _trim_outputs(cell, 3)


def _trim_outputs(cell, limit: int = OUTPUT_LINES) -> None:
    cell.outputs = _merge_streams(cell.get("outputs", []))
    for out in cell.outputs:
        key = "text" if out.get("output_type") == "stream" else None
        data = out.get("data", {})
        if key is None and "text/plain" in data and not set(data) - {"text/plain"}:
            text = "".join(data["text/plain"]) if isinstance(data["text/plain"], list) else data["text/plain"]
            data["text/plain"] = "\n".join(_cut(text.splitlines(), limit - 1, "… {n} more lines in the notebook"))
        elif key:
            text = "".join(out[key]) if isinstance(out[key], list) else out[key]
            out[key] = "\n".join(_cut(text.splitlines(), limit - 1, "… {n} more lines in the notebook")) + "\n"


def _split_markdown(source: str) -> tuple[str, str]:
    """(what stays on the slide, what goes to the speaker notes): whole blocks, at least the first."""
    blocks = re.split(r"\n\s*\n", source.strip())
    kept, px = [], 0
    for i, block in enumerate(blocks):
        h = _markdown_height(block)
        if kept and px + h > TEXT_HEIGHT:
            return "\n\n".join(kept), "\n\n".join(blocks[i:])
        kept.append(block)
        px += h
    return "\n\n".join(kept), ""


def _split_tables(source: str) -> list[str]:
    """A markdown cell's text as one or more slides' worth: a table taller than TEXT_HEIGHT is cut into
    pieces of rows, each under the table's header (the text around it stays with the first and last piece)."""
    blocks = re.split(r"\n\s*\n", source.strip())
    parts, current = [], []
    for block in blocks:
        lines = block.splitlines()
        if not (block.lstrip().startswith("|") and len(lines) > 3 and _markdown_height(block) > TEXT_HEIGHT):
            current.append(block)
            continue
        head, rows, chunk = lines[:2], lines[2:], []
        for row in rows:
            if chunk and _markdown_height("\n".join([*head, *chunk, row])) > TEXT_HEIGHT:
                parts.append("\n\n".join([*current, "\n".join([*head, *chunk])]))
                current, chunk = [], []
            chunk.append(row)
        current.append("\n".join([*head, *chunk]))
    return [*parts, "\n\n".join(current)]


def _fit_markdown(cell) -> list:
    """A markdown cell as the cells a deck shows: long tables over several subslides, text beyond TEXT_HEIGHT as notes."""
    pieces = _split_tables(cell.source)
    parts = [cell] + [nbformat.v4.new_markdown_cell(p, metadata={"slideshow": {"slide_type": "subslide"}}) for p in pieces[1:]]
    cell.source = pieces[0]
    out = []
    for part in parts:
        shown, rest = _split_markdown(part.source)
        part.source = shown
        out.append(part)
        if rest:
            out.append(nbformat.v4.new_markdown_cell(rest, metadata={"slideshow": {"slide_type": "notes"}}))
    return out


def _kind(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def deck_edition(nb):
    """The reader edition cut to slides that fit (no cell is executed; the notebook keeps everything):

    - a code cell longer than CODE_LINES (FIGURE_CODE_LINES if it draws) shows its first lines and
      "# … N more lines in the notebook";
    - a text output longer than OUTPUT_LINES shows its first lines and "… N more lines in the notebook"
      (consecutive prints count as one output), and a cell still taller than a slide loses more code lines;
    - a table taller than TEXT_HEIGHT goes on as many slides as it needs, its header on each;
    - a markdown cell taller than TEXT_HEIGHT keeps its first paragraphs, the rest becomes speaker notes;
    - a cell that would push its slide past SLIDE_HEIGHT starts a new subslide (below, in reveal's grid).
    Long lines wrap (the deck's CSS), and images are capped at FIGURE_HEIGHT, so nothing runs off at 1280 × 720.
    """
    import copy

    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        if cell.cell_type == "markdown" and _kind(cell) not in ("skip", "notes"):
            cells.extend(_fit_markdown(cell))
            continue
        cells.append(cell)
        if _kind(cell) in ("skip", "notes"):
            continue
        if cell.cell_type == "code":
            keep = (FIGURE_CODE_LINES if _draws(cell) else CODE_LINES) - 1
            cell.source = "\n".join(_cut(cell.source.splitlines(), keep, "# … {n} more lines in the notebook"))
            _trim_outputs(cell)
            _fit_code(cell)
    used = None
    for cell in cells:
        kind = _kind(cell)
        if kind in ("skip", "notes"):
            continue
        h = cell_height(cell)
        if used is None or kind in ("slide", "subslide"):
            used = h
        elif used + h > SLIDE_HEIGHT:
            cell.metadata["slideshow"] = {"slide_type": "subslide"}
            used = h
        else:
            used += h
    out.cells = cells
    return out


# ---------------------------------------------------------------- slides (reveal.js, offline)

TEMPLATES = ROOT / "tools" / "templates"


def _asset_dirs() -> tuple[Path, Path]:
    """reveal.js and MathJax as shipped by pip packages (the `docs` extra), so nothing comes from a CDN."""
    missing = "is missing: install the docs extra, pip install -c constraints.txt -e '.[docs]' (make install does)"
    reveal_pkg = importlib.util.find_spec("sphinx_revealjs")
    mathjax_pkg = importlib.util.find_spec("sphinx-mathjax-offline")  # sic: the package's name has hyphens
    for name, spec in (("sphinx-revealjs", reveal_pkg), ("sphinx-mathjax-offline", mathjax_pkg)):
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"{name} {missing}")
    reveal = Path(list(reveal_pkg.submodule_search_locations)[0]) / "_static" / "revealjs"
    mathjax = Path(list(mathjax_pkg.submodule_search_locations)[0]) / "static" / "mathjax"
    return reveal, mathjax


def _copy_assets(out: Path) -> None:
    reveal, mathjax = _asset_dirs()
    static = out / "_static"
    for src, dest in ((reveal / "dist", static / "reveal" / "dist"), (reveal / "plugin" / "notes", static / "reveal" / "plugin" / "notes"),
                      (mathjax, static / "mathjax")):
        if not dest.exists():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.map", "*.esm.js"))
    shutil.copy2(reveal / "LICENSE", static / "reveal" / "LICENSE")


def slide_count(nb) -> int:
    """How many slides (slides plus subslides) a deck of this notebook has."""
    visible = [c for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type", "-") not in ("skip", "notes")]
    if not visible:
        return 0
    n = sum(c.metadata.get("slideshow", {}).get("slide_type") in ("slide", "subslide") for c in visible[1:])
    return n + 1  # the first visible cell always starts a slide


# What a foreign notebook's HTML may keep: the tags and attributes a plain document (rendered markdown) needs.
SAFE_TAGS = frozenset("a abbr b blockquote br caption code dd del details div dl dt em h1 h2 h3 h4 h5 h6 hr i img ins "
                      "kbd li ol p pre q s samp small span strong sub summary sup table tbody td tfoot th thead tr u ul".split())
SAFE_ATTRIBUTES = {"*": ["id", "class", "title", "align"], "a": ["href", "title"], "img": ["src", "alt", "width", "height"],
                   "td": ["colspan", "rowspan"], "th": ["colspan", "rowspan"], "ol": ["start"]}
SAFE_PROTOCOLS = ("http", "https", "mailto")


def is_course_lesson(path: Path) -> bool:
    """Whether `path` is one of the course's own lessons (trusted: its HTML and scripts run in decks and the book)."""
    return path.resolve().parent == NOTEBOOKS.resolve() and bool(LESSON.match(path.name))


def sanitize_html(html: str) -> str:
    """`html` with everything outside SAFE_TAGS / SAFE_ATTRIBUTES / SAFE_PROTOCOLS escaped (shown as text, never run)."""
    import bleach

    return bleach.clean(html, tags=SAFE_TAGS, attributes=SAFE_ATTRIBUTES, protocols=SAFE_PROTOCOLS, strip=False,
                        strip_comments=True)


def build_slides(paths: list[Path], out: Path) -> list[Path]:
    """One self-contained-with-its-folder reveal.js deck per notebook; no cell is executed.

    A notebook that is not a course lesson gets nbconvert's sanitizing mode with sanitize_html
    as its filter (see "Whose HTML runs" above).
    """
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    out.mkdir(parents=True, exist_ok=True)
    _copy_assets(out)
    c = Config()
    c.SlidesExporter.template_name = "gptlab_reveal"
    c.SlidesExporter.extra_template_basedirs = [str(TEMPLATES)]
    c.SlidesExporter.reveal_url_prefix = "_static/reveal"
    c.SlidesExporter.reveal_theme = "white"
    c.SlidesExporter.reveal_number = "c/t"
    c.SlidesExporter.exclude_input_prompt = True
    c.SlidesExporter.exclude_output_prompt = True
    trusted = SlidesExporter(config=c)
    c.SlidesExporter.sanitize_html = True
    c.SlidesExporter.filters = {"clean_html": sanitize_html}
    foreign = SlidesExporter(config=c)
    written = []
    for p in paths:
        nb = deck_edition(reader_edition(nbformat.read(p, as_version=4), solutions=False))
        exporter = trusted if is_course_lesson(p) else foreign
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": p.stem}})
        dest = out / f"{p.stem}.slides.html"
        dest.write_text(body, encoding="utf-8")
        written.append(dest)
    return written


# ---------------------------------------------------------------- the book (Jupyter Book 1, Sphinx)

BOOK = ROOT / "book"


def book_config(repo: str, dest: Path) -> Path:
    """book/_config.yml with the repository URL filled in (so launch buttons follow pyproject.toml)."""
    import yaml

    cfg = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
    cfg.setdefault("repository", {})["url"] = repo
    cfg["repository"]["branch"] = BRANCH
    if not published(repo):  # no launch buttons or repository link that lead nowhere
        cfg.pop("launch_buttons", None)
        cfg.setdefault("html", {})["use_repository_button"] = False
    if cfg.get("execute", {}).get("execute_notebooks") != "off":
        raise ValueError("book/_config.yml must keep execute: execute_notebooks: 'off' (the book shows the committed outputs)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return dest


def build_book(out: Path, solutions: bool = False) -> Path:
    """Build the site into OUT/_build/html from the committed notebooks (none is executed), as readers see them."""
    exe = Path(sys.executable).with_name("jupyter-book")
    exe = str(exe) if exe.exists() else shutil.which("jupyter-book")
    if exe is None:
        raise SystemExit("jupyter-book is missing: install the docs extra, pip install -c constraints.txt -e '.[docs]' (make install does)")
    src = stage_book_sources(out / "src", solutions, skip=out)
    cmd = [exe, "build", str(src), "--path-output", str(out),
           "--config", str(book_config(repository_url(), out / "_config.yml")), "--toc", str(src / "book" / "_toc.yml"),
           "-W", "--keep-going"]
    subprocess.run(cmd, check=True, cwd=src)
    html = out / "_build" / "html"
    home_title(html / "README.html")
    return html


def home_title(page: Path) -> None:
    """The home page's <title> without the book's title repeated after its own (C10: "gptlab — build a GPT… — gptlab:
    build a GPT…"): Sphinx writes "PAGE — BOOK", and the README's heading already is the book's name."""
    if not page.exists():
        return
    text = page.read_text(encoding="utf-8")
    m = re.search(r"<title>(.*?) &#8212; (.*?)</title>", text)

    def words(t: str) -> str:
        return re.sub(r"\W+", " ", t).strip().lower()

    if m and words(m.group(1)) == words(m.group(2)):
        page.write_text(text.replace(m.group(0), f"<title>{m.group(1)}</title>", 1), encoding="utf-8")


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("apply", "check", "slides"):
        s = sub.add_parser(name)
        s.add_argument("notebooks", nargs="*", type=Path)
        if name == "slides":
            s.add_argument("--out", type=Path, default=ROOT / "build" / "slides")
    book = sub.add_parser("book")
    book.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    book.add_argument("--solutions", action="store_true", help="show each exercise's solution, collapsed under a 'Solution' toggle")
    sub.add_parser("links")
    sub.add_parser("publish", help="set the repository URL and regenerate every link").add_argument("url")
    a = ap.parse_args(argv)
    paths = [p.resolve() for p in getattr(a, "notebooks", [])] or lessons()
    for p in paths:
        if p.suffix != ".ipynb" or not p.is_file():
            ap.error(f"{p}: not a notebook file (give paths such as notebooks/03_causal_self_attention.ipynb)")
    t0 = time.perf_counter()
    if a.cmd in ("apply", "check"):
        changed = apply(paths, write=a.cmd == "apply")
        for f in changed:
            print(("updated " if a.cmd == "apply" else "out of date: ") + f)
        if a.cmd == "check" and changed:
            print("run: python tools/kit.py apply")
            return 1
    elif a.cmd == "slides":
        for src, deck in zip(paths, build_slides(paths, a.out)):
            note = "" if is_course_lesson(src) else " (not a course lesson: its HTML sanitized, its JavaScript dropped)"
            n = slide_count(deck_edition(reader_edition(nbformat.read(src, as_version=4))))
            print(f"{deck.name}: {n} slides{note}")
        print(f"{len(paths)} decks in {time.perf_counter() - t0:.1f}s, in {a.out}: open any *.slides.html in a browser (works offline)")
    elif a.cmd == "book":
        html = build_book(a.out, a.solutions)
        print(f"the site is in {html} ({time.perf_counter() - t0:.1f}s); open {html / 'index.html'}")
    elif a.cmd == "links":
        print(links_table())
    elif a.cmd == "publish":
        for f in publish(a.url):
            print("updated " + f)
        print("commit these, then rebuild the site (make book); Colab and Binder need the repository to be public")
    return 0


if __name__ == "__main__":
    sys.exit(main())
