"""The Chinese edition (中文版): one source, two languages, never silently out of date.

    python tools/zh.py check               # every translation present, current, numbers equal (exit 1 and a report if not)
    python tools/zh.py status              # per file: translated / stale / missing cells
    python tools/zh.py todo 03             # the English cells of lesson 03 that need a (new) translation, with their markers
    python tools/zh.py build [--out DIR]   # build/zh: the lessons with Chinese prose, README.md, docs/teaching.md
    python tools/zh.py site [--out DIR]    # the Chinese site into DIR/_build/html/zh, beside the English one (make book)
    python tools/zh.py slides [--out DIR]  # the Chinese decks into DIR/zh (make slides)

Why this shape: the English notebooks stay the single source of code and outputs. The Chinese text lives beside
them in `notebooks/zh/`, one Markdown file per lesson (and one for the README and one for the instructor guide),
each entry under a marker that names the English unit it translates and a hash of that English text:

    <!-- zh cell=cell-012 en=3f2a9c1b0d4e -->
    第 12 个单元格的中文……

A unit is a markdown cell (keyed by its cell id) of a lesson, or a block of README.md / docs/teaching.md (keyed by
its heading). When the English text changes, its hash no longer matches and `check` names the lesson and the cell:
the Chinese can fall behind, but never silently. `check` also requires the numbers, code spans, formulas, link
targets and HTML tags of each Chinese unit to equal those of its English source (a translation changes words, never
figures), and flags the alternatives to the glossary's terms (docs/glossary.md) so one concept has one name.
Code cells, code comments and printed outputs stay in English: the build copies them from the English notebook.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ZH = NOTEBOOKS / "zh"
GLOSSARY = ROOT / "docs" / "glossary.md"
LESSON = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
DOCS = {"README": ROOT / "README.md", "teaching": ROOT / "docs" / "teaching.md"}
MARKER = re.compile(r"^<!-- zh (cell|block)=(\S+) en=([0-9a-f]{12}) -->[ \t]*$", re.M)


def en_hash(text: str) -> str:
    """The first 12 hex digits of the SHA-256 of the English text (trailing whitespace ignored)."""
    return hashlib.sha256(text.rstrip().encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------- the English units

def is_generated(cell) -> bool:
    """The launch cell `tools/kit.py` writes into every lesson: generated, so the build renders it, not a translator."""
    return cell.get("id") == "gptlab-kit" or "gptlab-kit" in cell.get("metadata", {}).get("tags", [])


def lesson_units(path: Path) -> dict[str, str]:
    """cell id -> English source of each markdown cell of a lesson, in order."""
    nb = nbformat.read(path, as_version=4)
    units: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown" or is_generated(cell):
            continue
        cid = cell.get("id")
        if not cid or cid in units:
            raise ValueError(f"{path.name}: a markdown cell has {'no' if not cid else 'a duplicate'} id {cid!r}: "
                             "run `python tools/nb.py clean` to give every cell an id")
        units[cid] = cell.source
    return units


def slug(heading: str) -> str:
    words = re.sub(r"[^0-9a-z]+", "-", heading.lower()).strip("-")
    return words[:60] or "block"


def doc_units(path: Path) -> dict[str, str]:
    """key -> English text of each block of a Markdown document: a block starts at a heading (outside code fences)."""
    blocks: list[list[str]] = [[]]
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        if not fence and re.match(r"#{1,6} ", line) and any(x.strip() for x in blocks[-1]):
            blocks.append([])
        blocks[-1].append(line)
    units: dict[str, str] = {}
    for lines in blocks:
        text = "\n".join(lines).strip("\n")
        if not text.strip():
            continue
        first = lines[0] if lines and lines[0].startswith("#") else "intro"
        key, n = slug(first.lstrip("#")), 2
        while key in units:
            key, n = f"{slug(first.lstrip('#'))}-{n}", n + 1
        units[key] = text
    return units


def sources() -> dict[str, tuple[Path, Path, dict[str, str]]]:
    """name -> (English file, translation file, English units) for every lesson and document."""
    out = {}
    for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        out[p.stem] = (p, ZH / f"{p.stem}.md", lesson_units(p))
    for name, p in DOCS.items():
        out[name] = (p, ZH / f"{name}.md", doc_units(p))
    return out


# ---------------------------------------------------------------- the Chinese units

@dataclass
class Entry:
    key: str
    en: str  # hash of the English text it translates
    text: str
    line: int


def read_translation(path: Path) -> dict[str, Entry]:
    """key -> Entry of a translation file; a malformed or duplicate marker is an error naming its line."""
    text = path.read_text(encoding="utf-8")
    marks = list(MARKER.finditer(text))
    if text[: marks[0].start() if marks else len(text)].strip():
        raise ValueError(f"{path.name}: text before the first `<!-- zh cell=... en=... -->` marker")
    entries: dict[str, Entry] = {}
    for m, nxt in zip(marks, [*marks[1:], None]):
        body = text[m.end(): nxt.start() if nxt else len(text)].strip("\n")
        line = text.count("\n", 0, m.start()) + 1
        if m.group(2) in entries:
            raise ValueError(f"{path.name}:{line}: a second translation of {m.group(2)}")
        entries[m.group(2)] = Entry(m.group(2), m.group(3), body, line)
    return entries


# ---------------------------------------------------------------- what must not change in translation

CODE = re.compile(r"```.*?```|``[^`]+``|`(?:[^`\n]|\n(?!\n))+`", re.S)  # an inline span may wrap a line
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.S)
URL = re.compile(r"\]\(([^)\s]+)")
TAG = re.compile(r"</?[a-zA-Z][^>]*>")
ANCHOR = re.compile(r'<a id="[^"<>]+"></a>')  # a link target a Chinese heading may need (its slug differs)
COMMENT = re.compile(r"<!--.*?-->", re.S)
NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-−]?\d+(?:[,.]\d+)*(?:\s?%)?")  # ASCII look-behind: 第3课 has a 3


def invariants(text: str) -> dict[str, Counter]:
    """The parts of a unit a translation must keep exactly: code spans, formulas, link targets, tags, numbers."""
    out: dict[str, Counter] = {}
    text = COMMENT.sub(" ", text)
    out["code"] = Counter(CODE.findall(text))
    text = CODE.sub(" ", text)
    out["formula"] = Counter(m.strip() for m in MATH.findall(text))
    text = MATH.sub(" ", text)
    out["link"] = Counter(URL.findall(text))
    text = URL.sub("](", text)
    text = ANCHOR.sub(" ", text)
    out["tag"] = Counter(TAG.findall(text))
    text = TAG.sub(" ", text)
    out["number"] = Counter(n.replace("−", "-").replace(" ", "") for n in NUMBER.findall(text))
    return out


def differences(en: str, zh: str) -> list[str]:
    """What the Chinese unit lost or added among the invariants, in words."""
    a, b = invariants(en), invariants(zh)
    out = []
    for kind in a:
        lost, added = a[kind] - b[kind], b[kind] - a[kind]
        if lost:
            out.append(f"{kind} missing: {', '.join(sorted(lost))[:200]}")
        if added:
            out.append(f"{kind} not in the English: {', '.join(sorted(added))[:200]}")
    return out


def glossary() -> tuple[dict[str, str], dict[str, str]]:
    """(English term -> Chinese term, banned alternative -> the term to use) from docs/glossary.md's table."""
    terms, banned = {}, {}
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not line.startswith("|") or set(cells[0]) <= set("-: ") or cells[0] == "English":
            continue
        terms[cells[0]] = cells[1]
        for alt in filter(None, (a.strip() for a in cells[2].split("、"))):
            if alt not in ("—", "-"):
                banned[alt] = cells[1]
    return terms, banned


# ---------------------------------------------------------------- the check

def problems(names: list[str] | None = None) -> list[str]:
    """Every reason the Chinese edition is not in step with the English, one line each (empty: all good)."""
    out: list[str] = []
    _, banned = glossary()
    for name, (src, path, units) in sources().items():
        if names and name not in names:
            continue
        if not path.exists():
            out.append(f"{path.relative_to(ROOT)}: missing ({len(units)} unit(s) of {src.name} untranslated)")
            continue
        try:
            entries = read_translation(path)
        except ValueError as e:
            out.append(str(e))
            continue
        kind = "cell" if src.suffix == ".ipynb" else "block"
        for key, english in units.items():
            e = entries.get(key)
            where = f"{path.relative_to(ROOT)}: {src.name} {kind} {key}"
            if e is None:
                out.append(f"{where}: no translation")
            elif e.en != en_hash(english):
                out.append(f"{where}: stale, the English changed since it was translated (line {e.line})")
            elif not e.text.strip():
                out.append(f"{where}: empty translation (line {e.line})")
            elif "<!-- EN:" in e.text:
                out.append(f"{where}: the English to translate from is still there (line {e.line}): replace it")
            else:
                out += [f"{where}: {d}" for d in differences(english, e.text)]
                for alt, use in banned.items():
                    if alt in e.text:
                        out.append(f"{where}: uses {alt!r}; the glossary's term is {use!r}")
        for key in entries.keys() - units.keys():
            out.append(f"{path.relative_to(ROOT)}: {kind} {key} (line {entries[key].line}) is no longer in {src.name}")
    return out


def status() -> list[tuple[str, int, int, int]]:
    """(name, units, current translations, stale translations) for every lesson and document."""
    rows = []
    for name, (_, path, units) in sources().items():
        entries = read_translation(path) if path.exists() else {}
        current = sum(1 for k, t in units.items() if k in entries and entries[k].en == en_hash(t))
        stale = sum(1 for k, t in units.items() if k in entries and entries[k].en != en_hash(t))
        rows.append((name, len(units), current, stale))
    return rows


def todo(name: str) -> str:
    """The markers, English text (as an HTML comment to translate from) of every unit lacking a current translation."""
    matches = [n for n in sources() if n == name or n.startswith(f"{name}_")]
    if len(matches) != 1:
        raise SystemExit(f"zh todo: {name!r} names {len(matches)} lessons/documents; give e.g. 03 or README")
    src, path, units = sources()[matches[0]]
    entries = read_translation(path) if path.exists() else {}
    kind = "cell" if src.suffix == ".ipynb" else "block"
    parts = []
    for key, english in units.items():
        if key in entries and entries[key].en == en_hash(english):
            continue
        parts.append(f"<!-- zh {kind}={key} en={en_hash(english)} -->\n<!-- EN:\n{english.replace('-->', '- ->')}\n-->\n")
    return "\n".join(parts)


# ---------------------------------------------------------------- the build

def chinese_notebook(src: Path, entries: dict[str, Entry]):
    """The English notebook with each markdown cell's Chinese text; code, outputs and generated cells unchanged."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        e = entries.get(cell.get("id"))
        if cell.cell_type == "markdown" and e is not None and e.en == en_hash(cell.source):
            cell.source = e.text
    nb.metadata["language"] = "zh-CN"
    return nb


def build(out: Path) -> list[Path]:
    """Write the Chinese lessons (out/NN_*.ipynb) and documents (out/README.md, out/docs/teaching.md)."""
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for src, path, units in sources().values():
        if not path.exists():
            continue
        entries = read_translation(path)
        if src.suffix == ".ipynb":
            dest = out / src.name
            nbformat.write(chinese_notebook(src, entries), dest)
        else:
            parts = [entries[k].text if k in entries and entries[k].en == en_hash(t) else t for k, t in units.items()]
            dest = out / src.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
        written.append(dest)
    return written


# The language switch at the top of every page of both sites. The Chinese site is the folder zh/ inside the English
# one, with the same page names, so each page links to its own translation: content_root is the site's root (Sphinx).
# (A static href cannot: it would be relative to each page's folder. `window.URL`, because an inline handler's
# scope includes `document`, whose `URL` is a string.)
_GO = ("var r=new window.URL(document.documentElement.dataset.content_root||'./',location.href).href;"
       "location.href=new window.URL('{to}'+location.href.slice(r.length),r).href;return false;")
SWITCH_EN = f'<a id="gptlab-lang" href="#gptlab-lang" onclick="{_GO.format(to="zh/")}">中文版</a>'
SWITCH_ZH = f'<a id="gptlab-lang" href="#gptlab-lang" onclick="{_GO.format(to="../")}">English</a>'


def site(out: Path, solutions: bool = False) -> Path:
    """Build the Chinese site into OUT/_build/html/zh from the committed notebooks (none is executed).

    The English site (`tools/kit.py book --out OUT`) is built first into OUT/_build/html; the Chinese one is
    staged the same way (reader editions: exercises unsolved, no test markers), its prose swapped for the
    translations, and built with the Chinese title, language and switch. A lesson not yet translated appears
    in English.
    """
    import shutil
    import subprocess

    import yaml

    sys.path.insert(0, str(ROOT / "tools"))
    import kit

    exe = Path(sys.executable).with_name("jupyter-book")
    exe = str(exe) if exe.exists() else shutil.which("jupyter-book")
    if exe is None:
        raise SystemExit("jupyter-book is missing: install the docs extra, pip install -c constraints.txt -e '.[docs]'")
    stage = kit.stage_book_sources(out / "src-zh", solutions, skip=out)
    for _, (src, path, _units) in sources().items():
        if not path.exists():
            continue
        entries = read_translation(path)
        if src.suffix == ".ipynb":
            nbformat.write(kit.reader_edition(chinese_notebook(src, entries), solutions), stage / "notebooks" / src.name)
    for p in build(out / "zh-docs"):
        if p.suffix == ".md":
            shutil.copy2(p, stage / p.relative_to(out / "zh-docs"))
    config = kit.book_config(kit.repository_url(), out / "_config-zh.yml")
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    cfg["title"] = "gptlab：从零构建 GPT（中文版）"
    cfg.setdefault("sphinx", {}).setdefault("config", {})["language"] = "zh_CN"
    cfg.setdefault("html", {})["announcement"] = SWITCH_ZH
    config.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    cmd = [exe, "build", str(stage), "--path-output", str(out / "zh-site"), "--config", str(config),
           "--toc", str(stage / "book" / "_toc.yml"), "-W", "--keep-going"]
    subprocess.run(cmd, check=True, cwd=stage)
    dest = out / "_build" / "html" / "zh"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(out / "zh-site" / "_build" / "html", dest)
    return dest


def slides(out: Path) -> list[Path]:
    """The Chinese lessons as reveal.js decks in OUT/zh (the English decks' rules: `tools/kit.py slides`)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import kit

    lessons = [p for p in build(out / "zh-src") if p.suffix == ".ipynb"]
    decks = kit.build_slides(lessons, out / "zh")
    for deck in decks:  # the deck template writes lang="en"; screen readers and fonts should know it is Chinese
        deck.write_text(deck.read_text(encoding="utf-8").replace('<html lang="en">', '<html lang="zh-CN">', 1), encoding="utf-8")
    return decks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("names", nargs="*", help="lesson stems or README/teaching (default: all)")
    sub.add_parser("status")
    t = sub.add_parser("todo")
    t.add_argument("name")
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, default=ROOT / "build" / "zh")
    w = sub.add_parser("site")
    w.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    w.add_argument("--solutions", action="store_true")
    d = sub.add_parser("slides")
    d.add_argument("--out", type=Path, default=ROOT / "build" / "slides")
    args = ap.parse_args(argv)
    if args.cmd == "slides":
        for p in slides(args.out):
            print(p)
        return 0
    if args.cmd == "site":
        print(site(args.out, args.solutions))
        return 0
    if args.cmd == "check":
        found = problems(args.names or None)
        print("\n".join(found) if found else "zh: every translation is present, current and keeps the English figures")
        return 1 if found else 0
    if args.cmd == "status":
        for name, n, current, stale in status():
            print(f"{name:40s} {current:3d}/{n:<3d} current" + (f", {stale} stale" if stale else ""))
        return 0
    if args.cmd == "todo":
        print(todo(args.name))
        return 0
    for p in build(args.out):
        print(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
