"""The GPT model's defining properties (lessons 03-06), and lesson 14's switches: each one works (shapes,
causality, KV cache), and the defaults are GPT-2 exactly."""

import math

import pytest
import torch
import torch.nn.functional as F

from gptlab import GPT, GPTConfig
from gptlab.model import Block, CausalSelfAttention, apply_rotary, rotary_cos_sin


def tiny(**kw) -> GPTConfig:
    return GPTConfig.from_preset("tiny", **kw)


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


def test_bad_inputs_to_forward_are_specific_errors():
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


# ---------------------------------------------------------------- lesson 14's switches

SWITCHES = {
    "rotary": dict(pos_emb="rotary"),
    "rmsnorm": dict(norm="rmsnorm"),
    "swiglu": dict(mlp="swiglu"),
    "relu2": dict(mlp="relu2"),
    "qk_norm": dict(qk_norm=True),
    "no_bias": dict(bias=False),
    "untied": dict(tie_weights=False),
    "all": dict(pos_emb="rotary", norm="rmsnorm", mlp="relu2", qk_norm=True, bias=False, tie_weights=False),
}


def make(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.from_preset("tiny", **kw)).eval()


@pytest.mark.parametrize("name", SWITCHES)
def test_every_switch_gives_the_shapes_and_a_uniform_loss_at_init(name):
    model = make(**SWITCHES[name])
    idx = torch.randint(0, 96, (3, 20))
    logits, loss = model(idx, torch.randint(0, 96, (3, 20)))
    assert logits.shape == (3, 20, 96)
    assert math.isfinite(loss.item()) and abs(loss.item() - math.log(96)) < 0.5  # about uniform at init
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # every parameter takes part


@pytest.mark.parametrize("name", SWITCHES)
def test_every_switch_is_causal(name):
    """Changing a later token changes no earlier position's logits."""
    model = make(**SWITCHES[name])
    idx = torch.randint(0, 96, (1, 16))
    changed = idx.clone()
    changed[0, 10] = (changed[0, 10] + 1) % 96
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10], rtol=0, atol=0)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


@pytest.mark.parametrize("name", SWITCHES)
def test_every_switch_kv_cache_equals_uncached(name):
    """Prefill a prefix, then one token at a time and a chunk: the logits equal one uncached forward pass."""
    model = make(**SWITCHES[name])
    idx = torch.randint(0, 96, (2, 24))
    full, _ = model(idx)
    cache = model.new_cache()
    parts = [model(idx[:, :7], cache=cache)[0]]
    for t in range(7, 12):
        parts.append(model(idx[:, t : t + 1], cache=cache)[0])
    parts.append(model(idx[:, 12:], cache=cache)[0])  # a chunk after a cached prefix (masked attention)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)


def test_generate_with_cache_matches_without():
    """Greedy decoding past the prompt with every switch on: the cache changes nothing."""
    model = make(**SWITCHES["all"])
    prompt = torch.randint(0, 96, (2, 5))
    cached = model.generate(prompt, 20, do_sample=False)
    uncached = model.generate(prompt, 20, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_rotary_is_relative():
    """q.k after rotation depends only on the distance between the two positions."""
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(pq: int, pk: int) -> float:
        cq, sq = rotary_cos_sin(torch.tensor([pq]), 8)
        ck, sk = rotary_cos_sin(torch.tensor([pk]), 8)
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum().item()

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)
    c, s = rotary_cos_sin(torch.tensor([0]), 8)  # position 0 is no rotation
    torch.testing.assert_close(apply_rotary(q, c, s), q)


def test_switches_change_the_structure_they_name():
    untied = make(tie_weights=False)
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert "transformer.wpe.weight" not in make(pos_emb="rotary").state_dict()
    rms = make(norm="rmsnorm", bias=False)
    assert isinstance(rms.transformer.ln_f, torch.nn.RMSNorm)  # gptlab.model.RMSNorm subclasses it
    # SwiGLU at 2/3 the width keeps the MLP's parameter count (up to rounding)
    gelu_mlp = sum(p.numel() for p in make(bias=False).transformer.h[0].mlp.parameters())
    swiglu_mlp = sum(p.numel() for p in make(bias=False, mlp="swiglu").transformer.h[0].mlp.parameters())
    assert abs(swiglu_mlp - gelu_mlp) / gelu_mlp < 0.01
    qk = make(qk_norm=True)
    assert "transformer.h.0.attn.q_norm.weight" in qk.state_dict()


def test_default_config_is_gpt2():
    cfg = GPTConfig()
    assert cfg.is_gpt2
    assert (cfg.pos_emb, cfg.norm, cfg.mlp, cfg.qk_norm, cfg.tie_weights, cfg.bias) == ("learned", "layernorm", "gelu", False, True, True)
    for kw in SWITCHES.values():
        assert not GPTConfig.from_preset("tiny", **kw).is_gpt2


TINY_KEYS = ["transformer.wte.weight", "transformer.wpe.weight"] + [
    f"transformer.h.{i}.{n}"
    for i in range(2)
    for n in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
              "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")
] + ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]


def test_default_state_dict_and_init_unchanged():
    """Same keys, and the same seeded initial weights as before the switches existed (figures recorded then)."""
    model = make()
    sd = model.state_dict()
    assert list(sd) == TINY_KEYS
    assert model.lm_head.weight is model.transformer.wte.weight
    # torch's seeded normal_ runs vectorised log/cos kernels that differ by an ulp or so between CPU instruction
    # sets (585.32890037 with AVX2, 585.32890305 with ATEN_CPU_CAPABILITY=default). A sum of absolute float32
    # values has no cancellation, so its relative error is at most the per-element one (a few 1e-8): 1e-6 holds
    # on any CPU and still tells the two inits below apart (they differ by 5e-5 relative).
    total = sum(t.double().abs().sum().item() for t in sd.values())
    assert total == pytest.approx(585.3289003659249, rel=1e-6)
    no_bias = sum(t.double().abs().sum().item() for t in make(bias=False).state_dict().values())
    assert no_bias == pytest.approx(585.2984728965569, rel=1e-6)
    logits, _ = model(torch.arange(24).view(2, 12))
    # The weights above are exact (float32 values summed in float64), but the logits come out of float32 matmuls
    # whose summation order depends on the CPU's kernels (AVX2, AVX-512, or ATEN_CPU_CAPABILITY=default give
    # 9.6899154, 9.6899155 and 9.6899167): float32 carries ~7 digits and a sum of 2,304 logits of mixed sign loses
    # a few more, so 1e-5 relative is the dtype's tolerance; a changed init moves the sum far more than that.
    assert logits.double().sum().item() == pytest.approx(9.689915375551209, rel=1e-5)


def gpt2_reference(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """GPT-2's forward pass written out from the state dict: learned positions, LayerNorm, GELU, tied head."""
    sd, cfg = model.state_dict(), model.config
    B, T = idx.shape
    C, nh = cfg.n_embd, cfg.n_head
    x = sd["transformer.wte.weight"][idx] + sd["transformer.wpe.weight"][:T]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(cfg.n_layer):
        def p(n: str, i: int = i) -> torch.Tensor:
            return sd[f"transformer.h.{i}.{n}"]

        h = F.layer_norm(x, (C,), p("ln_1.weight"), p("ln_1.bias"))
        q, k, v = F.linear(h, p("attn.c_attn.weight"), p("attn.c_attn.bias")).split(C, dim=2)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1) / math.sqrt(C // nh)).masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, p("attn.c_proj.weight"), p("attn.c_proj.bias"))
        h = F.layer_norm(x, (C,), p("ln_2.weight"), p("ln_2.bias"))
        h = F.gelu(F.linear(h, p("mlp.c_fc.weight"), p("mlp.c_fc.bias")), approximate="tanh")
        x = x + F.linear(h, p("mlp.c_proj.weight"), p("mlp.c_proj.bias"))
    x = F.layer_norm(x, (C,), sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"])
    return x @ sd["transformer.wte.weight"].T


def test_default_logits_equal_gpt2_reference():
    model = make(seed=3)
    idx = torch.randint(0, 96, (2, 32))
    torch.testing.assert_close(model(idx)[0], gpt2_reference(model, idx), rtol=1e-5, atol=1e-5)
