"""Tests of gptlab.checkpoint: the folder format, its schema and its guarantees against hostile files.

Moved here from test_hardening.py (issue 20: every file is hostile input) and test_mutation_gaps.py (issue 21).
Each hostile-input test builds a crafted file (or folder), checks the specific error, and checks that nothing was
lost or modified (a checkpoint folder's bytes are compared before and after). Where checkpoint.json records hashes,
the crafted file's hash is recomputed so that it "matches": the hashes prove nothing.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from _tiny import ROOT, TEXT, TINY, deadline, edit_meta, edit_train_state, fresh_model, rehash, resume, snapshot
from safetensors.torch import load_file, save_file

from gptlab import GPT, GPTConfig, cli
from gptlab import checkpoint as C
from gptlab import training as T
from gptlab.tokenizers import CharTokenizer

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
        with pytest.raises(C.CheckpointBusyError):
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
    T.save_checkpoint(tmp_path / "ck", fresh_model())
    meta = (tmp_path / "ck" / "checkpoint.json")
    meta.write_text(meta.read_text().replace('"gptlab-checkpoint"', '"something-else"'))
    with pytest.raises(T.CheckpointError, match="not a gptlab checkpoint"):
        T.load_checkpoint(tmp_path / "ck", device="cpu")
