"""The tiny corpus, model and checkpoint helpers that several test files share (fixtures: conftest.py).

The Romeo text, its character tokenizer and a 4-step training configuration; helpers that damage a checkpoint
folder the way a user (or an attacker) could, and that compare a folder's bytes before and after.
"""

from __future__ import annotations

import json
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from gptlab import GPT, GPTConfig
from gptlab import training as T
from gptlab.datasets import sha256_file
from gptlab.tokenizers import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n\n"
) * 20
TOK = CharTokenizer.from_text(TEXT)
IDS = torch.tensor(TOK.encode(TEXT))
TRAIN, VAL = IDS[: int(len(IDS) * 0.9)], IDS[int(len(IDS) * 0.9) :]
MODEL_CFG = GPTConfig.from_preset("tiny", vocab_size=TOK.n_vocab)
TINY = [
    "--preset",
    "tiny",
    "--max-steps",
    "4",
    "--eval-interval",
    "2",
    "--eval-iters",
    "2",
    "--batch-size",
    "4",
    "--no-progress",
]


def run_cfg(ckpt_dir=None, **kw) -> T.TrainConfig:
    """Four steps, evaluating and saving every two: a resumable checkpoint in a second or two."""
    base = dict(
        max_steps=4,
        batch_size=4,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=1,
        lr_decay_steps=8,
        eval_interval=2,
        eval_iters=2,
        log_interval=1,
        ckpt_interval=2,
        progress=False,
        seed=7,
    )
    return T.TrainConfig(ckpt_dir=None if ckpt_dir is None else str(ckpt_dir), **{**base, **kw})


def fresh_model() -> GPT:
    torch.manual_seed(0)
    return GPT(MODEL_CFG)


def resume(path: Path, **kw) -> T.History:
    return T.train(GPT(MODEL_CFG), TRAIN, VAL, run_cfg(path, **{"max_steps": 6, **kw}), tokenizer=TOK, resume=True)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (and its hidden siblings), by relative path: 'nothing was modified' is equality."""
    out = {}
    for base in [folder, *folder.parent.glob(f".{folder.name}.*")]:
        for p in sorted(base.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(folder.parent))] = p.read_bytes()
    return out


def rehash(folder: Path, edit=None) -> None:
    """Rewrite checkpoint.json (after `edit(meta)`, which may also return a replacement such as a list) with
    every listed file's size and sha256 recomputed to match, as an attacker would."""
    j = folder / "checkpoint.json"
    meta = json.loads(j.read_text())
    if edit is not None:
        out = edit(meta)
        meta = out if isinstance(out, list) else meta
    if isinstance(meta, dict) and isinstance(meta.get("files"), dict):
        for name in list(meta["files"]):
            p = folder / name
            if p.is_file() and isinstance(meta["files"][name], dict):
                meta["files"][name] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    j.write_text(json.dumps(meta))


def edit_meta(folder: Path, edit) -> None:
    """Change checkpoint.json only (it is not hashed itself): what anyone with a text editor can do."""
    meta = json.loads((folder / "checkpoint.json").read_text())
    edit(meta)
    (folder / "checkpoint.json").write_text(json.dumps(meta))


def edit_train_state(folder: Path, edit) -> None:
    state = torch.load(folder / "train_state.pt", weights_only=True)
    edit(state)
    torch.save(state, folder / "train_state.pt")
    rehash(folder)


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging) if the block takes longer than `seconds`; works while Python code runs."""

    def boom(*_):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def same_history(got: dict, want: dict) -> bool:
    """Equal step lists, and losses equal to float32 rounding: the recorded history came from one CPU
    and thread count; another instruction set or split of a reduction moves the last bits (~1e-7)."""
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, list) and v and isinstance(v[0], float):
            assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
        else:
            assert got[k] == v, k
    return True
