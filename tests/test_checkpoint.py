"""gptlab.checkpoint: one folder format for language models, classifiers and adapters, every file hostile.

Each crafted folder below is one of the probe's (shared/reviews/probe.md, D05-D14): the test builds it,
asserts the one-line message, and checks that nothing was lost or changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptlab import GPT, GPTConfig
from gptlab import finetune as FT
from gptlab import training as T
from gptlab.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta
from gptlab.datasets import sha256_file
from gptlab.files import CheckpointBusyError
from gptlab.lora import apply_lora

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_v1"  # written by gptlab 0.1.0 (main, format 1)
CFG = GPTConfig.from_preset("tiny", vocab_size=20, block_size=16, n_layer=2)


def data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(1, 20, (int(torch.randint(2, 9, (1,), generator=g)),), generator=g).tolist(), i % 2) for i in range(n)]


TRAIN, DEV = data(24, 0), data(8, 1)


def clf(pool="last", seed=0, lora=False):
    torch.manual_seed(seed)
    c = FT.GPTClassifier(GPT(CFG), 2, pool=pool)
    if lora:
        FT.freeze(c, "head")
        apply_lora(c.gpt, r=2, alpha=4)
    return c


def run_cfg(ckpt=None, **kw):
    base = dict(max_steps=6, batch_size=4, lr=3e-3, min_lr=3e-4, warmup_steps=1, lr_decay_steps=6, eval_interval=3, log_interval=1,
                bf16=False, device="cpu", progress=False, seed=7)
    return T.TrainConfig(**{**base, **kw, "ckpt_dir": None if ckpt is None else str(ckpt)})


def rehash(folder: Path, edit=None) -> None:
    """Apply edit(meta) to checkpoint.json, then make every recorded sha256 and size match again (as an attacker would)."""
    j = folder / "checkpoint.json"
    meta = json.loads(j.read_text())
    if edit is not None:
        out = edit(meta)
        meta = out if isinstance(out, list) else meta  # an edit may replace the whole JSON by a list
    if isinstance(meta, dict) and isinstance(meta.get("files"), dict):
        for name, rec in meta["files"].items():
            p = folder / name
            if isinstance(rec, dict) and p.is_file():
                rec["bytes"], rec["sha256"] = p.stat().st_size, sha256_file(p)
    j.write_text(json.dumps(meta))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def ck(tmp_path) -> Path:
    """A classifier checkpoint at step 6 (best weights, AdamW state, history)."""
    FT.train_classifier(clf(), TRAIN, DEV, run_cfg(tmp_path / "ck"))
    return tmp_path / "ck"


# ---------------------------------------------------------------- format 1 (main) still loads


def test_a_format_1_checkpoint_written_by_main_still_loads_and_resumes(tmp_path):
    meta = read_checkpoint_meta(FIXTURE)
    assert meta["format_version"] == 1 and "head" not in meta
    model, tok, _ = load_checkpoint(FIXTURE, "cpu", verify_train_state=True)
    assert tok.decode(tok.encode("abc")) == "abc" and model.config.n_layer == 1
    folder = Path(shutil.copytree(FIXTURE, tmp_path / "ck"))
    ids = torch.tensor(tok.encode("abc defg hij klmnop\n" * 20))
    cfg = T.TrainConfig(max_steps=6, batch_size=2, lr=1e-3, min_lr=1e-4, warmup_steps=1, eval_interval=2, eval_iters=1,
                        log_interval=1, bf16=False, device="cpu", progress=False, seed=1, ckpt_dir=str(folder))
    with pytest.warns(UserWarning, match="max_steps"):  # the fixture ran 4 steps with lr_decay_steps=None
        h = T.train(model.train(), ids[:300], ids[300:], cfg, resume=True)
    assert h.eval_steps == [0, 2, 4, 6] and h.eval_val_loss[:3] == meta["history"]["eval_val_loss"]
    assert read_checkpoint_meta(folder)["format_version"] == 2


def test_a_claimed_200000_layers_is_refused_from_the_header(tmp_path, capsys):
    folder = Path(shutil.copytree(FIXTURE, tmp_path / "ck"))
    rehash(folder, lambda m: m["model_config"].update(n_layer=200_000))
    with pytest.raises(CheckpointError, match="claims n_layer=200000, the file holds 1 blocks"):
        load_checkpoint(folder, "cpu")  # compared before even a meta-device model is built: well under a second
    from gptlab import cli

    for command in (["info", str(folder)], ["generate", "--checkpoint", str(folder), "--max-new-tokens", "2"]):
        assert cli.main(command) == 1
    assert "claims n_layer=200000" in capsys.readouterr().err


# ---------------------------------------------------------------- classifier checkpoints (D05-D14)


def test_D05_resume_refuses_another_pool_or_adapters(ck):
    before = snapshot(ck)
    with pytest.raises(ValueError, match="its head is .*'pool': 'last'.*this model's is .*'pool': 'mean'"):
        FT.train_classifier(clf(pool="mean"), TRAIN, DEV, run_cfg(ck, max_steps=9), resume=True)
    with pytest.raises(ValueError, match="its lora is None"):
        FT.train_classifier(clf(lora=True), TRAIN, DEV, run_cfg(ck, max_steps=9), resume=True)
    assert snapshot(ck) == before


def test_D06_divergence_stops_and_keeps_the_last_good_checkpoint(ck, tmp_path):
    before = snapshot(ck)
    with pytest.warns(UserWarning, match="changed settings"), \
            pytest.raises(T.TrainingDiverged, match="the last good checkpoint \\(step 6\\) in .* is kept"):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg(ck, max_steps=12, lr=1e30, min_lr=1e29), resume=True)
    assert snapshot(ck) == before  # never overwritten by NaN weights
    model = clf()
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    with pytest.raises(T.TrainingDiverged, match="nothing was saved"):
        FT.train_classifier(model, TRAIN, DEV, run_cfg(tmp_path / "new", max_steps=12))
    assert not (tmp_path / "new").exists()


def test_D07_the_output_folder_is_checked_before_training(tmp_path, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    model = clf()
    w = model.head.weight.detach().clone()
    with pytest.raises(ValueError, match="it is a file, not a folder"):
        FT.train_classifier(model, TRAIN, DEV, run_cfg(notes))
    assert notes.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert torch.equal(model.head.weight, w)  # refused before the first step
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="name a folder of its own"):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg("."))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_D08_a_save_killed_between_its_renames_is_recovered(ck):
    want, _ = FT.load_classifier(ck, "cpu")
    os.replace(ck, ck.parent / f".{ck.name}.tmp")  # the kill: the new copy complete, not yet renamed into place
    got, _ = FT.load_classifier(ck, "cpu")  # readers read it where it lies
    x = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(got(x), want(x), rtol=0, atol=0)
    h = FT.train_classifier(clf(), TRAIN, DEV, run_cfg(ck, max_steps=9), resume=True)  # the writer finishes the rename
    assert ck.is_dir() and not (ck.parent / f".{ck.name}.tmp").exists() and h.eval_steps == [3, 6, 9]


HOLD_LOCK = "import sys, time\nfrom gptlab.checkpoint import writer_lock\nwith writer_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)"


def test_D09_a_second_writer_is_refused(ck):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(ck)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(ck)
        with pytest.raises(CheckpointBusyError, match="another gptlab process is training into"):
            FT.train_classifier(clf(), TRAIN, DEV, run_cfg(ck, max_steps=9), resume=True)
        assert snapshot(ck) == before
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("where", ["weights", "best"])
def test_D10_non_finite_weights_are_refused_on_load(ck, where):
    from safetensors.torch import load_file, save_file

    if where == "weights":
        w = load_file(ck / "model.safetensors")
        w["head.weight"][0, 0] = float("inf")
        save_file(w, ck / "model.safetensors", metadata={"format": "pt"})
    else:
        state = torch.load(ck / "train_state.pt", weights_only=True)
        state["best"]["head.bias"][0] = float("nan")
        torch.save(state, ck / "train_state.pt")
    rehash(ck)
    with pytest.raises(CheckpointError, match="NaN|non-finite"):
        FT.load_classifier(ck, "cpu")
    with pytest.raises(CheckpointError, match="NaN|non-finite"):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg(ck, max_steps=9), resume=True)


@pytest.mark.parametrize("edit, message", [
    (lambda m: [m], "not a gptlab checkpoint description"),
    (lambda m: m.pop("model_config") and None, "no 'model_config' entry"),
    (lambda m: m.update(lora="yes"), "'lora' must be"),
    (lambda m: m.update(head={"num_classes": 2, "pool": "max"}), "'head' must be"),
    (lambda m: m.update(step=-5), "'step' must be an integer >= 0"),
    (lambda m: m.update(history={"eval_dev_accuracy": ["x"]}), "history\\['eval_dev_accuracy'\\] must be a list of numbers"),
    (lambda m: m["history"].update(best_step=-1), "best_step"),
])
def test_D11_the_schema_is_checked_in_one_place(ck, edit, message):
    rehash(ck, edit)
    with pytest.raises(CheckpointError, match=message):
        FT.load_classifier(ck, "cpu")


def test_D11_a_step_beyond_max_steps_is_refused(ck):
    rehash(ck, lambda m: m.update(step=10**9))
    with pytest.raises((CheckpointError, ValueError)):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg(ck, max_steps=9), resume=True)


def test_D12_the_file_map_is_confined_and_complete(ck, tmp_path):
    rehash(ck, lambda m: m["files"].update({"../../../../etc/hostname": m["files"]["model.safetensors"]}))
    with pytest.raises(CheckpointError, match="'files' must be"):
        FT.load_classifier(ck, "cpu")
    rehash(ck, lambda m: m["files"].pop("../../../../etc/hostname"))
    rehash(ck, lambda m: m.update(files={}))  # "skip every hash"
    with pytest.raises(CheckpointError, match="exactly one of model.safetensors"):
        FT.load_classifier(ck, "cpu")
    # a model.safetensors that is a symlink into another checkpoint
    FT.train_classifier(clf(seed=1), TRAIN, DEV, run_cfg(tmp_path / "other"))
    FT.train_classifier(clf(), TRAIN, DEV, run_cfg(tmp_path / "ck2"))
    (tmp_path / "ck2" / "model.safetensors").unlink()
    (tmp_path / "ck2" / "model.safetensors").symlink_to(tmp_path / "other" / "model.safetensors")
    rehash(tmp_path / "ck2")
    with pytest.raises(CheckpointError, match="points outside the checkpoint folder"):
        FT.load_classifier(tmp_path / "ck2", "cpu")
    # a train_state.pt the map does not record
    rehash(ck, lambda m: m.update(files={k: v for k, v in json.loads((tmp_path / "ck2" / "checkpoint.json").read_text())["files"].items()
                                          if k == "model.safetensors"}))
    with pytest.raises(CheckpointError):
        FT.load_classifier(ck, "cpu")


@pytest.mark.parametrize("field, value", [("n_embd", 32768), ("vocab_size", 2_000_000_000), ("n_layer", 4000)])
def test_D13_a_huge_config_is_refused_before_anything_is_built(ck, field, value):
    def edit(m):
        m["model_config"][field] = value
        if field == "n_embd":
            m["model_config"]["n_head"] = 4
    rehash(ck, edit)
    with pytest.raises(CheckpointError, match="claims"):
        FT.load_classifier(ck, "cpu")  # the header says otherwise: no 12.9 GB model is built


@pytest.mark.parametrize("shape, value", [((1,), 0.0), ((3,), 0.0), (None, float("nan"))])
def test_D14_optimizer_state_is_checked_before_adamw_uses_it(ck, shape, value):
    state = torch.load(ck / "train_state.pt", weights_only=True)
    for s in state["optimizer"]["state"].values():
        for k in ("exp_avg", "exp_avg_sq"):
            s[k] = torch.full(shape or s[k].shape, value)
    torch.save(state, ck / "train_state.pt")
    rehash(ck)
    model = clf()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(CheckpointError, match="train_state.pt is damaged"):
        FT.train_classifier(model, TRAIN, DEV, run_cfg(ck, max_steps=9), resume=True)  # no SIGSEGV
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # nothing loaded into the model


def test_optimizer_state_for_an_unknown_parameter_is_refused(ck):
    state = torch.load(ck / "train_state.pt", weights_only=True)
    state["optimizer"]["state"][999] = dict(state["optimizer"]["state"][0])
    torch.save(state, ck / "train_state.pt")
    rehash(ck)
    with pytest.raises(CheckpointError, match="parameter 999"):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg(ck, max_steps=9), resume=True)


def test_a_classifier_checkpoint_is_not_loaded_as_a_language_model(ck):
    with pytest.raises(CheckpointError, match="load it with gptlab.finetune.load_classifier"):
        load_checkpoint(ck, "cpu")
