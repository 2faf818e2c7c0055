"""`make slides` and `make book`, built as the Makefile builds them and opened in headless Chromium.

Every deck opens with no network, has exactly the slides its cells declare and renders its
formulas; the site has the README's map as home page, the lessons in course order, figures that
load, formulas that MathJax renders, no broken internal link and no request off the machine.
Builds take about half a minute each on 2 cores; neither executes a notebook.
"""

import html
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from _browser import ARGS, CHROMIUM, need_browser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import kit  # noqa: E402

LOCAL = ("file:", "data:", "about:")
# sphinx-thebe (always loaded by Jupyter Book 1) declares its config twice: a harmless console
# error of the theme, not of the course; live code (thebe) is off, so it never loads anything.
KNOWN_PAGE_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


def _need_docs_tools():
    try:
        import jupyter_book  # noqa: F401
        import sphinx_revealjs  # noqa: F401
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"the docs extra is missing in CI ({e}); make install installs .[course,dev,docs]")
        pytest.skip(f"the docs extra is not installed ({e})")


def _build(what: str, out: Path, tool: str = "kit.py") -> None:
    # CI=true makes any re-execution visible: a lesson would then print "fast mode: True".
    env = dict(os.environ, CI="true", GPTLAB_FAST="1")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / tool), what, "--out", str(out)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    errors = "\n".join(ln for ln in run.stdout.splitlines() if re.search(r"WARNING|ERROR|Error", ln))
    assert run.returncode == 0, f"make {what} failed:\n" + errors[-3000:]


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    _need_docs_tools()
    out = tmp_path_factory.mktemp("slides")
    _build("slides", out)  # what `make slides` runs: the English decks, then the Chinese ones into zh/
    _build("slides", out, tool="zh.py")
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _need_docs_tools()
    out = tmp_path_factory.mktemp("book")
    _build("book", out)  # what `make book` runs: the English site, then the Chinese one into its zh/ folder
    _build("site", out, tool="zh.py")
    return out / "_build" / "html"


class _Browser:
    """One Chromium; every page in a context that refuses (and records) any non-local request."""

    def __init__(self, p):
        self.browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        self.blocked, self.errors = [], []

    def open(self, path: Path):
        context = self.browser.new_context(viewport={"width": 1280, "height": 800})

        def route(r):
            if r.request.url.startswith(LOCAL):
                return r.continue_()
            self.blocked.append(r.request.url)
            return r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda e: None if str(e) in KNOWN_PAGE_ERRORS else self.errors.append(f"{path.name}: {e}"))
        page.goto(path.resolve().as_uri())
        return page


def test_every_deck_opens_offline_with_the_slides_its_cells_declare(decks):
    need_browser()
    from playwright.sync_api import sync_playwright

    lessons = kit.lessons()
    assert sorted(p.name for p in decks.glob("*.slides.html")) == [f"{p.stem}.slides.html" for p in lessons]
    with sync_playwright() as p:
        b = _Browser(p)
        try:
            for nb_path in lessons:
                nb = nbformat.read(nb_path, as_version=4)
                page = b.open(decks / f"{nb_path.stem}.slides.html")
                page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=15000)
                assert page.evaluate("Reveal.getTotalSlides()") == kit.slide_count(kit.deck_edition(kit.reader_edition(nb))), nb_path.name
                text = page.evaluate("document.querySelector('.reveal .slides').textContent")
                assert kit.KIT_FIRST_LINE not in text, "the kit cell is skipped in the deck"
                assert kit.title(nb) in text
                shown = [c for c in nb.cells if c.cell_type == "markdown" and kit.slide_type(nb.cells, nb.cells.index(c)) != "skip"]
                if "$" in "".join(c.source for c in shown):
                    page.wait_for_function("document.querySelectorAll('.reveal mjx-container').length > 0", timeout=15000)
                if kit.slide_count(nb) > 1:  # the deck moves on
                    page.evaluate("Reveal.next()")
                    assert page.evaluate("(() => { const i = Reveal.getIndices(); return i.h + i.v; })()") == 1
                widths = page.evaluate("Array.from(document.querySelectorAll('.reveal img')).map(i => i.naturalWidth)")
                assert all(w > 0 for w in widths), f"{nb_path.name}: a figure did not load"
                page.context.close()
        finally:
            b.browser.close()
    assert b.blocked == [], f"decks tried to load {sorted(set(b.blocked))[:5]}"
    assert b.errors == []


def test_a_deck_follows_the_slide_rules(decks):
    """Lesson 03: its figure cells sit on slides, its section headings start them, in order."""
    nb = nbformat.read(ROOT / "notebooks" / "03_causal_self_attention.ipynb", as_version=4)
    html = (decks / "03_causal_self_attention.slides.html").read_text()
    headings = [re.search(r"^##\s+(.+)$", c.source, re.M).group(1) for c in nb.cells
                if c.cell_type == "markdown" and re.search(r"^##\s", c.source, re.M)]
    positions = [html.find(re.sub(r"[`$\\]", "", h)[:12]) for h in headings]
    assert all(pos > 0 for pos in positions) and positions == sorted(positions)
    figures = sum(len([o for o in c.get("outputs", []) if "image/png" in o.get("data", {})]) for c in nb.cells
                  if c.cell_type == "code" and kit.slide_type(nb.cells, nb.cells.index(c)) != "skip")
    assert figures > 0 and html.count("<img") == figures


def _dense_notebook():
    """A notebook written without slides in mind: long code, long lines, long outputs, dense text, crowded slides."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    ax.plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    words = " ".join(f"word{i}" for i in range(60))
    figure = code("\n".join(f"x{i} = {i}  # setting up the plot" for i in range(40)) + "\nplt.show()")
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]
    printed = code("print(f\"d={d}: var(q.k) = {v:.3f}, var(q.k / sqrt(d)) = {w:.3f}" + ", more" * 30 + "\")")
    printed.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(f"step {i}: loss 3.{i:03d}" for i in range(50)))]
    cells = [md("# 99 · A dense lesson\n\n**Objectives.** many."), md("## 1. Text"), md("\n\n".join([words] * 12)),
             printed, md("Text before a figure."), figure, md("## 2. Crowded")]
    cells += [code(f"y{i} = {i}\nprint(y{i})") for i in range(12)]
    cells += [md(f"{words} {i}") for i in range(6)]
    return kit.kit(nbformat.v4.new_notebook(cells=cells))


def test_nothing_runs_off_a_slide_at_1280x720(tmp_path):
    """Issue 30, A11: long code cells, long lines, long outputs and dense text are cut to fit a 1280 × 720 screen."""
    _need_docs_tools()
    need_browser()
    from playwright.sync_api import sync_playwright

    src = tmp_path / "dense.ipynb"
    nbformat.write(_dense_notebook(), src)
    deck = kit.build_slides([src], tmp_path / "out")[0]
    with sync_playwright() as p:
        b = _Browser(p)
        try:
            context = b.browser.new_context(viewport={"width": 1280, "height": 720})
            page = context.new_page()
            page.goto(deck.resolve().as_uri())
            page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=15000)
            total = page.evaluate("Reveal.getTotalSlides()")
            assert total == kit.slide_count(kit.deck_edition(kit.reader_edition(nbformat.read(src, as_version=4))))
            overflow = []
            for i in range(total):
                page.wait_for_timeout(50)
                over = page.evaluate("""(() => {
                    const s = Reveal.getCurrentSlide();
                    const wide = Array.from(s.querySelectorAll('pre')).filter(p => p.scrollWidth > p.clientWidth + 1).length;
                    return [s.scrollHeight - s.clientHeight, wide, s.textContent.trim().slice(0, 40)];
                })()""")
                if over[0] > 2 or over[1]:
                    overflow.append((i, *over))
                page.evaluate("Reveal.next()")
            text = page.evaluate("document.querySelector('.reveal .slides').textContent")
        finally:
            b.browser.close()
    assert overflow == [], f"slides that run off (index, px too tall, too-wide code blocks, start): {overflow}"
    assert "more lines in the notebook" in text  # the long cell and the long output were cut, and say so
    assert "word59 5" in text  # the crowded slide's cells moved to subslides, none dropped


_LINK = re.compile(r"""<(?:a|img|link|script)\b[^>]*?\s(?:href|src)=["']([^"']*)["']""", re.I)
_ID = re.compile(r"""\s(?:id|name)=["']([^"']+)["']""")


def _links(path: Path) -> list[str]:
    return [html.unescape(m) for m in _LINK.findall(path.read_text(encoding="utf-8"))]


def _ids(path: Path) -> set[str]:
    return {html.unescape(m) for m in _ID.findall(path.read_text(encoding="utf-8"))}


def test_no_broken_internal_link_in_the_site(site):
    pages = [p for p in site.rglob("*.html") if "_static" not in p.parts]
    assert len(pages) >= len(kit.lessons()) + 3
    parsed, broken, checked = {}, [], 0
    for page in pages:
        for link in _links(page):
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            checked += 1
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = parsed.setdefault(target, _ids(target))
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert checked > 500
    assert broken == [], broken[:20]


def test_the_site_in_chromium_home_order_figures_maths_offline(site):
    need_browser()
    from playwright.sync_api import sync_playwright

    readme = (ROOT / "README.md").read_text()
    title = readme.splitlines()[0].lstrip("# ").strip()
    map_rows = [ln for ln in readme.split("## The course", 1)[1].split("\n## ", 1)[0].splitlines() if re.match(r"\| \d\d \|", ln)]
    lessons = kit.lessons()
    with sync_playwright() as p:
        b = _Browser(p)
        try:
            page = b.open(site / "index.html")  # redirects to the README, the home page
            page.wait_for_url("**/README.html")
            page.wait_for_load_state("load")
            assert page.locator("h1").first.text_content().strip().rstrip("#").strip() == title
            rows = page.evaluate("Array.from(document.querySelectorAll('table tr')).map(r => r.cells[0].innerText.trim())")
            assert [c for c in rows if re.fullmatch(r"\d\d", c)][: len(map_rows)] == [r.split("|")[1].strip() for r in map_rows]
            nav = page.evaluate("Array.from(document.querySelectorAll('nav.bd-links a')).map(a => a.getAttribute('href'))")
            lesson_links = [h for h in nav if h.startswith("notebooks/")]
            assert lesson_links == [f"notebooks/{p.stem}.html" for p in lessons], "navigation in course order"
            assert "docs/teaching.html" in nav

            page = b.open(site / "notebooks" / "03_causal_self_attention.html")
            page.wait_for_load_state("load")
            page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20000)
            figures = page.evaluate(
                "Array.from(document.querySelectorAll('img')).filter(i => i.src.includes('/_images/')).map(i => i.naturalWidth)")
            assert figures and all(w > 0 for w in figures), figures
            content = page.locator("main").inner_text()
            assert "fast mode: False" in content, "the site shows the committed (full-run) outputs, not a re-run"
            hrefs = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
            if kit.published():
                assert kit.colab_url("notebooks/03_causal_self_attention.ipynb") in hrefs, "the Colab launch button"
            else:  # no launch button that leads nowhere before the course is published
                assert not any("colab.research.google.com" in h or "mybinder.org" in h for h in hrefs)

            page = b.open(site / "docs" / "teaching.html")
            page.wait_for_load_state("load")
            assert page.locator("#launch-links").count() == 1
            hrefs = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
            if kit.published():
                assert all(kit.binder_url(f"notebooks/{p.name}") in hrefs for p in lessons)
            else:
                assert "tools/kit.py publish" in page.locator("main").inner_text()
        finally:
            b.browser.close()
    assert b.blocked == [], f"the site tried to load {sorted(set(b.blocked))[:5]}"
    assert b.errors == []


def test_the_chinese_site_beside_the_english_one_switch_maths_figures_offline(site):
    """The language switch leads from each page to its translation and back; the Chinese pages render."""
    need_browser()
    import zh
    from playwright.sync_api import sync_playwright

    zh_lessons = [p for p in kit.lessons() if (zh.ZH / f"{p.stem}.md").exists()]
    assert (site / "zh" / "README.html").exists() and all((site / "zh" / "notebooks" / f"{p.stem}.html").exists()
                                                          for p in kit.lessons())
    with sync_playwright() as p:
        b = _Browser(p)
        try:
            page = b.open(site / "notebooks" / "03_causal_self_attention.html")
            page.wait_for_load_state("load")
            page.click("#gptlab-lang")
            page.wait_for_url("**/zh/notebooks/03_causal_self_attention.html")
            page.wait_for_load_state("load")
            assert page.evaluate("document.documentElement.lang").startswith("zh")
            if any(p.stem.startswith("03_") for p in zh_lessons):
                page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20000)
                assert "因果" in page.locator("main").inner_text()
            figures = page.evaluate(
                "Array.from(document.querySelectorAll('img')).filter(i => i.src.includes('/_images/')).map(i => i.naturalWidth)")
            assert figures and all(w > 0 for w in figures), figures
            page.click("#gptlab-lang")
            page.wait_for_url("**/html/notebooks/03_causal_self_attention.html")
            page = b.open(site / "zh" / "index.html")
            page.wait_for_url("**/zh/README.html")
            page.wait_for_load_state("load")
            nav = page.evaluate("Array.from(document.querySelectorAll('nav.bd-links a')).map(a => a.getAttribute('href'))")
            assert [h for h in nav if h.startswith("notebooks/")] == [f"notebooks/{p.stem}.html" for p in kit.lessons()]
            page.click("#gptlab-lang")
            page.wait_for_url("**/html/README.html")
        finally:
            b.browser.close()
    assert b.blocked == [], f"the site tried to load {sorted(set(b.blocked))[:5]}"
    assert b.errors == []


def test_each_chinese_deck_has_the_english_deck_s_slides(decks):
    import zh

    done = [p for p in kit.lessons() if (zh.ZH / f"{p.stem}.md").exists()]
    assert done, "no lesson is translated yet"
    for p in done:
        en, cn = (decks / f"{p.stem}.slides.html").read_text(), (decks / "zh" / f"{p.stem}.slides.html").read_text()
        # the same code cells (decks cut prose by its length, so slide counts may differ between languages)
        assert cn.count("jp-CodeCell") == en.count("jp-CodeCell") > 0, p.name
        assert cn.count("<section") > 0 and '<html lang="zh-CN">' in cn, p.name
        assert re.search(r"[\u4e00-\u9fff]{4}", cn), f"{p.name}: no Chinese in its deck"
