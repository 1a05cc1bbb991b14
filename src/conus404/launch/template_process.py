"""The launch template's own side (:mod:`conus404.launch.launch_template` is the launcher's): import
what a day needs, then serve launch requests on the socket, forking one child per request, until
the launcher closes it; each child becomes the day's ``single_download.py`` as ``__main__``."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
from pathlib import Path

from conus404.launch.launch_template import MAX_MESSAGE_BYTES

_PR_SET_PDEATHSIG = 1  # prctl(2)


def serve(fd: int) -> None:
    """The template process: import what a day needs, then fork a child per launch request until
    the launcher closes the socket."""
    from conus404.launch import template_warmup

    sock = socket.socket(fileno=fd)
    _show_command_line([sys.executable, "-m", "conus404.launch.launch_template", "(the run's worker launch template)"])
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C of a foreground run ends it at once
    template_warmup.hide_from_days()
    template_warmup.import_core()
    unsafe = ""  # why forking is no longer safe, once it is not
    try:
        if template_warmup.threads_started():  # forking a process with threads could copy a held lock
            _send(sock, {"refused": f"{template_warmup.threads_started() + 1} threads after the imports"})
            return
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        _send(sock, {"ready": os.getpid()})
    except OSError:
        return  # the launcher ended while this was importing (e.g. a usage error): nothing to serve
    children: set[int] = set()  # forked and not yet reaped, so their PIDs cannot have been reused
    while True:
        try:
            readable, _, _ = select.select([sock, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in readable:
            os.read(wake_r, 4096)
            children -= _reap(sock)
        if sock in readable:
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE_BYTES, 4)
            if not data:
                # The launcher is gone (a Dask worker killed mid-task, a driver killed alone): no one
                # can report or time out these children any more, and a lost task is run again
                # elsewhere, so they are stopped rather than left to publish unsupervised.
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                return
            message = json.loads(data)
            if message.get("warm") == "remote" and not fds:  # no reply: the next one is still a launch's
                template_warmup.import_remote()
                if template_warmup.threads_started() and not unsafe:
                    unsafe = f"{template_warmup.threads_started() + 1} threads after importing the remote-storage stack"
                continue
            request = message.get("launch")
            if request is None or len(fds) != 3 or unsafe:
                for descriptor in fds:
                    os.close(descriptor)
                _send(sock, {"refused": unsafe or "not a launch request"})
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            template_pid = os.getpid()
            pid = os.fork()
            if pid == 0:
                _run_child(request, fds, (sock.fileno(), wake_r, wake_w), template_pid)
            children.add(pid)
            for descriptor in fds:
                os.close(descriptor)
            pidfd = os.pidfd_open(pid)  # the child is not reaped before this: the pidfd is its own
            try:
                socket.send_fds(sock, [json.dumps({"started": pid}).encode()], [pidfd])
            finally:
                os.close(pidfd)


def _send(sock: socket.socket, message: dict) -> None:
    sock.sendall(json.dumps(message).encode())


def _reap(sock: socket.socket) -> set[int]:
    """Reap the ended children and tell the launcher; returns their PIDs."""
    reaped = set()
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.add(pid)
        try:
            _send(sock, {"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})
        except OSError:
            pass


def _show_command_line(argv: list[str]) -> None:
    """Make ps and /proc/PID/cmdline show ``argv``, as for a cold start (operators and tests look
    for single_download.py there). A forked process keeps the template's command-line memory; the
    template was started with room to spare in it (``launch_template._ARGV_ROOM``), which is overwritten here, as
    setproctitle(3) does. Python's own copies (sys.argv) are not touched."""
    import ctypes

    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49 of stat(5)
    except (OSError, ValueError, IndexError):
        return
    room = end - start
    text = b"\0".join(arg.encode(errors="replace") for arg in argv)[: room - 1]
    ctypes.memmove(start, text + b"\0" * (room - len(text)), room)


def _die_with_parent(template_pid: int) -> None:
    """Have the kernel SIGKILL this process when the template dies, even by SIGKILL (then it cannot
    stop its children itself); a template that is already gone means exit now."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the template's own stop on the launcher's end still applies
    if os.getppid() != template_pid:
        os._exit(1)


def _run_child(request: dict, fds: list[int], template_fds: tuple[int, ...], template_pid: int) -> None:
    """In the forked child: become the requested process and never return."""
    code: object = 1
    try:
        _die_with_parent(template_pid)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for descriptor in template_fds:
            os.close(descriptor)
        for target, descriptor in enumerate(fds):
            os.dup2(descriptor, target)
        for descriptor in fds:
            if descriptor > 2:
                os.close(descriptor)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import runpy

        argv = request["argv"]
        _show_command_line(argv)
        if argv[1] == "-c":  # python -c CODE ARGS
            sys.argv = ["-c", *argv[3:]]
            sys.path[0] = ""
            exec(compile(argv[2], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        else:  # python SCRIPT ARGS
            sys.argv = list(argv[1:])
            sys.path[0] = str(Path(argv[1]).resolve().parent)
            runpy.run_path(argv[1], run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    from conus404.core.processes import exit_without_teardown

    exit_without_teardown(code)
