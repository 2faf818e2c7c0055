"""GPTConfig validation and the model's defining properties."""

import math

import pytest
import torch

from gptlab import GPT, GPTConfig
from gptlab.config import PRESETS
from gptlab.model import Block, CausalSelfAttention


def tiny(**kw) -> GPTConfig:
    return GPTConfig.from_preset("tiny", **kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(n_embd=30, n_head=4), "divisible by n_head"),
        (dict(n_layer=0), "n_layer must be a positive integer"),
        (dict(vocab_size=-5), "vocab_size"),
        (dict(block_size=2.5), "block_size"),
        (dict(dropout=1.0), "dropout"),
        (dict(dropout=-0.1), "dropout"),
        (dict(bias="yes"), "bias"),
    ],
)
def test_bad_config_is_a_specific_error(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_presets_and_unknown_names():
    assert set(PRESETS) >= {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "shakespeare-char", "tiny"}
    sc = GPTConfig.from_preset("shakespeare-char")
    assert (sc.n_layer, sc.n_head, sc.n_embd, sc.block_size, sc.vocab_size) == (4, 4, 128, 64, 65)
    with pytest.raises(ValueError, match="unknown preset 'gpt3'"):
        GPTConfig.from_preset("gpt3")
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPTConfig.from_dict({"n_layers": 3})
    assert GPTConfig.from_dict(sc.to_dict()) == sc


def test_gpt2_small_parameter_count_and_flops():
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = GPT(GPTConfig.from_preset("gpt2"))
    assert model.get_num_params() == 124_439_808
    assert model.get_num_params(non_embedding=True) == 124_439_808 - 1024 * 768
    n = model.get_num_params(non_embedding=True)
    assert model.flops_per_token(1024) == 2 * n + 4 * 12 * 1024 * 768
    assert model.flops_per_token(1024, training=True) == 3 * model.flops_per_token(1024)


def test_weights_are_tied_and_initialised_like_gpt2():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=500, block_size=64, n_layer=8, n_head=4, n_embd=256)
    model = GPT(cfg)
    assert model.lm_head.weight is model.transformer.wte.weight
    # Residual-scaled init on BOTH projections that write into the residual stream, 0.02 elsewhere.
    # Each std comes from >= 16k weights (wpe; the matrices have >= 500k): standard error < 0.6%, so 2% is > 3.5 of them.
    scaled = 0.02 / math.sqrt(2 * cfg.n_layer)
    for name, want in [("attn.c_proj", scaled), ("mlp.c_proj", scaled), ("attn.c_attn", 0.02), ("mlp.c_fc", 0.02)]:
        w = torch.cat([b.get_submodule(name).weight.flatten() for b in model.transformer.h])
        assert w.std().item() == pytest.approx(want, rel=0.02), name
        assert torch.all(torch.cat([b.get_submodule(name).bias for b in model.transformer.h]) == 0), name
    for emb in (model.transformer.wte, model.transformer.wpe):
        assert emb.weight.std().item() == pytest.approx(0.02, rel=0.02)


def test_loss_at_init_is_about_ln_vocab():
    torch.manual_seed(0)
    model = GPT(tiny(vocab_size=1000))
    x, y = torch.randint(0, 1000, (2, 4, 32))  # targets unrelated to inputs (tied weights favour copying x)
    _, loss = model(x, y)
    assert abs(loss.item() - math.log(1000)) < 0.1


def test_ignore_index_masks_targets():
    torch.manual_seed(0)
    model = GPT(tiny())
    x = torch.randint(0, 96, (2, 10))
    y = x.clone()
    y[:, :5] = -100
    logits, loss = model(x, y)
    ref = torch.nn.functional.cross_entropy(logits[:, 5:].reshape(-1, 96), y[:, 5:].reshape(-1))
    torch.testing.assert_close(loss, ref)


def test_causality_future_tokens_do_not_change_the_past():
    torch.manual_seed(0)
    model = GPT(tiny()).eval()
    x = torch.randint(0, 96, (1, 16))
    x2 = x.clone()
    x2[0, 10:] = (x2[0, 10:] + 1) % 96
    a, _ = model(x)
    b, _ = model(x2)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_flash_and_explicit_attention_agree():
    torch.manual_seed(0)
    cfg = tiny()
    attn = CausalSelfAttention(cfg)
    x = torch.randn(3, 20, cfg.n_embd)
    fast = attn(x)
    attn.flash = False
    slow = attn(x)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)  # same math, different summation order


def test_capture_keeps_outputs_identical_and_weights_causal():
    torch.manual_seed(0)
    cfg = tiny()
    attn = CausalSelfAttention(cfg).eval()
    x = torch.randn(2, 12, cfg.n_embd)
    y0 = attn(x)
    attn.capture = True
    y1 = attn(x)
    assert torch.equal(y0, y1)
    att = attn.att
    assert att.shape == (2, cfg.n_head, 12, 12)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, cfg.n_head, 12))
    i = torch.arange(12)[:, None]  # query position
    j = torch.arange(12)[None, :]  # key position
    assert torch.all(att[..., j > i] == 0)  # never the future...
    assert torch.all(att[..., j <= i] > 0)  # ...always the past and itself
    # and the weights are softmax(q k^T / sqrt(head_size)) over those positions
    hs = cfg.n_embd // cfg.n_head
    q, k, _ = attn.c_attn(x).split(cfg.n_embd, dim=2)
    q, k = (t.view(2, 12, cfg.n_head, hs).transpose(1, 2) for t in (q, k))
    scores = (q @ k.transpose(-2, -1) / math.sqrt(hs)).masked_fill(j > i, float("-inf"))
    torch.testing.assert_close(att, scores.softmax(-1))


def test_kv_cache_matches_full_forward_in_any_chunking():
    torch.manual_seed(0)
    model = GPT(tiny()).eval()
    x = torch.randint(0, 96, (2, 30))
    full, _ = model(x)
    for chunks in ([30], [1] * 30, [7, 5, 1, 17], [12, 18]):
        cache, outs, s = model.new_cache(), [], 0
        for n in chunks:
            outs.append(model(x[:, s : s + n], cache=cache)[0])
            s += n
        torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-5, atol=1e-5)
        assert cache.pos == 30


def test_kv_cache_reorder_and_overflow():
    torch.manual_seed(0)
    model = GPT(tiny()).eval()
    x = torch.randint(0, 96, (3, 8))
    cache = model.new_cache()
    model(x, cache=cache)
    cache.reorder(torch.tensor([2, 2, 0]))
    nxt = torch.randint(0, 96, (3, 1))
    step, _ = model(nxt, cache=cache)
    ref, _ = model(torch.cat([x[[2, 2, 0]], nxt], 1))
    torch.testing.assert_close(step[:, -1], ref[:, -1], rtol=1e-5, atol=1e-5)
    small = model.new_cache(max_len=10)
    with pytest.raises(ValueError, match="KV cache is full"):
        model(torch.randint(0, 96, (1, 11)), cache=small)


def test_bad_inputs_to_forward():
    model = GPT(tiny())
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 96\)"):
        model(torch.tensor([[1, 96]]))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT({"n_layer": 2})


def test_crop_block_size():
    torch.manual_seed(0)
    model = GPT(tiny())
    x = torch.randint(0, 96, (1, 16))
    before, _ = model(x)
    model.crop_block_size(16)
    after, _ = model(x)
    torch.testing.assert_close(before, after)
    assert model.transformer.wpe.weight.shape == (16, 32)
    with pytest.raises(ValueError):
        model(torch.randint(0, 96, (1, 17)))
    with pytest.raises(ValueError, match="block_size must be"):
        model.crop_block_size(64)


def test_block_is_pre_layernorm_residual():
    torch.manual_seed(0)
    block = Block(tiny()).eval()
    x = torch.randn(2, 5, 32)
    h = x + block.attn(block.ln_1(x))
    torch.testing.assert_close(block(x), h + block.mlp(block.ln_2(h)))


def test_same_seed_same_numbers():
    from gptlab.device import seed_everything

    outs = []
    for _ in range(2):
        seed_everything(123)
        model = GPT(tiny())
        outs.append(model(torch.randint(0, 96, (2, 8)))[0])
    assert torch.equal(outs[0], outs[1])


def test_last_only_gives_the_last_positions_logits():
    torch.manual_seed(0)
    model = GPT(tiny()).eval()
    x = torch.randint(0, 96, (2, 9))
    full, _ = model(x)
    last, _ = model(x, last_only=True)
    assert last.shape == (2, 1, 96)
    torch.testing.assert_close(last[:, 0], full[:, -1])
    with pytest.raises(ValueError, match="last_only"):
        model(x, x, last_only=True)
