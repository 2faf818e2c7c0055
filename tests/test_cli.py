"""The gptlab command line, end to end on a tiny config: train -> info -> generate, and bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gptlab import cli

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/data")
TEXT = (
    "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n\n"
) * 20
TINY = ["--preset", "tiny", "--max-steps", "4", "--eval-interval", "2", "--eval-iters", "2", "--batch-size", "4", "--no-progress"]


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

    from gptlab.generation import stream
    from gptlab.training import load_checkpoint

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
