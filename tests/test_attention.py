"""Attention capture and head scores (gptlab.attention)."""

import pytest
import torch

from gptlab import GPT, GPTConfig
from gptlab.attention import (
    AttentionMaps,
    capture_attention,
    first_token_scores,
    get_attention,
    head_scores,
    induction_scores,
    induction_scores_from_weights,
    mean_attention_distance,
    previous_token_scores,
    top_heads,
)
from gptlab.tokenizers import CharTokenizer


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("tiny", **kw))


def ids(T: int = 12, V: int = 96, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (T,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("flash", [True, False])
def test_capture_leaves_outputs_bit_identical(flash):
    model = tiny()
    for m in model.modules():
        if hasattr(m, "flash"):
            m.flash = flash
    x = ids(16)
    with torch.no_grad():
        plain, _ = model(x[None])
    maps = get_attention(model, x)
    assert torch.equal(maps.logits, plain[0])  # bit for bit, not just close
    with torch.no_grad():
        after, _ = model(x[None])
    assert torch.equal(after, plain)


def test_shapes_rows_and_causality():
    model = tiny(n_layer=3, n_head=4)
    maps = get_attention(model, ids(10))
    assert maps.weights.shape == (3, 4, 10, 10)
    assert (maps.n_layer, maps.n_head, maps.T) == (3, 4, 10)
    assert len(maps.tokens) == 10 and maps.ids.shape == (10,) and maps.logits.shape == (10, 96)
    torch.testing.assert_close(maps.weights.sum(-1), torch.ones(3, 4, 10))
    upper = torch.ones(10, 10, dtype=torch.bool).triu(1)
    assert torch.all(maps.weights[..., upper] == 0)
    assert torch.all(maps.weights[..., ~upper] > 0)
    assert maps.weights[..., 0, 0].eq(1).all()  # the first token can only look at itself


def test_flash_and_explicit_paths_capture_the_same_weights():
    model = tiny()
    a = get_attention(model, ids())
    for m in model.modules():
        if hasattr(m, "flash"):
            m.flash = False
    b = get_attention(model, ids())
    torch.testing.assert_close(a.weights, b.weights)


def test_flags_mode_and_memory_restored_even_after_an_error():
    model = tiny()
    model.train()
    layers = [m for m in model.modules() if hasattr(m, "capture")]
    layers[1].capture = True  # someone had switched one layer on: keep it that way
    get_attention(model, ids())
    assert [m.capture for m in layers] == [False, True]
    assert layers[0].att is None
    assert model.training
    with pytest.raises(RuntimeError, match="boom"):
        with capture_attention(model):
            assert all(m.capture for m in layers)
            raise RuntimeError("boom")
    assert [m.capture for m in layers] == [False, True]


def test_text_input_token_strings_and_batch_shape():
    tok = CharTokenizer.from_text("hello world\n")
    model = tiny(vocab_size=tok.n_vocab)
    maps = get_attention(model, "hello\nworld", tok)
    assert maps.tokens == list("hello\nworld")
    assert maps.ids.tolist() == tok.encode("hello\nworld")
    same = get_attention(model, torch.tensor([tok.encode("hello\nworld")]))  # (1, T) works too
    torch.testing.assert_close(same.weights, maps.weights)
    assert same.tokens[0].startswith("#")


def test_errors_and_truncation():
    model = tiny()  # block_size 32
    with pytest.raises(ValueError, match="tokenizer"):
        get_attention(model, "text")
    with pytest.raises(ValueError, match="block_size"):
        get_attention(model, ids(40))
    with pytest.raises(ValueError, match="one sequence"):
        get_attention(model, torch.zeros(2, 5, dtype=torch.long))
    x = ids(40)
    maps = get_attention(model, x, truncate=True)
    assert maps.T == 32 and torch.equal(maps.ids, x[-32:])


def test_window_and_head():
    maps = get_attention(tiny(), ids(12))
    w = maps.window(3, 8)
    assert w.weights.shape == (2, 2, 5, 5) and w.tokens == maps.tokens[3:8]
    torch.testing.assert_close(w.weights, maps.weights[..., 3:8, 3:8])
    torch.testing.assert_close(maps.window(-4).weights, maps.weights[..., 8:, 8:])
    with pytest.raises(ValueError, match="window"):
        maps.window(5, 5)
    with pytest.raises(ValueError, match="head"):
        maps.head(0, 2)


# ---------------------------------------------------------------- scores


def pattern(T: int, kind: str) -> torch.Tensor:
    """Hand-made (T, T) attention patterns with rows summing to 1."""
    w = torch.zeros(T, T)
    for i in range(T):
        if kind == "prev":
            w[i, max(i - 1, 0)] = 1
        elif kind == "first":
            w[i, 0] = 1
        elif kind == "self":
            w[i, i] = 1
        elif kind == "uniform":
            w[i, : i + 1] = 1 / (i + 1)
    return w


def test_scores_on_hand_built_patterns():
    T = 20
    w = torch.stack([pattern(T, k) for k in ("prev", "first", "self", "uniform")]).view(1, 4, T, T)
    prev, first, dist = previous_token_scores(w), first_token_scores(w), mean_attention_distance(w)
    assert prev.shape == (1, 4)
    torch.testing.assert_close(prev[0, :3], torch.tensor([1.0, 1 / (T - 1), 0.0]))
    torch.testing.assert_close(first[0, :3], torch.tensor([1 / (T - 1), 1.0, 0.0]))
    torch.testing.assert_close(dist[0], torch.tensor([1.0, T / 2, 0.0, T / 4]))
    maps = AttentionMaps(w, ["x"] * T, torch.zeros(T, dtype=torch.long), torch.zeros(T, 5))
    assert set(head_scores(maps)) == {"previous token", "first token", "mean distance"}
    assert top_heads(prev, k=2)[0] == (0, 0, 1.0)


def test_induction_score_on_hand_built_pattern():
    n, T = 7, 14
    w = pattern(T, "prev").clone()
    for i in range(n, T):  # second repeat: look at what followed the earlier occurrence
        w[i] = 0
        w[i, i - n + 1] = 1
    assert induction_scores_from_weights(w, n).item() == pytest.approx(1.0)
    assert induction_scores_from_weights(pattern(T, "prev"), n).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="period"):
        induction_scores_from_weights(w, T)


def previous_token_model(T: int = 16, offset: int = 1) -> GPT:
    """One layer, one head whose q and k are wired so that position i attends to i - offset
    (offset 1: a previous-token head).

    Inputs are one-hot position embeddings e_p (token embeddings zero); after LayerNorm
    they are a*e_p - b*1. k = identity, q = 50 * shift, so q_i . k_j is large only for j = i - offset.
    """
    C = 32
    model = GPT(GPTConfig(vocab_size=10, block_size=T, n_layer=1, n_head=1, n_embd=C, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.transformer.wpe.weight[:, :T] = torch.eye(T)
        for ln in (model.transformer.h[0].ln_1, model.transformer.h[0].ln_2, model.transformer.ln_f):
            ln.weight.fill_(1.0)
        shift = torch.zeros(C, C)
        shift[torch.arange(C - offset), torch.arange(offset, C)] = 1.0  # (shift @ e_p) = e_{p-offset}
        attn = model.transformer.h[0].attn.c_attn.weight
        attn[:C] = 50.0 * shift  # queries
        attn[C : 2 * C] = torch.eye(C)  # keys
    return model


def test_previous_token_head_built_from_weights_scores_one():
    model = previous_token_model()
    maps = get_attention(model, torch.zeros(16, dtype=torch.long))
    assert previous_token_scores(maps)[0, 0].item() > 0.99
    assert first_token_scores(maps)[0, 0].item() < 0.1
    assert mean_attention_distance(maps)[0, 0].item() == pytest.approx(1.0, abs=0.02)
    ind = induction_scores(model, seq_len=8, batch_size=2)
    assert ind.shape == (1, 1) and ind.item() < 0.05


def test_induction_scores_are_deterministic_and_equal_a_hand_computed_mean():
    model = tiny(n_layer=2, n_head=2)
    a = induction_scores(model, seq_len=10, batch_size=3, seed=5)
    b = induction_scores(model, seq_len=10, batch_size=3, seed=5)
    assert a.shape == (2, 2) and torch.equal(a, b)
    # By hand: the documented sequences (seeded random tokens, repeated twice); for each
    # position i of the second repeat, the weight on i - 10 + 1; mean over positions and rows.
    first = torch.randint(0, 96, (3, 10), generator=torch.Generator().manual_seed(5))
    want = torch.zeros(2, 2)
    for row in first:
        w = get_attention(model, torch.cat([row, row])).weights  # (layers, heads, 20, 20)
        want += sum(w[..., i, i - 9] for i in range(10, 20)) / 10 / 3
    torch.testing.assert_close(a, want)
    assert not torch.equal(a, induction_scores(model, seq_len=10, batch_size=3, seed=6))


def test_a_head_wired_to_copy_scores_one_for_induction():
    """A head that looks at i - (n - 1), what followed the earlier copy of token i, is an induction head."""
    model = previous_token_model(T=16, offset=7)
    ind = induction_scores(model, seq_len=8, batch_size=2)
    assert ind.shape == (1, 1) and ind.item() > 0.99
    with pytest.raises(ValueError, match="seq_len"):
        induction_scores(model, seq_len=17)  # two repeats > block_size 32
    with pytest.raises(ValueError, match="vocab_range"):
        induction_scores(model, vocab_range=(0, 200))
