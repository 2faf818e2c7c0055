"""Static figures, the offline HTML view, the widget explorer (gptlab.viz) and the `gptlab attention` command."""

import base64
import html
import json
import re
import struct

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gptlab import GPT, GPTConfig, viz  # noqa: E402
from gptlab.attention import AttentionMaps, head_scores  # noqa: E402
from gptlab.tokenizers import BPETokenizer, CharTokenizer  # noqa: E402

EVIL = ["</script>", "<script>alert(1)</script>", "<img src=x onerror=window.__pwned=1>", "&amp;", "\n", "a", '"', "中"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def random_maps(L=2, H=3, T=10, tokens=None, seed=0) -> AttentionMaps:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(L, H, T, T, generator=g).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    tokens = tokens if tokens is not None else [f"t{i}" for i in range(T)]
    return AttentionMaps(scores.softmax(-1), list(tokens), torch.arange(T), torch.zeros(T, 7))


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def tick_texts(ax, axis="x") -> list[str]:
    ax.figure.canvas.draw()
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text() for t in labels]


# ---------------------------------------------------------------- labels


def test_display_token():
    assert viz.display_token("\n") == "↵"
    assert viz.display_token("a\tb") == "a⇥b"
    assert viz.display_token("  ") == "␣␣"
    assert viz.display_token(" the") == " the"
    assert viz.display_token("\x07") == "\\x07"
    assert viz.display_token("中") == "\\u4e2d"  # no CJK glyphs in figures
    assert viz.display_token("中", for_plot=False) == "中"  # browsers have the fonts
    assert viz.display_token("é�") == "é�"  # DejaVu has these


# ---------------------------------------------------------------- static figures


def test_every_plot_returns_a_figure_and_exports_png_and_svg(tmp_path):
    maps = random_maps(tokens=["T", "o", " ", "b", "e", "\n", "中", "x", "y", "z"])
    figures = {
        "head": viz.plot_head(maps, 1, 2, highlight=4),
        "layer": viz.plot_layer(maps, 0),
        "overview": viz.plot_overview(maps),
        "scores": viz.plot_head_scores(head_scores(maps)),
        "one_score": viz.plot_head_scores(torch.rand(2, 3), title="induction"),
        "distance": viz.plot_attention_distance(maps),
        "distance_batch": viz.plot_attention_distance(torch.stack([maps.weights] * 3)),
        "token": viz.plot_token_attention(maps, 0, 1, 6),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure), name
        written = viz.save_figure(fig, tmp_path / name, dpi=60)  # low dpi: a quick test
        assert [p.name for p in written] == [f"{name}.png", f"{name}.svg"]
        png_size(written[0])
        svg = written[1].read_text()
        assert "<svg" in svg and len(svg) > 1000
        assert "<dc:date>" not in svg  # no timestamp: re-exports diff cleanly


def test_save_figure_suffix_formats_and_dpi(tmp_path):
    fig = viz.plot_head(random_maps(), 0, 0)
    written = viz.save_figure(fig, tmp_path / "sub" / "fig.png")
    assert sorted(p.name for p in written) == ["fig.png", "fig.svg"]
    small = viz.save_figure(fig, tmp_path / "small", formats=("png",), dpi=50)[0]
    big = viz.save_figure(fig, tmp_path / "big", formats=["PNG"], dpi=200)[0]
    (ws, hs), (wb, hb) = png_size(small), png_size(big)
    assert wb > 3 * ws and hb > 3 * hs


def test_head_heatmap_labels_window_and_mask():
    tokens = ["a", "\n", "中", " ", "b", "c", "d", "e"]
    maps = random_maps(T=8, tokens=tokens)
    fig = viz.plot_head(maps, 0, 1)
    ax = fig.axes[0]
    assert tick_texts(ax, "x") == ["a", "↵", "\\u4e2d", "␣", "b", "c", "d", "e"]
    assert tick_texts(ax, "y") == tick_texts(ax, "x")
    img = ax.images[0].get_array()
    assert img.mask[0, 1] and not img.mask[1, 0]  # the future is masked, the past is not
    fig = viz.plot_head(maps, 0, 1, window=(2, 6))
    assert tick_texts(fig.axes[0], "x") == ["\\u4e2d", "␣", "b", "c"]
    assert fig.axes[0].images[0].get_array().shape == (4, 4)
    assert "tokens 2-5" in fig.axes[0].get_title()


def test_long_inputs_thin_the_labels():
    maps = random_maps(L=1, H=1, T=300)
    fig = viz.plot_head(maps, 0, 0, max_labels=50)
    labels = tick_texts(fig.axes[0], "x")
    assert 25 <= len(labels) <= 50
    assert labels[1] == "6 ‹t6›"  # every 6th token, position first, the token in ‹ › (never "6:t6")
    maps = random_maps(L=1, H=1, T=64, tokens=[":"] * 64)
    labels = tick_texts(viz.plot_layer(maps, 0).axes[0], "y")
    assert labels[1].endswith(" ‹:›") and "::" not in "".join(labels)  # not the confusing "44::"


def test_tick_labels_never_shrink_below_a_readable_size():
    for T in (8, 24, 64, 200):
        maps = random_maps(L=1, H=2, T=T)
        for fig in (viz.plot_head(maps, 0, 0), viz.plot_layer(maps, 0)):
            for ax in fig.axes:
                for t in ax.get_xticklabels() + ax.get_yticklabels():
                    if t.get_text() and not t.get_text().replace(".", "").isdigit():  # token labels, not the colour bar
                        assert t.get_fontsize() >= viz.MIN_LABEL_PT, (T, t.get_text(), t.get_fontsize())
            plt.close(fig)
    fig = viz.plot_head(random_maps(L=1, H=1, T=24), 0, 0)
    assert len(tick_texts(fig.axes[0], "x")) == 24  # a short input keeps every label


def test_layer_grid_and_overview_select_heads_and_layers():
    maps = random_maps(L=3, H=4, T=12)
    fig = viz.plot_layer(maps, 2, heads=[1, 3])
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["head 1", "head 3"]
    fig = viz.plot_overview(maps, layers=[0, 2], heads=[1, 2, 3])
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (2 * 13 - 1, 3 * 13 - 1)
    assert tick_texts(ax, "x") == ["1", "2", "3"] and tick_texts(ax, "y") == ["0", "2"]
    with pytest.raises(ValueError, match="layer"):
        viz.plot_overview(maps, layers=[3])


def test_overview_shrinks_long_inputs_without_losing_a_diagonal():
    T = 200
    w = torch.zeros(1, 1, T, T)
    w[0, 0, torch.arange(T), torch.arange(T)] = 1.0  # a self-attending head
    img, s = viz._mosaic(w, thumb=50)
    assert s == 50 and img.shape == (50, 50)
    assert (img.diagonal() == 1.0).all()  # max-pooling keeps the sharp line


# ---------------------------------------------------------------- offline HTML


def data_json(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_html_escapes_every_token_and_is_self_contained():
    maps = random_maps(T=len(EVIL), tokens=EVIL)
    page = viz.attention_html(maps, title="<b>title</b> & co")
    data = data_json(page)  # the JSON ends at the real </script>, not at a token's
    assert data["tokens"][:4] == EVIL[:4]
    assert data["tokens"][4] == "↵" and data["newline"][4]
    assert data["tokens"][7] == "中"
    script = page[page.index('id="data">') : page.index("</script>", page.index('id="data">'))]
    assert "<" not in script[len('id="data">') :] and "&" not in script
    assert page.count("</script>") == 2  # the data block and the code block, nothing else
    assert "<title>&lt;b&gt;title&lt;/b&gt; &amp; co</title>" in page
    assert "<b>title" not in page and "onerror" not in page.replace("\\u003c", "")[: page.index("<script")]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page
    assert "default-src 'none'" in page  # the browser refuses any fetch


def test_html_weights_roundtrip_and_selection(tmp_path):
    maps = random_maps(L=3, H=2, T=9)
    path = viz.save_attention_html(maps, tmp_path / "out" / "view.html", layers=[0, 2], layer=2, head=1)
    data = data_json(path.read_text(encoding="utf-8"))
    assert data["layers"] == [0, 2] and data["heads"] == [0, 1] and data["T"] == 9
    assert (data["layer"], data["head"]) == (1, 1)
    import base64

    q = torch.frombuffer(bytearray(base64.b64decode(data["w"][1][0])), dtype=torch.uint8).view(9, 9)
    torch.testing.assert_close(q.float() / 255, maps.weights[2, 0], atol=1 / 255, rtol=0)


def test_html_colour_scale_note_and_offset():
    maps = random_maps(T=6)
    data = data_json(viz.attention_html(maps))
    assert data["scale"] == "absolute" and data["offset"] == 0  # absolute 0..1 unless asked otherwise
    page = viz.attention_html(maps, scale="relative", note="kept <64> tokens & more", offset=56)
    data = data_json(page)
    assert data["scale"] == "relative" and data["offset"] == 56
    assert '<p id="note">kept &lt;64&gt; tokens &amp; more</p>' in page  # the note is escaped like the title
    assert 'id="scale-absolute"' in page and 'id="scale-relative"' in page and 'id="legend"' in page
    with pytest.raises(ValueError, match="scale must be 'absolute'"):
        viz.attention_html(maps, scale="row")
    with pytest.raises(ValueError, match="offset"):
        viz.attention_html(maps, offset=-1)


@pytest.mark.parametrize("title", ["__DATA__", "ckpt __TITLE__ __NOTE__ __DATA__", "$data {DATA} %s"])
def test_html_title_holding_the_placeholders_stays_a_title(title):
    maps = random_maps(T=5)
    page = viz.attention_html(maps, title=title, note="__DATA__")
    assert f"<title>{title}</title>" in page and f'<h3 id="title">{title}</h3>' in page
    assert '<p id="note">__DATA__</p>' in page
    assert page.count('"tokens":') == 1  # the data went in once, into the data block only
    assert data_json(page)["T"] == 5


def test_html_heatmap_axes_carry_escaped_token_labels():
    """Review C9: the heatmap's axes name the tokens (no hovering needed), as escaped text."""
    maps = random_maps(T=len(EVIL), tokens=EVIL)
    page = viz.attention_html(maps)
    ylab = page[page.index('<div id="ylab">') : page.index("</div>", page.index('<div id="ylab">'))]
    shown = re.findall(r'<span class="yl" data-i="(\d+)" style="top:[\d.]+%">(.*?)</span>', ylab)
    assert [int(i) for i, _ in shown] == list(range(len(EVIL)))  # 8 tokens: every one labelled
    assert [html.unescape(t) for _, t in shown] == ["</script>", "<script>a…", "<img src=…", "&amp;", "↵", "a", '"', "中"]
    assert "<script" not in ylab and "<img" not in ylab  # markup in a token is text, never an element
    xlab = page[page.index('<div id="xlab">') :]
    assert xlab.count('<span class="xl"') == len(EVIL) and "&lt;/script&gt;" in xlab

    long = viz.attention_html(random_maps(T=100, tokens=[f"w{i}" for i in range(100)]), offset=7)
    ylab = long[long.index('<div id="ylab">') : long.index("</div>", long.index('<div id="ylab">'))]
    shown = re.findall(r'data-i="(\d+)" style="top:[\d.]+%">(.*?)</span>', ylab)
    step = int(shown[1][0])  # 100 tokens do not fit 14 px apart on 360 px: every k-th, as position ‹token›
    assert 1 < step <= 4 and len(shown) == len(range(0, 100, step)) <= 360 // 14
    assert shown[1][1] == f"{7 + step} ‹w{step}›"


def test_html_heatmap_uses_the_figures_colour_map_with_a_colour_bar():
    page = viz.attention_html(random_maps(T=6))
    lut = np.frombuffer(base64.b64decode(data_json(page)["lut"]), dtype=np.uint8).reshape(256, 3)
    viridis = (plt.get_cmap("viridis")(np.linspace(0, 1, 256))[:, :3] * 255).round()
    np.testing.assert_array_equal(lut, viridis)  # weight 0 dark, 1 yellow: as plot_head, never near-white
    top, bottom = (tuple(int(v) for v in lut[k]) for k in (255, 0))
    grad = re.search(r"#cbar-grad\{[^}]*linear-gradient\(to bottom, (.*?)\)\}", page).group(1)
    assert grad.startswith("rgb({},{},{}) 0%".format(*top)) and grad.endswith("rgb({},{},{}) 100%".format(*bottom))
    assert 'id="cbar-top">1<' in page and 'id="cbar-mid">0.5<' in page


# ---------------------------------------------------------------- widget explorer


@pytest.fixture
def explorer_setup():
    text = "to be, or not to be <that> is\nthe question"
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=tok.n_vocab, n_head=2))
    return model, tok, text


def test_explorer_state_updates_without_a_front_end(explorer_setup):
    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, text[:20], render=False)
    T = 20
    assert ex.maps.T == T and ex.selected == T - 1 and len(ex.buttons) == T
    assert [b.description for b in ex.buttons][:3] == ["t", "o", "␣"]
    first = list(ex.colours)
    assert len(first) == T and first[ex.selected] != "#ffffff"

    ex.select(3)  # where does token 3 attend? only to 0..3 (causal)
    assert ex.selected == 3 and ex.colours[4:] == ["#ffffff"] * (T - 4)
    assert ex.buttons[3].style.font_weight == "bold" and ex.buttons[2].style.font_weight == ""
    torch.testing.assert_close(ex.weights(), ex.maps.weights[0, 0, 3])

    ex.set_direction("from")  # and who attends to token 3? only 3..T-1
    assert ex.colours[:3] == ["#ffffff"] * 3 and ex.colours[3] != "#ffffff"
    torch.testing.assert_close(ex.weights(), ex.maps.weights[0, 0, :, 3])
    assert ex.direction_w.value == "from"

    before = ex.weights().clone()
    ex.set_layer(1)
    ex.set_head(1)
    assert (ex.layer_w.value, ex.head_w.value) == (1, 1)
    torch.testing.assert_close(ex.weights(), ex.maps.weights[1, 1, :, 3])
    assert not torch.equal(ex.weights(), before)
    assert "layer 1, head 1" in ex.status_w.value

    ex.buttons[7].click()  # a click in the front end runs the same handler
    assert ex.selected == 7
    ex.layer_w.value = 0  # so does choosing in the dropdown
    assert ex.layer == 0
    with pytest.raises(ValueError, match="head"):
        ex.set_head(2)


def test_explorer_prompt_changes_errors_and_escaping(explorer_setup):
    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, "to be", render=True)
    assert ex.image_w.value[:8] == b"\x89PNG\r\n\x1a\n"
    ex.prompt_w.value = "<that>"  # typing in the box re-runs the model
    assert ex.maps.tokens == list("<that>") and ex.selected == 5
    assert "&lt;" in ex.status_w.value and "<that>" not in ex.status_w.value
    ex.set_text("xyz!")  # characters this tokenizer does not know
    assert "cannot run this prompt" in ex.status_w.value and ex.maps.tokens == list("<that>")
    assert ex.prompt_w.value == "<that>" and ex.text == "<that>"  # the box is back to what the tokens show
    ex.set_text((text * 2)[:40])  # longer than block_size 32
    assert ex.maps.T == 32 and "last 32 of 40" in ex.status_w.value
    ex.set_text("")
    assert ex.maps is None and ex.buttons == [] and "type a prompt" in ex.status_w.value


def test_explorer_selects_a_token_with_something_to_show_after_a_new_prompt(explorer_setup):
    """Review C4: in 'attended by' mode a new prompt selects the first token (every later token may
    attend to it), not the last one (attended by itself only: an almost blank view)."""
    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, "to be", render=False)
    assert ex.selected == 4  # 'attends to': the last token, what the next token is predicted from
    ex.set_direction("from")
    ex.prompt_w.value = "or not to"  # typed in the front end
    assert ex.selected == 0 and ex.maps.T == 9
    assert sum(c != "#ffffff" for c in ex.colours) == 9  # every token attends to token 0 a little
    ex.select(8)
    assert sum(c != "#ffffff" for c in ex.colours) == 1  # what the old rule showed: the last token, by itself
    ex.set_direction("to")
    ex.set_text("to be")
    assert ex.selected == 4


def test_explorer_prompt_box_grows_with_the_prompt(explorer_setup):
    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, "to be", render=False)
    assert ex.prompt_w.rows == 3
    ex.set_text("to\nbe\nor\nnot\nto")
    assert ex.prompt_w.rows == 5  # five lines, five rows: nothing hidden
    ex.set_text("to be " * 30)  # 180 characters on one line wrap over three rows
    assert ex.prompt_w.rows == 3
    assert viz.prompt_rows("a" * 250) == 4 and viz.prompt_rows("\n" * 40) == 12  # at most 12, then it scrolls


def test_whitespace_tokens_are_drawn_larger_in_tick_labels():
    maps = random_maps(T=6, tokens=["a", " ", "\n", "b", "  ", "c"])
    fig = viz.plot_head(maps, 0, 0)
    for labels in (fig.axes[0].get_xticklabels(), fig.axes[0].get_yticklabels()):
        size = {t.get_text(): t.get_fontsize() for t in labels}
        assert size["␣"] == size["↵"] == size["␣␣"] == size["a"] + viz.GLYPH_BOOST_PT  # review C4: legible
        assert {t.get_text(): t.get_fontweight() for t in labels}["↵"] == "bold"


def test_explorer_prompt_box_keeps_newlines(explorer_setup):
    import ipywidgets as W

    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, "to be\nor", render=False)
    assert isinstance(ex.prompt_w, W.Textarea)  # a one-line Text box would drop the newline
    assert ex.maps.tokens == list("to be\nor") and ex.prompt_w.value == "to be\nor"
    assert [b.description for b in ex.buttons][5] == "↵"
    ex.prompt_w.value = "the\nquestion\n"  # as typed in the front end
    assert ex.maps.tokens.count("\n") == 2 and ex.text == "the\nquestion\n"


def test_explorer_rejected_prompt_keeps_box_tokens_and_picture(explorer_setup):
    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, "to be", render=True)
    before = (ex.maps, [b.description for b in ex.buttons], ex.image_w.value)
    ex.prompt_w.value = "to be 😀"  # typed in the front end: an emoji this char tokenizer lacks
    assert ex.prompt_w.value == "to be" and ex.text == "to be"  # box reset: it matches the tokens again
    assert (ex.maps, [b.description for b in ex.buttons], ex.image_w.value) == before
    assert "cannot run this prompt" in ex.status_w.value and "😀" in ex.status_w.value
    ex.prompt_w.value = "or not"  # the next good prompt runs and clears the error
    assert ex.maps.tokens == list("or not") and "cannot run" not in ex.status_w.value
    ex2 = viz.AttentionExplorer(model, tok, "😀", render=False)  # rejected from the start: an empty box
    assert ex2.maps is None and ex2.prompt_w.value == "" and "cannot run this prompt" in ex2.status_w.value


def test_explorer_colour_scale_is_absolute_and_stable_unless_asked(explorer_setup):
    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, text[:20], render=False)
    assert ex.scale == "absolute" and "fixed 0–1 scale" in ex.status_w.value
    w = ex.weights()
    expected = [viz._weight_colour(float(v), ex.TO_RGB) for v in w]  # colour = the weight itself
    assert ex.colours == expected
    ex.set_scale("relative")
    top = float(w.max())
    assert ex.colours == [viz._weight_colour(float(v) / top, ex.TO_RGB) for v in w]
    assert ex.colours[int(w.argmax())] == "#1f77b4" and "relative to the largest" in ex.status_w.value
    assert ex.scale_w.value == "relative"
    ex.scale_w.value = "absolute"  # the toggle in the front end
    assert ex.colours == expected
    with pytest.raises(ValueError, match="scale must be"):
        viz.AttentionExplorer(model, tok, "to", scale="row")


def test_text_colour_contrast():
    assert viz._text_colour("#ffffff") == "#000000"
    assert viz._text_colour("#1f77b4") == "#ffffff"  # full blue: white text reads better
    assert viz._text_colour(viz._weight_colour(0.2, (31, 119, 180))) == "#000000"


def test_explorer_heatmap_is_drawn_at_the_size_it_is_shown(explorer_setup):
    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, text[:30], render=True)
    w, h = ex.HEATMAP_CSS_PX
    assert (ex.image_w.layout.width, ex.image_w.layout.height) == (f"{w}px", f"{h}px")  # never stretched to the cell
    assert h <= 480 and w <= 560  # beside the tokens, and under a laptop screen's height
    pw, ph = struct.unpack(">II", ex.image_w.value[16:24])
    assert (pw, ph) == (w * ex.PIXEL_RATIO, h * ex.PIXEL_RATIO)  # exactly the shown size at the pixel ratio, no resampling
    fig = ex.heatmap_figure()
    ax = fig.axes[0]
    labels = ax.get_xticklabels()
    assert len(labels) == ex.max_tokens  # every token of the window labelled ...
    assert all(t.get_fontsize() >= viz.MIN_LABEL_PT for t in labels + ax.get_yticklabels())  # ... readably
    shown_px = min(t.get_fontsize() for t in labels) * ex.CSS_DPI / 72
    assert shown_px >= 9  # at least 9 CSS pixels tall on screen
    assert fig.axes[1].get_ylim() == (0.0, 1.0)  # absolute scale: the colour bar is 0..1 for every prompt


def test_explorer_shows_a_static_picture_where_no_widget_front_end_runs(explorer_setup):
    from IPython.core.formatters import DisplayFormatter

    model, tok, text = explorer_setup
    ex = viz.AttentionExplorer(model, tok, text[:20], render=False)
    data, _ = DisplayFormatter().format(ex)  # what a notebook stores in the cell's output
    assert "application/vnd.jupyter.widget-view+json" in data  # JupyterLab draws the live widget
    png = base64.b64decode(data["image/png"])  # static viewers draw this picture instead
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] >= 800
    assert "VBox" not in data["text/plain"] and "AttentionExplorer" in data["text/plain"]
    fig = ex.snapshot_figure()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]
    assert "".join(texts).count("o") >= text[:20].count("o")  # the tokens are drawn
    assert any("static picture" in t for t in texts)


# ---------------------------------------------------------------- CLI (gptlab attention, in gptlab.cli)


@pytest.fixture
def tiny_ckpt(tmp_path):
    from gptlab.checkpoint import save_checkpoint

    tok = CharTokenizer.from_text("abc <script>\n")
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=tok.n_vocab))  # block_size 32
    save_checkpoint(tmp_path / "ckpt", model, tokenizer=tok)
    return tmp_path / "ckpt"


def test_cli_attention_writes_html_and_figures(tiny_ckpt, tmp_path, capsys):
    from gptlab import cli

    base = ["attention", "--checkpoint", str(tiny_ckpt), "--text", "abc <script>\nabc"]
    assert cli.main([*base, "--out", str(tmp_path / "view.html"), "--png", str(tmp_path / "all.png")]) == 0
    out = capsys.readouterr().out
    assert "note:" not in out  # the text fits: nothing was cut
    page = (tmp_path / "view.html").read_text(encoding="utf-8")
    data = data_json(page)
    assert "".join(data["tokens"]) == "abc␣<script>↵abc" and data["scale"] == "absolute"
    assert '<p id="note"></p>' in page
    assert page.count('<span class="yl"') == page.count('<span class="xl"') == 16  # token labels on both axes
    assert 'data-i="4" style="top:28.125%">&lt;</span>' in page  # escaped: the page shows '<', it parses nothing
    assert png_size(tmp_path / "all.png")[0] > 100
    assert cli.main([*base, "--png", str(tmp_path / "one.svg"), "--layer", "1", "--head", "0"]) == 0
    assert "<svg" in (tmp_path / "one.svg").read_text()
    assert not (tmp_path / "one.png").exists()
    assert cli.main([*base, "--out", str(tmp_path / "rel.html"), "--scale", "relative"]) == 0
    assert data_json((tmp_path / "rel.html").read_text(encoding="utf-8"))["scale"] == "relative"
    capsys.readouterr()
    assert cli.main([*base, "--png", str(tmp_path / "x.png"), "--layer", "1", "--head", "9"]) == 1
    assert "--head 9 out of range" in capsys.readouterr().err
    assert cli.main(base) == 1
    assert "nothing to write" in capsys.readouterr().err


def test_cli_attention_png_suffix_picks_the_format_or_is_refused(tiny_ckpt, tmp_path, capsys):
    from gptlab import cli

    base = ["attention", "--checkpoint", str(tiny_ckpt), "--text", "abc", "--layer", "0", "--head", "0", "--png"]
    assert cli.main([*base, str(tmp_path / "x.jpeg")]) == 0
    assert (tmp_path / "x.jpeg").read_bytes()[:3] == b"\xff\xd8\xff"  # a real JPEG, not a PNG named .jpeg
    assert cli.main([*base, str(tmp_path / "x.JPG")]) == 0
    assert (tmp_path / "x.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert cli.main([*base, str(tmp_path / "noext")]) == 0
    png_size(tmp_path / "noext.png")
    capsys.readouterr()
    assert cli.main([*base, str(tmp_path / "x.gif"), "--checkpoint", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "cannot write a figure as '.gif'" in err and ".png" in err  # said before the (missing) checkpoint is read
    assert not (tmp_path / "x.gif").exists() and not (tmp_path / "x.png").exists()


def test_cli_attention_long_text_says_which_window_it_shows(tiny_ckpt, tmp_path, capsys):
    from gptlab import cli

    text = "abc " * 15  # 60 tokens, the model reads 32
    base = ["attention", "--checkpoint", str(tiny_ckpt), "--text", text, "--out", str(tmp_path / "v.html")]
    assert cli.main(base) == 0
    out = capsys.readouterr().out
    assert "note: The text has 60 tokens but the model reads at most 32 (block_size): shown are tokens 28-59" in out
    assert "--start" in out
    page = (tmp_path / "v.html").read_text(encoding="utf-8")
    assert "shown are tokens 28-59" in page[: page.index("<script")]  # at the top of the page
    data = data_json(page)
    assert data["T"] == 32 and data["offset"] == 28 and "".join(data["tokens"]) == text[28:].replace(" ", "␣")
    assert cli.main([*base, "--start", "0"]) == 0
    data = data_json((tmp_path / "v.html").read_text(encoding="utf-8"))
    assert data["offset"] == 0 and "".join(data["tokens"]) == text[:32].replace(" ", "␣")
    assert "shown are tokens 0-31" in capsys.readouterr().out
    assert cli.main([*base, "--start", "50"]) == 0  # a window may end at the text's end
    assert data_json((tmp_path / "v.html").read_text(encoding="utf-8"))["T"] == 10
    capsys.readouterr()
    assert cli.main([*base, "--start", "60"]) == 1
    assert "--start 60 is past the end of the text (60 tokens)" in capsys.readouterr().err
    assert cli.main([*base, "--start", "-1"]) == 1
    assert "--start must be >= 0" in capsys.readouterr().err


def test_viz_knows_nothing_of_argparse_or_checkpoints():
    import inspect

    source = inspect.getsource(viz)
    assert "argparse" not in source and "load_checkpoint" not in source and not hasattr(viz, "cli_attention")


# ----------------------------------------------------------------------------------------------------
# Moved here from test_mutation_gaps.py (tests by module): hostile input and mutation-test gaps.
# ----------------------------------------------------------------------------------------------------


def status_text(value: str) -> str:
    """The text of a status line whose only markup may be gptlab's own <code>, <i>, <div> and <span>
    (with style attributes): any other '<' or '>' is text that was not escaped."""
    rest = re.sub(r"</?(code|i|div|span)(\s[^<>]*)?>", "", value)
    assert "<" not in rest and ">" not in rest, value
    return html.unescape(rest)


def test_explorer_status_line_escapes_tokens_and_messages():
    """Bug caught: a token such as <b> (or an error message quoting '<') written into the
    status line as HTML. The only markup there is gptlab's own <code>, <i>, <div> and <span>."""
    from gptlab import viz

    tok = BPETokenizer([], special_tokens={"<b>": 256})  # "<b>" is one token
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=tok.n_vocab))
    ex = viz.AttentionExplorer(model, tok, "x<b>y", render=False)
    assert ex.maps.tokens == ["x", "<b>", "y"]
    for i in range(3):
        ex.select(i)
        assert ("<b>" in status_text(ex.status_w.value)) == (i > 0)  # shown as text wherever it is listed

    chars = CharTokenizer.from_text("abc")  # cannot encode '<': the error message quotes it
    ex = viz.AttentionExplorer(GPT(GPTConfig.from_preset("tiny", vocab_size=3)), chars, "", render=False)
    for text, shown in [("<b>", "'<'"), ("abc", "2 ‹c›"), ("a<b>", "'<'")]:  # error with no map yet, good prompt, error after it
        ex.set_text(text)
        assert shown in status_text(ex.status_w.value)
    assert ex.maps.T == 3
