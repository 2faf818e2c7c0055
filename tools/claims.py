"""Every measured number in a lesson's prose is backed by an output, or cited.

    python tools/claims.py                      # all lessons and README.md
    python tools/claims.py notebooks/06_*.ipynb # some lessons (exit 1 and a report if a number is unbacked)

Why: three close readings of the course found the same error again and again, a number in the text
that the cell above did not print. This check makes that error fail `make test` (tests/test_claims.py).

What counts as a claim (a number in a markdown cell, or in README.md):
- It has at least two significant digits (`2.29`, `0.15`, `1,715`, `124M`), or it is a decimal with a
  `%` or `×` (`0.8 %`, `1.2×`). Leading zeros never count, nor do an integer's trailing zeros (`2,000`).
- Not claims: numbers inside code spans, fenced code, `$...$`/`$$...$$` formulas, HTML comments and tags,
  link URLs; list and heading numbering; years (1900-2039, four digits); numbers glued to a name
  (`GPT-2`, `bf16`, `AVX-512`, `wte`) or ending in an ordinal (`12th`); numbers right after a reference word
  (lesson, exercise, section, chapter, table, figure, step, layer, head, cell, row, column, …), including a
  list or range of them (`lessons 11–13`); integers below 100 (counts: "12 layers", "4 seeds") and
  powers of two (sizes: 128, 1024).
- Not checked: cells that start with a heading "References", "Further reading", "Sources" (their numbers
  are the sources) or "Exercises", and exercise cells (`1. **(medium)** ...`): their numbers are tasks to
  try, not results.

A claim is backed when any of these holds:
1. an output (`text/plain` or `stream`) of the same notebook prints a number that rounds to it at the
   precision written: `2.29` ⇐ `2.2941`, `15.9` ⇐ `15.87`, `1.2×` ⇐ `1.23x`, `1,590,272` ⇐ `1590272`,
   `124M` and `124 million` ⇐ `124,439,808`, `0.8 %` ⇐ `0.8%` or `0.008`. The sign is ignored (prose says "falls by 0.3");
   `−` (U+2212) is a minus; thousands separators and `k`/`M`/`B` suffixes are read.
2. the same number is written in a code cell of the notebook (a setting the text repeats: `lr 3e-4`);
3. it is cited in the same sentence: a link `[text](url)` or `[n]`, or an author-year citation
   (`Kaplan et al.`, `(Hendrycks and Gimpel, 2016)`). A link to a file of this repository (a lesson, a
   `.md`, a results `.json`) is not taken on trust: the number must be in that file (a lesson's outputs,
   a file's text);
4. a marker `<!-- cited: SOURCE -->` (invisible when rendered) covers the whole cell when the cell starts
   with it, else the sentence it sits in. SOURCE is a repository path, relative to the notebook or the
   repository root (searched, as in 3: `<!-- cited: ../benchmarks/README.md -->`), or a free-text source
   such as a paper or a dataset (`<!-- cited: Radford et al. 2019, table 2 -->`), trusted.
README.md is checked as one cell whose outputs are every lesson's outputs (its figures come from them).

Cross-references (run with no arguments, and by tests/test_claims.py): every "lesson NN" in the lessons,
docs/teaching.md and docs/exercises.md names a lesson file; every "exercise N" / "section N" exists in
the lesson it belongs to (the lesson the text is in, or the one named: "lesson 06's section 4",
"exercise 2 of lesson 08"). Exercises are the cells' `N. **(easy|medium|hard)**` items, sections the
`## N.` headings. Sections of a cited paper (a sentence with "et al." or an outside link) are skipped.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_NUMBER = re.compile(
    r"(?<![\w.\-−/])(?P<sign>[-−])?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<exp>e[-+−]?\d+)?"
    r"(?P<unit>\s?%|\s?×|x(?![a-zA-Z])|[kKMBG](?![a-zA-Z·])|\s(?:thousand|million|billion)\b)?"
)
_REF_WORDS = (
    "lesson|lessons|exercise|exercises|section|sections|chapter|chapters|table|tables|figure|figures|fig|"
    "cell|cells|step|steps|layer|layers|head|heads|block|blocks|row|rows|column|columns|part|parts|item|"
    "items|equation|eq|rule|rules|line|lines|case|cases|question|questions|appendix|version|python|"
    "seed|seeds|position|positions|token|id|ids|§|no\\.|page|pages|p\\.|pp\\."
)
_REF_BEFORE = re.compile(
    rf"(?:\b(?:{_REF_WORDS})|§)\s*(?:\d+(?:\.\d+)?\s*(?:,|–|-|—|to|and|or|&)\s*)*$", re.IGNORECASE
)
_AUTHOR_YEAR = re.compile(r"\bet al\.|\(\s*[A-Z][\w\-]+(?: (?:and|&) [A-Z][\w\-]+)?,? (?:19|20)\d\d[a-z]?\s*\)")
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)")
_REF_MARK = re.compile(r"\[\d+\]")
_CITED = re.compile(r"<!--\s*cited:\s*(.*?)\s*-->", re.IGNORECASE | re.DOTALL)
_CITED_CELL = re.compile(r"\s*(?:<!--\s*cited:.*?-->\s*)+", re.IGNORECASE | re.DOTALL)
_ANCHORS = r"\s*(?:<a\s[^>]*>\s*</a>\s*)*"
_EXERCISE = re.compile(_ANCHORS + r"\d+\.\s+\*\*\((?:easy|medium|hard)", re.IGNORECASE)
_BIBLIOGRAPHY = re.compile(_ANCHORS + r"#+\s*(?:\d+\.?\s*)?(?:references|further reading|sources|exercises)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Claim:
    text: str  # as written, e.g. "1.2×"
    value: float  # absolute value, units applied
    step: float  # half of this is the rounding tolerance
    percent: bool


@dataclass(frozen=True)
class Unbacked:
    file: str
    cell: str  # "cell 12 (id abc)"
    number: str
    sentence: str

    def __str__(self) -> str:
        return f"{self.file}: {self.cell}: {self.number!r} is not in any output and not cited: {self.sentence}"


def _scale(unit: str) -> float:
    scales = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "thousand": 1e3, "million": 1e6, "billion": 1e9}
    return scales.get(unit, 1.0)


def _parse(m: re.Match[str]) -> tuple[float, float, int, str]:
    """Value, precision step, significant digits and unit of a number match."""
    num = m.group("num").replace(",", "")
    unit = (m.group("unit") or "").strip()
    exp = (m.group("exp") or "").replace("−", "-")
    decimals = len(num.split(".")[1]) if "." in num else 0
    digits = num.replace(".", "").lstrip("0")
    if "." not in num:
        digits = digits.rstrip("0")
    sig = len(digits)
    e = int(exp[1:]) if exp else 0
    scale = _scale(unit) * 10.0**e
    if "." not in num and not exp and _scale(unit) == 1.0:
        # an integer: its precision is its last non-zero digit ("2,000" is written to the thousand)
        trailing = len(num) - len(num.rstrip("0")) if num.strip("0") else 0
        step = 10.0**trailing if sig else 1.0
    else:
        step = 10.0**-decimals * scale
    return float(num) * scale, step, sig, unit


def _numbers(text: str) -> list[float]:
    """Every number a text prints (absolute values)."""
    out: list[float] = []
    text = text.replace("−", "-")
    for m in re.finditer(r"\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+", text):
        s = m.group(0)
        if "," in s and not re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?:[eE][-+]?\d+)?", s):
            parts = [p for p in s.split(",") if p]
        else:
            parts = [s.replace(",", "")]
        for p in parts:
            try:
                v = float(p)
            except ValueError:
                continue
            out.append(v)
        suffix = re.match(r"([kKMBG])(?![A-Za-z])", text[m.end():])
        if suffix and len(parts) == 1:  # "124M" printed
            out.append(out[-1] * _scale(suffix.group(1)))
    return out


def _backed(claim: Claim, values: list[float]) -> bool:
    tol = claim.step / 2 * (1 + 1e-9) + 1e-12
    scales = (1.0, 100.0) if claim.percent else (1.0,)  # a percentage may be printed as a fraction
    return any(abs(v * k - claim.value) <= tol for v in values for k in scales)


def _strip(text: str) -> str:
    """Markdown without the parts whose numbers are not claims (code, maths, URLs, tags, numbering)."""
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.DOTALL)
    text = re.sub(r"```.*?```|~~~.*?~~~", " ", text, flags=re.DOTALL)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.DOTALL)
    text = re.sub(r"(?<![\\\w])\$(?!\s)[^$\n]+?(?<![\s\\])\$", " ", text)
    text = re.sub(r"``.+?``|`[^`\n]+`", " ", text)
    text = _LINK.sub(lambda m: " " + m.group(1) + " ", text)
    text = re.sub(r"<[^>\n]+>", " ", text)
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"(?m)^(\s*#+\s*)(?:\d+(?:\.\d+)*\.?\s)?", r"\1", text)
    text = re.sub(r"(?m)^(\s*)(?:\d+[.)]|[-*+])\s+", r"\1", text)
    return text


def claims_in(text: str) -> list[tuple[Claim, int]]:
    """The measured numbers of a (stripped) markdown text, with their offsets."""
    found: list[tuple[Claim, int]] = []
    for m in _NUMBER.finditer(text):
        start, end = m.start(), m.end()
        before, after = text[:start], text[end:]
        # a number glued to a name or a version: GPT-2, AVX-512, bf16, 2.1.0, 3rd
        if re.search(r"[A-Za-z_][\-]?$", before) and not re.search(r"\b(?:x|by)$", before):
            continue
        if re.match(r"\.\d", after) or re.match(r"[A-Za-z_]", after) and not m.group("unit"):
            if not re.match(r"(?:ms|s|µs|us|min|h|GB|MB|KB|GiB|MiB|KiB|TB)\b", after):
                continue
        if m.group("sign") is None and re.search(r"\d[.,]?$", before):
            continue
        num = m.group("num").replace(",", "")
        if re.fullmatch(r"19\d\d|20[0-3]\d", num) and not m.group("unit"):
            continue  # a year
        if _REF_BEFORE.search(before[-60:]):
            continue
        value, step, sig, unit = _parse(m)
        ratio = unit in ("%", "×", "x")
        if sig < 2 and not ("." in num and ratio):
            continue
        if "." not in num and not m.group("exp") and not unit:
            if value < 100 or (int(value) & (int(value) - 1)) == 0:
                continue  # small integers are counts, powers of two are sizes (128, 1024)
        found.append((Claim(m.group(0).strip(), abs(value), step, unit == "%"), start))
    return found


def _sentences(text: str) -> list[str]:
    """Paragraphs split into sentences (on '. ', '? ', '! ' followed by a capital or a quote)."""
    comments: list[str] = []

    def hide(m: re.Match[str]) -> str:
        comments.append(m.group(0))
        return f"\x01{len(comments) - 1}\x02"

    text = re.sub(r"<!--.*?-->", hide, text, flags=re.DOTALL)
    return [re.sub(r"\x01(\d+)\x02", lambda m: comments[int(m.group(1))], s) for s in _split(text)]


def _split(text: str) -> list[str]:
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        for item in re.split(r"\n(?=\s*(?:[-*+]|\d+[.)])\s)", para):
            out.extend(s for s in re.split(r"(?<=[.?!])\s+(?=[A-Z\"'(*\[])", item) if s.strip())
    return out


def _source_values(source: str, base: Path, cache: dict[Path, list[float] | None]) -> list[float] | None:
    """Numbers of a repository file a sentence cites (None: an outside source, trusted)."""
    source = source.split("#")[0].strip()
    if not source or re.match(r"[a-z]+:", source):
        return None
    path = (base / source).resolve()
    if not path.is_file():
        path = (ROOT / source).resolve()
    inside = ROOT in path.parents or base.resolve() in path.parents
    if not path.is_file() or not inside or path.suffix not in (".ipynb", ".md", ".json", ".txt", ".csv"):
        return None if " " in source else []
    if path not in cache:
        if path.suffix == ".ipynb":
            cache[path] = _numbers(_outputs(json.loads(path.read_text(encoding="utf-8"))))
        else:
            cache[path] = _numbers(path.read_text(encoding="utf-8"))
    return cache[path]


def _outputs(nb: dict) -> str:
    parts: list[str] = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out.get("text", "")))
            text = out.get("data", {}).get("text/plain")
            if text is not None:
                parts.append("".join(text))
    return "\n".join(parts)


def _code(nb: dict) -> str:
    return "\n".join("".join(c.get("source", "")) for c in nb.get("cells", []) if c.get("cell_type") == "code")


def check_cells(
    name: str, cells: list[tuple[str, str]], values: list[float], code: str, base: Path
) -> list[Unbacked]:
    """Unbacked claims of markdown `cells` ((label, source) pairs) against output `values` and `code`."""
    code_values = _numbers(code)
    problems: list[Unbacked] = []
    cache: dict[Path, list[float] | None] = {}
    for label, source in cells:
        if _BIBLIOGRAPHY.match(source) or _EXERCISE.match(source):
            continue  # a reference list: its numbers are the sources themselves
        body = re.sub(r"```.*?```|~~~.*?~~~", " ", source, flags=re.DOTALL)
        head = _CITED_CELL.match(body)
        cell_sources = _CITED.findall(head.group(0)) if head else []
        for sentence in _sentences(body):
            sources = cell_sources + _CITED.findall(sentence)
            sources += [url for _, url in _LINK.findall(re.sub(r"<!--.*?-->", " ", sentence, flags=re.DOTALL))]
            local: list[float] = []
            cited = bool(_AUTHOR_YEAR.search(_strip(sentence))) or bool(_REF_MARK.search(_strip(sentence)))
            for src in sources:
                vals = _source_values(src, base, cache)
                if vals is None:
                    cited = True
                else:
                    local += vals
            if cited:
                continue
            for claim, _ in claims_in(_strip(sentence)):
                if _backed(claim, values) or _backed(claim, local):
                    continue
                if any(abs(v - claim.value) <= 1e-9 * max(1.0, claim.value) for v in code_values):
                    continue
                short = " ".join(re.sub(r"<!--.*?-->", " ", sentence, flags=re.DOTALL).split())
                problems.append(Unbacked(name, label, claim.text, short[:160]))
    return problems


def check_notebook(path: Path) -> list[Unbacked]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [
        (f"cell {i} (id {c.get('id', '?')})", "".join(c.get("source", "")))
        for i, c in enumerate(nb["cells"])
        if c.get("cell_type") == "markdown"
    ]
    return check_cells(_rel(path), cells, _numbers(_outputs(nb)), _code(nb), path.parent)


def check_readme(path: Path, lessons: list[Path]) -> list[Unbacked]:
    """README.md's figures against every lesson's outputs (or cited sources)."""
    values: list[float] = []
    for lesson in lessons:
        values += _numbers(_outputs(json.loads(lesson.read_text(encoding="utf-8"))))
    text = path.read_text(encoding="utf-8")
    blocks = re.split(r"(?m)^(?=#)", text)
    cells = [(f"section {b.splitlines()[0].strip()!r}", b) for b in blocks if b.strip()]
    return check_cells(_rel(path), cells, values, "", path.parent)


# ----------------------------------------------------------------------------- cross-references

_XREF = re.compile(
    r"\b(?P<kind>lessons?|exercises?|sections?)\s+"
    r"(?P<nums>\d+(?:\.\d+)?(?:\s*(?:,|–|-|—|and|or|to|&)\s*\d+(?:\.\d+)?)*)(?![\d.]*\w)",
    re.IGNORECASE,
)
_OWNER_BEFORE = re.compile(r"\blesson\s+(\d+)(?:'s|’s|,)\s*$", re.IGNORECASE)
_OWNER_AFTER = re.compile(r"^\s*(?:of|in|from)\s+lesson\s+(\d+)", re.IGNORECASE)


def _lesson_parts(nb: dict) -> tuple[set[int], set[str]]:
    """The exercise numbers (`1. **(easy)** ...`) and section numbers (`## 3. Title`) a lesson has."""
    text = "\n\n".join("".join(c.get("source", "")) for c in nb.get("cells", []) if c.get("cell_type") == "markdown")
    exercises = {int(m.group(1)) for m in re.finditer(r"(?m)^\s*(\d+)\.\s+\*\*\((?:easy|medium|hard)", text)}
    sections = set(re.findall(r"(?m)^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", text))
    return exercises, sections


def _expand(nums: str) -> list[str]:
    parts = re.split(r"\s*(,|–|-|—|and|or|to|&)\s*", nums)
    values, out = parts[0::2], [parts[0]]
    for sep, v in zip(parts[1::2], values[1:]):
        if sep in ("–", "-", "—", "to") and out[-1].isdigit() and v.isdigit():
            out.extend(str(i) for i in range(int(out[-1]) + 1, int(v) + 1))
        else:
            out.append(v)
    return out


def check_references(text: str, name: str, here: int | None, lessons: dict[int, dict]) -> list[str]:
    """Every 'lesson NN', 'exercise N', 'section N' in `text` points at something that exists.

    `here` is the lesson the text belongs to (exercise and section numbers without a 'lesson NN's'
    owner refer to it); references inside code, URLs, reference lists and citations of papers
    ("et al.", a link to another site in the same sentence) are not the course's and are skipped.
    """
    problems: list[str] = []
    for sentence in _sentences(text):
        if _AUTHOR_YEAR.search(sentence) or re.search(r"\]\(https?://", sentence):
            paper = True  # "section 3.6" of a cited paper, not of this lesson
        else:
            paper = False
        clean = re.sub(r"``.+?``|`[^`\n]+`|\$[^$\n]+\$", " ", sentence)
        clean = re.sub(r"\]\([^)]*\)|https?://\S+", "]", clean)
        for m in _XREF.finditer(clean):
            kind = m.group("kind").lower().rstrip("s")
            nums = _expand(m.group("nums"))
            if kind == "lesson":
                for n in nums:
                    if not n.isdigit() or int(n) not in lessons:
                        problems.append(f"{name}: 'lesson {n}' does not exist: {' '.join(sentence.split())[:140]}")
                continue
            if paper:
                continue
            owner = _OWNER_BEFORE.search(clean[: m.start()]) or _OWNER_AFTER.search(clean[m.end():])
            target = int(owner.group(1)) if owner else here
            if target is None or target not in lessons:
                continue
            exercises, sections = _lesson_parts(lessons[target])
            for n in nums:
                ok = (int(n) in exercises) if kind == "exercise" and n.isdigit() else (n in sections)
                if not ok:
                    problems.append(f"{name}: '{kind} {n}' of lesson {target:02d} does not exist: "
                                    f"{' '.join(sentence.split())[:140]}")
    return problems


def check_all_references(root: Path = ROOT) -> list[str]:
    """Cross-references in every lesson's markdown, docs/teaching.md and docs/exercises.md."""
    lessons = {int(p.name[:2]): json.loads(p.read_text(encoding="utf-8"))
               for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    problems: list[str] = []
    for n, nb in lessons.items():
        for i, cell in enumerate(nb["cells"]):
            source = "".join(cell.get("source", ""))
            if cell.get("cell_type") != "markdown" or _BIBLIOGRAPHY.match(source):
                continue
            source = re.sub(r"```.*?```", " ", source, flags=re.DOTALL)
            problems += check_references(source, f"notebooks/{n:02d} cell {i} (id {cell.get('id', '?')})", n, lessons)
    for doc in ("docs/teaching.md", "docs/exercises.md"):
        text = re.sub(r"```.*?```", " ", (root / doc).read_text(encoding="utf-8"), flags=re.DOTALL)
        # docs/teaching.md: a '### NN · Title' heading says which lesson the lines below are about
        for block in re.split(r"(?m)^(?=#{1,3} )", text):
            head = re.match(r"#{1,3}\s+(\d\d)\s+·", block)
            problems += check_references(block, doc, int(head.group(1)) if head else None, lessons)
    return problems


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    missing = [a for a in args if not Path(a).is_file()]
    if missing:
        print(f"claims: no such file: {', '.join(missing)} (give lesson notebooks or README.md)")
        return 2
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    paths = [Path(a) for a in args] if args else [*lessons, ROOT / "README.md"]
    problems: list[Unbacked] = []
    for path in paths:
        if path.suffix == ".ipynb":
            problems += check_notebook(path)
        else:
            problems += check_readme(path, lessons)
    for p in problems:
        print(p)
    references = check_all_references() if not args else []
    for r in references:
        print(r)
    if references:
        print(f"{len(references)} cross-reference(s) point at no lesson, exercise or section")
    if problems or references:
        print(f"{len(problems)} number(s) in the prose are backed by no output and no citation "
              "(see tools/claims.py for the rules)")
        return 1
    print(f"claims: {len(paths)} file(s), every measured number is backed by an output or a citation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
