"""Turns at the network link: the day processes of one machine read remote storage one at a time.

Day processes started together stay in lock-step: they share the link while all of them read,
then all aggregate, write and verify at once while the link stands idle. Taking turns keeps it
busy instead: one process reads its day at the link's full speed while the others aggregate,
write, verify and start their next day, and the next reader is already waiting when it is done.
(On the benchmark's model of one shared link, each reader alone fills it; a source whose
throughput per process is far below the link's would read slower this way, and a run can turn it
off with READ_TURNS = False / --no-read-turns.)

The turn is an ``flock`` on a file in the machine's temporary folder, so it is per machine (the
Dask workers of other machines have their own link) and is released by the kernel when its holder
ends, however it ends: a killed or crashed reader cannot keep the others waiting, and one that
hangs is waited for only so long (:class:`ReadTurn`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from pathlib import Path

from conus404.template_warmup import reads_remote_source

MIN_PATIENCE_S = 5.0  # a waiting reader reads anyway after max(this, 3 x the last turn's length)
POLL_S = 0.01


class ReadTurn:
    """One process's turn at reading: :meth:`take` before its first read of a day (waits for it),
    :meth:`give_back` after its last. Seconds spent waiting go to ``timings["wait"]``.

    A reader is never stalled by another: a holder that keeps its turn more than three times as long
    as the last completed turn (and at least ``min_patience_s``), e.g. on a request that hangs until
    its day's timeout, is not waited for any longer; this process then reads without a turn.
    """

    def __init__(self, path: Path | None, min_patience_s: float = MIN_PATIENCE_S) -> None:
        self.path = path
        self.min_patience_s = min_patience_s
        self._fd: int | None = None
        self._taken_at = 0.0
        self._gave_up = False

    def take(self, timings: dict[str, float] | None = None) -> None:
        if self.path is None or self._fd is not None or self._gave_up:
            return
        waiting = time.monotonic()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            self.path = None  # no turns where the file cannot be made: reading matters more
            return
        deadline = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd, self._taken_at = fd, time.monotonic()
                break
            except BlockingIOError:
                now = time.monotonic()
                deadline = deadline or now + max(self.min_patience_s, 3 * _last_turn_s(fd))
                if now >= deadline:
                    os.close(fd)
                    self._gave_up = True
                    break
                time.sleep(POLL_S)
            except OSError:  # a file system without locks
                os.close(fd)
                self.path = None
                return
        if timings is not None:
            timings["wait"] = timings.get("wait", 0.0) + time.monotonic() - waiting

    def give_back(self) -> None:
        if self._fd is not None:
            try:  # how long this turn took: the next waiters' measure of a stalled one
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, f"{time.monotonic() - self._taken_at:.3f}\n".encode(), 0)
            except OSError:
                pass
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _last_turn_s(fd: int) -> float:
    try:
        return float(os.pread(fd, 64, 0).decode().strip() or 0.0)
    except (OSError, ValueError):
        return 0.0


def for_run(settings) -> ReadTurn:
    """The turn of a run's day processes: shared by the processes of this machine that read the
    same source into the same data folder; none for local files or when the run turned it off."""
    if not settings.read_turns or not reads_remote_source(settings):
        return ReadTurn(None)
    key = hashlib.sha256(f"{settings.source}\0{Path(settings.data_dir).resolve()}".encode()).hexdigest()[:16]
    return ReadTurn(Path(tempfile.gettempdir()) / f"conus404-read-turn-{key}.lock")
