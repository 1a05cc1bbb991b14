"""A pre-warmed launch: one template process has done the imports; each worker process is forked
from it instead of starting a cold interpreter (≈ 0.5–1 s of imports saved per process).

The forked child is still the day's own process: its own PID, its own standard input (the signed
asset), output (the JSON result lines) and error (the day's log), its own exit code, and the run's
process group, so kill_all.sh, the per-day timeout and the Dask executor stop it as before. It runs
the very ``single_download.py`` of the command line, as ``__main__``. The template never runs day
work and stays single-threaded, so whatever a day does, a crash included, cannot reach the next:
every child starts from the same untouched copy.

The template and the process that launches through it talk over a Unix SOCK_SEQPACKET pair, one
JSON message each (file descriptors travel beside them, SCM_RIGHTS):

    launcher -> template   {"launch": {"argv", "env", "cwd"}}   fds: stdin, stdout, stderr
                           {"warm": "remote"}: import the remote-storage stack first (no reply)
    template -> launcher   {"ready": pid} once; {"started": pid} fds: a pidfd of the child
                           {"refused": why}; {"exited": pid, "returncode": n}

Signals go through the child's pidfd, which cannot hit a reused PID. This module is the
launcher's side; the template's own is :mod:`conus404.launch.template_process`.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from conus404.launch.template_warmup import MALLOC_TUNING

log = logging.getLogger("conus404.launch_template")
READY_TIMEOUT_S = 120.0  # imports on a loaded 2-core machine
_ARGV_ROOM = 8192  # bytes of command line a forked worker can show as its own
MAX_MESSAGE_BYTES = 1 << 20  # one JSON message of either side


class LaunchTemplateError(RuntimeError):
    """The template could not start or launch; the caller starts a cold process instead."""


def supported() -> bool:
    """Forking from a template needs fork and pidfds (Linux 5.3+)."""
    return hasattr(os, "fork") and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


def can_run(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is this interpreter running a script or ``-c CODE`` (what a template can become)."""
    if len(argv) < 2 or argv[0] != sys.executable:
        return False
    return len(argv) >= 3 if argv[1] == "-c" else not argv[1].startswith("-")


# -- the launcher's side -----------------------------------------------------------------------
class ForkedProcess:
    """A child of the template, with the part of ``subprocess.Popen``'s interface the executors use."""

    def __init__(self, pid: int, pidfd: int, stdin, stdout) -> None:
        self.pid = pid
        self.args = ["<forked from the launch template>"]
        self._pidfd = pidfd
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None
        self._exited = threading.Event()

    def _set_exit(self, returncode: int) -> None:
        self.returncode = returncode
        self._exited.set()
        try:
            os.close(self._pidfd)
        except OSError:
            pass

    def poll(self) -> int | None:
        return self.returncode if self._exited.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self._exited.is_set():
            return
        try:
            signal.pidfd_send_signal(self._pidfd, signum)
        except (ProcessLookupError, OSError):
            pass  # already ended

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class LaunchTemplate:
    """One template process (started here, in this process's process group) and its children."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.cwd = Path(cwd)
        self.env = dict(env)
        self._children: dict[int, ForkedProcess] = {}
        self._replies: list[tuple[dict, list[int]]] = []  # answers to launch requests, in order
        self._early_exits: dict[int, int] = {}  # children that ended before popen() filed them
        self._reply_ready = threading.Condition()
        self._send_lock = threading.Lock()
        self._closed = False
        self._warmed_remote = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        src = str(Path(__file__).resolve().parents[2])
        boot = (f"import sys; sys.path.insert(0, {src!r}); from conus404.launch.template_process import serve; "
                f"serve({theirs.fileno()}); from conus404.core.processes import exit_without_teardown; exit_without_teardown(0)")
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", boot, " " * _ARGV_ROOM], pass_fds=[theirs.fileno()], cwd=self.cwd,
                                         env={**MALLOC_TUNING, **self.env}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._sock = ours
        ready = self._read_one(READY_TIMEOUT_S)
        if ready is None or "ready" not in ready[0]:
            self.close()
            raise LaunchTemplateError(f"the launch template did not start (it said {ready and ready[0]})")
        self._reader = threading.Thread(target=self._read_forever, name="launch-template-reader", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return not self._closed and self.proc.poll() is None

    def matches(self, cwd: Path, env: Mapping[str, str]) -> bool:
        """Whether a launch in ``cwd`` with ``env`` sees what this template imported with."""
        return self.alive and Path(cwd) == self.cwd and dict(env) == self.env

    def warm_remote(self) -> None:
        """Have the template import the remote-storage stack before it forks the next process
        (once per template; a run from local files never needs it)."""
        with self._send_lock:
            if self._warmed_remote:
                return
            try:
                self._sock.send(json.dumps({"warm": "remote"}).encode())
            except OSError as exc:
                raise LaunchTemplateError(f"the launch template is gone ({exc})") from None
            self._warmed_remote = True

    def launch(self, argv: Sequence[str], stdin: int, stdout: int, stderr: int) -> tuple[int, int]:
        """Fork a child running ``argv`` (python, script, args) on the given descriptors: (pid, pidfd)."""
        message = json.dumps({"launch": {"argv": list(argv), "env": self.env, "cwd": str(self.cwd)}}).encode()
        if len(message) > MAX_MESSAGE_BYTES:
            raise LaunchTemplateError("the launch request is too large for the template")
        with self._send_lock:  # one launch at a time: its reply is the next one
            try:
                socket.send_fds(self._sock, [message], [stdin, stdout, stderr])
            except OSError as exc:
                raise LaunchTemplateError(f"the launch template is gone ({exc})") from None
            with self._reply_ready:
                if not self._reply_ready.wait_for(lambda: self._replies or self._closed, timeout=60):
                    raise LaunchTemplateError("the launch template did not answer within 60 s")
                if not self._replies:
                    raise LaunchTemplateError("the launch template ended")
                reply, fds = self._replies.pop(0)
        if "started" not in reply or not fds:
            for fd in fds:
                os.close(fd)
            raise LaunchTemplateError(f"the launch template refused: {reply.get('refused', reply)}")
        return int(reply["started"]), fds[0]

    def popen(self, argv: Sequence[str], stdin_text: bool, stderr_fd: int) -> ForkedProcess:
        """Like ``subprocess.Popen(argv, stdin=PIPE or DEVNULL, stdout=PIPE, stderr=stderr_fd, text=True)``."""
        if not can_run(argv):
            raise LaunchTemplateError(f"the launch template runs only `{sys.executable} SCRIPT|-c CODE ...`")
        out_r, out_w = os.pipe()
        in_r, in_w = os.pipe() if stdin_text else (os.open(os.devnull, os.O_RDONLY), -1)
        try:
            pid, pidfd = self.launch(argv, in_r, out_w, stderr_fd)
        except BaseException:
            for fd in (out_r, in_w):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(in_r)
        child = ForkedProcess(pid, pidfd, os.fdopen(in_w, "w") if in_w >= 0 else None, os.fdopen(out_r, "r"))
        with self._reply_ready:
            early = self._early_exits.pop(pid, None)
            if early is None:
                self._children[pid] = child
        if early is not None:
            child._set_exit(early)
        return child

    def _read_one(self, timeout: float | None) -> tuple[dict, list[int]] | None:
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return None
        data, fds, _flags, _addr = socket.recv_fds(self._sock, MAX_MESSAGE_BYTES, 4)
        if not data:
            return None
        return json.loads(data), list(fds)

    def _read_forever(self) -> None:
        while True:
            try:
                got = self._read_one(None)
            except (OSError, ValueError):
                got = None
            if got is None:
                break
            message, fds = got
            if "exited" in message:
                with self._reply_ready:
                    child = self._children.pop(int(message["exited"]), None)
                    if child is None:  # ended before popen() filed it: keep the news for it
                        self._early_exits[int(message["exited"])] = int(message["returncode"])
                if child is not None:
                    child._set_exit(int(message["returncode"]))
                continue
            with self._reply_ready:
                self._replies.append((message, fds))
                self._reply_ready.notify_all()
        self._orphaned()

    def _orphaned(self) -> None:
        """The template ended: its children can no longer report an exit, so they are stopped
        (their days are transient failures, retried as any killed worker's)."""
        with self._reply_ready:
            self._closed = True
            children = list(self._children.values())
            self._children.clear()
            self._reply_ready.notify_all()
        for child in children:
            child.kill()
            child._set_exit(-signal.SIGKILL)
        if children:
            log.warning("the launch template ended: stopped %d worker process(es) it had started", len(children))

    def close(self) -> None:
        """Stop the template (its running children are stopped too: see :meth:`_orphaned`)."""
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_shared: LaunchTemplate | None = None
_shared_lock = threading.Lock()
_unusable = False


def shared_template(cwd: Path, env: Mapping[str, str]) -> LaunchTemplate | None:
    """This process's template for ``cwd``/``env``, started on first use; None where forking from a
    template is not possible (then callers start cold processes)."""
    global _shared, _unusable
    with _shared_lock:
        if _unusable or not supported():
            return None
        if _shared is not None and _shared.matches(cwd, env):
            return _shared
        if _shared is not None:
            _shared.close()
            _shared = None
        try:
            _shared = LaunchTemplate(cwd, env)
        except (OSError, LaunchTemplateError) as exc:
            log.warning("cannot start the launch template (%s): starting cold worker processes", exc)
            _unusable = True
            return None
        return _shared


def prestart(cwd: Path, env: Mapping[str, str]) -> None:
    """Start this process's template in the background, so its imports overlap with whatever this
    process does before its first launch (the first launch waits for it if it is not ready yet)."""
    if supported():
        threading.Thread(target=shared_template, args=(cwd, dict(env)), name="launch-template-start",
                         daemon=True).start()


def prestart_unless_declined(argv: list[str]) -> None:
    """For an entry script, before its own heavy imports: start the template unless the command line
    asks for cold or Dask launches (a config.py that does is honoured later: the driver closes it)."""
    if "-h" in argv or "--help" in argv:
        return
    words = " ".join(argv).replace("=", " ").split()
    declined = any(words[i] in ("--launch", "--executor") and words[i + 1] in ("cold", "dask")
                   for i in range(len(words) - 1))
    if not declined:
        prestart(Path(__file__).resolve().parents[2], os.environ)


def close_shared_template() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None
