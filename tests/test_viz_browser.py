"""The offline attention view in a real headless Chromium: renders, reacts to clicks, never touches the network.

Uses Debian's chromium (/usr/bin/chromium, or $GPTLAB_CHROMIUM) through the playwright
package; nothing is downloaded. Without a browser the test is skipped locally and
fails in CI (where .ci/run installs chromium), so a broken CI setup cannot hide it.
"""

import torch
from _browser import ARGS, CHROMIUM
from _browser import need_browser as _need_browser

from gptlab.attention import AttentionMaps
from gptlab.viz import save_attention_html

EVIL = ["<script>", "window.__pwned=1", "</script>", "<img src=x onerror=window.__pwned=1>", "&amp;", "\n", "a", "b", "a", "b"]


def maps() -> AttentionMaps:
    """2 layers x 2 heads; layer 0 head 0 is a previous-token head, layer 1 head 0 a first-token head."""
    T = len(EVIL)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 2, T, T, generator=g).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
    w[0, 0] = 0
    w[0, 0, 0, 0] = 1
    w[0, 0, torch.arange(1, T), torch.arange(T - 1)] = 1
    w[1, 0] = 0
    w[1, 0, :, 0] = 1
    return AttentionMaps(w, EVIL, torch.arange(T), torch.zeros(T, 3))


def test_html_view_in_headless_chromium_offline(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    path = save_attention_html(maps(), tmp_path / "view.html", title="<i>test</i>")
    url = path.resolve().as_uri()
    requests, errors, dialogs = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context()
            context.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            context.set_offline(True)  # everything below must work with the network gone

            tokens = page.locator("#tokens .tok")
            assert tokens.count() == len(EVIL)
            assert tokens.all_text_contents() == ["<script>", "window.__pwned=1", "</script>",
                                                  "<img src=x onerror=window.__pwned=1>", "&amp;", "↵", "a", "b", "a", "b"]
            assert page.evaluate("document.querySelectorAll('#tokens script, #tokens img').length") == 0
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert page.locator("title").text_content() == "<i>test</i>"
            assert page.locator("#layer option").count() == 2 and page.locator("#head option").count() == 2
            # the heatmap's axes name the tokens, as text (review C9); the selected token's labels are marked
            ylabels = page.locator("#ylab .yl")
            assert ylabels.all_text_contents() == ["<script>", "window.__…", "</script>", "<img src=…", "&amp;", "↵",
                                                   "a", "b", "a", "b"]
            assert page.evaluate("document.querySelectorAll('#ylab *:not(span), #xlab *:not(span)').length") == 0
            assert page.locator("#xlab .xl").count() == len(EVIL)
            assert page.locator("#ylab .yl.sel").all_text_contents() == ["b"]  # the last token, pinned at the start
            heat, ylab = page.locator("#heat").bounding_box(), page.locator("#ylab .yl").nth(9).bounding_box()
            assert ylab["x"] + ylab["width"] <= heat["x"] and abs(ylab["y"] + ylab["height"] / 2
                                                                   - (heat["y"] + heat["height"] * 9.5 / len(EVIL))) < 3

            def backgrounds():
                return page.evaluate("Array.from(document.querySelectorAll('#tokens .tok')).map(s => getComputedStyle(s).backgroundColor)")

            def clear(bg):  # alpha 0: not highlighted
                return bg.endswith(", 0)") or bg == "rgba(0, 0, 0, 0)"

            page.select_option("#layer", "0")
            page.select_option("#head", "0")
            tokens.nth(4).click()  # previous-token head: token 4 lights up token 3 only
            bg = backgrounds()
            assert page.locator("#xlab .xl.sel").all_text_contents() == ["&amp;"]

            def pixel(i, j):  # the heatmap's colour at the centre of cell (i, j), as drawn
                return page.evaluate(f"Array.from(document.getElementById('heat').getContext('2d')"
                                     f".getImageData(Math.floor(({j} + 0.5) * 72), Math.floor(({i} + 0.5) * 72), 1, 1).data)")

            assert pixel(6, 5)[:3] == [253, 231, 37]  # weight 1: viridis' yellow, as the figures
            assert pixel(6, 2)[:3] == [68, 1, 84]  # weight 0: viridis' dark purple, never white
            assert pixel(2, 6)[:3] == [255, 255, 255]  # the future (masked): white
            assert "sel" in tokens.nth(4).get_attribute("class")
            assert not clear(bg[3]) and all(clear(b) for j, b in enumerate(bg) if j != 3)
            tokens.nth(7).click()  # the highlight follows the click
            bg2 = backgrounds()
            assert bg2 != bg and not clear(bg2[6]) and clear(bg2[3])
            assert "sel" not in tokens.nth(4).get_attribute("class")
            info = page.locator("#info").text_content()
            assert info.startswith("7 ‹b› attends most to 6 ‹a› 1.00")

            page.select_option("#layer", "1")  # first-token head: everything looks at token 0
            bg3 = backgrounds()
            assert not clear(bg3[0]) and all(clear(b) for b in bg3[1:])
            page.check("#dir-from")  # who attends to token 7? in layer 1 head 0: nobody
            assert all(clear(b) for b in backgrounds())
            tokens.nth(0).click()  # ... but everyone attends to token 0
            assert not any(clear(b) for b in backgrounds())
            page.mouse.move(0, 0)

            assert errors == [] and dialogs == []
            assert page.evaluate("typeof window.__pwned") == "undefined"
        finally:
            browser.close()
    assert requests == [url], f"the page tried to load {[r for r in requests if r != url]}"


def _launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def _alpha(css: str) -> float:
    """The alpha of a computed CSS colour: 'rgba(r, g, b, a)' or 'rgb(r, g, b)' (alpha 1)."""
    parts = css[css.index("(") + 1 : -1].split(",")
    return float(parts[3]) if len(parts) == 4 else 1.0


def test_html_view_scale_contrast_hover_and_stable_layout(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    m = maps()
    path = save_attention_html(m, tmp_path / "view.html", layer=1, head=1)
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.resolve().as_uri())
            T = len(EVIL)
            tokens = page.locator("#tokens .tok")

            def styles(prop):
                return page.evaluate(f"Array.from(document.querySelectorAll('#tokens .tok')).map(s => getComputedStyle(s).{prop})")

            # absolute scale by default: a token's colour strength is its weight itself, whatever the row's maximum
            assert page.is_checked("#scale-absolute")
            assert "fixed 0" in page.locator("#legend").text_content()
            tokens.nth(9).click()
            row = m.weights[1, 1, 9]
            alphas = [_alpha(c) for c in styles("backgroundColor")]
            for j in range(T):
                assert abs(alphas[j] - float(row[j])) <= 1 / 255 + 1e-3, (j, alphas[j], float(row[j]))
            assert max(alphas) < 0.999  # a diffuse row stays pale instead of painting its top token solid
            page.check("#scale-relative")  # relative: the row's largest weight is full colour
            alphas = [_alpha(c) for c in styles("backgroundColor")]
            assert abs(max(alphas) - 1) < 1e-3 and alphas.index(max(alphas)) == int(row.argmax())
            legend = page.locator("#legend").text_content()
            assert "relative" in legend and f"{float(row.max()):.2f}" in legend
            page.check("#scale-absolute")

            # contrast: white text on full colour, dark text on pale cells
            page.select_option("#layer", "0")
            page.select_option("#head", "0")
            tokens.nth(4).click()  # previous-token head: token 3 at weight 1
            colours = styles("color")
            assert colours[3] == "rgb(255, 255, 255)" and colours[0] == "rgb(34, 34, 34)"

            # hover the heatmap: a readout (and tooltip) names the query and key tokens of the cell
            box = page.locator("#heat").bounding_box()
            cell = box["width"] / T

            def hover(i, j):
                page.mouse.move(box["x"] + (j + 0.5) * cell, box["y"] + (i + 0.5) * cell)
                return page.locator("#hover").text_content()

            assert hover(4, 3) == f"query 4 ‹&amp;› → key 3 ‹{EVIL[3]}›: 1.000"
            assert page.get_attribute("#heat", "title") == f"query 4 ‹&amp;› → key 3 ‹{EVIL[3]}›: 1.000"
            assert hover(2, 5).endswith("future (masked)")
            assert page.evaluate("document.querySelectorAll('#hover *').length") == 0  # text only, never HTML

            # layout: the heatmap and the token strip stay put however long the info line gets
            page.mouse.move(0, 0)

            def rects():
                return page.evaluate("['heat', 'tokens', 'info', 'hover', 'legend'].map(id => {"
                                     "const r = document.getElementById(id).getBoundingClientRect(); "
                                     "return [r.x, r.y, r.width, r.height]; })")
            tokens.nth(0).click()
            short = (page.locator("#info").text_content(), rects())
            page.select_option("#layer", "1")
            page.select_option("#head", "1")
            page.check("#dir-from")
            tokens.nth(3).click()  # attended by several tokens, among them the long <img ...> one
            long = (page.locator("#info").text_content(), rects())
            assert len(long[0]) > len(short[0]) + 40
            assert long[1] == short[1]
            page.check("#scale-relative")
            assert rects() == short[1]  # the legend changes its text, not its size
            assert errors == []
        finally:
            browser.close()


def test_html_view_says_which_window_it_shows(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    note = "The text has 40 tokens but the model reads at most 10 (block_size): shown are tokens 30-39."
    path = save_attention_html(maps(), tmp_path / "view.html", note=note, offset=30, title="__DATA__")
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page()
            page.goto(path.resolve().as_uri())
            assert page.locator("#note").is_visible() and page.locator("#note").text_content() == note
            assert page.locator("#title").text_content() == "__DATA__"
            page.locator("#tokens .tok").nth(9).click()
            assert page.locator("#info").text_content().startswith("39 ‹b›")  # positions in the whole text
            assert page.locator("#tokens .tok").nth(0).get_attribute("title").startswith("30 ‹<script>›")
        finally:
            browser.close()
    path = save_attention_html(maps(), tmp_path / "plain.html")
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page()
            page.goto(path.resolve().as_uri())
            assert not page.locator("#note").is_visible()  # no note: no empty box
        finally:
            browser.close()
