"""Concept diagrams (gptlab.diagrams): each is a titled Figure that names what it claims to show."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from gptlab import diagrams  # noqa: E402

EXPECTED = {
    "gpt_data_flow": ["tokens", "ids", "wte", "wpe", "Transformer block", "ln_f", "lm_head", "tied", "logits", "next token"],
    "block_diagram": ["ln_1", "ln_2", "attn", "mlp", "GELU", "residual stream", "x = x + attn(ln_1(x))", "x = x + mlp(ln_2(x))", "+"],
    "kv_cache_diagram": ["decoding step", "cached keys", "cached values", "q5", "k5", "v0", "no cache"],
    "transformer_families": ["BERT", "GPT", "T5", "bidirectional", "causal", "cross-attention", "key position", "query position"],
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_diagram_is_titled_labelled_and_saves(name, tmp_path):
    fig = getattr(diagrams, name)()
    assert isinstance(fig, Figure)
    title = fig.get_suptitle() or fig.axes[0].get_title()
    assert title.strip(), f"{name} has no title"
    text = texts(fig)
    missing = [label for label in EXPECTED[name] if label not in text]
    assert not missing, f"{name} lacks labels {missing}"
    assert all(ord(ch) < 0x2E80 for ch in text), f"{name} has CJK glyphs (fonts differ between machines)"
    out = tmp_path / f"{name}.png"
    fig.savefig(out, dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_masks_are_drawn_as_claimed():
    """The family figure's mask images really are full (bidirectional) and lower-triangular (causal)."""
    fig = diagrams.transformer_families(n=4)
    by_title = {ax.get_title(): ax.images[0].get_array() for ax in fig.axes if ax.images}
    assert by_title["self-attention:\nbidirectional"].min() == 1
    causal = by_title["self-attention:\ncausal"]
    assert causal.shape == (4, 4) and causal[0, 1] == 0 and causal[3, 0] == 1 and causal.sum() == 10
    assert by_title["cross-attention:\nsees all source"].min() == 1


def test_kv_cache_grid_counts_the_work():
    """Without a cache step t computes t keys/values (a triangle); with one, exactly one per step."""
    fig = diagrams.kv_cache_diagram(steps=4)
    grid = fig.axes[0].images[0].get_array()
    without, with_cache = grid[:, :4], grid[:, 5:]
    assert (without == 1).sum() == 10 and (with_cache == 1).sum() == 4


@pytest.mark.parametrize("fn,arg", [(diagrams.kv_cache_diagram, 1), (diagrams.kv_cache_diagram, 40), (diagrams.transformer_families, 2.5)])
def test_bad_sizes_are_rejected(fn, arg):
    with pytest.raises(ValueError, match="must be an int"):
        fn(arg)


def test_kv_cache_query_reads_every_key_and_cross_attention_is_rectangular():
    """Review C1/C4: the new query's arrows reach every key (not only its own), and the cross-attention
    mask is target x source, not square; C3: the family stacks have their own colours, not attn/mlp's."""
    fig = diagrams.kv_cache_diagram(steps=6)
    arrows = [p for p in fig.axes[1].patches if type(p).__name__ == "FancyArrowPatch"]
    assert len(arrows) == 6
    fig = diagrams.transformer_families(n=4)
    by_title = {ax.get_title(): ax.images[0].get_array() for ax in fig.axes if ax.images}
    assert by_title["cross-attention:\nsees all source"].shape == (4, 6)
    assert by_title["encoder self:\nbidirectional"].shape == (6, 6)
    assert {"encoder", "decoder"} <= set(diagrams.COLORS)
