"""Process groups: a child and its own children are stopped together, by PID, never by name."""

from __future__ import annotations

import os
import time

import pytest

from conus404.core.processes import free_loopback_port, start_process_group, stop_process_group, wait_for_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_ends_the_leader_and_its_grandchildren(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    # the leader ignores SIGTERM and starts a grandchild: both must still end
    proc = start_process_group(
        ["bash", "-c", f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait"], tmp_path / "log.txt"
    )
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    assert os.getpgid(grandchild) == proc.pid, "the grandchild is in the leader's group"
    stop_process_group(proc, grace_seconds=0.5)
    assert proc.poll() is not None
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_wait_for_port_reports_an_early_exit(tmp_path):
    proc = start_process_group(["bash", "-c", "exit 3"], tmp_path / "log.txt")
    with pytest.raises(RuntimeError, match="exited with code 3"):
        wait_for_port(free_loopback_port(), proc, timeout=10)
    stop_process_group(proc)
