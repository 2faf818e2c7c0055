"""Small helpers the lesson notebooks share: fast mode and the course's trained models (every lesson).

Fast mode: every notebook reads FAST (GPTLAB_FAST=1, or any CI run) and then
trains fewer steps on smaller slices, so the whole course validates in minutes.
The committed notebooks show the outputs of a full run (GPTLAB_FAST=0).
"""

from __future__ import annotations

import os
from pathlib import Path


def fast_mode() -> bool:
    """True when GPTLAB_FAST is set to 1/true/yes, or when CI is set (and GPTLAB_FAST does not say 0)."""
    flag = os.environ.get("GPTLAB_FAST", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return bool(os.environ.get("CI"))


FAST = fast_mode()


def checkpoint_dir() -> Path:
    """Where trained course models live: GPTLAB_CHECKPOINT_DIR, else `checkpoints/` of this checkout (git-ignored)."""
    env = os.environ.get("GPTLAB_CHECKPOINT_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "checkpoints"


def shakespeare_char_model(fast: bool = FAST):
    """(model, tokenizer, history) of the character-level Tiny Shakespeare GPT, trained once and then loaded.

    Lessons 07 and 08 need a trained model but must not depend on lesson 06 having
    run, so each asks for it here: the first call trains it (nanoGPT's recipe, the
    `shakespeare-char` presets, a few minutes on a laptop CPU) and saves it under
    checkpoints/shakespeare-char; later calls load it in a second. Fast mode trains
    150 steps instead (seconds) and saves under shakespeare-char-fast, so a quick
    model is never mistaken for the real one.
    """
    name = "shakespeare-char-fast" if fast else "shakespeare-char"
    overrides = dict(max_steps=150, lr_decay_steps=150, warmup_steps=15, eval_interval=50, eval_iters=10) if fast else {}
    return _char_model(name, {}, overrides)


def judge_model(fast: bool = FAST):
    """(model, tokenizer, history) of a second Tiny Shakespeare char model, to grade the lesson model's samples.

    A model scoring its own samples is a biased judge: it likes exactly what it
    generates. Lesson 10 scores samples under this separate model instead: deeper
    (6 layers instead of 4), another seed, the same characters, recipe and
    train/val split, trained once (about twice the lesson model's time) and saved
    under checkpoints/shakespeare-char-judge, loaded afterwards. At the same 2,000
    steps it ends at about the lesson model's val loss: its worth as a judge is
    that it did not generate the samples; a clearly stronger judge needs more
    steps or context than a CPU lesson can afford. Fast mode trains 80 steps and
    saves under shakespeare-char-judge-fast.
    """
    name = "shakespeare-char-judge-fast" if fast else "shakespeare-char-judge"
    steps = 80 if fast else 2000
    overrides = dict(max_steps=steps, lr_decay_steps=steps, seed=2024)
    if fast:
        overrides.update(warmup_steps=8, eval_interval=40, eval_iters=10)
    return _char_model(name, dict(n_layer=6), overrides)


def _char_model(name: str, model_overrides: dict, train_overrides: dict):
    """Load checkpoints/<name> if it holds this recipe's model (config, steps, char tokenizer), else train and save it."""
    import warnings

    import torch

    from gptlab.config import GPTConfig
    from gptlab.data import split_tokens
    from gptlab.datasets import read_text
    from gptlab.model import GPT
    from gptlab.tokenizers import CharTokenizer
    from gptlab.training import History, train
    from gptlab.checkpoint import CheckpointError, load_checkpoint
    from gptlab.config import TrainConfig

    path = checkpoint_dir() / name
    cfg = TrainConfig.from_preset("shakespeare-char", ckpt_dir=str(path), **train_overrides)
    model_cfg = GPTConfig.from_preset("shakespeare-char", **model_overrides)  # vocab_size 65: Tiny Shakespeare's characters
    if (path / "checkpoint.json").exists():
        try:
            model, tokenizer, meta = load_checkpoint(path)
            tok = meta.get("tokenizer") or {}
            if GPTConfig.from_dict(meta["model_config"]) == model_cfg and meta["step"] == cfg.max_steps and tok.get("type") == "char":
                return model, tokenizer, History.from_dict(meta.get("history") or {})
            warnings.warn(f"checkpoints/{name} is not the {name} recipe's model (another run saved there); training it again", stacklevel=3)
        except (CheckpointError, FileNotFoundError) as e:
            warnings.warn(f"checkpoints/{name} is unreadable ({e}); training it again", stacklevel=3)
    text = read_text("tinyshakespeare")
    tokenizer = CharTokenizer.from_text(text)
    train_data, val_data = split_tokens(tokenizer.encode(text), val_fraction=0.1)
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig.from_preset("shakespeare-char", **{**model_overrides, "vocab_size": tokenizer.n_vocab}))
    history = train(model, train_data, val_data, cfg, tokenizer=tokenizer)
    return model.eval(), tokenizer, history
