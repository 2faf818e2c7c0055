"""Small helpers the lesson notebooks share: fast mode and the course's trained models (every lesson).

Fast mode: every notebook reads FAST (GPTLAB_FAST=1, or any CI run) and then
trains fewer steps on smaller slices, so the whole course validates in minutes.
The committed notebooks show the outputs of a full run (GPTLAB_FAST=0).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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


def results(name: str) -> dict:
    """The record `benchmarks/results/<name>.json` written by a committed benchmark script.

    Lessons quote a figure from a run too long for the lesson only through this: the
    file carries the figures with the command, date, machine and seeds that made them
    (`benchmarks/results.py` writes it), so the reader can find and re-run the run.
    """
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"results name {name!r}: use letters, digits, '-' and '_' only")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the results files ship with a clone of the course repository")
    return json.loads(path.read_text(encoding="utf-8"))


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
    """(model, tokenizer, history) of a stronger Tiny Shakespeare char model, to grade the lesson model's samples.

    A model scoring its own samples is a biased judge: it likes exactly what it
    generates, and a judge no better than the model it grades only gives another
    opinion. Lesson 10 therefore grades with lesson 14's speedrun recipe (the
    `speedrun` presets: the same 4x128 shape with rotary positions, RMSNorm,
    relu^2 and QK-norm, batch 24 at lr 3e-3 under a warmup-stable-decay schedule,
    850 steps): about the CPU time of the lesson model's 2,000 steps, and a val
    loss about 0.2 nats lower (lesson 10 measures both on the same text). Same
    characters and train/val split, another seed; trained once under
    checkpoints/shakespeare-char-judge, loaded afterwards. Fast mode trains 120
    steps (still ahead of the 150-step fast lesson model) under
    shakespeare-char-judge-fast.
    """
    name = "shakespeare-char-judge-fast" if fast else "shakespeare-char-judge"
    # The judge's own steps and evaluations, so retuning the speedrun preset for lesson 14 leaves lesson 10's judge alone.
    overrides: dict = dict(seed=2024, max_steps=850, lr_decay_steps=850, eval_interval=425)
    if fast:
        overrides.update(max_steps=120, lr_decay_steps=120, warmup_steps=12, eval_interval=60, eval_iters=10)
    return _char_model(name, {}, overrides, preset="speedrun")


def _char_model(name: str, model_overrides: dict, train_overrides: dict, preset: str = "shakespeare-char"):
    """Load checkpoints/<name> if it holds this recipe's model (config, steps, char tokenizer), else train and save it."""
    import warnings

    import torch

    from gptlab.checkpoint import CheckpointError, load_checkpoint
    from gptlab.config import GPTConfig, TrainConfig
    from gptlab.data import split_tokens
    from gptlab.datasets import read_text
    from gptlab.model import GPT
    from gptlab.tokenizers import CharTokenizer
    from gptlab.training import History, train

    path = checkpoint_dir() / name
    cfg = TrainConfig.from_preset(preset, ckpt_dir=str(path), **train_overrides)
    model_cfg = GPTConfig.from_preset(preset, **model_overrides)  # vocab_size 65: Tiny Shakespeare's characters
    with _claim(path, name, cfg.max_steps):  # another lesson training this model: wait for it, then load its result
        if (path / "checkpoint.json").exists():
            try:
                model, tokenizer, meta = load_checkpoint(path)
                tok = meta.get("tokenizer") or {}
                if GPTConfig.from_dict(meta["model_config"]) == model_cfg and meta["step"] == cfg.max_steps and tok.get("type") == "char":
                    return model, tokenizer, History.from_dict(meta.get("history") or {})
                warnings.warn(f"checkpoints/{name} is not the {name} recipe's model (another run saved there); "
                              "training it again", stacklevel=3)
            except (CheckpointError, FileNotFoundError) as e:
                warnings.warn(f"checkpoints/{name} is unreadable ({e}); training it again", stacklevel=3)
        text = read_text("tinyshakespeare")
        tokenizer = CharTokenizer.from_text(text)
        train_data, val_data = split_tokens(tokenizer.encode(text), val_fraction=0.1)
        torch.manual_seed(cfg.seed)
        model = GPT(GPTConfig.from_preset(preset, **{**model_overrides, "vocab_size": tokenizer.n_vocab}))
        history = train(model, train_data, val_data, cfg, tokenizer=tokenizer)
        return model.eval(), tokenizer, history


def _saved_step(path: Path) -> int:
    """The step of the checkpoint saved in `path` so far (0 if none, or if it cannot be read right now)."""
    meta = path / "checkpoint.json"
    try:
        if meta.stat().st_size > 64 << 20:  # not ours: never read a huge file just to show progress
            return 0
        step = json.loads(meta.read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        return 0
    return step if isinstance(step, int) and step >= 0 else 0


@contextmanager
def _claim(path: Path, name: str, total_steps: int, poll: float = 2.0) -> Iterator[None]:
    """Hold the writer lock of checkpoints/<name>; while another process trains into it, wait, with its progress.

    Two lessons open at once (say 10 and 15) both ask for the shared model before it
    exists: the first trains it, the second would otherwise fail with
    CheckpointBusyError. Instead it says so, shows the other process's saved steps,
    and once the lock is free it loads what the other one saved. (Where file locks
    do not exist, Windows, writer_lock does not lock and nothing waits.)
    """
    from tqdm.auto import tqdm

    from gptlab.checkpoint import writer_lock
    from gptlab.files import CheckpointBusyError

    stack, bar, t0 = ExitStack(), None, time.monotonic()
    while True:
        try:
            stack.enter_context(writer_lock(path))
            break
        except CheckpointBusyError:
            if bar is None:
                print(f"another gptlab process (another lesson?) is training checkpoints/{name}: waiting for it, "
                      "then this lesson loads it (interrupt the kernel to stop waiting)", flush=True)
                bar = tqdm(total=total_steps, desc=f"{name}, trained elsewhere", unit="step", dynamic_ncols=True)
            bar.n = min(_saved_step(path), total_steps)
            bar.set_postfix_str(f"waited {time.monotonic() - t0:.0f} s", refresh=True)
            time.sleep(poll)
    if bar is not None:
        bar.close()
        print(f"checkpoints/{name} is free after {time.monotonic() - t0:.0f} s: loading it", flush=True)
    with stack:
        yield
