"""The subprocess executor (the seed's design): each worker process is a child of the driver, on
this machine, forked from the launch template or started cold. :class:`WorkerProcess` is also what
a Dask task runs on a Dask worker (:func:`run_worker_process`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import subprocess
import threading
import time

from conus404.launch.executors.base import WorkerExit, WorkerLaunch

log = logging.getLogger("conus404.executors")


KILL_GRACE_S = 10.0  # after SIGTERM at the timeout, SIGKILL follows this much later

_live: set[WorkerProcess] = set()  # worker processes this process started and has not reaped
_live_lock = threading.Lock()


class WorkerProcess:
    """One ``single_download.py`` process: standard error appended to ``log_path``, stopped at ``timeout_s``."""

    def __init__(self, launch: WorkerLaunch) -> None:
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = launch.timeout_s
        self.terminated_at: float | None = None
        self._log = open(launch.log_path, "a")
        env = {**os.environ, **(launch.env or {})}
        template = _template_for(launch, env)
        how = f", forked from launch template pid {template.proc.pid}" if template is not None else ""
        # Which machine and process started it: on a cluster, where to look for this day.
        self._log.write(f"\n===== {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} {launch.header}, "
                        f"started by {socket.gethostname()} pid {os.getpid()}{how} =====\n")
        self._log.flush()
        self.proc = _start(launch, self._log, env, template)
        self.started = time.monotonic()
        with _live_lock:
            _live.add(self)
        if launch.stdin_text is not None:
            try:
                self.proc.stdin.write(launch.stdin_text)
                self.proc.stdin.close()
            except BrokenPipeError:
                pass  # the worker died at start; its exit code tells the story

    @property
    def pid(self) -> int:
        return self.proc.pid

    def done(self) -> bool:
        """Whether the process has exited; past the timeout it is sent SIGTERM, then SIGKILL."""
        if self.proc.poll() is not None:
            return True
        now = time.monotonic()
        if self.terminated_at is None and now - self.started > self.timeout_s:
            log.warning("pid %d exceeded the %g s timeout: stopping it", self.proc.pid, self.timeout_s)
            self.proc.terminate()
            self.terminated_at = now
        elif self.terminated_at is not None and now - self.terminated_at > KILL_GRACE_S:
            self.proc.kill()
        return False

    def result(self) -> WorkerExit:
        out = self.proc.stdout.read() if self.proc.stdout else ""
        self.proc.wait()
        self._release()
        return WorkerExit(self.proc.returncode, out, timed_out=self.terminated_at is not None)

    def stop(self) -> None:
        """Kill the process now (the run is being interrupted)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._release()

    def _release(self) -> None:
        self._log.close()
        with _live_lock:
            _live.discard(self)


def _template_for(launch: WorkerLaunch, env: dict[str, str]):
    """This machine's launch template for ``launch``, or None for a cold start."""
    from conus404.launch import launch_template

    if not launch.prewarmed or not launch_template.can_run(launch.argv):
        return None
    return launch_template.shared_template(launch.cwd, env)


def _start(launch: WorkerLaunch, log_file, env: dict[str, str], template):
    """The process of ``launch``: forked from ``template``, or a cold one (also if the fork fails)."""
    if template is not None:
        from conus404.launch.launch_template import LaunchTemplateError

        try:
            if launch.remote:
                template.warm_remote()
            return template.popen(launch.argv, launch.stdin_text is not None, log_file.fileno())
        except LaunchTemplateError as exc:
            log.warning("%s: starting a cold worker process instead", exc)
            log_file.write(f"(not forked: {exc}; started cold)\n")
            log_file.flush()
    return subprocess.Popen(
        launch.argv, stdin=subprocess.PIPE if launch.stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=launch.cwd, env=env,
    )


def run_worker_process(launch: WorkerLaunch) -> WorkerExit:
    """Run one worker process to its end: the body of a Dask task (runs on a Dask worker)."""
    process = WorkerProcess(launch)
    while not process.done():
        time.sleep(0.2)
    return process.result()


def stop_worker_processes() -> int:
    """Kill every worker process this Python process started; returns how many (run on Dask workers
    when a run is interrupted, since cancelling a Dask task does not stop a process it started)."""
    with _live_lock:
        running = list(_live)
    for process in running:
        process.stop()
    return len(running)


class SubprocessExecutor:
    """The seed's design: each worker is a child process of the driver, on this machine."""

    on_this_machine = True

    def submit(self, launch: WorkerLaunch) -> tuple[WorkerProcess, str]:
        process = WorkerProcess(launch)  # a WorkerProcess is itself a Job
        return process, f"pid {process.pid}"

    def close(self) -> None:
        from conus404.launch.launch_template import close_shared_template

        close_shared_template()
