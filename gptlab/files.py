"""A writer lock for a folder that one process at a time may write (a checkpoint, token shards).

Lesson 06's checkpoints and the token-shard folders of `gptlab data prepare` are
written by one process at a time: a second writer gets CheckpointBusyError at
once, instead of racing the first and leaving a mix of both. The lock is a
`.NAME.lock` file beside the folder held with fcntl.flock, so it dies with its
process (kill -9 included) and never needs cleaning up by hand.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class CheckpointBusyError(RuntimeError):
    """Another process holds the writer lock of the folder (it is training into it, or preparing shards there)."""


def folder_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of `path`, or None if it is gone: tells whether a folder was swapped for another."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


_held_locks: dict[str, list] = {}  # lock file -> [fd, depth]: re-entrant within this process


def _lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


@contextmanager
def folder_lock(path: str | Path) -> Iterator[None]:
    """Hold the writer lock of folder `path` (a `.NAME.lock` file beside it, fcntl.flock).

    Another process that tries to write the same folder gets a CheckpointBusyError
    at once, before it trains, instead of racing this one. The lock dies with its
    process (kill -9 included), so it never needs cleaning up by hand. Re-entrant.
    POSIX only: where fcntl does not exist (Windows) saves are still atomic, but unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return

    path = Path(path)
    lock = _lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    key = os.path.join(os.path.realpath(lock.parent), lock.name)  # one key however the folder is spelt
    if key in _held_locks:
        _held_locks[key][1] += 1
        try:
            yield
        finally:
            _held_locks[key][1] -= 1
        return
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointBusyError(
                f"another gptlab process is training into {path} (it holds {lock.name}); wait for it to finish, "
                "or save to another folder (--out)"
            ) from None
        if folder_id(lock) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
            break
        os.close(fd)  # the holder before us removed the file as we opened it: lock the new one
    _held_locks[key] = [fd, 1]
    try:
        yield
    finally:
        del _held_locks[key]
        try:
            os.unlink(lock)  # while still locked: whoever opened this file sees it is gone and retries
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
