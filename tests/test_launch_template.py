"""The launch template: worker processes forked from one process that did the imports are still
processes of their own (PID, command line, process group, descriptors, exit code), a crashed one
cannot damage the next, a template that dies takes no day down silently, and a launcher that dies
(a Dask worker killed mid-task) leaves no day process running unsupervised (unit tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conus404.core.processes import start_process_group, stop_process_group
from conus404.launch import launch_template
from conus404.launch.executors import WorkerLaunch, WorkerProcess, run_worker_process

pytestmark = pytest.mark.skipif(not launch_template.supported(), reason="needs fork and pidfds (Linux 5.3+)")

REPORT = """
import json, os, sys
import conus404.day.day_reader as reader
print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "argv": sys.argv,
                  "resigns": reader.MAX_RESIGNS_PER_DAY, "cwd": os.getcwd(), "stdin": sys.stdin.read(),
                  "preloaded": "xarray" in sys.modules and "netCDF4" in sys.modules}))
"""
CRASH = """
import ctypes, conus404.day.day_reader as reader
reader.MAX_RESIGNS_PER_DAY = 99          # damage the module state this process was forked with
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


LAUNCHER = """
import sys, time
from pathlib import Path
from conus404.launch.executors import WorkerLaunch, WorkerProcess
tmp = Path(sys.argv[1])
process = WorkerProcess(WorkerLaunch([sys.executable, str(tmp / "slow.py")], None, tmp / "slow.log", 600, "slow",
                                     tmp, None, prewarmed=True))
print(process.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    """Ended (a zombie not yet reaped by whoever inherited it counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def start_launcher(tmp: Path) -> tuple[subprocess.Popen, int, int]:
    """A process that forked a long worker from its template, as a Dask worker does: (it, worker, template)."""
    (tmp / "slow.py").write_text("import time; time.sleep(600)")
    env = {**os.environ, "PYTHONPATH": str(Path(launch_template.__file__).resolve().parents[2])}
    launcher = start_process_group([sys.executable, "-c", LAUNCHER, str(tmp)], tmp / "launcher.log", env=env)
    deadline = time.monotonic() + 120
    while not (tmp / "launcher.log").read_text().strip():
        assert launcher.poll() is None and time.monotonic() < deadline, (tmp / "launcher.log").read_text()
        time.sleep(0.05)
    worker = int((tmp / "launcher.log").read_text().split()[0])
    template = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert template != launcher.pid and "conus404.launch.launch_template" in command_line(template)
    return launcher, worker, template


def wait_until_gone(*pids: int) -> None:
    deadline = time.monotonic() + 30
    while not all(map(gone, pids)):
        assert time.monotonic() < deadline, f"still running: {[pid for pid in pids if not gone(pid)]}"
        time.sleep(0.05)


def test_a_launcher_killed_mid_task_takes_its_forked_workers_down(tmp_path):
    """A Dask worker killed mid-task: no one can report or time out its day process any more, and
    the task runs again elsewhere, so the day process must not run on (and later publish)."""
    launcher, worker, template = start_launcher(tmp_path)
    try:
        os.kill(launcher.pid, signal.SIGKILL)
        wait_until_gone(worker, template)
    finally:
        stop_process_group(launcher)


def test_a_worker_dies_with_its_template_even_when_no_one_can_stop_it(tmp_path):
    """The template killed outright while its launcher cannot act (stopped): the kernel ends the worker."""
    launcher, worker, template = start_launcher(tmp_path)
    try:
        os.kill(launcher.pid, signal.SIGSTOP)
        os.kill(template, signal.SIGKILL)
        wait_until_gone(worker)
    finally:
        os.kill(launcher.pid, signal.SIGCONT)
        stop_process_group(launcher)


def test_what_a_template_cannot_run_starts_cold(tmp_path):
    ended = run_worker_process(WorkerLaunch(["/bin/sh", "-c", "echo $PPID"], None, tmp_path / "sh.log", 60, "sh",
                                            tmp_path, None, prewarmed=True))
    assert ended.returncode == 0 and int(ended.stdout) == os.getpid(), "a cold child of this process"
