"""What every executor shares: the launch of one worker process, its exit, and the two small
interfaces (:class:`Executor`, :class:`Job`) the scheduler talks to.

Every executor starts the same :class:`WorkerLaunch` (``single_download.py`` with the run's flags,
the signed asset on its standard input) and hands the scheduler the same :class:`WorkerExit`, so
ledgers, skip rules, timeouts and the atomic publish cannot differ between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class WorkerLaunch:
    """Everything needed to start one worker process, wherever it runs (picklable, for Dask)."""

    argv: list[str]
    stdin_text: str | None  # the signed asset (holds a token: never log it)
    log_path: Path  # standard error is appended here
    timeout_s: float
    header: str  # first line of this attempt in the log
    cwd: Path
    env: Mapping[str, str] | None = None  # added to the environment of the machine it runs on
    prewarmed: bool = True  # fork it from this machine's launch template (conus404.launch.launch_template)
    remote: bool = True  # it reads or writes remote storage (the template imports that stack first)


@dataclass
class WorkerExit:
    """How a worker process ended: its exit code and standard output (one JSON line per day)."""

    returncode: int | None
    stdout: str
    timed_out: bool = False
    lost: str = ""  # why there is no exit at all (e.g. the Dask worker running it died)


class Job(Protocol):
    """A worker process handed to an executor."""

    def done(self) -> bool: ...
    def result(self) -> WorkerExit: ...
    def stop(self) -> None: ...


class Executor(Protocol):
    on_this_machine: bool  # whether this machine's free memory says anything about room for a worker

    def submit(self, launch: WorkerLaunch) -> tuple[Job, str]: ...  # the job, and where it runs (for the log)
    def close(self) -> None: ...
