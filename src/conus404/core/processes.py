"""Start child processes in their own process group and stop them by that group, never by name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def exit_without_teardown(code: object) -> None:
    """End the process as ``sys.exit(code)`` would, minus the interpreter's teardown of every
    loaded module (half a second with xarray, zarr and adlfs loaded, paid at every run's end):
    for the entry scripts, the launch template and its forked children. Exit handlers still run
    (logging's flush among them) and the standard streams are flushed first."""
    import atexit
    import sys

    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): the message, and 1
        print(code, file=sys.stderr)
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    finally:
        os._exit(code)


def start_process_group(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start ``argv`` as the leader of a new process group, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


def stop_process_group(proc: subprocess.Popen, grace_seconds: float = 5.0) -> int | None:
    """SIGTERM the group led by ``proc``, then SIGKILL it if it has not exited in time."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while children of its group live on: always sweep the group.
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
        return None
    return proc.returncode


def exit_on_sigterm(what: str) -> None:
    """Turn SIGTERM (kill_all.sh) into SystemExit(143), so ``finally`` blocks stop what this process
    started elsewhere (a Dask cluster's day processes share no process group with it)."""
    import logging

    def handler(signum, _frame):
        logging.getLogger("conus404.processes").warning("%s: SIGTERM received, stopping", what)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Block until something accepts connections on 127.0.0.1:``port``.

    Raises RuntimeError if ``proc`` exits first or the timeout passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]!r} exited with code {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def process_age_s() -> float | None:
    """Seconds since this process started (interpreter start and imports included); None off Linux."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat(5); two fields precede the slice
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB.

    Linux's VmHWM, not getrusage's ru_maxrss: the latter survives fork + exec, so a small child
    of a large parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so a worker running several
    days does not carry one day's high-water mark into the next; a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def start_on_free_port(
    argv_for_port, log_path: Path, what: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
    attempts: int = 3, timeout: float = 30.0,
) -> tuple[subprocess.Popen, int]:
    """Start ``argv_for_port(port)`` on a free loopback port and wait until it listens.

    A freshly picked free port can be taken before the server binds it, so a few attempts are
    made; each failed one is stopped by its process group. Returns (process, port).
    """
    last_error: Exception | None = None
    for _ in range(attempts):
        port = free_loopback_port()
        proc = start_process_group(argv_for_port(port), log_path, env=env, cwd=cwd)
        try:
            wait_for_port(port, proc, timeout=timeout)
            return proc, port
        except RuntimeError as exc:
            last_error = exc
            stop_process_group(proc)
    raise RuntimeError(f"{what} did not start (see {log_path}): {last_error}")
