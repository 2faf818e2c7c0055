"""gptlab.course: two lessons asking for the same shared model at once (two real processes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A small recipe (seconds on one thread) with the shared model's code path: course._char_model.
_RUN = """
import json, sys, time, torch
torch.set_num_threads(1)
from gptlab import course
from gptlab.checkpoint import writer_lock
name, role = sys.argv[1], sys.argv[2]
small = dict(n_layer=1, n_head=2, n_embd=32, block_size=32)
recipe = dict(max_steps=40, lr_decay_steps=40, warmup_steps=4, eval_interval=10, eval_iters=2, batch_size=8, progress=False)
path = course.checkpoint_dir() / name
if role == "trainer":  # holds the folder from the start, so the other process surely finds it busy
    with writer_lock(path):
        print("locked", flush=True)
        time.sleep(4)
        model, tok, hist = course._char_model(name, small, recipe)
else:
    model, tok, hist = course._char_model(name, small, recipe)
print("RESULT", json.dumps({"steps": hist.eval_steps, "val": hist.eval_val_loss,
                           "wte": model.transformer.wte.weight[:2, :4].tolist()}), flush=True)
"""


def _start(role: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _RUN, "tiny-shared", role], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(out: str) -> dict:
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.skipif(sys.platform == "win32", reason="file locks (fcntl) are POSIX only; on Windows nothing waits")
def test_a_second_lesson_waits_for_the_shared_model_then_loads_it(tmp_path):
    env = {**os.environ, "GPTLAB_CHECKPOINT_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    trainer = _start("trainer", env)
    assert trainer.stdout.readline().strip() == "locked", trainer.stderr.read()
    waiter = _start("waiter", env)
    t_out, t_err = trainer.communicate(timeout=600)
    w_out, w_err = waiter.communicate(timeout=600)
    assert trainer.returncode == 0, t_err
    assert waiter.returncode == 0, w_err  # before: CheckpointBusyError in the second process
    assert "waiting for it, then this lesson loads it" in w_out
    assert "is free after" in w_out and "loading it" in w_out
    assert "trained elsewhere" in w_err  # the progress bar (tqdm writes to stderr)
    trained, loaded = _result(t_out), _result(w_out)
    assert trained["steps"][-1] == 40
    assert loaded == trained  # the waiter loaded the trainer's model and history; it trained nothing itself
    meta = json.loads((tmp_path / "tiny-shared" / "checkpoint.json").read_text())
    assert meta["step"] == 40


def test_saved_step_reads_progress_and_never_fails(tmp_path):
    from gptlab.course import _saved_step

    assert _saved_step(tmp_path) == 0  # nothing saved yet
    (tmp_path / "checkpoint.json").write_text(json.dumps({"step": 30}))
    assert _saved_step(tmp_path) == 30
    for junk in ("{", "[1, 2]", json.dumps({"step": "30"}), json.dumps({"step": -1})):
        (tmp_path / "checkpoint.json").write_text(junk)
        assert _saved_step(tmp_path) == 0, junk
