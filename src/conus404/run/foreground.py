"""A foreground run seen from the terminal: waiting for it, Ctrl-C (the run's group stopped and
nothing half written left), and the words for how it ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conus404.config.settings import Settings
from conus404.run.driver import EXIT_DISK_FULL, EXIT_DRIVER_FAILED

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


def wait_foreground(proc: subprocess.Popen) -> int:
    """The run's exit code; on Ctrl-C (or SIGTERM/SIGHUP) the run is stopped and 128 + the signal."""
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    code = proc.wait()
    if received:
        wait_until_gone(proc.pid)
        return 128 + received[0]  # the caller removes what the stopped writers left
    if code in (0, 1, 2, EXIT_DRIVER_FAILED, EXIT_DISK_FULL):
        return code
    return 1


def wait_until_gone(pgid: int, grace_s: float = 20.0) -> None:
    """After an interrupt: the run is over only when no process of its group is left."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def interrupted(proc: subprocess.Popen | None, settings: Settings | None) -> int:
    """Ctrl-C while the run was being checked or started: the run's group stopped as the foreground
    wait stops it, nothing half written left, one line."""
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)  # reaped first: a zombie leader would keep its group "alive"
        except subprocess.TimeoutExpired:
            pass
        wait_until_gone(proc.pid)
        proc.wait()
    if settings is not None:
        from conus404.config.data_folder import remove_temporaries

        remove_temporaries(settings.outputs.data_dir)
    what = f"the run {outcome(EXIT_INTERRUPTED, None)}" if proc is not None else "interrupted (Ctrl-C) before a run started"
    print(f"run_pipeline.sh: {what}", file=sys.stderr)
    return EXIT_INTERRUPTED


def outcome(code: int, returncode: int | None) -> str:
    """What a foreground run's exit means, for the one line the terminal gets."""
    if code == EXIT_INTERRUPTED:
        return "was interrupted (Ctrl-C) and stopped; finished days are kept and the same command resumes"
    if code > 128:
        return f"was stopped by signal {code - 128}; finished days are kept and the same command resumes"
    if returncode == EXIT_DISK_FULL:
        return "stopped: the data folder's disk is full (free space, then rerun the same command to resume)"
    if returncode == EXIT_DRIVER_FAILED:
        return "failed: the driver stopped with an error"
    if returncode is not None and returncode >= 128 or (returncode or 0) < 0:
        return "was stopped by a signal"
    if code == 2:
        return "was refused (usage or configuration error)"
    return "ended with days that still failed (see ultimate_failures.json)"
