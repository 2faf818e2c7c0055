"""GPTConfig: validation with specific errors, presets, the model switches' defaults and their serialisation."""

import pytest

from gptlab import GPTConfig
from gptlab.config import PRESETS, TrainConfig


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
def test_bad_switch_values_are_specific_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig.from_preset("tiny", **kw)


def test_presets_and_unknown_names():
    assert set(PRESETS) >= {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "shakespeare-char", "tiny"}
    sc = GPTConfig.from_preset("shakespeare-char")
    assert (sc.n_layer, sc.n_head, sc.n_embd, sc.block_size, sc.vocab_size) == (4, 4, 128, 64, 65)
    with pytest.raises(ValueError, match="unknown preset 'gpt3'"):
        GPTConfig.from_preset("gpt3")
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPTConfig.from_dict({"n_layers": 3})
    assert GPTConfig.from_dict(sc.to_dict()) == sc


def test_switches_round_trip_through_dict():
    cfg = GPTConfig.from_preset("speedrun")
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in GPTConfig.from_preset("tiny").to_dict().items()
           if k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias")}
    assert GPTConfig.from_dict(old).is_gpt2  # a checkpoint saved before the switches loads as GPT-2


def test_speedrun_preset():
    cfg = TrainConfig.from_preset("speedrun")
    assert cfg.preset == "speedrun" and cfg.schedule == "wsd"
    mcfg = GPTConfig.from_preset("speedrun")
    assert mcfg.pos_emb == "rotary" and not mcfg.is_gpt2
