"""One process at a time per day (day_lock): a second process waits for the first to end however
it ends, other days are not held up, and the lock leaves nothing to clean up (unit tests)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from conus404.day import day_lock

DAY = dt.date(2021, 1, 2)
HOLDER = """
import datetime as dt, sys, time
from pathlib import Path
from conus404.day import day_lock
with day_lock.working_on(Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2])):
    print("held", flush=True)
    sys.stdin.read()
"""


def hold(data_dir: Path, day: dt.date) -> subprocess.Popen:
    """Another process holding ``day``'s lock until its standard input closes (or it is killed)."""
    env = {**os.environ, "PYTHONPATH": str(Path(day_lock.__file__).resolve().parents[2])}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(data_dir), day.isoformat()], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


class Waiting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.said = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for it to end" in record.getMessage():
            self.said.set()


def enter_in_thread(data_dir: Path, day: dt.date) -> tuple[threading.Thread, threading.Event]:
    entered = threading.Event()

    def run() -> None:
        with day_lock.working_on(data_dir, day):
            entered.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, entered


def test_a_second_process_waits_until_the_first_has_died(tmp_path):
    holder = hold(tmp_path, DAY)
    waiting = Waiting()
    logging.getLogger("conus404.day_lock").addHandler(waiting)
    try:
        thread, entered = enter_in_thread(tmp_path, DAY)
        assert waiting.said.wait(30), "the second process did not notice the first"
        assert not entered.is_set(), "both worked on the day at once"
        holder.send_signal(signal.SIGKILL)  # dies without any cleanup: the kernel releases its lock
        holder.wait()
        assert entered.wait(30), "the lock of a killed process was not released"
        thread.join(30)
    finally:
        logging.getLogger("conus404.day_lock").removeHandler(waiting)
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_other_days_are_not_held_up_and_nothing_is_left_to_clean(tmp_path):
    holder = hold(tmp_path, DAY)
    try:
        for other in (DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1), dt.date(2022, 9, 30)):
            thread, entered = enter_in_thread(tmp_path, other)
            assert entered.wait(30), f"{other} waited for {DAY}'s holder"
            thread.join(30)
    finally:
        holder.stdin.close()  # a holder that ends normally releases the lock too
        assert holder.wait(30) == 0
    thread, entered = enter_in_thread(tmp_path, DAY)
    assert entered.wait(30)
    thread.join(30)
    assert [p.name for p in tmp_path.iterdir()] == [day_lock.LOCK_NAME]
    assert day_lock.lock_path(tmp_path).stat().st_size == 0, "one empty file for the whole record"
