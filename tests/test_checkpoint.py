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
from _tiny import ROOT, TEXT, TINY, deadline, edit_meta, edit_train_state, fresh_model, rehash, resume, snapshot
from safetensors.torch import load_file, save_file

from gptlab import GPT, GPTConfig, cli
from gptlab import checkpoint as C
from gptlab import finetune as FT
from gptlab import training as T
from gptlab.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta
from gptlab.files import CheckpointBusyError
from gptlab.lora import apply_lora
from gptlab.tokenizers import CharTokenizer

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


@pytest.fixture
def clf_ck(tmp_path) -> Path:
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


def test_D05_resume_refuses_another_pool_or_adapters(clf_ck):
    before = snapshot(clf_ck)
    with pytest.raises(ValueError, match="its head is .*'pool': 'last'.*this model's is .*'pool': 'mean'"):
        FT.train_classifier(clf(pool="mean"), TRAIN, DEV, run_cfg(clf_ck, max_steps=9), resume=True)
    with pytest.raises(ValueError, match="its lora is None"):
        FT.train_classifier(clf(lora=True), TRAIN, DEV, run_cfg(clf_ck, max_steps=9), resume=True)
    assert snapshot(clf_ck) == before


def test_D06_divergence_stops_and_keeps_the_last_good_checkpoint(clf_ck, tmp_path):
    before = snapshot(clf_ck)
    with pytest.warns(UserWarning, match="changed settings"), \
            pytest.raises(T.TrainingDiverged, match="the last good checkpoint \\(step 6\\) in .* is kept"):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg(clf_ck, max_steps=12, lr=1e30, min_lr=1e29), resume=True)
    assert snapshot(clf_ck) == before  # never overwritten by NaN weights
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


def test_D08_a_save_killed_between_its_renames_is_recovered(clf_ck):
    want, _ = FT.load_classifier(clf_ck, "cpu")
    os.replace(clf_ck, clf_ck.parent / f".{clf_ck.name}.tmp")  # the kill: the new copy complete, not yet renamed into place
    got, _ = FT.load_classifier(clf_ck, "cpu")  # readers read it where it lies
    x = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(got(x), want(x), rtol=0, atol=0)
    h = FT.train_classifier(clf(), TRAIN, DEV, run_cfg(clf_ck, max_steps=9), resume=True)  # the writer finishes the rename
    assert clf_ck.is_dir() and not (clf_ck.parent / f".{clf_ck.name}.tmp").exists() and h.eval_steps == [3, 6, 9]


HOLD_LOCK = ("import sys, time\nfrom gptlab.checkpoint import writer_lock\nwith writer_lock(sys.argv[1]):\n"
             "    print('held', flush=True)\n    time.sleep(60)")


def test_D09_a_second_writer_is_refused(clf_ck):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(clf_ck)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(clf_ck)
        with pytest.raises(CheckpointBusyError, match="another gptlab process is training into"):
            FT.train_classifier(clf(), TRAIN, DEV, run_cfg(clf_ck, max_steps=9), resume=True)
        assert snapshot(clf_ck) == before
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("where", ["weights", "best"])
def test_D10_non_finite_weights_are_refused_on_load(clf_ck, where):
    from safetensors.torch import load_file, save_file

    if where == "weights":
        w = load_file(clf_ck / "model.safetensors")
        w["head.weight"][0, 0] = float("inf")
        save_file(w, clf_ck / "model.safetensors", metadata={"format": "pt"})
    else:
        state = torch.load(clf_ck / "train_state.pt", weights_only=True)
        state["best"]["head.bias"][0] = float("nan")
        torch.save(state, clf_ck / "train_state.pt")
    rehash(clf_ck)
    with pytest.raises(CheckpointError, match="NaN|non-finite"):
        FT.load_classifier(clf_ck, "cpu")
    with pytest.raises(CheckpointError, match="NaN|non-finite"):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg(clf_ck, max_steps=9), resume=True)


@pytest.mark.parametrize("edit, message", [
    (lambda m: [m], "not a gptlab checkpoint description"),
    (lambda m: m.pop("model_config") and None, "no 'model_config' entry"),
    (lambda m: m.update(lora="yes"), "'lora' must be"),
    (lambda m: m.update(head={"num_classes": 2, "pool": "max"}), "'head' must be"),
    (lambda m: m.update(step=-5), "'step' must be an integer >= 0"),
    (lambda m: m.update(history={"eval_dev_accuracy": ["x"]}), "history\\['eval_dev_accuracy'\\] must be a list of numbers"),
    (lambda m: m["history"].update(best_step=-1), "best_step"),
])
def test_D11_the_schema_is_checked_in_one_place(clf_ck, edit, message):
    rehash(clf_ck, edit)
    with pytest.raises(CheckpointError, match=message):
        FT.load_classifier(clf_ck, "cpu")


def test_D11_a_step_beyond_max_steps_is_refused(clf_ck):
    rehash(clf_ck, lambda m: m.update(step=10**9))
    with pytest.raises((CheckpointError, ValueError)):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg(clf_ck, max_steps=9), resume=True)


def test_D12_the_file_map_is_confined_and_complete(clf_ck, tmp_path):
    rehash(clf_ck, lambda m: m["files"].update({"../../../../etc/hostname": m["files"]["model.safetensors"]}))
    with pytest.raises(CheckpointError, match="'files' must be"):
        FT.load_classifier(clf_ck, "cpu")
    rehash(clf_ck, lambda m: m["files"].pop("../../../../etc/hostname"))
    rehash(clf_ck, lambda m: m.update(files={}))  # "skip every hash"
    with pytest.raises(CheckpointError, match="exactly one of model.safetensors"):
        FT.load_classifier(clf_ck, "cpu")
    # a model.safetensors that is a symlink into another checkpoint
    FT.train_classifier(clf(seed=1), TRAIN, DEV, run_cfg(tmp_path / "other"))
    FT.train_classifier(clf(), TRAIN, DEV, run_cfg(tmp_path / "ck2"))
    (tmp_path / "ck2" / "model.safetensors").unlink()
    (tmp_path / "ck2" / "model.safetensors").symlink_to(tmp_path / "other" / "model.safetensors")
    rehash(tmp_path / "ck2")
    with pytest.raises(CheckpointError, match="points outside the checkpoint folder"):
        FT.load_classifier(tmp_path / "ck2", "cpu")
    # a train_state.pt the map does not record
    other = json.loads((tmp_path / "ck2" / "checkpoint.json").read_text())["files"]
    rehash(clf_ck, lambda m: m.update(files={k: v for k, v in other.items() if k == "model.safetensors"}))
    with pytest.raises(CheckpointError):
        FT.load_classifier(clf_ck, "cpu")


@pytest.mark.parametrize("field, value", [("n_embd", 32768), ("vocab_size", 2_000_000_000), ("n_layer", 4000)])
def test_D13_a_huge_config_is_refused_before_anything_is_built(clf_ck, field, value):
    def edit(m):
        m["model_config"][field] = value
        if field == "n_embd":
            m["model_config"]["n_head"] = 4
    rehash(clf_ck, edit)
    with pytest.raises(CheckpointError, match="claims"):
        FT.load_classifier(clf_ck, "cpu")  # the header says otherwise: no 12.9 GB model is built


@pytest.mark.parametrize("shape, value", [((1,), 0.0), ((3,), 0.0), (None, float("nan"))])
def test_D14_optimizer_state_is_checked_before_adamw_uses_it(clf_ck, shape, value):
    state = torch.load(clf_ck / "train_state.pt", weights_only=True)
    for s in state["optimizer"]["state"].values():
        for k in ("exp_avg", "exp_avg_sq"):
            s[k] = torch.full(shape or s[k].shape, value)
    torch.save(state, clf_ck / "train_state.pt")
    rehash(clf_ck)
    model = clf()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(CheckpointError, match="train_state.pt is damaged"):
        FT.train_classifier(model, TRAIN, DEV, run_cfg(clf_ck, max_steps=9), resume=True)  # no SIGSEGV
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # nothing loaded into the model


def test_optimizer_state_for_an_unknown_parameter_is_refused(clf_ck):
    state = torch.load(clf_ck / "train_state.pt", weights_only=True)
    state["optimizer"]["state"][999] = dict(state["optimizer"]["state"][0])
    torch.save(state, clf_ck / "train_state.pt")
    rehash(clf_ck)
    with pytest.raises(CheckpointError, match="parameter 999"):
        FT.train_classifier(clf(), TRAIN, DEV, run_cfg(clf_ck, max_steps=9), resume=True)


def test_a_classifier_checkpoint_is_not_loaded_as_a_language_model(clf_ck):
    with pytest.raises(CheckpointError, match="load it with gptlab.finetune.load_classifier"):
        load_checkpoint(clf_ck, "cpu")


# ---------------------------------------------------------------- moved from test_hardening.py and test_mutation_gaps.py
HOLD = """
import sys, time
from gptlab.checkpoint import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


SAVER = """
import sys, torch
from gptlab import GPT, GPTConfig
from gptlab.checkpoint import save_checkpoint
from gptlab.tokenizers import CharTokenizer
tok = CharTokenizer.from_text("abcdefgh")
torch.manual_seed(0)
model = GPT(GPTConfig.from_preset("tiny", vocab_size=8))
print("go", flush=True)
for step in range(1, int(sys.argv[2])):
    save_checkpoint(sys.argv[1], model, tokenizer=tok, step=step)
"""


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s["optimizer"]["state"][0].__setitem__("exp_avg", torch.zeros(3)), "exp_avg of parameter 0"),  # too small
    (lambda s: s["optimizer"]["state"][1].__setitem__("exp_avg_sq", torch.zeros(4096, 64)), "exp_avg_sq of parameter 1"),  # too large
    (lambda s: s["optimizer"]["state"][0].__setitem__("exp_avg", s["optimizer"]["state"][0]["exp_avg"].double()), "float64"),
    (lambda s: s["optimizer"]["state"][0].__setitem__("step", torch.zeros(5)), "step of parameter 0"),
    (lambda s: s["optimizer"]["state"][0].__setitem__("exp_avg", s["optimizer"]["state"][0]["exp_avg"].t()), "exp_avg of parameter 0"),
    (lambda s: s["optimizer"]["state"].__setitem__(999, s["optimizer"]["state"][0]), "parameter 999"),
    (lambda s: s["optimizer"]["param_groups"][0]["params"].pop(), "parameter group 0"),
    (lambda s: s["optimizer"]["param_groups"][0].__setitem__("lr", "fast"), "'lr'"),
    (lambda s: s["optimizer"].pop("state"), "optimizer state"),
    (lambda s: s.__setitem__("optimizer", [1, 2]), "optimizer state"),
    (lambda s: s["rng"].__setitem__("batch", torch.zeros(3, dtype=torch.uint8)), "random-generator"),
    (lambda s: s.__setitem__("step", 99), "step"),
])
def test_optimizer_state_is_checked_against_the_parameters_before_adamw_sees_it(ck, edit, needle):
    edit_train_state(ck, edit)
    before = snapshot(ck)
    with pytest.raises(C.CheckpointError, match="train_state.pt") as e:
        resume(ck)
    assert needle in str(e.value)
    assert snapshot(ck) == before


def test_a_fitting_optimizer_state_still_resumes(ck):
    assert resume(ck).eval_steps[-1] == 6


def test_tampered_tokenizer_in_a_checkpoint_is_a_checkpoint_error(ck):
    (ck / "tokenizer.json").write_text(json.dumps({"type": "bpe", "merges": [], "special_tokens": {"": 256}}))
    rehash(ck)
    before = snapshot(ck)
    with deadline(10), pytest.raises(C.CheckpointError, match="tokenizer.json"):
        C.load_checkpoint(ck, device="cpu")
    assert snapshot(ck) == before


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "checkpoint.json"])
def test_checkpoint_files_symlinked_out_are_refused(ck, tmp_path, name):
    shutil.move(ck / name, tmp_path / name)
    os.symlink(tmp_path / name, ck / name)
    with pytest.raises(C.CheckpointError, match="outside the checkpoint folder"):
        C.load_checkpoint(ck, device="cpu")


def test_files_named_outside_the_checkpoint_folder_are_refused(ck, tmp_path):
    (tmp_path / "evil.safetensors").write_bytes((ck / "model.safetensors").read_bytes())
    rehash(ck, lambda m: m["files"].__setitem__("../evil.safetensors", {"bytes": 1, "sha256": "0" * 64}))
    with pytest.raises(C.CheckpointError, match="'files' must be"):
        C.load_checkpoint(ck, device="cpu")
    rehash(ck, lambda m: m["files"].pop("../evil.safetensors") and m["tokenizer"].__setitem__("file", "../x.json"))
    with pytest.raises(C.CheckpointError, match="'tokenizer' must be"):
        C.load_checkpoint(ck, device="cpu")


@pytest.mark.parametrize("field, value", [
    ("files", ["model.safetensors"]), ("files", {"model.safetensors": {"bytes": "12", "sha256": "x"}}),
    ("format_version", "1"), ("format_version", 1.5), ("tied_weights", ["lm_head.weight"]),
    ("tied_weights", {"lm_head.weight": "transformer.h.0.attn.c_attn.weight"}),
    ("model_config", "tiny"), ("model_config", {"n_layer": "2"}), ("model_config", {"n_layers": 2}),
    ("tokenizer", "char"), ("tokenizer", {"file": "tokenizer.json", "type": "char", "n_vocab": "many"}),
    ("train_config", [1]), ("train_config", {"lr": "fast"}), ("train_config", {"seed": -1}),
    ("history", {"eval_steps": [0, "x"]}), ("history", {"eval_val_loss": [1.0], "eval_steps": []}), ("history", [1]),
    ("step", "3"), ("step", -1), ("gptlab_version", 3),
])
def test_wrong_types_in_checkpoint_json_name_the_field(ck, capsys, field, value):
    edit_meta(ck, lambda m: m.__setitem__(field, value))
    before = snapshot(ck)
    with pytest.raises(C.CheckpointError, match="checkpoint.json") as e:
        C.load_checkpoint(ck, device="cpu")
    assert field in str(e.value)
    assert cli.main(["info", str(ck)]) == 1  # a sentence, not a traceback or a bare key name
    err = capsys.readouterr().err
    assert err.startswith("gptlab info: error:") and field in err and len(err.splitlines()) == 1
    assert snapshot(ck) == before


@pytest.mark.parametrize("missing", ["files", "model_config", "step"])
def test_missing_checkpoint_json_entries_are_named(ck, capsys, missing):
    edit_meta(ck, lambda m: m.pop(missing))
    assert cli.main(["info", str(ck)]) == 1
    assert f"no '{missing}' entry" in capsys.readouterr().err


def test_unreadable_safetensors_is_called_unreadable_not_a_misfit(ck):
    (ck / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header!!}" + b"\0" * 64)
    rehash(ck)
    with pytest.raises(C.CheckpointError, match="cannot be read as safetensors"):
        C.load_checkpoint(ck, device="cpu")


def test_integer_weights_are_refused(ck):
    w = load_file(ck / "model.safetensors")
    w["transformer.ln_f.weight"] = w["transformer.ln_f.weight"].int()
    save_file(w, ck / "model.safetensors")
    rehash(ck)
    with pytest.raises(C.CheckpointError, match="floating point"):
        C.load_checkpoint(ck, device="cpu")


def test_save_refuses_non_finite_weights(tmp_path):
    model = fresh_model()
    with torch.no_grad():
        model.transformer.wpe.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        C.save_checkpoint(tmp_path / "ck", model)
    assert not (tmp_path / "ck").exists()


def test_a_second_training_into_the_same_folder_is_refused_at_once(ck, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ck)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(ck)
        assert cli.main(["train", *TINY, "--text-file", str(text), "--out", str(ck), "--overwrite"]) == 1
        err = capsys.readouterr().err
        assert "another gptlab process is training into" in err
        with pytest.raises(CheckpointBusyError):
            resume(ck)
        assert snapshot(ck) == before
    finally:
        holder.kill()
        holder.wait()
    assert resume(ck).eval_steps[-1] == 6  # the lock died with its holder (as after kill -9)
    assert not list(ck.parent.glob(".ck.*"))  # no lock file or temporary folder left behind


def test_readers_during_saves_never_see_corruption(tmp_path):
    path = tmp_path / "ck"
    torch.manual_seed(0)
    C.save_checkpoint(path, GPT(GPTConfig.from_preset("tiny", vocab_size=8)), tokenizer=CharTokenizer.from_text("abcdefgh"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path), "60"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert saver.stdout.readline().strip() == "go"
        steps = []
        while saver.poll() is None:
            steps.append(C.load_checkpoint(path, device="cpu")[2]["step"])  # never a CheckpointError
            steps.append(C.read_checkpoint_meta(path)["step"])
    finally:
        saver.kill()
        saver.wait()
    assert steps == sorted(steps) and len(steps) > 2


def test_readers_never_rename_a_killed_save(ck):
    tmp, old = C._siblings(ck)
    model, tok, _ = C.load_checkpoint(ck, device="cpu")
    C.save_checkpoint(ck.parent / "next", model, tokenizer=tok, step=9)
    os.replace(ck, old)  # a save killed between its two renames: old moved aside, the new one complete
    os.replace(ck.parent / "next", tmp)
    before = snapshot(ck)
    assert C.load_checkpoint(ck, device="cpu")[2]["step"] == 9  # reads the complete copy where it lies
    assert C.read_checkpoint_meta(tmp)["step"] == 9
    assert snapshot(ck) == before and not ck.exists()  # ... and renames nothing
    C.save_checkpoint(ck, model, tokenizer=tok, step=10)  # a writer, under the lock, finishes the swap
    assert C.read_checkpoint_meta(ck)["step"] == 10 and not tmp.exists() and not old.exists()


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(ck):
    CharTokenizer.from_text(TEXT + "~").save(ck / "tokenizer.json")  # one token more than the model was built for
    rehash(ck)
    with pytest.raises(C.CheckpointError, match="does not belong to this model"):
        C.load_checkpoint(ck, device="cpu")


def test_a_malicious_train_state_is_called_code_and_refused(ck):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(ck / "pwned"),))

    torch.save({"optimizer": Evil()}, ck / "train_state.pt")
    rehash(ck)
    before = snapshot(ck)
    with pytest.raises(C.CheckpointError, match="holds Python code") as e:
        resume(ck)
    assert "weights_only=False" not in str(e.value) and "refuses" in str(e.value)
    assert snapshot(ck) == before and not (ck / "pwned").exists()


def test_checkpoint_json_of_another_format_is_refused(tmp_path):
    C.save_checkpoint(tmp_path / "ck", fresh_model())
    meta = (tmp_path / "ck" / "checkpoint.json")
    meta.write_text(meta.read_text().replace('"gptlab-checkpoint"', '"something-else"'))
    with pytest.raises(C.CheckpointError, match="not a gptlab checkpoint"):
        C.load_checkpoint(tmp_path / "ck", device="cpu")
