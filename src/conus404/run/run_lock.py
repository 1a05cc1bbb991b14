"""One active run per data folder, whatever its log folder: an exclusive ``flock`` on
``DATA_DIR/.pipeline.lock``.

The launcher takes the lock before the run's process group starts and hands the locked file to
the group's leader, whose driver and retry pass inherit it: the lock is held while any of them
lives (a killed leader does not release it while its driver runs) and released by the kernel
when the last one ends, however it ends. Two runs writing the same days could otherwise both
publish them.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from conus404.core.exceptions import ConfigurationError

LOCK_NAME = ".pipeline.lock"


class AnotherRunActive(ConfigurationError):
    """A run on this data folder is active: wait for it or stop it (./kill_all.sh)."""


def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOCK_NAME


def acquire(data_dir: Path, log_dir: Path) -> int:
    """The locked file's descriptor (inheritable, for the run's group), or AnotherRunActive."""
    path = lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise AnotherRunActive(
            f"another run is active on the data folder {data_dir}"
            + (f" (its log folder: {holder})" if holder else "")
            + "; wait for it, or stop it with ./kill_all.sh --log-dir LOG_FOLDER") from None
    try:  # who holds it, for the next run's refusal; a full disk just leaves it unnamed
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"log_dir": str(log_dir), "pid": os.getpid()}).encode(), 0)
    except OSError:
        pass
    os.set_inheritable(fd, True)
    return fd


def _holder(fd: int) -> str:
    try:
        return str(json.loads(os.pread(fd, 4096, 0) or b"{}").get("log_dir") or "")
    except (OSError, ValueError):
        return ""


def active_holder(data_dir: Path) -> str | None:
    """The log folder of the run holding the data folder's lock ('' if unnamed), or None if none does.
    Reads only: the lock file is never created here."""
    try:
        fd = os.open(lock_path(data_dir), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
