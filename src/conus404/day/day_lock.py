"""One process at a time works on a day: a byte-range lock per day in ``DATA_DIR/.day-locks``.

A day can have two live processes when the one that started it is gone but the day process is
not yet: a Dask worker killed mid-task (the scheduler runs the task again elsewhere), a whole
node cut off from the scheduler. The second waits here until the first has ended, then finds
the day published (and skips it) or not (and makes it), so a day is published exactly once.

POSIX record locks (``fcntl.lockf``) rather than one lock file per day: one file for the whole
record, nothing to delete, released by the kernel when the holder dies however it dies, and
honoured across machines on NFS (and on Lustre/GPFS mounted with locking), where Dask workers on
several nodes share the data folder.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("conus404.day_lock")
LOCK_NAME = ".day-locks"


def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOCK_NAME


@contextmanager
def working_on(data_dir: Path, day: dt.date) -> Iterator[None]:
    """Hold ``day``'s lock for the block, first waiting for any other process that holds it (the
    day's own timeout bounds the wait)."""
    path = lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        start = day.toordinal()  # one byte per day, at the day's ordinal: the file itself stays empty
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, start)
        except (BlockingIOError, PermissionError):
            log.warning("another process is working on %s (a lost attempt still ending?): "
                        "waiting for it to end before doing anything", day)
            waited_since = time.monotonic()
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, start)
            log.info("the other process working on %s ended after %.1f s", day, time.monotonic() - waited_since)
        yield
    finally:
        os.close(fd)  # closing releases the lock
