"""The launch template: worker processes forked from one process that did the imports are still
processes of their own (PID, command line, process group, descriptors, exit code), a crashed one
cannot damage the next, and a template that dies takes no day down silently (unit tests)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from conus404 import launch_template
from conus404.executors import WorkerLaunch, WorkerProcess, run_worker_process

pytestmark = pytest.mark.skipif(not launch_template.supported(), reason="needs fork and pidfds (Linux 5.3+)")

REPORT = """
import json, os, sys
import conus404.worker as worker
print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "argv": sys.argv,
                  "resigns": worker.MAX_RESIGNS_PER_DAY, "cwd": os.getcwd(), "stdin": sys.stdin.read(),
                  "preloaded": "xarray" in sys.modules and "netCDF4" in sys.modules}))
"""
CRASH = """
import ctypes, conus404.worker as worker
worker.MAX_RESIGNS_PER_DAY = 99          # damage the module state this process was forked with
ctypes.string_at(0)                      # then crash hard (SIGSEGV)
"""


@pytest.fixture(autouse=True)
def _own_template():
    launch_template.close_shared_template()
    yield
    launch_template.close_shared_template()


def run_script(tmp: Path, name: str, code: str, stdin: str = "asset", *args: str) -> tuple[int, dict | None, str]:
    script = tmp / f"{name}.py"
    script.write_text(code)
    ended = run_worker_process(WorkerLaunch([sys.executable, str(script), *args], stdin, tmp / f"{name}.log", 60,
                                            f"attempt {name}", tmp, None, prewarmed=True))
    import json

    lines = [line for line in ended.stdout.splitlines() if line.startswith("{")]
    return ended.returncode, json.loads(lines[-1]) if lines else None, (tmp / f"{name}.log").read_text()


def template_pid() -> int:
    template = launch_template._shared
    assert template is not None and template.alive
    return template.proc.pid


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_a_forked_worker_is_its_own_process_with_the_scripts_command_line(tmp_path):
    code, report, log = run_script(tmp_path, "report", REPORT, "the signed asset", "2021-01-01", "--flag")
    assert code == 0, log
    assert report["ppid"] == template_pid() != os.getpid(), "forked from the template, not started by this process"
    assert report["pid"] not in (os.getpid(), template_pid())
    assert report["pgid"] == os.getpgid(0), "in the run's process group, which kill_all.sh stops"
    assert report["argv"] == [str(tmp_path / "report.py"), "2021-01-01", "--flag"]
    assert report["stdin"] == "the signed asset" and report["cwd"] == str(tmp_path)
    assert report["preloaded"], "the template had imported the heavy modules"
    # what ps shows, while it runs, is the command it was given (not the template's)
    script = tmp_path / "slow.py"
    script.write_text("import time; time.sleep(30)")
    process = WorkerProcess(WorkerLaunch([sys.executable, str(script), "2021-01-02"], None, tmp_path / "slow.log", 60,
                                         "slow", tmp_path, None, prewarmed=True))
    try:
        deadline = time.monotonic() + 30  # the child writes its command line first thing after the fork
        while command_line(process.pid) != f"{sys.executable} {script} 2021-01-02":
            assert time.monotonic() < deadline, command_line(process.pid)
            time.sleep(0.02)
    finally:
        process.stop()
    assert process.proc.returncode == -signal.SIGKILL


def test_a_crashed_worker_cannot_damage_the_next_one(tmp_path):
    code, _, log = run_script(tmp_path, "crash", CRASH)
    assert code == -signal.SIGSEGV, log
    first_template = template_pid()
    code, report, log = run_script(tmp_path, "after", REPORT)
    assert code == 0, log
    assert report["ppid"] == first_template, "the same template launched both"
    assert report["resigns"] == 2, "the next worker starts from the template's untouched copy"


def test_exit_codes_and_uncaught_exceptions_are_the_processes_own(tmp_path):
    code, _, _ = run_script(tmp_path, "three", "import sys; sys.exit(3)")
    assert code == 3
    code, _, log = run_script(tmp_path, "raises", "raise ValueError('bad day')")
    assert code == 1 and "ValueError: bad day" in log
    code, _, _ = run_script(tmp_path, "ends", "print('{}')")
    assert code == 0


def test_a_template_that_dies_stops_its_workers_and_the_next_launch_starts_a_new_one(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import time; time.sleep(30)")
    process = WorkerProcess(WorkerLaunch([sys.executable, str(script)], None, tmp_path / "slow.log", 60, "slow",
                                         tmp_path, None, prewarmed=True))
    old_template = template_pid()
    os.kill(old_template, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not process.done():
        assert time.monotonic() < deadline, "the worker of a dead template was not stopped"
        time.sleep(0.05)
    assert process.result().returncode == -signal.SIGKILL  # a transient failure for the scheduler
    assert not Path(f"/proc/{process.pid}/cmdline").exists() or command_line(process.pid) == ""
    code, report, _ = run_script(tmp_path, "after", REPORT)
    assert code == 0 and report["ppid"] == template_pid() != old_template


def test_what_a_template_cannot_run_starts_cold(tmp_path):
    ended = run_worker_process(WorkerLaunch(["/bin/sh", "-c", "echo $PPID"], None, tmp_path / "sh.log", 60, "sh",
                                            tmp_path, None, prewarmed=True))
    assert ended.returncode == 0 and int(ended.stdout) == os.getpid(), "a cold child of this process"
