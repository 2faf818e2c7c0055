"""Issue 20: every file is hostile input, and errors come early and say what to change.

Each test builds a crafted file (or folder) in tmp_path, checks the specific error,
and checks that nothing was lost or modified (a checkpoint folder's bytes are
compared before and after). Where checkpoint.json records hashes, the crafted
file's hash is recomputed so that it "matches": the hashes prove nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gptlab import GPT, GPTConfig, cli
from gptlab import checkpoint as C
from gptlab import training as T
from gptlab.files import CheckpointBusyError
from gptlab.datasets import sha256_file
from gptlab.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer, train_bpe

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n\n"
) * 20
TOK = CharTokenizer.from_text(TEXT)
IDS = torch.tensor(TOK.encode(TEXT))
TRAIN, VAL = IDS[: int(len(IDS) * 0.9)], IDS[int(len(IDS) * 0.9) :]
MODEL_CFG = GPTConfig.from_preset("tiny", vocab_size=TOK.n_vocab)
TINY = ["--preset", "tiny", "--max-steps", "4", "--eval-interval", "2", "--eval-iters", "2", "--batch-size", "4", "--no-progress"]


def run_cfg(ckpt_dir=None, **kw) -> T.TrainConfig:
    base = dict(max_steps=4, batch_size=4, lr=3e-3, min_lr=3e-4, warmup_steps=1, lr_decay_steps=8, eval_interval=2, eval_iters=2,
                log_interval=1, ckpt_interval=2, progress=False, seed=7)
    return T.TrainConfig(ckpt_dir=None if ckpt_dir is None else str(ckpt_dir), **{**base, **kw})


def fresh_model() -> GPT:
    torch.manual_seed(0)
    return GPT(MODEL_CFG)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trained") / "ck"
    T.train(fresh_model(), TRAIN, VAL, run_cfg(path), tokenizer=TOK)
    return path


@pytest.fixture()
def ck(trained, tmp_path) -> Path:
    """A fresh copy of a resumable 4-step checkpoint, to damage."""
    return Path(shutil.copytree(trained, tmp_path / "ck"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (and its hidden siblings), by relative path: 'nothing was modified' is equality."""
    out = {}
    for base in [folder, *folder.parent.glob(f".{folder.name}.*")]:
        for p in sorted(base.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(folder.parent))] = p.read_bytes()
    return out


def rehash(folder: Path, edit=None) -> None:
    """Rewrite checkpoint.json (after `edit(meta)`) with every listed file's size and sha256 recomputed to match."""
    j = folder / "checkpoint.json"
    meta = json.loads(j.read_text())
    if edit is not None:
        edit(meta)
    for name in list(meta["files"] if isinstance(meta.get("files"), dict) else []):
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


def resume(path: Path, **kw) -> T.History:
    return T.train(GPT(MODEL_CFG), TRAIN, VAL, run_cfg(path, **{"max_steps": 6, **kw}), tokenizer=TOK, resume=True)


def gptlab(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "gptlab", *args], capture_output=True, env=env, timeout=120, **kw)


# ---------------------------------------------------------------- 1. optimizer state that does not fit


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
def test_1_optimizer_state_is_checked_against_the_parameters_before_adamw_sees_it(ck, edit, needle):
    edit_train_state(ck, edit)
    before = snapshot(ck)
    with pytest.raises(C.CheckpointError, match="train_state.pt") as e:
        resume(ck)
    assert needle in str(e.value)
    assert snapshot(ck) == before


def test_1_a_fitting_state_still_resumes(ck):
    assert resume(ck).eval_steps[-1] == 6


# ---------------------------------------------------------------- 2. tampered tokenizer.json


BPE = train_bpe(TEXT, 300, special_tokens=["<|endoftext|>"])


def bpe_file(tmp_path: Path, **changes) -> Path:
    d = {**BPE.to_dict(), **changes}
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(d), encoding="utf-8")
    return p


@pytest.mark.parametrize("changes, needle", [
    (dict(special_tokens={"": 300}), "non-empty"),  # used to make encoding loop forever
    (dict(merges=[[97, 97]] + [[256 + i, 256 + i] for i in range(60)]), "at most 4096 bytes"),  # doubles: 2**60 bytes
    (dict(merges=[[97, 300]]), "does not exist yet"),  # refers forward
    (dict(merges=[[97, 98], [97, 98]]), "same bytes"),
    (dict(merges=[[97, 98.5]]), "integer token ids"),
    (dict(merges=[[97, True]]), "integer token ids"),
    (dict(pattern="(unclosed"), "not a valid regular expression"),
    (dict(pattern="xyz"), "does not cover"),  # would drop text silently
    (dict(pattern="a*"), "empty string"),
    (dict(special_tokens={"<|endoftext|>": "300"}), "integer id"),
    (dict(special_tokens={"<|endoftext|>": 7}), "special token ids must follow"),
    (dict(special_tokens=[1]), "special_tokens"),
])
def test_2_tampered_bpe_files_fail_on_load_quickly(tmp_path, changes, needle):
    p = bpe_file(tmp_path, **changes)
    before = p.read_bytes()
    with deadline(10), pytest.raises(ValueError, match="corrupt tokenizer file") as e:
        load_tokenizer(p)
    assert needle in str(e.value) and p.read_bytes() == before


def test_2_tampered_char_files_and_junk(tmp_path):
    p = tmp_path / "t.json"
    for content, needle in [('{"type": "char", "chars": "ab\\ud800"}', "lone surrogate"),
                            ('{"type": "char", "chars": "aa"}', "duplicate"),
                            ('{"type": "char", "chars": 5}', "chars"),
                            ("[" * 100000 + "]" * 100000, "not a valid tokenizer file"),
                            ('{"type": "char", "chars": ""}', "at least one character")]:
        p.write_text(content)
        with pytest.raises(ValueError, match=needle):
            load_tokenizer(p)


def test_2_a_custom_pattern_must_cover_the_text_it_encodes():
    tok = BPETokenizer(BPE.merges, pattern=r"[^\n]+|\n")  # covers every text
    assert tok.decode(tok.encode(TEXT[:80])) == TEXT[:80]
    sparse = BPETokenizer([], pattern=r"[\s\S]")  # one character at a time: fine
    assert sparse.decode(sparse.encode("é!")) == "é!"
    with pytest.raises(ValueError, match="does not cover"):
        BPETokenizer([], pattern=r"\w+|\s+")  # punctuation would vanish


def test_2_tampered_tokenizer_in_a_checkpoint_is_a_checkpoint_error(ck):
    (ck / "tokenizer.json").write_text(json.dumps({"type": "bpe", "merges": [], "special_tokens": {"": 256}}))
    rehash(ck)
    before = snapshot(ck)
    with deadline(10), pytest.raises(C.CheckpointError, match="tokenizer.json"):
        C.load_checkpoint(ck, device="cpu")
    assert snapshot(ck) == before


# ---------------------------------------------------------------- 3. loaders stay inside the folder they are given


@pytest.fixture()
def hf_folder(tmp_path) -> Path:
    from gptlab.pretrained import export_hf_gpt2

    return export_hf_gpt2(GPT(GPTConfig.from_preset("tiny", vocab_size=50)), tmp_path / "hf")


def shard(folder: Path, names: tuple[str, str]) -> None:
    """Split model.safetensors into two shards named `names` (paths relative to the folder) plus an index."""
    tensors = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    keys = sorted(tensors)
    parts = {names[0]: keys[: len(keys) // 2], names[1]: keys[len(keys) // 2 :]}
    for name, ks in parts.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: tensors[k] for k in ks}, target)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: n for n, ks in parts.items() for k in ks}}))


def test_3_a_sharded_folder_inside_loads(hf_folder):
    from gptlab.pretrained import load_hf_gpt2

    shard(hf_folder, ("a.safetensors", "b.safetensors"))
    assert load_hf_gpt2(hf_folder).config.n_layer == 2


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_3_shards_outside_the_folder_are_refused(hf_folder, tmp_path, kind):
    from gptlab.pretrained import load_hf_gpt2

    outside = tmp_path / "elsewhere" / "b.safetensors"
    names = {"dotdot": ("a.safetensors", "../elsewhere/b.safetensors"),
             "absolute": ("a.safetensors", str(outside)),
             "symlink": ("a.safetensors", "../elsewhere/b.safetensors")}[kind]
    shard(hf_folder, names)
    if kind == "symlink":  # a name that looks local but is a link out of the folder
        os.symlink(outside, hf_folder / "b.safetensors")
        index = json.loads((hf_folder / "model.safetensors.index.json").read_text())
        index["weight_map"] = {k: Path(v).name for k, v in index["weight_map"].items()}
        (hf_folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="outside the folder|not a file name inside"):
        load_hf_gpt2(hf_folder)


def test_3_config_symlinked_out_of_the_folder_is_refused(hf_folder, tmp_path):
    from gptlab.pretrained import load_hf_gpt2

    shutil.move(hf_folder / "config.json", tmp_path / "config.json")
    os.symlink(tmp_path / "config.json", hf_folder / "config.json")
    with pytest.raises(ValueError, match="outside the folder"):
        load_hf_gpt2(hf_folder)


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "checkpoint.json"])
def test_3_checkpoint_files_symlinked_out_are_refused(ck, tmp_path, name):
    shutil.move(ck / name, tmp_path / name)
    os.symlink(tmp_path / name, ck / name)
    with pytest.raises(C.CheckpointError, match="outside the checkpoint folder"):
        C.load_checkpoint(ck, device="cpu")


def test_3_files_named_outside_the_folder_are_refused(ck, tmp_path):
    (tmp_path / "evil.safetensors").write_bytes((ck / "model.safetensors").read_bytes())
    rehash(ck, lambda m: m["files"].__setitem__("../evil.safetensors", {"bytes": 1, "sha256": "0" * 64}))
    with pytest.raises(C.CheckpointError, match="'files' must be"):
        C.load_checkpoint(ck, device="cpu")
    rehash(ck, lambda m: m["files"].pop("../evil.safetensors") and m["tokenizer"].__setitem__("file", "../x.json"))
    with pytest.raises(C.CheckpointError, match="'tokenizer' must be"):
        C.load_checkpoint(ck, device="cpu")


# ---------------------------------------------------------------- 4. checkpoint.json: one schema, clear errors


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
def test_4_wrong_types_in_checkpoint_json_name_the_field(ck, capsys, field, value):
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
def test_4_missing_entries_are_named(ck, capsys, missing):
    edit_meta(ck, lambda m: m.pop(missing))
    assert cli.main(["info", str(ck)]) == 1
    assert f"no '{missing}' entry" in capsys.readouterr().err


def test_4_unreadable_safetensors_is_called_unreadable_not_a_misfit(ck):
    (ck / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header!!}" + b"\0" * 64)
    rehash(ck)
    with pytest.raises(C.CheckpointError, match="cannot be read as safetensors"):
        C.load_checkpoint(ck, device="cpu")


def test_4_info_checks_config_against_weights_like_generate(ck, capsys):
    edit_meta(ck, lambda m: m["model_config"].__setitem__("n_embd", 64))  # a valid config, not the weights'
    before = snapshot(ck)
    assert cli.main(["info", str(ck)]) == 1
    assert "does not fit the model config" in capsys.readouterr().err
    assert cli.main(["generate", "--checkpoint", str(ck), "--max-new-tokens", "2", "--device", "cpu"]) == 1
    assert "does not fit the model config" in capsys.readouterr().err
    assert snapshot(ck) == before


def test_4_integer_weights_are_refused(ck):
    w = load_file(ck / "model.safetensors")
    w["transformer.ln_f.weight"] = w["transformer.ln_f.weight"].int()
    save_file(w, ck / "model.safetensors")
    rehash(ck)
    with pytest.raises(C.CheckpointError, match="floating point"):
        C.load_checkpoint(ck, device="cpu")


# ---------------------------------------------------------------- 5. checks before training starts


def test_5_a_huge_block_size_fails_before_any_allocation(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    t0 = time.perf_counter()
    assert cli.main(["train", *TINY, "--text-file", str(text), "--out", str(tmp_path / "o"), "--block-size", "100000000"]) == 1
    err = capsys.readouterr().err
    assert "--block-size 100000000" in err and "too few" in err and time.perf_counter() - t0 < 30
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", ["under_a_file", "a_file", "empty", "blank"])
def test_5_bad_out_fails_before_training(tmp_path, capsys, case):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    (tmp_path / "afile").write_text("x")
    out = {"under_a_file": str(tmp_path / "afile" / "ck"), "a_file": str(tmp_path / "afile"), "empty": "", "blank": "  "}[case]
    assert cli.main(["train", *TINY, "--text-file", str(text), "--out", out, "--overwrite"]) == 1
    captured = capsys.readouterr()
    assert "training tiny" not in captured.out  # nothing trained
    assert ("empty" if case in ("empty", "blank") else "file") in captured.err
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_5_unwritable_out_fails_before_training(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert cli.main(["train", *TINY, "--text-file", str(text), "--out", str(ro / "ck")]) == 1
        assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_5_overwrite_refuses_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_bytes(b"my own weights")  # a checkpoint's file name, but no checkpoint.json
    before = snapshot(mine)
    assert cli.main(["train", *TINY, "--text-file", str(text), "--out", str(mine), "--overwrite"]) == 1
    assert "not a gptlab checkpoint" in capsys.readouterr().err
    assert snapshot(mine) == before


# ---------------------------------------------------------------- 6. divergence


def test_6_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "ck"
    model = fresh_model()

    def poison(step, m, history):
        if step == 4:  # from now on every forward pass gives NaN
            m.lm_head.register_forward_hook(lambda mod, inp, out: out * float("nan"))

    with pytest.raises(T.TrainingDiverged, match="diverged") as e:
        T.train(model, TRAIN, VAL, run_cfg(path, max_steps=8), tokenizer=TOK, callback=poison)
    assert "step 4" in str(e.value) and "kept" in str(e.value)
    loaded, _, meta = C.load_checkpoint(path, device="cpu")  # intact and finite
    assert meta["step"] == 4 and all(torch.isfinite(p).all() for p in loaded.parameters())


def test_6_generate_names_non_finite_weights(ck, capsys):
    w = load_file(ck / "model.safetensors")
    w["transformer.h.0.mlp.c_fc.weight"][0, 0] = float("nan")
    save_file(w, ck / "model.safetensors")
    rehash(ck)
    assert cli.main(["generate", "--checkpoint", str(ck), "--max-new-tokens", "2", "--device", "cpu"]) == 1
    assert "this checkpoint holds non-finite weights" in capsys.readouterr().err


def test_6_save_refuses_non_finite_weights(tmp_path):
    model = fresh_model()
    with torch.no_grad():
        model.transformer.wpe.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        C.save_checkpoint(tmp_path / "ck", model)
    assert not (tmp_path / "ck").exists()


# ---------------------------------------------------------------- 7. concurrent writers and readers

HOLD = """
import sys, time
from gptlab.checkpoint import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_7_a_second_training_into_the_same_folder_is_refused_at_once(ck, tmp_path, capsys):
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


def test_7_readers_during_saves_never_see_corruption(tmp_path):
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


def test_7_readers_never_rename_a_killed_save(ck):
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


# ---------------------------------------------------------------- 8. output that tells the truth


def test_8_resume_with_nothing_to_train_says_so(ck, capsys):
    before = snapshot(ck)
    for steps in ("4", "2"):
        assert cli.main(["train", "--preset", "tiny", "--out", str(ck), "--resume", "--max-steps", steps, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert "already at step 4" in err and "saved" not in err
    with pytest.raises(ValueError, match="already at step 4"):
        resume(ck, max_steps=4)
    assert snapshot(ck) == before


def test_8_a_different_preset_on_resume_is_an_error(ck, capsys):
    edit_meta(ck, lambda m: m["train_config"].__setitem__("preset", "tiny"))  # as `gptlab train --preset tiny` records it
    before = snapshot(ck)
    assert cli.main(["train", "--preset", "shakespeare-char", "--out", str(ck), "--resume", "--max-steps", "6", "--no-progress"]) == 1
    assert "trained with --preset tiny" in capsys.readouterr().err
    assert snapshot(ck) == before
    edit_meta(ck, lambda m: m["train_config"].pop("preset"))  # an older checkpoint: the model's shape decides
    assert cli.main(["train", "--preset", "shakespeare-char", "--out", str(ck), "--resume", "--max-steps", "6", "--no-progress"]) == 1
    assert "is not a model of --preset shakespeare-char" in capsys.readouterr().err


# ---------------------------------------------------------------- 9. bounded arguments, clean errors


@pytest.fixture(scope="module")
def model_tok(trained):
    model, tok, _ = C.load_checkpoint(trained, device="cpu")
    return model, tok


@pytest.mark.parametrize("flags, needle", [
    (["--max-new-tokens", str(10**12)], "--max-new-tokens must be between 1 and"),
    (["--max-new-tokens", str(10**23)], "--max-new-tokens must be between 1 and"),
    (["--seed", str(2**70)], "--seed must be in"),
    (["--seed", "-1"], "--seed must be in"),
    (["--temperature", "0"], "--greedy"),
    (["--temperature", "nan"], "--temperature"),
    (["--top-p", "1.5"], "--top-p"),
    (["--top-k", "0"], "--top-k"),
    (["--repetition-penalty", "0"], "--repetition-penalty"),
])
def test_9_and_10_generate_flags_are_bounded_and_named(trained, capsys, flags, needle):
    assert cli.main(["generate", "--checkpoint", str(trained), "--device", "cpu", *flags]) == 1
    err = capsys.readouterr().err
    assert needle in err and "do_sample" not in err and len(err.splitlines()) == 1


def test_9_tiny_temperatures_sample_the_argmax(model_tok):
    from gptlab.generation import sample_next

    logits = torch.tensor([[1.0, 3.0, 2.0], [5.0, -1.0, 0.0]])
    for t in (1e-45, 1e-30, 1e-8):
        assert sample_next(logits, temperature=t).flatten().tolist() == [1, 0]


def test_9_huge_max_new_tokens_allocates_nothing_up_front(model_tok):
    from gptlab.generation import stream

    model, tok = model_tok
    pieces = stream(model, tok, "ROMEO:", 10**23, generator=torch.Generator().manual_seed(0))
    got = [next(pieces) for _ in range(5)]
    pieces.close()
    assert len("".join(got)) == 5


def test_9_batch_size_0_is_a_value_error(model_tok):
    from gptlab.generation import generate

    model, _ = model_tok
    empty = torch.zeros(0, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="batch size 0"):
        model(empty)
    with pytest.raises(ValueError, match="batch size 0"):
        generate(model, empty, 3)


def test_9_float_token_data_is_refused_not_truncated():
    with pytest.raises(ValueError, match="integer token ids"):
        T.train(fresh_model(), TRAIN.float() + 0.5, VAL, run_cfg())
    with pytest.raises(ValueError, match="integer token ids"):
        T.train(fresh_model(), [float(i) for i in TRAIN.tolist()], VAL, run_cfg())


def test_9_decode_takes_integers_only():
    for bad in ([1.5], ["1"], [True]):
        with pytest.raises(TypeError, match="must be integers"):
            TOK.decode(bad)
        with pytest.raises(TypeError, match="must be integers"):
            BPE.decode(bad)
    assert TOK.decode(torch.tensor([0, 1])) == TOK.decode([0, 1])


def test_9_int32_weights_are_refused_by_load_hf_gpt2(hf_folder):
    from gptlab.pretrained import load_hf_gpt2

    w = load_file(hf_folder / "model.safetensors")
    w["transformer.wpe.weight"] = w["transformer.wpe.weight"].to(torch.int32)
    save_file(w, hf_folder / "model.safetensors")
    with pytest.raises(ValueError, match="int32"):
        load_hf_gpt2(hf_folder)


def test_9_a_lone_surrogate_fails_when_the_vocabulary_is_built():
    with pytest.raises(ValueError, match="lone surrogate"):
        CharTokenizer.from_text("abc\udcff")


def test_9_a_tokenizer_that_does_not_fit_the_model_is_refused(ck):
    CharTokenizer.from_text(TEXT + "~").save(ck / "tokenizer.json")  # one token more than the model was built for
    rehash(ck)
    with pytest.raises(C.CheckpointError, match="does not belong to this model"):
        C.load_checkpoint(ck, device="cpu")


# ---------------------------------------------------------------- 10. messages that say what to change


def test_10_a_file_as_checkpoint_is_called_a_file(tmp_path, capsys):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    assert cli.main(["generate", "--checkpoint", str(f), "--device", "cpu"]) == 1
    assert "is a file, not a checkpoint folder" in capsys.readouterr().err


def test_10_non_utf8_text_names_the_file(tmp_path, capsys):
    f = tmp_path / "latin1.txt"
    f.write_bytes("café ".encode("latin-1") * 100)
    assert cli.main(["train", *TINY, "--text-file", str(f), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "latin1.txt" in err and "not UTF-8" in err


def test_10_data_folder_and_mirror_errors(tmp_path, monkeypatch):
    from gptlab.datasets import ChecksumError, DataUnavailableError, fetch

    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("GPTLAB_DATA_DIR", str(tmp_path / "afile"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tinyshakespeare.txt").write_text("not shakespeare")
    monkeypatch.setenv("GPTLAB_DATA_MIRROR", str(mirror))
    with pytest.raises(DataUnavailableError, match="GPTLAB_DATA_DIR"):
        fetch("tinyshakespeare")
    monkeypatch.setenv("GPTLAB_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(ChecksumError, match="mirror file") as e:
        fetch("tinyshakespeare")
    assert "download" not in str(e.value).split("unset")[0]
    assert (mirror / "tinyshakespeare.txt").read_text() == "not shakespeare"


def test_10_a_closed_pipe_is_not_an_error(trained):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "gptlab", "generate", "--checkpoint", str(trained), "--device", "cpu",
                          "--max-new-tokens", "200000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.read(10)
    p.stdout.close()  # `| head -c 10`
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "error" not in err, err


def test_10_a_malicious_train_state_is_called_code_and_refused(ck):
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


def test_10_generate_does_not_need_train_state(ck, capsys):
    (ck / "train_state.pt").unlink()
    assert cli.main(["generate", "--checkpoint", str(ck), "--max-new-tokens", "3", "--device", "cpu", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("\n")
    assert cli.main(["info", str(ck)]) == 1  # info verifies every file it lists
    assert "train_state.pt is missing" in capsys.readouterr().err
