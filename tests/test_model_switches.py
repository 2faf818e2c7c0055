"""Lesson 14's model switches: each one works (shapes, causality, KV cache), and the defaults are GPT-2 exactly."""

import math

import pytest
import torch
import torch.nn.functional as F

from gptlab.config import GPTConfig
from gptlab.model import GPT, apply_rotary, rotary_cos_sin
from gptlab.training import TrainConfig, lr_at, make_optimizer, train

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
def test_shapes_and_loss(name):
    model = make(**SWITCHES[name])
    idx = torch.randint(0, 96, (3, 20))
    logits, loss = model(idx, torch.randint(0, 96, (3, 20)))
    assert logits.shape == (3, 20, 96)
    assert math.isfinite(loss.item()) and abs(loss.item() - math.log(96)) < 0.5  # about uniform at init
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # every parameter takes part


@pytest.mark.parametrize("name", SWITCHES)
def test_causal(name):
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
def test_kv_cache_equals_uncached(name):
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


def test_switch_structure():
    untied = make(tie_weights=False)
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert "transformer.wpe.weight" not in make(pos_emb="rotary").state_dict()
    rms = make(norm="rmsnorm", bias=False)
    assert isinstance(rms.transformer.ln_f, torch.nn.RMSNorm)
    # SwiGLU at 2/3 the width keeps the MLP's parameter count (up to rounding)
    gelu_mlp = sum(p.numel() for p in make(bias=False).transformer.h[0].mlp.parameters())
    swiglu_mlp = sum(p.numel() for p in make(bias=False, mlp="swiglu").transformer.h[0].mlp.parameters())
    assert abs(swiglu_mlp - gelu_mlp) / gelu_mlp < 0.01
    qk = make(qk_norm=True)
    assert "transformer.h.0.attn.q_norm.weight" in qk.state_dict()


# ---------------------------------------------------------------- GPT-2 defaults unchanged

TINY_KEYS = ["transformer.wte.weight", "transformer.wpe.weight"] + [
    f"transformer.h.{i}.{n}"
    for i in range(2)
    for n in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
              "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")
] + ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]


def test_default_config_is_gpt2():
    cfg = GPTConfig()
    assert cfg.is_gpt2
    assert (cfg.pos_emb, cfg.norm, cfg.mlp, cfg.qk_norm, cfg.tie_weights, cfg.bias) == ("learned", "layernorm", "gelu", False, True, True)
    for kw in SWITCHES.values():
        assert not GPTConfig.from_preset("tiny", **kw).is_gpt2


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
        p = lambda n: sd[f"transformer.h.{i}.{n}"]  # noqa: E731
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


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(pos_emb="alibi"), "pos_emb must be one of"),
        (dict(norm="batchnorm"), "norm must be one of"),
        (dict(mlp="gelu2"), "mlp must be one of"),
        (dict(qk_norm=1), "qk_norm must be True or False"),
        (dict(tie_weights="no"), "tie_weights must be True or False"),
        (dict(rope_theta=0.5), "rope_theta must be a finite number > 1"),
        (dict(pos_emb="rotary", n_embd=30, n_head=2), "head size .* must be even"),
    ],
)
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig.from_preset("tiny", **kw)


def test_switches_round_trip_through_dict():
    cfg = GPTConfig.from_preset("speedrun")
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in GPTConfig.from_preset("tiny").to_dict().items() if k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias")}
    assert GPTConfig.from_dict(old).is_gpt2  # a checkpoint saved before the switches loads as GPT-2


def test_export_rejects_switched_model(tmp_path):
    from gptlab.pretrained import export_hf_gpt2

    with pytest.raises(ValueError, match="GPT-2's layout"):
        export_hf_gpt2(make(norm="rmsnorm"), tmp_path / "x")


# ---------------------------------------------------------------- schedule, optimizer, preset


def test_wsd_schedule():
    cfg = TrainConfig(max_steps=100, lr=1e-3, min_lr=1e-4, warmup_steps=10, schedule="wsd", decay_frac=0.2)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] < 1e-3
    assert all(lr == 1e-3 for lr in lrs[10:80])  # stable
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))  # linear decay over the last 20%
    assert lrs[99] == pytest.approx(1e-4 + 0.9e-3 / 20)
    assert lr_at(100, cfg) == 1e-4
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="decay_frac"):
        TrainConfig(decay_frac=0)


def test_muon_splits_parameters_and_trains():
    model = make(**SWITCHES["all"]).train()
    cfg = TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.02)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    assert id(model.transformer.h[0].attn.c_attn.weight) in in_muon
    assert id(model.lm_head.weight) not in in_muon and id(model.transformer.wte.weight) not in in_muon
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == model.get_num_params()  # every parameter once
    torch.manual_seed(0)
    data = torch.randint(0, 96, (4000,))
    hist = train(model, data, data, TrainConfig(max_steps=30, batch_size=8, optimizer="muon", warmup_steps=3,
                                                eval_interval=30, eval_iters=2, progress=False))
    assert hist.eval_val_loss[-1] < hist.eval_val_loss[0]
    with pytest.raises(ValueError, match="muon.*cannot be checkpointed"):
        TrainConfig(optimizer="muon", ckpt_dir="somewhere")


def test_speedrun_preset():
    cfg = TrainConfig.from_preset("speedrun")
    assert cfg.preset == "speedrun" and cfg.schedule == "wsd"
    mcfg = GPTConfig.from_preset("speedrun")
    assert mcfg.pos_emb == "rotary" and not mcfg.is_gpt2
