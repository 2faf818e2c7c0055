"""The gptlab command line, end to end on a tiny config: train -> info -> generate, and bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny import ROOT, TEXT, TINY, edit_meta, rehash, resume, snapshot  # the Romeo text and the 4-step training flags (tests/_tiny.py)
from safetensors.torch import load_file, save_file

from gptlab import GPT, GPTConfig, cli
from gptlab import checkpoint as C
from gptlab import training as T
from gptlab.tokenizers import CharTokenizer

SHARED = Path("/work/shared/data")


def gptlab(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "gptlab", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("text") / "romeo.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, text_file) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    assert cli.main(["train", *TINY, "--text-file", str(text_file), "--out", str(out)]) == 0
    return out


def test_help_names_every_command(capsys):
    r = gptlab("--help")  # through the real entry point, python -m gptlab
    assert r.returncode == 0
    for command in ("data", "train", "generate", "info", "attention"):
        assert command in r.stdout
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--preset" in out and "--resume" in out and "--tokenizer" in out
    assert cli.main([]) == 2 and "COMMAND" in capsys.readouterr().out  # no command: the help, not a traceback


HEAVY = ("torch", "numpy", "matplotlib", "safetensors")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["attention", "--help"]])
def test_help_does_not_import_torch(argv):
    """`python -m gptlab --help` answers without loading PyTorch or matplotlib (review C8: it took 3.3 s).

    Run as `python -m gptlab` runs it (runpy, in a fresh interpreter), then list what got imported."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['gptlab', *{argv!r}]\n"
        "try:\n"
        "    runpy.run_module('gptlab', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "gptlab" in r.stdout  # the help (or version) was printed
    assert r.stdout.rstrip().splitlines()[-1] == "LOADED []", r.stdout[-300:]


def test_train_info_generate(ckpt, capsys):
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint.json", "model.safetensors", "tokenizer.json", "train_state.pt"]
    capsys.readouterr()
    assert cli.main(["info", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "step         4" in out and "char (" in out and "resumable    yes" in out and "2 layers" in out
    assert "val loss" in out and out.count("sha256") == 3

    args = ["generate", "--checkpoint", str(ckpt), "--prompt", "ROMEO:", "--max-new-tokens", "25", "--seed", "3", "--device", "cpu"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 25 + 1  # one character per token, then "\n"
    assert cli.main(args) == 0
    assert capsys.readouterr().out == first  # --seed makes sampling repeatable
    assert cli.main([*args[:-4], "--greedy", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
    assert cli.main([*args[:-4], "--beams", "3", "--device", "cpu"]) == 0
    assert len(capsys.readouterr().out) == len("ROMEO:") + 25 + 1


def test_generate_streams_in_a_subprocess(ckpt):
    """The real entry point prints exactly what the Python API gives with the same settings and seed
    (settings under which dropping any one flag changes the text)."""
    import torch

    from gptlab.checkpoint import load_checkpoint
    from gptlab.generation import stream

    r = gptlab("generate", "--checkpoint", str(ckpt), "--prompt", "JULIET:", "--max-new-tokens", "20", "--top-k", "40",
               "--top-p", "0.5", "--temperature", "1.3", "--repetition-penalty", "3.0", "--seed", "0", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    model, tok, _ = load_checkpoint(ckpt, device="cpu")
    text = "".join(stream(model, tok, "JULIET:", 20, top_k=40, top_p=0.5, temperature=1.3, repetition_penalty=3.0,
                          generator=torch.Generator().manual_seed(0)))
    assert len(text) == 20 and r.stdout == "JULIET:" + text + "\n"


def test_resume_continues_a_run(ckpt, text_file, tmp_path, capsys):
    import shutil

    out = tmp_path / "again"
    shutil.copytree(ckpt, out)
    assert cli.main(["train", *TINY, "--text-file", str(text_file), "--out", str(out)]) == 1
    assert "--resume" in capsys.readouterr().err  # an existing checkpoint is never silently replaced
    with pytest.warns(UserWarning, match="max_steps"):  # tiny's cosine spans max_steps: extending it changes the run
        assert cli.main(["train", "--preset", "tiny", "--text-file", str(text_file), "--out", str(out), "--resume",
                         "--max-steps", "6", "--no-progress"]) == 0
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["step"] == 6 and meta["train_config"]["eval_interval"] == 2  # the saved settings carry over
    assert cli.main(["train", *TINY, "--text-file", str(text_file), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4


def test_bpe_tokenizer(text_file, tmp_path, capsys):
    out = tmp_path / "bpe"
    assert cli.main(["train", *TINY, "--text-file", str(text_file), "--out", str(out), "--tokenizer", "bpe", "--vocab-size", "300"]) == 0
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["tokenizer"]["type"] == "bpe" and meta["model_config"]["vocab_size"] == meta["tokenizer"]["n_vocab"] == 300
    capsys.readouterr()
    assert cli.main(["generate", "--checkpoint", str(out), "--prompt", "ROMEO", "--max-new-tokens", "5", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", *TINY, "--lr", "-1"], "--lr must be a finite number > 0"),
        (["train", *TINY, "--n-embd", "30", "--n-head", "4"], "divisible"),
        (["train", *TINY, "--max-steps", "0"], "--max-steps must be a positive integer"),
        (["train", *TINY, "--text-file", "/nonexistent/x.txt"], "x.txt"),
        (["train", *TINY, "--resume"], "does not exist"),
        (["train", *TINY, "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
        (["generate", "--checkpoint", "/nonexistent/ck"], "does not exist"),
        (["info", "/nonexistent/ck"], "does not exist"),
        (["data", "fetch", "nosuch"], "unknown dataset 'nosuch'"),
        (["data", "fetch"], "name a dataset"),
    ],
)
def test_bad_inputs_give_one_clear_line(argv, needle, text_file, tmp_path, capsys):
    argv = [a for a in argv]
    if argv[0] == "train" and "--text-file" not in argv and "--dataset" not in argv:
        argv += ["--text-file", str(text_file)]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "out")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert needle in err and err.startswith(f"gptlab {argv[0]}: error:") and "Traceback" not in err


def test_bad_generate_inputs(ckpt, capsys):
    base = ["generate", "--checkpoint", str(ckpt), "--device", "cpu", "--max-new-tokens", "3"]
    for extra, needle in [
        (["--prompt", "ROMEO€"], "€"),  # a character the char tokenizer never saw
        (["--prompt", ""], "empty"),
        (["--temperature", "0"], "temperature"),
        (["--top-p", "1.5"], "--top-p"),
        (["--beams", "2", "--temperature", "0.5"], "--beams"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
    ]:
        assert cli.main(base + extra) == 1, extra
        assert needle in capsys.readouterr().err, extra
    with pytest.raises(SystemExit) as e:  # malformed arguments: argparse's usage error, status 2
        cli.main(base + ["--top-k", "many"])
    assert e.value.code == 2


def test_damaged_or_mismatched_checkpoints(ckpt, text_file, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(ckpt, bad)
    (bad / "model.safetensors").write_bytes((bad / "model.safetensors").read_bytes()[:1000])
    for argv in (["info", str(bad)], ["generate", "--checkpoint", str(bad)]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert "model.safetensors" in err and "truncated" in err
    r = gptlab("info", str(bad))  # the same through the real entry point: one line, no traceback
    assert r.returncode == 1 and "truncated" in r.stderr and "Traceback" not in r.stderr
    assert cli.main(["train", "--preset", "tiny", "--text-file", str(text_file), "--out", str(ckpt), "--resume",
                     "--tokenizer", "bpe"]) == 1
    assert "trained with the char tokenizer" in capsys.readouterr().err
    other = tmp_path / "other.txt"
    other.write_text("a new character: ~", encoding="utf-8")
    mixed = tmp_path / "mixed"
    shutil.copytree(ckpt, mixed)
    assert cli.main(["train", "--preset", "tiny", "--text-file", str(other), "--out", str(mixed), "--resume", "--max-steps", "6"]) == 1
    assert "not in this CharTokenizer's vocabulary" in capsys.readouterr().err  # text the saved tokenizer cannot encode


def test_data_fetch(tmp_path, monkeypatch, capsys):
    mirror = Path(os.environ.get("GPTLAB_DATA_MIRROR", SHARED))
    if not (mirror / "lunyu.json").exists():
        pytest.skip("no dataset mirror on this machine")
    monkeypatch.setenv("GPTLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GPTLAB_DATA_MIRROR", str(mirror))
    assert cli.main(["data", "fetch", "lunyu"]) == 0
    assert "lunyu" in capsys.readouterr().out and (tmp_path / "lunyu.json").exists()
    assert cli.main(["data", "list"]) == 0
    assert "tinyshakespeare" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------
# Moved here from test_hardening.py and test_mutation_gaps.py (tests by module): hostile input and mutation-test gaps.
# ----------------------------------------------------------------------------------------------------


@pytest.fixture
def tobe_text_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("to be or not to be, that is the question.\n" * 20, encoding="utf-8")
    return p


@pytest.fixture
def untrained_ckpt(tmp_path):
    tok = CharTokenizer.from_text("ROMEO: what light\n")
    torch.manual_seed(0)
    C.save_checkpoint(tmp_path / "ck", GPT(GPTConfig.from_preset("tiny", vocab_size=tok.n_vocab)), tokenizer=tok)
    return tmp_path / "ck"


def test_info_checks_config_against_weights_like_generate(ck, capsys):
    edit_meta(ck, lambda m: m["model_config"].__setitem__("n_embd", 64))  # a valid config, not the weights'
    before = snapshot(ck)
    assert cli.main(["info", str(ck)]) == 1
    assert "does not fit the model config" in capsys.readouterr().err
    assert cli.main(["generate", "--checkpoint", str(ck), "--max-new-tokens", "2", "--device", "cpu"]) == 1
    assert "does not fit the model config" in capsys.readouterr().err
    assert snapshot(ck) == before


def test_train_with_a_huge_block_size_fails_before_any_allocation(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    assert cli.main(["train", *TINY, "--text-file", str(text), "--out", str(tmp_path / "o"), "--block-size", "100000000"]) == 1
    err = capsys.readouterr().err
    assert "--block-size 100000000" in err and "too few" in err  # refused by the size check, not by an allocation failure
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", ["under_a_file", "a_file", "empty", "blank"])
def test_train_with_a_bad_out_fails_before_training(tmp_path, capsys, case):
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
def test_train_with_an_unwritable_out_fails_before_training(tmp_path, capsys):
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


def test_overwrite_refuses_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_bytes(b"my own weights")  # a checkpoint's file name, but no checkpoint.json
    before = snapshot(mine)
    assert cli.main(["train", *TINY, "--text-file", str(text), "--out", str(mine), "--overwrite"]) == 1
    assert "not a gptlab checkpoint" in capsys.readouterr().err
    assert snapshot(mine) == before


def test_generate_names_non_finite_weights(ck, capsys):
    w = load_file(ck / "model.safetensors")
    w["transformer.h.0.mlp.c_fc.weight"][0, 0] = float("nan")
    save_file(w, ck / "model.safetensors")
    rehash(ck)
    assert cli.main(["generate", "--checkpoint", str(ck), "--max-new-tokens", "2", "--device", "cpu"]) == 1
    assert "this checkpoint holds non-finite weights" in capsys.readouterr().err


def test_resume_with_nothing_to_train_says_so(ck, capsys):
    before = snapshot(ck)
    for steps in ("4", "2"):
        assert cli.main(["train", "--preset", "tiny", "--out", str(ck), "--resume", "--max-steps", steps, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert "already at step 4" in err and "saved" not in err
    with pytest.raises(ValueError, match="already at step 4"):
        resume(ck, max_steps=4)
    assert snapshot(ck) == before


def test_a_different_preset_on_resume_is_an_error(ck, capsys):
    edit_meta(ck, lambda m: m["train_config"].__setitem__("preset", "tiny"))  # as `gptlab train --preset tiny` records it
    before = snapshot(ck)
    assert cli.main(["train", "--preset", "shakespeare-char", "--out", str(ck), "--resume", "--max-steps", "6", "--no-progress"]) == 1
    assert "trained with --preset tiny" in capsys.readouterr().err
    assert snapshot(ck) == before
    edit_meta(ck, lambda m: m["train_config"].pop("preset"))  # an older checkpoint: the model's shape decides
    assert cli.main(["train", "--preset", "shakespeare-char", "--out", str(ck), "--resume", "--max-steps", "6", "--no-progress"]) == 1
    assert "is not a model of --preset shakespeare-char" in capsys.readouterr().err


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
def test_generate_flags_are_bounded_and_named(trained, capsys, flags, needle):
    assert cli.main(["generate", "--checkpoint", str(trained), "--device", "cpu", *flags]) == 1
    err = capsys.readouterr().err
    assert needle in err and "do_sample" not in err and len(err.splitlines()) == 1


def test_a_file_as_checkpoint_is_called_a_file(tmp_path, capsys):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    assert cli.main(["generate", "--checkpoint", str(f), "--device", "cpu"]) == 1
    assert "is a file, not a checkpoint folder" in capsys.readouterr().err


def test_non_utf8_text_names_the_file(tmp_path, capsys):
    f = tmp_path / "latin1.txt"
    f.write_bytes("café ".encode("latin-1") * 100)
    assert cli.main(["train", *TINY, "--text-file", str(f), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "latin1.txt" in err and "not UTF-8" in err


def test_a_closed_pipe_is_not_an_error(trained):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "gptlab", "generate", "--checkpoint", str(trained), "--device", "cpu",
                          "--max-new-tokens", "200000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.read(10)
    p.stdout.close()  # `| head -c 10`
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "error" not in err, err


def test_generate_does_not_need_train_state(ck, capsys):
    (ck / "train_state.pt").unlink()
    assert cli.main(["generate", "--checkpoint", str(ck), "--max-new-tokens", "3", "--device", "cpu", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("\n")
    assert cli.main(["info", str(ck)]) == 1  # info verifies every file it lists
    assert "train_state.pt is missing" in capsys.readouterr().err


def test_cli_train_flags_reach_the_training_config(tobe_text_file, tmp_path, monkeypatch):
    """Bug caught: a `gptlab train` flag (e.g. --grad-accum) parsed but never passed on."""
    seen = {}

    def fake_train(model, train_data, val_data, cfg, tokenizer=None, resume=False):
        seen.update(cfg=cfg, model=model)
        return T.History()

    monkeypatch.setattr(T, "train", fake_train)
    flags = dict(max_steps=7, batch_size=5, lr=0.02, min_lr=0.001, warmup_steps=2, lr_decay_steps=6, weight_decay=0.3,
                 grad_clip=0.5, grad_accum=3, eval_interval=4, eval_iters=2, log_interval=2, ckpt_interval=3, seed=11, device="cpu")
    shape = dict(n_layer=1, n_head=2, n_embd=16, block_size=24, dropout=0.25)
    assert set(flags) == set(cli._TRAIN_FLAGS) and set(shape) == set(cli._MODEL_FLAGS)
    argv = ["train", "--preset", "tiny", "--text-file", str(tobe_text_file), "--out", str(tmp_path / "ck"),
            "--no-progress", "--bf16", "off"]
    for k, v in {**flags, **shape}.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    assert cli.main(argv) == 0
    cfg, model = seen["cfg"], seen["model"]
    assert {k: getattr(cfg, k) for k in flags} == flags
    assert cfg.bf16 is False and cfg.progress is False and cfg.ckpt_dir == str(tmp_path / "ck")
    assert {k: getattr(model.config, k) for k in shape} == shape


def test_cli_generate_flags_reach_the_sampler(untrained_ckpt, monkeypatch, capsys):
    """Bug caught: `gptlab generate` dropping --top-p, --repetition-penalty (or another sampling flag)."""
    import gptlab.generation

    calls = []

    def fake_stream(model, tok, prompt, max_new_tokens, **kw):
        calls.append(dict(kw, prompt=prompt, max_new_tokens=max_new_tokens))
        return iter(["!"])

    monkeypatch.setattr(gptlab.generation, "stream", fake_stream)
    base = ["generate", "--checkpoint", str(untrained_ckpt), "--device", "cpu", "--prompt", "ROMEO:", "--max-new-tokens", "9"]
    assert cli.main([*base, "--temperature", "0.6", "--top-k", "7", "--top-p", "0.85", "--repetition-penalty", "1.3", "--seed", "5"]) == 0
    assert capsys.readouterr().out == "ROMEO:!\n"
    kw = calls[-1]
    assert (kw["prompt"], kw["max_new_tokens"], kw["do_sample"]) == ("ROMEO:", 9, True)
    assert (kw["temperature"], kw["top_k"], kw["top_p"], kw["repetition_penalty"]) == (0.6, 7, 0.85, 1.3)
    assert kw["generator"].initial_seed() == 5
    assert cli.main(base) == 0  # the documented defaults
    kw = calls[-1]
    assert (kw["temperature"], kw["top_k"], kw["top_p"], kw["repetition_penalty"], kw["generator"]) == (0.8, 200, None, 1.0, None)
    assert cli.main([*base, "--greedy"]) == 0
    assert calls[-1]["do_sample"] is False and calls[-1]["top_k"] is None

    beams = []
    monkeypatch.setattr(gptlab.generation, "beam_search", lambda model, idx, n, num_beams: beams.append((n, num_beams)) or idx)
    assert cli.main([*base, "--beams", "3"]) == 0
    assert beams == [(9, 3)]


def test_info_takes_checkpoint_like_the_other_commands(ckpt, capsys):
    capsys.readouterr()
    assert cli.main(["info", str(ckpt)]) == 0
    positional = capsys.readouterr().out
    assert cli.main(["info", "--checkpoint", str(ckpt)]) == 0
    assert capsys.readouterr().out == positional and "step         4" in positional
    assert cli.main(["info"]) == 1
    assert "name the checkpoint folder: gptlab info --checkpoint DIR" in capsys.readouterr().err
    assert cli.main(["info", str(ckpt), "--checkpoint", str(ckpt.parent)]) == 1
    assert "two checkpoint folders given" in capsys.readouterr().err


def test_generate_says_when_the_model_is_barely_trained(ckpt, capsys):
    capsys.readouterr()
    args = ["generate", "--checkpoint", str(ckpt), "--prompt", "R", "--max-new-tokens", "5", "--seed", "0", "--device", "cpu"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert "barely trained (step 4" in err and "expect gibberish" in err
    assert out.startswith("R") and "barely" not in out  # stdout stays the text
    trained = {"step": 2000, "model_config": {"vocab_size": 65}, "history": {"eval_val_loss": [4.1, 1.47]}}
    assert cli._barely_trained_note(trained) is None
    assert "val loss 3.50" in cli._barely_trained_note({**trained, "step": 50, "history": {"eval_val_loss": [3.5]}})
    assert cli._barely_trained_note({**trained, "history": {}}) is None  # no evaluation: nothing to say


def test_small_models_generate_on_one_thread(ckpt, monkeypatch):
    import torch

    from gptlab.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(ckpt, device="cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        cli._cap_threads(model, torch.device("cpu"))
        assert torch.get_num_threads() == 2  # the user's setting wins
        monkeypatch.delenv("OMP_NUM_THREADS")
        cli._cap_threads(model, torch.device("cpu"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_character_the_model_never_saw_is_named_with_what_to_do(trained, capsys):
    """Issue 30, C3: a trained model's vocabulary cannot be rebuilt; the message says to leave the character out."""
    assert cli.main(["generate", "--checkpoint", str(trained), "--device", "cpu", "--prompt", "RO🙂", "--max-new-tokens", "2"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]  # (after the barely-trained note)
    assert "'🙂' (position 2), which this model never saw" in err and "leave that character out" in err
    assert "from_text" not in err, err
    assert cli.main(["attention", "--checkpoint", str(trained), "--text", "é", "--out", "x.html"]) == 1
    assert "--text holds 'é' (position 0)" in capsys.readouterr().err
