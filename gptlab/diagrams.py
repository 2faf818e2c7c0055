"""Concept diagrams drawn by code, so every lesson's picture is reproducible and diffable (lessons 00, 04, 05, 07).

Four pictures the lessons keep pointing at:

- `gpt_data_flow`: text -> tokens -> ids -> embeddings -> N blocks -> ln_f -> tied head -> logits -> next token.
- `block_diagram`: one pre-LN Transformer block on its residual stream.
- `kv_cache_diagram`: what a KV cache saves during decoding (one new query per step).
- `transformer_families`: encoder-only (BERT), decoder-only (GPT), encoder-decoder
  (original Transformer, T5) side by side, each with its attention masks.

Why code and not image files: a PNG drawn once drifts from the code it explains and
cannot be fixed in a pull request; these are a few boxes and arrows in matplotlib,
use the module names of `gptlab.model` (wte, wpe, ln_1, attn, ln_2, mlp, ln_f, lm_head)
and contain no CJK glyphs (fonts differ between machines). Each function returns a
`matplotlib.figure.Figure` with a title; in a notebook end the cell with `plt.show()`,
for slides use `gptlab.viz.save_figure`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# One colour per kind of component, the same in every diagram.
COLORS = {
    "data": "#e8e8e8",  # text, tokens, ids, logits: things that are not learned
    "embed": "#cfe2f3",  # embeddings and the tied head
    "attn": "#f9cb9c",  # attention
    "mlp": "#b6d7a8",  # MLP
    "norm": "#fff2cc",  # LayerNorm
    "cache": "#d9d2e9",  # cached keys/values
    "encoder": "#d0e0e3",  # a whole encoder stack (transformer_families)
    "decoder": "#ead1dc",  # a whole decoder stack (transformer_families)
}


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, kind: str = "data", fontsize: float = 10) -> None:
    """A rounded box centred on (x, y) in data coordinates."""
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=COLORS[kind], edgecolor="#333333", linewidth=1.0,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], style: str = "-|>", **kw) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color="#333333", linewidth=1.2, **kw))


def _canvas(ax: Axes, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")


def gpt_data_flow() -> Figure:
    """The whole GPT forward pass and the decoding loop, with the tensor shape after each step.

    Why: lessons 01-07 each build one box of this chain; the picture says where each
    lesson's piece sits and what shape flows between them.
    """
    fig, ax = plt.subplots(figsize=(9, 9.5))
    steps = [  # (label, kind, shape)
        ('text  "Your journey starts"', "data", "a string"),
        ('tokens  "Your" " journey" " starts"', "data", "T pieces (lesson 01)"),
        ("ids  (integers < vocab_size)", "data", "(B, T)"),
        ("token embedding wte + position embedding wpe", "embed", "(B, T, C)  (lesson 02)"),
        ("N x Transformer block\n(causal self-attention + MLP)", "attn", "(B, T, C)  (lessons 03-04)"),
        ("final LayerNorm ln_f", "norm", "(B, T, C)"),
        ("LM head lm_head  (weights tied to wte)", "embed", "(B, T, vocab_size)  (lesson 05)"),
        ("logits -> softmax over the vocabulary", "data", "(B, vocab_size) at the last position"),
        ('next token  " with"', "data", "sampled or argmax (lesson 07)"),
    ]
    n = len(steps)
    ys = [n - 1 - i for i in range(n)]
    for (label, kind, shape), y in zip(steps, ys):
        _box(ax, 0, y, 5.6, 0.62, label, kind)
        ax.text(3.05, y, shape, ha="left", va="center", fontsize=9, color="#444444")
    for y in ys[:-1]:
        _arrow(ax, (0, y - 0.31), (0, y - 0.69))
    # Decoding loop: the new token is appended to the ids and the model runs again.
    _arrow(ax, (-2.8, ys[-1]), (-2.8, ys[2]), style="-|>", connectionstyle="bar,fraction=-0.12")
    ax.text(-4.35, (ys[-1] + ys[2]) / 2, "append to ids,\nrun again\n(decoding loop)", ha="center", va="center", fontsize=9, rotation=90)
    # Weight tying between wte and lm_head.
    _arrow(ax, (2.8, ys[3]), (2.8, ys[6]), style="<->", linestyle="--", connectionstyle="bar,fraction=0.06")
    ax.text(2.95, (ys[3] + ys[6]) / 2, "same matrix\n(tied)", ha="left", va="center", fontsize=8, color="#1f4e79")
    _canvas(ax, (-4.6, 7.0), (-0.6, n - 0.4))
    ax.set_title("GPT data flow: from text to the next token", fontsize=13)
    fig.tight_layout()
    return fig


def block_diagram() -> Figure:
    """One pre-LN block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)).

    Why: the residual stream (the straight vertical line) carries x through unchanged;
    each sub-layer only reads a normalised copy and adds its result back. That is why
    deep stacks train (He et al. 2016; Xiong et al. 2020 on pre-LN).
    """
    fig, ax = plt.subplots(figsize=(8, 8.5))
    sx = 0.0  # x position of the residual stream
    _arrow(ax, (sx, 0.0), (sx, 9.6))
    ax.text(sx - 0.15, 0.2, "x  (B, T, C) in", ha="right", va="bottom", fontsize=10)
    ax.text(sx - 0.15, 9.4, "x  (B, T, C) out", ha="right", va="top", fontsize=10)
    ax.text(sx - 0.25, 4.8, "residual stream", ha="right", va="center", fontsize=10, rotation=90, color="#1f4e79")
    for y0, norm, layer, kind, eq in [
        (1.0, "ln_1  LayerNorm", "attn  causal self-attention\n(n_head heads)", "attn", "x = x + attn(ln_1(x))"),
        (5.3, "ln_2  LayerNorm", "mlp  Linear C->4C, GELU,\nLinear 4C->C", "mlp", "x = x + mlp(ln_2(x))"),
    ]:
        bx = 2.6
        _arrow(ax, (sx, y0), (bx, y0 + 0.5), connectionstyle="angle,angleA=0,angleB=90")
        _box(ax, bx, y0 + 0.85, 2.8, 0.7, norm, "norm")
        _arrow(ax, (bx, y0 + 1.2), (bx, y0 + 1.75))
        _box(ax, bx, y0 + 2.25, 3.2, 1.0, layer, kind)
        _arrow(ax, (bx, y0 + 2.75), (sx + 0.25, y0 + 3.3), connectionstyle="angle,angleA=90,angleB=0")
        ax.add_patch(plt.Circle((sx, y0 + 3.3), 0.25, facecolor="white", edgecolor="#333333", zorder=3))
        ax.text(sx, y0 + 3.3, "+", ha="center", va="center", fontsize=14, zorder=4)
        ax.text(4.5, y0 + 2.25, eq, ha="left", va="center", fontsize=10, family="monospace")
    _canvas(ax, (-3.0, 7.8), (-0.2, 9.8))
    ax.set_title("A pre-LN Transformer block on its residual stream", fontsize=13)
    fig.tight_layout()
    return fig


def kv_cache_diagram(steps: int = 6) -> Figure:
    """What a KV cache saves: left, work per decoding step without it; right, one step with it.

    Why: without a cache, step t recomputes keys and values for every earlier position
    (a triangle of work); with it, step t computes q, k, v for the new token only and
    reads the cached keys/values (a diagonal of new work). Attention itself still reads
    all t keys, so the saving is in the projections and MLPs of the earlier positions.
    """
    if not isinstance(steps, int) or not 2 <= steps <= 16:
        raise ValueError(f"steps must be an int in [2, 16] so the grid stays readable, got {steps!r}")
    fig, (ax_grid, ax_step) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [1, 1.35]})
    # Left: which positions' k, v each step computes (1 = computed now, 0.5 = read from cache).
    without = np.tril(np.ones((steps, steps)))
    with_cache = np.tril(np.full((steps, steps), 0.5)) + 0.5 * np.eye(steps)
    grid = np.concatenate([without, np.full((steps, 1), np.nan), with_cache], axis=1)
    cmap = plt.get_cmap("Purples").with_extremes(bad="white")
    ax_grid.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1.2)
    ax_grid.set_xticks(list(range(steps)) + list(range(steps + 1, 2 * steps + 1)))
    ax_grid.set_xticklabels([str(i) for i in range(steps)] * 2)
    ax_grid.set_yticks(range(steps))
    ax_grid.set_yticklabels([str(i + 1) for i in range(steps)])
    ax_grid.set_xlabel("position whose key/value is used")
    ax_grid.set_ylabel("decoding step")
    ax_grid.text((steps - 1) / 2, -0.8, "no cache:\nrecompute all", ha="center", va="bottom", fontsize=9)
    ax_grid.text(steps + 1 + (steps - 1) / 2, -0.8, "KV cache:\nnew one only", ha="center", va="bottom", fontsize=9)
    ax_grid.set_title("k, v computed per step (dark) vs\nread from the cache (light)", fontsize=10, pad=34)

    # Right: one step with the cache.
    t = steps - 1
    w = 0.8
    for i in range(steps):
        kind = "attn" if i == t else "cache"
        _box(ax_step, i * 0.9, 2.0, w, 0.6, f"k{i}", kind, fontsize=9)
        _box(ax_step, i * 0.9, 0.9, w, 0.6, f"v{i}", kind, fontsize=9)
    _box(ax_step, t * 0.9, 3.6, w, 0.6, f"q{t}", "attn", fontsize=9)
    for i in range(steps):  # the new query is compared with EVERY key, cached or new
        _arrow(ax_step, (t * 0.9, 3.3), (i * 0.9, 2.3), linestyle="-" if i == t else "--")
    ax_step.text(t * 0.45, 3.6, f"q{t} attends to every key k0..k{t}", ha="center", va="center", fontsize=9)
    ax_step.text(t * 0.9 + 0.5, 3.6, f"new token: one query,\none new key k{t} and value v{t}", ha="left", va="center", fontsize=9)
    ax_step.text((t - 1) * 0.45, 1.45, f"cached keys k0..k{t - 1} (reused)", ha="center", va="center", fontsize=9)
    ax_step.text((t - 1) * 0.45, 0.2, f"cached values v0..v{t - 1} (reused)", ha="center", va="center", fontsize=9)
    ax_step.text(
        (steps - 1) * 0.45, -0.6,
        f"out{t} = softmax(q{t} k^T / sqrt(head_size)) v  over positions 0..{t}\n(causal for free: the cache holds only the past)",
        ha="center", va="center", fontsize=9,
    )
    _canvas(ax_step, (-0.6, steps * 0.9 + 2.6), (-1.2, 4.2))
    ax_step.set_title(f"Decoding step {t + 1} with a KV cache", fontsize=10)
    fig.suptitle("The KV cache: past keys and values are reused, one new query per step", fontsize=13)
    fig.tight_layout()
    return fig


def _mask(ax: Axes, mask: np.ndarray, title: str, query: str, key: str) -> None:
    ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.3)
    n_q, n_k = mask.shape
    ax.set_xticks(range(n_k))
    ax.set_yticks(range(n_q))
    ax.tick_params(labelsize=9, length=2, pad=2)  # as large as the boxes' text above (review C5: 7 pt was too small)
    ax.set_xlabel(key, fontsize=9)
    ax.set_ylabel(query, fontsize=9)
    ax.set_title(title, fontsize=10)


def _stack(ax: Axes, x: float, source: str, layer: str, kind: str, label: str) -> None:
    _box(ax, x, 0.3, 2.2, 0.5, source, "data", fontsize=8)
    _arrow(ax, (x, 0.55), (x, 0.95))
    _box(ax, x, 1.65, 2.2, 1.3, layer, kind, fontsize=8)
    _arrow(ax, (x, 2.3), (x, 2.7))
    _box(ax, x, 2.95, 2.2, 0.5, label, "data", fontsize=8)


def transformer_families(n: int = 5) -> Figure:
    """Encoder-only, decoder-only and encoder-decoder Transformers, each with its attention masks.

    Why: the three families differ mostly in *who may attend to whom*. BERT's encoder is
    bidirectional (every token sees every token); GPT is decoder-only with a causal mask
    (a token sees itself and the past, so it can generate left to right); the original
    Transformer and T5 pair a bidirectional encoder with a causal decoder that also reads
    the encoder through cross-attention.
    """
    if not isinstance(n, int) or not 2 <= n <= 12:
        raise ValueError(f"n (tokens per mask) must be an int in [2, 12], got {n!r}")
    m = n + 2  # the source is usually not as long as the target: the cross-attention mask is n x m
    full, causal, source, cross = np.ones((n, n)), np.tril(np.ones((n, n))), np.ones((m, m)), np.ones((n, m))
    fig = plt.figure(figsize=(12, 6.6))
    outer = fig.add_gridspec(2, 3, height_ratios=[1.25, 1], hspace=0.25, wspace=0.12, left=0.04, right=0.965, top=0.88, bottom=0.08)

    def top(col: int, title: str) -> Axes:
        ax = fig.add_subplot(outer[0, col])
        _canvas(ax, (-2.5, 2.5), (0, 3.9))
        ax.set_title(title, fontsize=11)
        return ax

    def masks(col: int, specs: list[tuple[np.ndarray, str, str, str]]) -> None:
        inner = outer[1, col].subgridspec(1, 3, wspace=0.6)
        slots = [1] if len(specs) == 1 else [0, 1, 2]
        for slot, (mask, title, query, key) in zip(slots, specs):
            _mask(fig.add_subplot(inner[slot]), mask, title, query, key)

    ax = top(0, "Encoder-only: BERT")
    _stack(ax, 0, "input tokens", "N x encoder block\nbidirectional\nself-attention + MLP", "encoder",
           "a vector per token\n(classify, tag, embed)")
    masks(0, [(full, "self-attention:\nbidirectional", "query position", "key position")])

    ax = top(1, "Decoder-only: GPT")
    _stack(ax, 0, "input tokens", "N x decoder block\ncausal (masked)\nself-attention + MLP", "decoder",
           "next-token logits\n(generate left to right)")
    masks(1, [(causal, "self-attention:\ncausal", "query position", "key position")])

    ax = top(2, "Encoder-decoder: original Transformer, T5")
    _stack(ax, -1.25, "source tokens", "N x encoder block\nbidirectional\nself-attention + MLP", "encoder", "encoder states")
    _stack(ax, 1.25, "target tokens so far", "N x decoder block\ncausal self-attn\n+ cross-attn + MLP", "decoder",
           "next-token logits")
    _arrow(ax, (-0.15, 2.95), (0.15, 1.9))
    ax.text(0, 3.35, "cross-attention: the decoder\nreads the encoder states", ha="center", va="bottom", fontsize=8)
    masks(2, [
        (source, "encoder self:\nbidirectional", "source query", "source key"),
        (causal, "decoder self:\ncausal", "target query", "target key"),
        (cross, "cross-attention:\nsees all source", "target query", "source key"),
    ])

    fig.suptitle("Three Transformer families and their attention masks (blue = may attend)", fontsize=13)
    return fig
