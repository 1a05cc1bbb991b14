"""The worker-process runner both executors share: standard input, output and log, the timeout,
the environment handed on, and stopping what a process started (unit tests, no emulator). Each
case runs twice: a process forked from the launch template, and a cold one."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from conus404.launch.executors import SubprocessExecutor, WorkerLaunch, run_worker_process, stop_worker_processes
from conus404.launch.executors import subprocess as executors

SLEEP_60 = "import time; time.sleep(60)"
ECHO_STDIN = "import sys; data = sys.stdin.read(); print('{\"got\": %d}' % len(data)); print('to the log', file=sys.stderr)"


LAUNCHES = {"prewarmed": True, "cold": False}


@pytest.fixture(params=list(LAUNCHES))
def prewarmed(request) -> bool:
    return LAUNCHES[request.param]


def launch(tmp: Path, code: str, prewarmed: bool, stdin_text: str | None = None, timeout_s: float = 30,
           header: str = "attempt", env: dict | None = None) -> WorkerLaunch:
    return WorkerLaunch([sys.executable, "-c", code], stdin_text, tmp / "day.log", timeout_s, header, tmp, env, prewarmed)


def test_stdin_reaches_the_process_stdout_comes_back_and_stderr_goes_to_the_log(prewarmed, tmp_path):
    ended = run_worker_process(launch(tmp_path, ECHO_STDIN, prewarmed, "x" * 70_000, header="attempt for D"))
    assert ended.returncode == 0 and not ended.timed_out and not ended.lost
    assert ended.stdout.strip() == '{"got": 70000}'
    log = (tmp_path / "day.log").read_text()
    how = ", forked from launch template pid " if prewarmed else " ====="
    assert f"attempt for D, started by {os.uname().nodename} pid {os.getpid()}{how}" in log
    assert log.rstrip().endswith("to the log")


def test_a_process_past_its_timeout_is_terminated_and_reported_as_timed_out(prewarmed, tmp_path):
    ended = run_worker_process(launch(tmp_path, SLEEP_60, prewarmed, timeout_s=0.5))
    assert ended.timed_out and ended.returncode == -15, "stopped by SIGTERM, not left to sleep its 60 s"


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(prewarmed, tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "KILL_GRACE_S", 0.5)
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    ended = run_worker_process(launch(tmp_path, code, prewarmed, timeout_s=0.5))
    assert ended.timed_out and ended.returncode == -9


def test_the_environment_handed_on_is_added_to_the_processes_own(prewarmed, tmp_path, monkeypatch):
    monkeypatch.setenv("CONUS404_TEST_INHERITED", "here")
    code = "import os; print(os.environ['CONUS404_STAC_URL'], os.environ['CONUS404_TEST_INHERITED'])"
    job, where = SubprocessExecutor().submit(launch(tmp_path, code, prewarmed, env={"CONUS404_STAC_URL": "https://127.0.0.1:1/stac"}))
    while not job.done():
        time.sleep(0.05)
    assert job.result().stdout.split() == ["https://127.0.0.1:1/stac", "here"]
    assert where.startswith("pid ")


def test_stop_worker_processes_kills_what_this_process_started_by_pid(prewarmed, tmp_path):
    """What a Dask worker is asked to do when a run is interrupted while its task runs."""
    results = []
    thread = threading.Thread(target=lambda: results.append(run_worker_process(
        launch(tmp_path, SLEEP_60, prewarmed, timeout_s=120))))
    thread.start()
    deadline = time.monotonic() + 180  # a first launch waits for the template's imports
    while not executors._live:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    [process] = list(executors._live)
    assert stop_worker_processes() == 1
    thread.join(timeout=10)
    assert not thread.is_alive() and results[0].returncode == -9
    assert not Path(f"/proc/{process.pid}").exists() or "Z" in Path(f"/proc/{process.pid}/stat").read_text().split()[2]
    assert stop_worker_processes() == 0


def test_a_job_stopped_at_once_leaves_no_process(prewarmed, tmp_path):
    job, _ = SubprocessExecutor().submit(launch(tmp_path, SLEEP_60, prewarmed, timeout_s=120))
    pid = job.pid
    job.stop()
    assert not Path(f"/proc/{pid}").exists()
    assert not executors._live
