"""Data-parallel training on PyTorch's own stack: torchrun starts the processes, DDP syncs the gradients (lesson 14).

    torchrun --nproc_per_node=2 -m gptlab train --preset tiny --device cpu

torchrun starts one process per GPU (or per CPU worker) and tells each, through
environment variables, who it is: RANK (0..WORLD_SIZE-1 over all machines),
LOCAL_RANK (its GPU on this machine) and WORLD_SIZE. Each process holds a full
copy of the model, draws its own batches, and DistributedDataParallel averages
the gradients across processes during backward, so every copy takes the same
AdamW step. Nothing here is home-made: these are thin helpers that say which
process we are and start or end the process group (gloo on CPUs, NCCL on GPUs).

A plain `python` run (no WORLD_SIZE in the environment) is a world of one:
rank 0, and every helper below is a no-op.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from gptlab.data import get_batch

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """Who this process is: its rank among `size` processes, and its GPU index on this machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when setup() started the process group (so teardown() ends it)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and the progress bar; the others stay quiet."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether the environment names a process group (torchrun, or torch.multiprocessing with the variables set)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} must be an integer (torchrun sets it)") from None


DEFAULT_TIMEOUT_S = 600.0


def _timeout(seconds: float | None) -> datetime.timedelta:
    """The process group's timeout: `seconds`, else $GPTLAB_DDP_TIMEOUT, else 10 minutes."""
    raw: Any = seconds
    if raw is None:
        raw = os.environ.get("GPTLAB_DDP_TIMEOUT", DEFAULT_TIMEOUT_S)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(raw, bool) or not 0 < value < float("inf"):
        raise ValueError(f"the process-group timeout (GPTLAB_DDP_TIMEOUT) must be a positive number of seconds, got {raw!r}")
    return datetime.timedelta(seconds=value)


def setup(device: torch.device, timeout: float | None = None) -> World:
    """Join the process group if there is one to join, and return this process's World.

    Uses an already initialised group (a user who called init_process_group
    himself), else the torchrun environment variables, else a world of one.
    The backend follows the device: NCCL for CUDA, gloo for the CPU.
    timeout (seconds; default $GPTLAB_DDP_TIMEOUT, else 600): how long a collective
    waits for a rank. A rank that freezes (rather than dies, which torchrun notices)
    then ends the job in minutes, not after PyTorch's default 30. A step that is
    slower than this on one rank (a long save on rank 0) needs a larger value.
    """
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    if not launched_by_torchrun() or _env_int("WORLD_SIZE", 1) == 1:
        return World()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE is set but this PyTorch build has no torch.distributed; run with plain python instead")
    rank, size, local = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    wait = _timeout(timeout)
    if device.type == "cuda":
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local), timeout=wait)
    elif device.type == "cpu":
        dist.init_process_group("gloo", timeout=wait)
    else:
        raise ValueError(f"distributed training runs on CUDA (NCCL) or the CPU (gloo), not on {device.type}; pass --device cpu or cuda")
    return World(rank, size, local, owns_group=True)


def teardown(world: World) -> None:
    """End the process group if setup() started it."""
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank: from the process group, else from torchrun's RANK variable (before the group exists), else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0) if launched_by_torchrun() else 0


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1) if launched_by_torchrun() else 1


def is_main() -> bool:
    """Whether this process is rank 0 (the one that prints and saves); True outside torchrun."""
    return rank() == 0


def mean_over_ranks(x: torch.Tensor, world: World) -> torch.Tensor:
    """The average of `x` over all processes (every process gets it); `x` itself in a world of one."""
    if world.size == 1:
        return x
    x = x.clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x / world.size


def all_true(ok: bool, world: World) -> bool:
    """True on every process when `ok` is true on every process, so they all stop together (or none does)."""
    if world.size == 1:
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def run_together(fn: Callable[[], T], world: World) -> T:
    """fn() on every process; if it raises on any, it raises on all (none is left waiting in a collective).

    The process whose fn() failed re-raises its own error; the others raise one
    that quotes it, e.g. when rank 0 finds the checkpoint folder locked.
    """
    error: BaseException | None = None
    result: Any = None
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - re-raised below, on this rank and (quoted) on the others
        error = e
    if world.size > 1:
        said: list[Any] = [None] * world.size
        dist.all_gather_object(said, None if error is None else f"{type(error).__name__}: {error}")
        failed = [(r, msg) for r, msg in enumerate(said) if msg is not None]
        if error is None and failed:
            r, msg = failed[0]
            raise RuntimeError(f"rank {r} failed, so rank {world.rank} stops too: {msg}")
    if error is not None:
        raise error
    return result


def gather_to_main(obj: Any, world: World) -> list[Any] | None:
    """Every rank's `obj` as a list on rank 0 (None elsewhere): e.g. each rank's random-generator state."""
    if world.size == 1:
        return [obj]
    out = [None] * world.size if world.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


class RanksInOne:
    """What N data-parallel processes draw, drawn in ONE process: for checking DDP against plain training.

    Under torchrun, rank r draws each micro-batch of b windows from its own
    generator, seeded seed + r. Passed as train_data/val_data to a
    single-process train() with batch_size N * b, this source fills rows
    [r*b, (r+1)*b) of every batch from a generator seeded seed + r, so the one
    process sees, side by side, exactly the windows the N processes see. As
    DDP averages the N gradients, both runs take the same steps, up to float
    rounding (tests/test_distributed.py checks it).
    """

    def __init__(self, tokens: torch.Tensor, world_size: int) -> None:
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
        self.tokens, self.world_size = tokens, world_size
        # generator id -> (the generator, kept alive so ids stay unique; its partners for ranks 1..N-1)
        self._partners: dict[int, tuple[torch.Generator, list[torch.Generator]]] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def get_batch(self, block_size: int, batch_size: int, generator: torch.Generator,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if batch_size % self.world_size:
            raise ValueError(f"batch_size {batch_size} must be a multiple of world_size {self.world_size}: b windows per rank")
        if id(generator) not in self._partners:  # first use: rank r's generator is seeded seed + r
            seed = generator.initial_seed()
            self._partners[id(generator)] = (generator, [torch.Generator().manual_seed(seed + r) for r in range(1, self.world_size)])
        gens = [generator, *self._partners[id(generator)][1]]
        parts = [get_batch(self.tokens, block_size, batch_size // self.world_size, g, device) for g in gens]
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
