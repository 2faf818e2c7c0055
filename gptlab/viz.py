"""Pictures of attention that work offline, export for slides, and stay readable for long inputs (lesson 08).

Three views of the same `AttentionMaps` (see gptlab.attention):

- static matplotlib figures: one head, one layer's heads, every head as thumbnails,
  head scores, attention distance. `save_figure` writes PNG and SVG at slide resolution.
- `AttentionExplorer`: an ipywidgets view for JupyterLab (choose layer and head, type
  a prompt, click a token to see where it attends and what attends to it). It only uses
  stock widgets, so it needs no extension, CDN or trusted notebook; where no widget front
  end runs (a static notebook viewer) it shows a PNG snapshot instead.
- `save_attention_html`: one self-contained .html file (inline JS/CSS/data, no network;
  a Content-Security-Policy forbids any fetch) to open in a browser or put on a slide.

Colours of tokens default to an absolute scale (weight 0..1, the same for every prompt), and
every view says which scale it shows. This module draws and exports; the `gptlab attention`
command that reads a checkpoint lives in gptlab.cli.

Why not bertviz/CircuitsVis: they load JavaScript from a CDN, so they break offline, in
untrusted notebooks and in some JupyterLab setups, and cannot be exported as images.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import re
import textwrap
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.transforms import offset_copy

from gptlab.attention import (
    AttentionMaps,
    check_index,
    get_attention,
    mean_attention_distance,
    window_bounds,
)

# ----------------------------------------------------------------- token labels

_WHITESPACE = {"\n": "↵", "\t": "⇥", "\r": "⏎"}


@functools.lru_cache(maxsize=1)
def _plot_font():
    from matplotlib import font_manager, ft2font

    return ft2font.FT2Font(font_manager.findfont("DejaVu Sans"))


@functools.lru_cache(maxsize=4096)
def _has_glyph(ch: str) -> bool:
    return _plot_font().get_char_index(ord(ch)) != 0


def display_token(s: str, for_plot: bool = True) -> str:
    """A token as a one-line label: newline -> ↵, tab -> ⇥, an all-space token -> ␣.

    for_plot=True also writes characters that matplotlib's bundled DejaVu Sans lacks
    (CJK, emoji, ...) as \\uXXXX, so a figure looks the same on every machine and never
    shows empty boxes; the HTML view keeps them (browsers have the fonts).
    """
    if s and s.strip(" ") == "":
        return "␣" * len(s)
    out = []
    for ch in s:
        if ch in _WHITESPACE:
            out.append(_WHITESPACE[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        elif for_plot and not _has_glyph(ch):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def _labels(tokens: Sequence[str], max_chars: int = 12) -> list[str]:
    out = []
    for t in tokens:
        s = display_token(t)
        if len(s) > max_chars:
            s = s[: max_chars - 1] + "…"
        out.append(s)
    return out


MIN_LABEL_PT = 7.0  # smallest tick label drawn: readable on a laptop at 100% zoom
MAX_LABEL_PT = 10.0
GLYPH_BOOST_PT = 3.0  # ↵ ␣ ⇥ alone are drawn this much larger, in bold: at 7 pt they are specks (review C4)
_GLYPHS = frozenset(_WHITESPACE.values()) | {"␣"}


def _set_token_ticks(ax, tokens: Sequence[str], start: int, axis: str, max_labels: int) -> None:
    """Label an axis with tokens, at a readable size.

    Labels get the room the axis offers (in points); when fewer than all tokens fit at
    MIN_LABEL_PT (or more than max_labels would be needed), every k-th token is labelled
    as `position ‹token›` (e.g. `44 ‹:›`: the token ':' at position 44), so a position is
    never confused with the token text.
    """
    n = len(tokens)
    labels = _labels(tokens)
    fig, box = ax.figure, ax.get_position()
    length_pt = 72 * (box.width * fig.get_figwidth() if axis == "x" else box.height * fig.get_figheight())
    fit = max(1, int(length_pt / (1.25 * MIN_LABEL_PT)))  # labels that fit with a little gap
    step = max(1, math.ceil(n / max(1, min(max_labels, fit))))
    ticks = list(range(0, n, step))
    if step > 1:
        text = [f"{start + i} ‹{labels[i]}›" for i in ticks]
    else:
        text = [labels[i] for i in ticks]
    size = float(np.clip(length_pt / (1.25 * max(len(ticks), 1)), MIN_LABEL_PT, MAX_LABEL_PT))
    if axis == "x":
        ax.set_xticks(ticks)
        shown = ax.set_xticklabels(text, rotation=90, fontsize=size)
    else:
        ax.set_yticks(ticks)
        shown = ax.set_yticklabels(text, fontsize=size)
    for label in shown:  # a lone ↵ ␣ ⇥: larger and bold; ␣ sits on the baseline, so lift it to the tick
        if label.get_text() and set(label.get_text()) <= _GLYPHS:
            big = size + GLYPH_BOOST_PT
            label.set_fontsize(big)
            label.set_fontweight("bold")
            if "␣" in label.get_text():
                lift = 0.3 * big  # points
                label.set_transform(offset_copy(label.get_transform(), fig=fig, x=-lift if axis == "x" else 0.0,
                                                y=0.0 if axis == "x" else lift, units="points"))


def _select(n: int, chosen: Sequence[int] | None, name: str) -> list[int]:
    if chosen is None:
        return list(range(n))
    chosen = [chosen] if isinstance(chosen, int) else list(chosen)
    if not chosen:
        raise ValueError(f"choose at least one {name}")
    for c in chosen:
        check_index(name, c, n)
    return chosen


def _masked(w: np.ndarray) -> np.ma.MaskedArray:
    """Hide the causal upper triangle (future positions), so it shows as background, not as 0."""
    n = w.shape[-1]
    return np.ma.masked_array(w, mask=np.broadcast_to(np.triu(np.ones((n, n), dtype=bool), k=1), w.shape))


def _cmap(name: str):
    return matplotlib.colormaps[name].with_extremes(bad="white")


def _new_axes(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw):
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **kw)


# ----------------------------------------------------------------- static figures


def plot_head(
    maps: AttentionMaps,
    layer: int,
    head: int,
    *,
    window: tuple[int, int | None] | None = None,
    ax=None,
    highlight: int | None = None,
    max_labels: int = 64,
    cmap: str = "viridis",
    vmax: float | None = None,
    title: str | None = None,
    colorbar: bool = True,
):
    """One head as a heatmap: row = the token attending (query), column = the token attended to (key).

    window=(start, end) shows tokens start..end-1 only (for long inputs); highlight=i (absolute
    position) outlines token i's row and column. Returns the Figure.
    """
    start, end = window_bounds(*(window or (0, None)), maps.T)
    w = maps.head(layer, head)[start:end, start:end].numpy()
    n = end - start
    if ax is None:
        side = float(np.clip(0.125 * min(n, max_labels) + 2.0, 4.5, 10.0))  # room for 57 labels at 7 pt
        fig, axes = _new_axes((side + 1.0, side))
        ax = axes[0, 0]
    fig = ax.figure
    im = ax.imshow(_masked(w), cmap=_cmap(cmap), vmin=0.0, vmax=vmax or max(float(w.max()), 1e-6), interpolation="nearest")
    _set_token_ticks(ax, maps.tokens[start:end], start, "x", max_labels)
    _set_token_ticks(ax, maps.tokens[start:end], start, "y", max_labels)
    ax.set_xlabel("key: the token attended to")
    ax.set_ylabel("query: the token attending")
    window_note = f", tokens {start}-{end - 1}" if (start, end) != (0, maps.T) else ""
    ax.set_title(title or f"layer {layer}, head {head}{window_note}")
    if highlight is not None and start <= highlight < end:
        from matplotlib.patches import Rectangle

        r = highlight - start
        ax.add_patch(Rectangle((-0.5, r - 0.5), n, 1, fill=False, edgecolor="red", linewidth=1.5))
        ax.add_patch(Rectangle((r - 0.5, -0.5), 1, n, fill=False, edgecolor="orange", linewidth=1.5))
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return fig


def plot_layer(
    maps: AttentionMaps,
    layer: int,
    *,
    heads: Sequence[int] | None = None,
    window: tuple[int, int | None] | None = None,
    ncols: int | None = None,
    max_labels: int = 32,
    cmap: str = "viridis",
):
    """All (or the chosen) heads of one layer side by side, token labels on the outer axes."""
    check_index("layer", layer, maps.n_layer)
    heads = _select(maps.n_head, heads, "head")
    start, end = window_bounds(*(window or (0, None)), maps.T)
    w = maps.weights[layer][heads][:, start:end, start:end].numpy()
    ncols = ncols or min(len(heads), 4)
    nrows = math.ceil(len(heads) / ncols)
    side = 3.0 if end - start <= 48 else 3.6
    # A fixed layout in inches (room for token labels left and below, titles, a colour bar):
    # matplotlib's constrained layout would measure every tick label again, doubling the time.
    left, right, bottom, top, gap, title = 1.3, 1.1, 1.3, 0.6, 0.15, 0.35
    width = left + ncols * side + (ncols - 1) * gap + right
    height = bottom + nrows * (side + title) + top
    fig, axes = _new_axes(
        (width, height), nrows, ncols,
        gridspec_kw=dict(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                         wspace=gap / side, hspace=title / side),
    )
    vmax = max(float(w.max()), 1e-6)
    cm = _cmap(cmap)
    im = None
    for k, ax in enumerate(axes.flat):
        if k >= len(heads):
            ax.set_visible(False)
            continue
        im = ax.imshow(_masked(w[k]), cmap=cm, vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"head {heads[k]}", fontsize=10)
        row, col = divmod(k, ncols)
        if col == 0:
            _set_token_ticks(ax, maps.tokens[start:end], start, "y", max_labels)
            ax.set_ylabel("query")
        else:
            ax.set_yticks([])
        if row == nrows - 1 or k + ncols >= len(heads):
            _set_token_ticks(ax, maps.tokens[start:end], start, "x", max_labels)
            ax.set_xlabel("key")
        else:
            ax.set_xticks([])
    window_note = f", tokens {start}-{end - 1}" if (start, end) != (0, maps.T) else ""
    fig.suptitle(f"layer {layer}: attention of each head{window_note}", y=1 - 0.2 / height, va="top")
    bar = min(3.0, nrows * side)  # colour bar height, inches; centred on the grid
    grid_mid = bottom + nrows * (side + title) / 2
    cax = fig.add_axes((1 - (right - 0.25) / width, (grid_mid - bar / 2) / height, 0.15 / width, bar / height))
    fig.colorbar(im, cax=cax, label="attention weight")
    return fig


def _mosaic(w: torch.Tensor, thumb: int) -> tuple[np.ndarray, int]:
    """(L, H, T, T) -> one (L*(s+1), H*(s+1)) image of s x s thumbnails with NaN gutters.

    Thumbnails larger than `thumb` pixels are max-pooled, so a sharp diagonal (a
    previous-token head) survives shrinking instead of being averaged away.
    """
    L, H, T, _ = w.shape
    w = w.float().masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("nan"))
    if T > thumb:
        w = torch.nn.functional.adaptive_max_pool2d(w.nan_to_num(-1.0).reshape(L * H, 1, T, T), thumb)
        w = w.reshape(L, H, thumb, thumb)
        w = w.masked_fill(w < 0, float("nan"))
    s = w.size(-1)
    img = torch.full((L, s + 1, H, s + 1), float("nan"))
    img[:, :s, :, :s] = w.permute(0, 2, 1, 3)
    return img.reshape(L * (s + 1), H * (s + 1))[:-1, :-1].numpy(), s


def plot_overview(
    maps: AttentionMaps,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    window: tuple[int, int | None] | None = None,
    thumb: int = 96,
    gamma: float = 0.5,
    cmap: str = "viridis",
):
    """Every chosen head as a thumbnail, layers down, heads across: spot the patterns, then zoom.

    Drawn as one image (not one axes per head), so 144 heads render in well under a second.
    gamma < 1 brightens small weights (a diffuse head is otherwise black); the colour bar is exact.
    """
    from matplotlib.colors import PowerNorm

    layers = _select(maps.n_layer, layers, "layer")
    heads = _select(maps.n_head, heads, "head")
    start, end = window_bounds(*(window or (0, None)), maps.T)
    w = maps.weights[layers][:, heads][..., start:end, start:end]
    img, s = _mosaic(w, thumb)
    cell = float(np.clip(9.0 / max(len(heads), len(layers)), 0.5, 1.6))
    fig, axes = _new_axes((cell * len(heads) + 2.0, cell * len(layers) + 1.2))
    ax = axes[0, 0]
    im = ax.imshow(img, cmap=_cmap(cmap), norm=PowerNorm(gamma, vmin=0.0, vmax=1.0), interpolation="nearest")
    ax.set_xticks([k * (s + 1) + s / 2 for k in range(len(heads))])
    ax.set_xticklabels([str(h) for h in heads])
    ax.set_yticks([k * (s + 1) + s / 2 for k in range(len(layers))])
    ax.set_yticklabels([str(layer) for layer in layers])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"attention of every head ({len(layers)} layers x {len(heads)} heads, {end - start} tokens)")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label=f"attention weight (gamma {gamma})")
    return fig


def plot_head_scores(
    scores: torch.Tensor | dict[str, torch.Tensor],
    *,
    title: str | None = None,
    annotate: bool = True,
    cmap: str = "viridis",
    vmin: float | None = 0.0,
    vmax: float | None = None,
):
    """Layer x head heatmap(s) of per-head scores (e.g. previous-token, first-token, induction)."""
    if not isinstance(scores, dict):
        scores = {title or "score": scores}
        title = None
    n = len(scores)
    L, H = next(iter(scores.values())).shape
    cell = float(np.clip(6.0 / max(L, H), 0.35, 0.9))
    fig, axes = _new_axes((n * (cell * H + 1.8), cell * L + 1.4), 1, n, layout="constrained")
    for ax, (name, s) in zip(axes.flat, scores.items()):
        s = torch.as_tensor(s, dtype=torch.float32).cpu().numpy()
        if s.ndim != 2:
            raise ValueError(f"score {name!r} must be (n_layer, n_head), got shape {s.shape}")
        hi = vmax if vmax is not None else max(float(s.max()), 1e-6)
        im = ax.imshow(s, cmap=cmap, vmin=vmin, vmax=hi, interpolation="nearest", aspect="auto")
        ax.set_xticks(range(s.shape[1]))
        ax.set_yticks(range(s.shape[0]))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(name)
        if annotate and s.size <= 400:
            lo = vmin if vmin is not None else float(s.min())
            for (i, j), v in np.ndenumerate(s):
                dark = (v - lo) / max(hi - lo, 1e-12) < 0.6
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_attention_distance(maps: AttentionMaps | torch.Tensor, *, title: str | None = None):
    """Mean attention distance of every head, one dot per head, layers along x.

    Takes AttentionMaps or weights (n_layer, n_head, T, T), or a batch of them
    (B, n_layer, n_head, T, T), whose distances are averaged over the batch.
    The dashed line is what uniform attention over the context would give: heads far
    below it look locally (e.g. previous-token heads), heads above it look back far.
    Within a layer the heads sit left to right in order, each numbered above its dot at the
    size of the tick labels (the numbers are left out where they would not fit apart).
    """
    d = mean_attention_distance(maps)
    if d.dim() == 3:
        d = d.mean(0)
    if d.dim() != 2:
        raise ValueError(f"expected weights (n_layer, n_head, T, T) or (B, n_layer, n_head, T, T), got {d.dim() + 2} dims")
    T = maps.T if isinstance(maps, AttentionMaps) else maps.size(-1)
    d = d.numpy()
    L, H = d.shape
    width = float(np.clip(L * (0.22 * H + 0.4) + 2.0, 5.5, 14.0))
    fig, axes = _new_axes((width, 4.2))
    ax = axes[0, 0]
    offsets = np.linspace(-0.32, 0.32, H) if H > 1 else np.zeros(1)
    label_pt = 10.0  # the tick labels' size (review C5: the head numbers were 6 pt)
    gap_pt = (offsets[1] - offsets[0] if H > 1 else 1.0) * 72 * 0.8 * width / max(L, 1)  # between neighbouring heads
    numbered = gap_pt >= 0.9 * label_pt * len(str(H - 1))
    for layer in range(L):
        x = layer + offsets
        ax.scatter(x, d[layer], s=26, alpha=0.85)
        for h in range(H if numbered else 0):
            ax.annotate(str(h), (x[h], d[layer, h]), fontsize=label_pt, ha="center", xytext=(0, 5),
                        textcoords="offset points")
    uniform = T / 4  # mean over queries i = 1..T-1 of i / 2
    ax.axhline(uniform, linestyle="--", color="grey", linewidth=1, label=f"uniform attention ({uniform:.1f})")
    ax.set_xticks(range(L))
    ax.set_xlim(-0.6, L - 0.4)
    ax.set_ylim(0, max(uniform, float(d.max())) * 1.12)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean attention distance (tokens)")
    what = "numbers are heads" if numbered else f"heads 0-{H - 1} left to right"
    ax.set_title(title or f"how far back each head looks ({T} tokens; {what})")
    ax.legend(loc="best", fontsize=label_pt)
    return fig


def plot_token_attention(maps: AttentionMaps, layer: int, head: int, index: int, *, top: int = 15):
    """For one token: bars of where it attends (its row) and of who attends to it (its column)."""
    check_index("index", index, maps.T)
    w = maps.head(layer, head)
    fig, axes = _new_axes((10.0, 3.6), 1, 2, layout="constrained")
    labels = _labels(maps.tokens)
    for ax, vec, what in ((axes[0, 0], w[index], "attends to"), (axes[0, 1], w[:, index], "is attended by")):
        k = min(top, int((vec > 0).sum()) or 1)
        vals, idx = vec.topk(k)
        ax.barh(range(k)[::-1], vals.numpy())
        ax.set_yticks(range(k)[::-1])
        ax.set_yticklabels([f"{int(i)} ‹{labels[int(i)]}›" for i in idx], fontsize=8)  # as the heatmaps: 44 ‹:›
        ax.set_xlabel("attention weight")
        ax.set_title(f"token {index} ‹{labels[index]}› {what}", fontsize=10)
    fig.suptitle(f"layer {layer}, head {head}")
    return fig


FIGURE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "webp")  # what save_figure writes (jpg/webp through Pillow)


def figure_format(path: str | Path) -> str:
    """The image format a file name asks for ('png' when it has no suffix); ValueError for one we do not write."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"cannot write a figure as '.{suffix}' ({Path(path).name}); "
                         f"end the file name in one of {', '.join('.' + f for f in FIGURE_FORMATS)}")
    return suffix


def save_figure(fig, path: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 200) -> list[Path]:
    """Write `fig` once per format (default PNG + SVG, 200 dpi: sharp on a projector).

    `path` may carry a suffix (a known image suffix is replaced per format) or not.
    Returns the files written. SVGs carry no date, so re-exports diff cleanly.
    """
    path = Path(path)
    formats = [f.lower().lstrip(".") for f in formats]
    for fmt in formats:
        figure_format(f"x.{fmt}")  # refuse a format we do not write before writing anything
    if path.suffix.lower().lstrip(".") in FIGURE_FORMATS:
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        target = path.with_name(f"{path.name}.{fmt}")
        metadata = {"Date": None} if fmt == "svg" else None
        fig.savefig(target, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
        out.append(target)
    return out


def figure_png(fig, dpi: int = 100, tight: bool = True) -> bytes:
    """The figure as PNG bytes (for an ipywidgets Image). tight=False keeps the figure's exact
    size (width x height inches times dpi pixels), for a picture shown at a fixed size."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


# ----------------------------------------------------------------- interactive explorer

SCALES = {
    "absolute": "colour = the attention weight on a fixed 0–1 scale (white 0, full colour 1)",
    "relative": "colour = weight relative to the largest one shown (it changes with the prompt)",
}


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be 'absolute' (fixed 0–1) or 'relative' (to the largest weight), got {scale!r}")


def _weight_colour(x: float, rgb: tuple[int, int, int]) -> str:
    """Blend white -> rgb by x in [0, 1], as #rrggbb (ipywidgets button colours take no alpha)."""
    x = float(min(max(x, 0.0), 1.0))
    r, g, b = (round(255 + (c - 255) * x) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _text_colour(background: str) -> str:
    """White text where it contrasts more than black (WCAG relative luminance below 0.179), else black."""
    r, g, b = (int(background[k : k + 2], 16) / 255 for k in (1, 3, 5))
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return "#ffffff" if 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] < 0.179 else "#000000"


class AttentionExplorer:
    """Pick a layer and head, type a prompt, click a token: see where it attends / what attends to it.

    Built from stock ipywidgets (Textarea, Dropdown, ToggleButtons, Button, HTML, Image), so it
    runs in JupyterLab 4 without extensions. The state lives in plain attributes and
    the update methods work without a front end:

        ex = AttentionExplorer(model, tok, "To be, or not to be")
        ex  # in a notebook: shows the widget (a static picture where no widget front end runs)
        ex.set_layer(1); ex.set_head(2); ex.select(5); ex.set_direction("from")
        ex.colours  # the token colours the front end shows

    Colours follow `scale`: 'absolute' (default) maps a weight of 0..1 to white..full colour,
    the same for every prompt, so flat attention looks pale; 'relative' stretches the largest
    weight shown to full colour. The heatmap is drawn at exactly the size it is shown.
    """

    TO_RGB = (31, 119, 180)  # blue: where the selected token attends
    FROM_RGB = (214, 96, 18)  # orange: which tokens attend to the selected one
    HEATMAP_CSS_PX = (432, 400)  # shown size: beside the tokens in a 1100 px wide JupyterLab with its file browser open
    PIXEL_RATIO = 2  # drawn at twice the shown size, so it is sharp on high-density screens too
    CSS_DPI = 96  # CSS pixels per inch: a font of s points shows s * 96/72 CSS pixels tall

    def __init__(
        self, model, tokenizer, text: str = "", *, layer: int = 0, head: int = 0, max_tokens: int = 24,
        scale: str = "absolute", render: bool = True,
    ) -> None:
        import ipywidgets as W

        self.model, self.tokenizer = model, tokenizer
        self.max_tokens = max_tokens  # heatmap window around the selected token: labels stay readable
        self.render = render  # False skips the matplotlib heatmap (faster tests / scripting)
        cfg = model.config
        check_index("layer", layer, cfg.n_layer)
        check_index("head", head, cfg.n_head)
        _check_scale(scale)
        self.layer, self.head, self.direction, self.scale = layer, head, "to", scale
        self.maps: AttentionMaps | None = None
        self.text = ""  # the prompt the maps were computed from (the box is reset to it after a rejected prompt)
        self.selected: int | None = None
        self.colours: list[str] = []
        self.message = ""
        self._reverting = False

        w, h = self.HEATMAP_CSS_PX
        # Sizes: the controls take about 600 px and the tokens + heatmap row at least 630 px, so the
        # layout holds in a 1100 px wide JupyterLab window with the file browser open, where an output
        # is 668 px wide (review C4: 148 px toggle buttons, 280 + 480 px for tokens + heatmap wrapped).
        self.prompt_w = W.Textarea(value=text, description="prompt", placeholder="type a prompt; newlines count",
                                   continuous_update=False, rows=prompt_rows(text), layout=W.Layout(width="95%"))
        narrow = {"description_width": "40px"}
        self.layer_w = W.Dropdown(options=[(f"layer {i}", i) for i in range(cfg.n_layer)], value=layer, description="layer",
                                  style=narrow, layout=W.Layout(width="130px"))
        self.head_w = W.Dropdown(options=[(f"head {i}", i) for i in range(cfg.n_head)], value=head, description="head",
                                 style=narrow, layout=W.Layout(width="130px"))
        fit = {"button_width": "auto"}  # each button as wide as its text, not a fixed 148 px
        self.direction_w = W.ToggleButtons(options=[("attends to", "to"), ("attended by", "from")], value="to", style=fit)
        self.scale_w = W.ToggleButtons(options=[("weight 0–1", "absolute"), ("relative", "relative")], value=scale,
                                       tooltips=[SCALES["absolute"], SCALES["relative"]], style=fit)
        self.tokens_w = W.Box(layout=W.Layout(display="flex", flex_flow="row wrap", align_content="flex-start"))
        self.status_w = W.HTML(layout=W.Layout(min_height="5em"))
        self.image_w = W.Image(format="png", layout=W.Layout(width=f"{w}px", height=f"{h}px", min_width=f"{w}px",
                                                             object_fit="contain"))
        self.buttons: list[Any] = []
        left = W.VBox([self.tokens_w, self.status_w], layout=W.Layout(flex="1 1 220px", min_width="200px", max_width="560px"))
        self.widget = W.VBox([
            self.prompt_w,
            W.HBox([self.layer_w, self.head_w, self.direction_w, self.scale_w],
                   layout=W.Layout(flex_flow="row wrap", align_items="center")),
            W.HBox([left, self.image_w], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
        ])
        self.prompt_w.observe(lambda ch: None if self._reverting else self.set_text(ch["new"]), names="value")
        self.layer_w.observe(lambda ch: self.set_layer(ch["new"]), names="value")
        self.head_w.observe(lambda ch: self.set_head(ch["new"]), names="value")
        self.direction_w.observe(lambda ch: self.set_direction(ch["new"]), names="value")
        self.scale_w.observe(lambda ch: self.set_scale(ch["new"]), names="value")
        self.set_text(text)

    # -- state changes (each ends in update(); widget values are kept in sync)

    def set_text(self, text: str) -> None:
        """Re-run the model on a new prompt (keeps the last block_size tokens of a long one).

        A prompt the tokenizer rejects leaves everything as it was: the tokens, the heatmap
        and the prompt box (reset to the last prompt that ran), with the reason shown.
        """
        if self.prompt_w.value != text:
            self.prompt_w.value = text  # fires the observer, which calls us again
            return
        if not text:
            self.maps, self.selected, self.text, self.message = None, None, "", "type a prompt"
            self._rebuild_buttons()
            self.update()
            return
        try:
            n = len(self.tokenizer.encode(text))
            maps = get_attention(self.model, text, self.tokenizer, truncate=True)
        except ValueError as e:  # e.g. a character the tokenizer does not know
            self.message = f"cannot run this prompt: {e} (the box is back to the last prompt that ran)"
            self._reverting = True
            try:
                self.prompt_w.value = self.text
            finally:
                self._reverting = False
            self.update()
            return
        block = self.model.config.block_size
        self.maps, self.text = maps, text
        self.message = f"kept the last {block} of {n} tokens (block_size)" if n > block else ""
        self.selected = self.first_selection()
        self.prompt_w.rows = prompt_rows(text)
        self._rebuild_buttons()
        self.update()

    def first_selection(self) -> int:
        """The token selected after a new prompt: one with something to show in the current direction.

        'to': the last token, what the model predicts the next token from (it may attend to all).
        'from': the first token, which every later token can attend to (the last one is attended
        by itself only, so its view would be almost blank; review C4).
        """
        return 0 if self.direction == "from" else self.maps.T - 1

    def set_layer(self, layer: int) -> None:
        check_index("layer", layer, self.model.config.n_layer)
        self.layer = layer
        if self.layer_w.value != layer:
            self.layer_w.value = layer
        else:
            self.update()

    def set_head(self, head: int) -> None:
        check_index("head", head, self.model.config.n_head)
        self.head = head
        if self.head_w.value != head:
            self.head_w.value = head
        else:
            self.update()

    def set_direction(self, direction: str) -> None:
        """'to': colour where the selected token attends; 'from': which tokens attend to it."""
        if direction not in ("to", "from"):
            raise ValueError(f"direction must be 'to' or 'from', got {direction!r}")
        self.direction = direction
        if self.direction_w.value != direction:
            self.direction_w.value = direction
        else:
            self.update()

    def set_scale(self, scale: str) -> None:
        """'absolute': weight 0..1 -> colour, the same for every prompt; 'relative': the largest weight shown is full colour."""
        _check_scale(scale)
        self.scale = scale
        if self.scale_w.value != scale:
            self.scale_w.value = scale
        else:
            self.update()

    def select(self, index: int) -> None:
        """Select token `index` (what a click on its button does)."""
        if self.maps is None:
            raise ValueError("no prompt yet: call set_text first")
        check_index("token index", index, self.maps.T)
        self.selected = index
        self.update()

    # -- derived view

    def weights(self) -> torch.Tensor:
        """(T,) the weights shown: the selected token's row ('to') or column ('from')."""
        if self.maps is None or self.selected is None:
            return torch.zeros(0)
        w = self.maps.head(self.layer, self.head)
        return w[self.selected] if self.direction == "to" else w[:, self.selected]

    def _rebuild_buttons(self) -> None:
        import ipywidgets as W

        self.buttons = []
        for i, t in enumerate(self.maps.tokens if self.maps is not None else []):
            b = W.Button(description=display_token(t, for_plot=False),
                         layout=W.Layout(width="auto", margin="1px", padding="0px 5px", height="26px"))
            b.on_click(lambda _b, i=i: self.select(i))
            self.buttons.append(b)
        self.tokens_w.children = tuple(self.buttons)

    def summary(self) -> str:
        """The status line as plain text: the selected token and the tokens it attends to most."""
        if self.maps is None:
            return self.message
        w = self.weights()
        vals, idx = w.topk(min(5, int((w > 0).sum())))
        verb = "attends most to" if self.direction == "to" else "is attended most by"
        label = lambda i: display_token(self.maps.tokens[i], for_plot=False)  # noqa: E731
        parts = ", ".join(f"{int(i)} ‹{label(int(i))}› {float(v):.2f}" for v, i in zip(vals, idx))
        return f"layer {self.layer}, head {self.head}: {self.selected} ‹{label(self.selected)}› {verb} {parts}"

    def update(self) -> None:
        """Recolour the token buttons, rewrite the summary line and redraw the heatmap."""
        if self.maps is None:
            self.colours = []
            self.status_w.value = f"<i>{html.escape(self.message)}</i>"
            self.image_w.value = b""
            return
        w = self.weights()
        top = 1.0 if self.scale == "absolute" else max(float(w.max()), 1e-9)
        rgb = self.TO_RGB if self.direction == "to" else self.FROM_RGB
        self.colours = [_weight_colour(float(v) / top, rgb) for v in w]
        for i, (b, c) in enumerate(zip(self.buttons, self.colours)):
            b.style.button_color = c
            b.style.text_color = _text_colour(c)
            b.style.font_weight = "bold" if i == self.selected else ""
            b.tooltip = f"{i}: {float(w[i]):.3f}"
        scale = SCALES[self.scale] + (f"; largest {top:.2f}" if self.scale == "relative" else "")
        note = f"<div style='color:#b00020'>{html.escape(self.message)}</div>" if self.message else ""
        self.status_w.value = (f"<div style='line-height:1.4'><div>{html.escape(self.summary())}</div>"
                               f"<div style='font-size:90%;color:#555'>{html.escape(scale)}</div>{note}</div>")
        if self.render:
            self.image_w.value = figure_png(self.heatmap_figure(), dpi=self.CSS_DPI * self.PIXEL_RATIO, tight=False)

    def _window(self) -> tuple[int, int]:
        T, sel = self.maps.T, self.selected
        start = int(np.clip(sel - self.max_tokens // 2, 0, max(T - self.max_tokens, 0)))
        return start, min(T, start + self.max_tokens)

    def _draw_heatmap(self, fig, rect: tuple[float, float, float, float]) -> None:
        """The selected head around the selected token, inside rect (figure fractions), with a colour bar."""
        x0, y0, w, h = rect
        ax = fig.add_axes((x0 + 0.17 * w, y0 + 0.17 * h, 0.66 * w, 0.72 * h))
        start, end = self._window()
        vmax = 1.0 if self.scale == "absolute" else None
        plot_head(self.maps, self.layer, self.head, window=(start, end), ax=ax, highlight=self.selected, vmax=vmax,
                  colorbar=False, title=f"layer {self.layer}, head {self.head}, tokens {start}-{end - 1}")
        ax.title.set_fontsize(10)
        ax.set_xlabel("key (attended to)", fontsize=9)
        ax.set_ylabel("query (attending)", fontsize=9)
        cax = fig.add_axes((x0 + 0.86 * w, y0 + 0.17 * h, 0.025 * w, 0.72 * h))
        bar = fig.colorbar(ax.images[0], cax=cax)
        bar.set_label("weight (0–1)" if self.scale == "absolute" else "weight (relative)", fontsize=9)
        cax.tick_params(labelsize=8)

    def heatmap_figure(self):
        """The heatmap the widget shows, as a Figure of exactly the shown size (HEATMAP_CSS_PX at CSS_DPI)."""
        from matplotlib.figure import Figure

        w, h = self.HEATMAP_CSS_PX
        fig = Figure(figsize=(w / self.CSS_DPI, h / self.CSS_DPI))
        self._draw_heatmap(fig, (0.0, 0.0, 1.0, 1.0))
        return fig

    def snapshot_figure(self):
        """A static picture of the widget's state (tokens coloured, status line, heatmap): what a
        notebook viewer without a widget front end shows instead of the interactive view."""
        from matplotlib.figure import Figure

        w, h = self.HEATMAP_CSS_PX
        fig = Figure(figsize=(2 * w / self.CSS_DPI, h / self.CSS_DPI))
        fig.text(0.01, 0.97, "AttentionExplorer: a static picture; run the notebook for the interactive view",
                 fontsize=9, color="#555", va="top")
        ax = fig.add_axes((0.01, 0.02, 0.47, 0.72))
        ax.set_axis_off()
        if self.maps is None:
            ax.text(0, 1, self.message, va="top", fontsize=10, transform=ax.transAxes)
            return fig
        status = textwrap.fill(display_token(self.summary()), 80) + "\n" + SCALES[self.scale]
        fig.text(0.01, 0.9, status, fontsize=8, va="top", linespacing=1.4)
        _draw_token_strip(ax, self.maps.tokens, self.colours, self.selected)
        self._draw_heatmap(fig, (0.5, 0.0, 0.5, 1.0))
        return fig

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        """The widget view for a live front end, plus a PNG snapshot and a text line for static viewers."""
        bundle = dict(self.widget._repr_mimebundle_())
        T = self.maps.T if self.maps is not None else 0
        bundle["text/plain"] = (f"AttentionExplorer: layer {self.layer}, head {self.head}, {T} tokens "
                                "(run the notebook in JupyterLab for the interactive view)")
        bundle["image/png"] = base64.b64encode(figure_png(self.snapshot_figure(), dpi=self.CSS_DPI, tight=False)).decode("ascii")
        return bundle


def prompt_rows(text: str, width: int = 80, most: int = 12) -> int:
    """Rows for the prompt box: enough for `text` (its lines, each wrapped at about `width`
    characters), at least 3 and at most `most` (beyond that the box scrolls); review C4."""
    need = sum(max(1, math.ceil(len(line) / width)) for line in text.split("\n"))
    return int(min(max(need, 3), most))


def _draw_token_strip(ax, tokens: Sequence[str], colours: Sequence[str], selected: int | None, width: int = 46) -> None:
    """Tokens as coloured boxes of monospace text, wrapped at `width` characters and after newlines."""
    from matplotlib.patches import Rectangle

    rows = int(ax.bbox.height / 17) or 1  # 17 px a row at 10 pt
    x = y = 0
    for i, (t, c) in enumerate(zip(tokens, colours)):
        label = display_token(t)
        n = max(len(label), 1)
        if x + n > width and x > 0:
            x, y = 0, y + 1
        if y >= rows:
            ax.text(0, y - 0.2, "…", fontsize=10, family="monospace", va="center")
            break
        ax.add_patch(Rectangle((x - 0.05, y - 0.45), n + 0.1, 0.9, facecolor=c, edgecolor="#d62728" if i == selected else "#cccccc",
                               linewidth=1.5 if i == selected else 0.5))
        ax.text(x + n / 2, y, label, ha="center", va="center", fontsize=10, family="monospace", color=_text_colour(c),
                fontweight="bold" if i == selected else "normal")
        x += n + 0.3
        if "\n" in t:
            x, y = 0, y + 1
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(rows - 0.5, -0.6)


def explore(model, tokenizer, text: str = "", **kw) -> AttentionExplorer:
    """Build an AttentionExplorer (display it as a cell's last expression)."""
    return AttentionExplorer(model, tokenizer, text, **kw)


# ----------------------------------------------------------------- offline HTML view


def _script_json(obj: Any) -> str:
    """JSON safe inside <script>: '<', '>' and '&' become \\u escapes, so a token
    '</script>' or '<!--' cannot end the script element or start a comment."""
    s = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def attention_html(
    maps: AttentionMaps,
    *,
    title: str = "gptlab attention",
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    layer: int | None = None,
    head: int | None = None,
    scale: str = "absolute",
    note: str = "",
    offset: int = 0,
) -> str:
    """A whole self-contained HTML page showing `maps` (see save_attention_html).

    scale: the colour scale the page opens with, 'absolute' (weight 0..1, the same for every
    token) or 'relative' (the largest weight of the row is full colour); the page says which
    is shown and can switch. note: a line shown at the top (e.g. that the text was cut to the
    model's context). offset: the position of maps' first token in the whole text, for labels.
    """
    _check_scale(scale)
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
    layers = _select(maps.n_layer, layers, "layer")
    heads = _select(maps.n_head, heads, "head")
    # One byte per weight (resolution 1/255), base64 per head: GPT-2's 144 heads on 128
    # tokens fit in ~3 MB instead of ~12 MB of JSON floats.
    q = (maps.weights[layers][:, heads].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    data = {
        "tokens": [display_token(t, for_plot=False) for t in maps.tokens],
        "newline": [("\n" in t) for t in maps.tokens],
        "layers": layers,
        "heads": heads,
        "T": maps.T,
        "w": [[base64.b64encode(q[a, b].tobytes()).decode("ascii") for b in range(len(heads))] for a in range(len(layers))],
        "layer": layers.index(layer) if layer in layers else 0,
        "head": heads.index(head) if head in heads else 0,
        "scale": scale,
        "offset": offset,
    }
    lut = (matplotlib.colormaps[HTML_CMAP](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    data["lut"] = base64.b64encode(lut.tobytes()).decode("ascii")
    stops = ", ".join("rgb({},{},{}) {}%".format(*lut[round(255 * (1 - k / 10))], 10 * k) for k in range(11))  # top: 1
    ylabels, xlabels, width_px = _html_axis_labels(maps.tokens, offset)
    parts = {"TITLE": html.escape(title), "NOTE": html.escape(note), "DATA": _script_json(data), "YLABELS": ylabels,
             "XLABELS": xlabels, "LABELPX": str(width_px), "CBAR": stops}
    # One pass over the template: text put in (a title holding "__DATA__", say) is never scanned again.
    return re.sub(r"__(TITLE|NOTE|DATA|YLABELS|XLABELS|LABELPX|CBAR)__", lambda m: parts[m.group(1)], _PAGE)


HTML_CMAP = "viridis"  # the heatmap's colours, as in plot_head: low weights stay visible (review C9: white-blue was pale)
HTML_HEAT_PX = 360  # the heatmap's shown side
HTML_LABEL_PX = 14  # at least this far apart: every token labelled up to 25 tokens, every k-th beyond


def _html_axis_labels(tokens: Sequence[str], offset: int) -> tuple[str, str, int]:
    """The heatmap's tick labels as escaped HTML: (query labels, key labels, room they need in px).

    Every token when they fit HTML_LABEL_PX apart, else every k-th as `position ‹token›` (as the
    figures do); a token's text goes through html.escape, so '<script>' is shown, never run."""
    T = len(tokens)
    step = max(1, math.ceil(T / (HTML_HEAT_PX // HTML_LABEL_PX)))
    labels = [t if len(t) <= 10 else t[:9] + "…" for t in (display_token(t, for_plot=False) for t in tokens)]
    ys, xs, longest = [], [], 1
    for i in range(0, T, step):
        text = labels[i] if step == 1 else f"{offset + i} ‹{labels[i]}›"
        longest = max(longest, len(text))
        at = f"{100 * (i + 0.5) / T:.3f}%"
        text = html.escape(text)
        ys.append(f'<span class="yl" data-i="{i}" style="top:{at}">{text}</span>')
        xs.append(f'<span class="xl" data-i="{i}" style="left:{at}">{text}</span>')
    return "".join(ys), "".join(xs), 8 * longest + 8


def save_attention_html(maps: AttentionMaps, path: str | Path, **kw) -> Path:
    """Write the offline attention view: one .html file with everything inline (no CDN, no network).

    Tokens flow as text; click (or hover) one to colour the tokens it attends to (blue)
    or that attend to it (orange); the heatmap of the chosen head sits beside, its axes
    labelled with the tokens (every k-th one for long texts) and coloured as the figures
    (viridis, with a colour bar), and hovering it names the query and key tokens of a cell.
    Keywords as for attention_html.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(attention_html(maps, **kw), encoding="utf-8")
    return path


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h3{margin:0 0 6px}
#note{margin:0 0 8px;padding:4px 8px;background:#fff4d6;border:1px solid #e0b84c;border-radius:3px;font-size:14px}
#note:empty{display:none}
#bar{display:flex;gap:14px;align-items:center;flex-wrap:wrap;margin-bottom:4px}
#legend{font-size:13px;color:#444;height:1.6em;line-height:1.6em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;margin-bottom:6px}
#swatch{display:inline-block;width:90px;height:11px;vertical-align:middle;border:1px solid #999;margin:0 6px}
#main{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap}
#left{flex:0 0 auto;width:min(640px,100%)}
#tokens{line-height:2;font-family:ui-monospace,monospace;font-size:14px}
.tok{white-space:pre;padding:2px 1px;margin:0 1px;border-radius:3px;cursor:pointer;border:1px solid #ddd}
.tok.sel{outline:2px solid #d62728}
#heatgrid{display:grid;grid-template-columns:__LABELPX__px 360px 64px;grid-template-rows:360px __LABELPX__px}
#heat{border:1px solid #999;width:360px;height:360px;cursor:crosshair;display:block;box-sizing:border-box}
#ylab,#xlab{position:relative;font:12px/1 ui-monospace,monospace;color:#333}
.yl{position:absolute;right:5px;transform:translateY(-50%);white-space:pre}
.xl{position:absolute;top:5px;writing-mode:vertical-rl;transform:translateX(-50%) rotate(180deg);white-space:pre}
.yl.sel,.xl.sel{font-weight:bold;color:#d62728}
#cbar{position:relative;margin-left:8px}
#cbar-grad{position:absolute;left:0;top:0;width:12px;height:358px;border:1px solid #999;background:linear-gradient(to bottom, __CBAR__)}
#cbar span{position:absolute;left:18px;transform:translateY(-50%);font-size:12px;white-space:nowrap}
#info{font-size:13px;margin-top:6px;height:3.2em;line-height:1.6em;overflow:hidden}
#hover{font-size:13px;width:360px;height:1.6em;line-height:1.6em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-family:ui-monospace,monospace}
.hint{font-size:12px;color:#666}
</style></head><body>
<h3 id="title">__TITLE__</h3>
<p id="note">__NOTE__</p>
<div id="bar">
<label>layer <select id="layer"></select></label>
<label>head <select id="head"></select></label>
<label><input type="radio" name="dir" id="dir-to" value="to" checked> attends to</label>
<label><input type="radio" name="dir" id="dir-from" value="from"> attended by</label>
<span>colours: <label><input type="radio" name="scale" id="scale-absolute" value="absolute"> weight 0–1</label>
<label><input type="radio" name="scale" id="scale-relative" value="relative"> relative to the row's largest</label></span>
<span class="hint">click a token to pin it, hover to peek</span>
</div>
<div id="legend"></div>
<div id="main"><div id="left"><div id="tokens"></div><div id="info"></div></div>
<div><div id="heatgrid"><div id="ylab">__YLABELS__</div><canvas id="heat" width="720" height="720"></canvas>
<div id="cbar" title="the heatmap's colours: attention weight"><div id="cbar-grad"></div><span style="top:1px" id="cbar-top">1</span>
<span style="top:50%" id="cbar-mid">0.5</span><span style="top:359px">0</span></div>
<div></div><div id="xlab">__XLABELS__</div><div></div></div>
<div id="hover"></div>
<div class="hint">rows: query (attending), columns: key (attended to); hover a cell to read it, click a row to select</div></div></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const T = D.T, OFF = D.offset;
const cache = {};
function weights(li, hi) {
  const key = li + "," + hi;
  if (!cache[key]) {
    const s = atob(D.w[li][hi]), a = new Float32Array(s.length);
    for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i) / 255;
    cache[key] = a;
  }
  return cache[key];
}
const state = {layer: D.layer, head: D.head, pinned: T - 1, hover: null, dir: "to", scale: D.scale};
const RGB = {to: [31, 119, 180], from: [214, 96, 18]};
const layerSel = document.getElementById("layer"), headSel = document.getElementById("head");
D.layers.forEach((l, i) => {
  const o = document.createElement("option"); o.value = i; o.textContent = "layer " + l; layerSel.appendChild(o);
});
D.heads.forEach((h, i) => {
  const o = document.createElement("option"); o.value = i; o.textContent = "head " + h; headSel.appendChild(o);
});
layerSel.value = state.layer; headSel.value = state.head;
document.getElementById("scale-" + state.scale).checked = true;
function label(j) { return (j + OFF) + " \u2039" + D.tokens[j] + "\u203a"; }  // 44 ‹:›: position, then the token
const box = document.getElementById("tokens"), spans = [];
D.tokens.forEach((t, i) => {
  const s = document.createElement("span");
  s.className = "tok"; s.textContent = t; s.dataset.i = i;  // textContent: a token is never parsed as HTML
  s.addEventListener("click", () => { state.pinned = i; draw(); });
  s.addEventListener("mouseenter", () => { state.hover = i; draw(); });
  s.addEventListener("mouseleave", () => { state.hover = null; draw(); });
  box.appendChild(s); spans.push(s);
  box.appendChild(document.createElement(D.newline[i] ? "br" : "wbr"));  // a line may break between any two tokens
});
layerSel.addEventListener("change", () => { state.layer = +layerSel.value; draw(); });
headSel.addEventListener("change", () => { state.head = +headSel.value; draw(); });
document.querySelectorAll("input[name=dir]").forEach(r => r.addEventListener("change", () => { state.dir = r.value; draw(); }));
document.querySelectorAll("input[name=scale]").forEach(r => r.addEventListener("change", () => { state.scale = r.value; draw(); }));
// white text where it contrasts more than black (WCAG relative luminance below 0.179)
function textColour(rgb, a) {
  const lin = rgb.map(c => {
    const x = (255 + (c - 255) * a) / 255;
    return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] < 0.179 ? "#fff" : "#222";
}
const canvas = document.getElementById("heat"), hover = document.getElementById("hover");
const HOVER_HINT = "hover the heatmap to read a cell";
hover.textContent = HOVER_HINT;
const cells = document.createElement("canvas");  // T x T, one pixel per weight, scaled up without smoothing
cells.width = T; cells.height = T;
const LUT = Uint8Array.from(atob(D.lut), c => c.charCodeAt(0));  // 256 colours of the figures' colour map
const axisLabels = Array.from(document.querySelectorAll(".yl, .xl"));
function cellAt(e) {
  const r = canvas.getBoundingClientRect();
  return [Math.min(T - 1, Math.floor((e.clientY - r.top) / r.height * T)), Math.min(T - 1, Math.floor((e.clientX - r.left) / r.width * T))];
}
canvas.addEventListener("click", e => { state.pinned = cellAt(e)[0]; draw(); });
canvas.addEventListener("mousemove", e => {
  const [i, j] = cellAt(e), w = weights(state.layer, state.head);
  const text = "query " + label(i) + " \u2192 key " + label(j) + ": " + (j > i ? "future (masked)" : w[i * T + j].toFixed(3));
  hover.textContent = text; canvas.title = text;
});
canvas.addEventListener("mouseleave", () => { hover.textContent = HOVER_HINT; });
function rowMax(w, i) { let m = 1e-9; for (let j = 0; j <= i; j++) if (w[i * T + j] > m) m = w[i * T + j]; return m; }
function draw() {
  const w = weights(state.layer, state.head), sel = state.hover !== null ? state.hover : state.pinned;
  const vec = new Float32Array(T);
  for (let j = 0; j < T; j++) vec[j] = state.dir === "to" ? w[sel * T + j] : w[j * T + sel];
  let top = 1e-9; vec.forEach(v => { if (v > top) top = v; });
  const div = state.scale === "absolute" ? 1 : top, rgb = RGB[state.dir];
  spans.forEach((s, j) => {
    const a = Math.min(1, vec[j] / div);
    s.style.background = "rgba(" + rgb.join(",") + "," + a.toFixed(3) + ")";
    s.style.color = textColour(rgb, a);
    s.classList.toggle("sel", j === sel);
    s.title = label(j) + ": " + vec[j].toFixed(3);
  });
  const c = "rgb(" + rgb.join(",") + ")";
  const legend = document.getElementById("legend"), sw = document.createElement("span");
  legend.replaceChildren();
  sw.id = "swatch"; sw.style.background = "linear-gradient(to right, #fff, " + c + ")";
  legend.append("colour scale: ", state.scale === "absolute" ? "attention weight, fixed 0" : "relative: 0", sw,
    state.scale === "absolute" ? "1 (the same for every token and head)" : top.toFixed(2) + " (the largest weight in this row)");
  const order = Array.from(vec.keys()).sort((a, b) => vec[b] - vec[a]).slice(0, 5).filter(j => vec[j] > 0);
  document.getElementById("info").textContent = label(sel) + (state.dir === "to" ? " attends most to " : " is attended most by ")
    + order.map(j => label(j) + " " + vec[j].toFixed(2)).join(", ");
  const small = cells.getContext("2d"), img = small.createImageData(T, T);
  for (let i = 0; i < T; i++) {
    const d = state.scale === "absolute" ? 1 : rowMax(w, i);
    for (let j = 0; j < T; j++) {
      const p = 4 * (i * T + j), v = Math.min(1, w[i * T + j] / d), c = 3 * Math.round(255 * v);
      if (j > i) { img.data[p] = img.data[p + 1] = img.data[p + 2] = 255; }  // the future: masked, white
      else { for (let k = 0; k < 3; k++) img.data[p + k] = LUT[c + k]; }
      img.data[p + 3] = 255;
    }
  }
  small.putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d"), cell = canvas.width / T;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(cells, 0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 3;  // as the figures: the selected token's row in red, its column in orange
  ctx.strokeStyle = "#d62728"; ctx.strokeRect(1.5, sel * cell + 1.5, canvas.width - 3, Math.max(cell - 3, 1));
  ctx.strokeStyle = "#ff7f0e"; ctx.strokeRect(sel * cell + 1.5, 1.5, Math.max(cell - 3, 1), canvas.height - 3);
  axisLabels.forEach(e => e.classList.toggle("sel", +e.dataset.i === sel));
  document.getElementById("cbar-top").textContent = state.scale === "absolute" ? "1" : "row max";
  document.getElementById("cbar-mid").textContent = state.scale === "absolute" ? "0.5" : "½ max";
}
draw();
</script></body></html>
"""
