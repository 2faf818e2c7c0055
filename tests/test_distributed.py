"""Data-parallel training with torchrun + DDP on 2 CPU processes (gloo): the same steps as 1 process with twice the batch.

Each test starts 2 processes with torchrun's environment variables (a tiny model, 6 steps, 2 micro-batches
per step so no_sync is exercised) and compares what rank 0 recorded with an in-process run; the last test runs
the real `torchrun -m gptlab train` command line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gptlab.data import get_batch
from gptlab.distributed import RanksInOne
from gptlab.training import train

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_ddp_worker.py"
_spec = importlib.util.spec_from_file_location("_ddp_worker", WORKER)
W = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(W)

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or "fork" not in mp.get_all_start_methods(),
    reason="needs torch.distributed and fork (Linux, macOS)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process(rank: int, nproc: int, port: int, spec: dict) -> None:
    # What torchrun would export; train() finds these and joins the gloo group.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    W.main(spec)


def launch(out: Path, nproc: int = 2, **spec) -> list[dict]:
    """Run the worker on `nproc` CPU processes, as torchrun would; return what each rank wrote.

    The processes are forked (not started afresh as torchrun does) so they need not import torch again, which is
    most of the cost of a run this short. The torchrun command itself is exercised by the last test.
    """
    out.mkdir(parents=True, exist_ok=True)
    mp.start_processes(_process, args=(nproc, _free_port(), {"out": str(out), **spec}), nprocs=nproc, start_method="fork")
    return [json.loads((out / f"rank{i}.json").read_text()) for i in range(nproc)]


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory) -> tuple[Path, list[dict]]:
    """6 steps on 2 processes, checkpoints at steps 3 and 6."""
    root = tmp_path_factory.mktemp("ddp")
    ranks = launch(root / "out", cfg={"ckpt_dir": str(root / "ckpt"), "ckpt_interval": 3})
    return root, ranks


def test_two_processes_take_the_steps_of_one_process_with_twice_the_batch(two_procs):
    _, ranks = two_procs
    train_data, val_data = W.tokens()
    model = W.model()
    ref = train(model, RanksInOne(train_data, 2), RanksInOne(val_data, 2), W.train_config(batch_size=2 * W.PER_RANK_BATCH))
    got = ranks[0]["history"]
    assert got["steps"] == ref.steps == list(range(6))
    torch.testing.assert_close(torch.tensor(got["train_loss"]), torch.tensor(ref.train_loss), rtol=1e-5, atol=1e-5)
    assert got["eval_steps"] == ref.eval_steps == [0, 3, 6]
    torch.testing.assert_close(torch.tensor(got["eval_val_loss"]), torch.tensor(ref.eval_val_loss), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor(got["eval_train_loss"]), torch.tensor(ref.eval_train_loss), rtol=1e-5, atol=1e-5)
    fingerprint = sum(float(p.detach().double().sum()) for p in model.parameters())
    assert ranks[0]["weights"] == pytest.approx(fingerprint, rel=1e-5)
    # The replicas never drift apart, and every rank reports the same (all-reduced) losses.
    assert ranks[1]["weights"] == ranks[0]["weights"]
    assert ranks[1]["history"]["train_loss"] == got["train_loss"]
    # The losses move: the run trained, it did not merely repeat one number.
    assert got["train_loss"][-1] < got["train_loss"][0]


def test_a_stopped_two_process_run_resumes_exactly(two_procs, tmp_path):
    root, full = two_procs
    ckpt = tmp_path / "ckpt"
    launch(tmp_path / "a", cfg={"ckpt_dir": str(ckpt), "max_steps": 3})  # stops after the checkpoint at step 3
    state = torch.load(ckpt / "train_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert not torch.equal(state["rng_ranks"][0]["batch"], state["rng_ranks"][1]["batch"])  # one batch stream per rank
    resumed = launch(tmp_path / "b", cfg={"ckpt_dir": str(ckpt), "max_steps": 6}, resume=True)
    assert resumed[0]["history"]["steps"] == list(range(6))
    assert resumed[0]["history"]["train_loss"] == full[0]["history"]["train_loss"]
    assert resumed[0]["history"]["eval_val_loss"] == full[0]["history"]["eval_val_loss"]
    assert resumed[0]["weights"] == full[0]["weights"]


def test_ranks_in_one_puts_each_rank_s_windows_side_by_side():
    tokens = torch.arange(1000)
    x, y = RanksInOne(tokens, 2).get_batch(8, 6, torch.Generator().manual_seed(5))
    x0, _ = get_batch(tokens, 8, 3, torch.Generator().manual_seed(5))
    x1, _ = get_batch(tokens, 8, 3, torch.Generator().manual_seed(6))
    assert torch.equal(x, torch.cat([x0, x1])) and torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="multiple of world_size 2"):
        RanksInOne(tokens, 2).get_batch(8, 5, torch.Generator())


def test_resuming_with_another_number_of_processes_is_a_clear_error(two_procs, tmp_path):
    root, _ = two_procs
    ckpt = tmp_path / "ckpt"
    shutil.copytree(root / "ckpt", ckpt)
    train_data, val_data = W.tokens()
    with pytest.raises(ValueError, match=r"with 1 process\(es\): it was trained by 2.*--nproc_per_node=2"):
        train(W.model(), train_data, val_data, W.train_config(ckpt_dir=str(ckpt), max_steps=9), resume=True)


def test_torchrun_runs_the_gptlab_train_command(tmp_path):
    """`torchrun --nproc_per_node=2 -m gptlab train` from a checkout: one log, one checkpoint holding both ranks' states."""
    text = tmp_path / "t.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gptlab", "train",
           "--preset", "tiny", "--text-file", str(text), "--out", str(tmp_path / "ck"), "--max-steps", "4",
           "--eval-iters", "1", "--device", "cpu", "--no-progress"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("training tiny:") == 1 and "on 2 processes" in r.stdout  # rank 0 alone prints
    assert r.stdout.count("saved ck (step 4") == 1
    state = torch.load(tmp_path / "ck" / "train_state.pt", weights_only=True)
    assert state["world_size"] == 2


def test_a_damaged_per_rank_random_state_is_refused(two_procs, tmp_path):
    from gptlab.checkpoint import CheckpointError
    from gptlab.datasets import sha256_file

    root, _ = two_procs
    ckpt = tmp_path / "ckpt"
    shutil.copytree(root / "ckpt", ckpt)
    state = torch.load(ckpt / "train_state.pt", weights_only=True)
    state["rng_ranks"] = state["rng_ranks"][:1]  # one rank's streams lost
    torch.save(state, ckpt / "train_state.pt")
    meta = json.loads((ckpt / "checkpoint.json").read_text())  # an attacker can rewrite the hashes too
    meta["files"]["train_state.pt"] = {"bytes": (ckpt / "train_state.pt").stat().st_size, "sha256": sha256_file(ckpt / "train_state.pt")}
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    train_data, val_data = W.tokens()
    with pytest.raises(CheckpointError, match="random states of 2 processes"):
        train(W.model(), train_data, val_data, W.train_config(ckpt_dir=str(ckpt), max_steps=9), resume=True)


# ---------------------------------------------------------------- a frozen rank (issue 26)


def test_the_process_group_timeout_reaches_init_process_group(monkeypatch):
    import datetime

    import gptlab.distributed as D

    calls = []
    monkeypatch.setattr(D.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(D.dist, "init_process_group", lambda backend, **kw: calls.append((backend, kw)))
    for k, v in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500").items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GPTLAB_DDP_TIMEOUT", raising=False)
    cpu = torch.device("cpu")
    assert D.setup(cpu).owns_group
    assert calls[-1] == ("gloo", {"timeout": datetime.timedelta(minutes=10)})  # not PyTorch's 30
    monkeypatch.setenv("GPTLAB_DDP_TIMEOUT", "90")
    D.setup(cpu)
    assert calls[-1][1]["timeout"] == datetime.timedelta(seconds=90)
    D.setup(cpu, timeout=2.5)  # the argument wins over the variable
    assert calls[-1][1]["timeout"] == datetime.timedelta(seconds=2.5)
    for bad in ("soon", "0", "-5", "inf", "nan"):
        monkeypatch.setenv("GPTLAB_DDP_TIMEOUT", bad)
        with pytest.raises(ValueError, match=r"the process-group timeout \(GPTLAB_DDP_TIMEOUT\) must be a positive number of "
                                             f"seconds, got '{bad}'"):
            D.setup(cpu)
    assert len(calls) == 3


def _frozen(rank: int, port: int, out: str) -> None:
    import time

    from gptlab.distributed import setup

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      GPTLAB_DDP_TIMEOUT="3")
    setup(torch.device("cpu"))
    if rank == 1:
        time.sleep(300)  # frozen, not dead: torchrun would not notice
    try:
        torch.distributed.all_reduce(torch.ones(1))
        Path(out).write_text("all_reduce returned")
    except Exception as e:
        Path(out).write_text(f"{type(e).__name__}: {e}")


def test_a_frozen_rank_ends_the_job_at_the_timeout(tmp_path):
    ctx = mp.start_processes(_frozen, args=(_free_port(), str(tmp_path / "rank0.txt")), nprocs=2, start_method="fork", join=False)
    try:
        ctx.processes[0].join(120)  # with PyTorch's default it would wait 30 minutes
        assert not ctx.processes[0].is_alive()
        assert ctx.processes[1].is_alive()  # the other rank is still frozen: the timeout, not its exit, ended rank 0
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()
    assert "timed out" in (tmp_path / "rank0.txt").read_text().lower()
