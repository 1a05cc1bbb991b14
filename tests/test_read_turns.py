"""Turns at the network link: one reader at a time per machine, waiting timed, a turn that its
holder's death (even by SIGKILL) gives back, and a holder that hangs waited for only so long
(unit tests)."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conus404.read_turns import ReadTurn, for_run
from conus404.settings import PLANETARY_COMPUTER, Settings

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
sys.path.insert(0, {src!r})
from conus404.read_turns import ReadTurn
turn = ReadTurn(__import__("pathlib").Path(sys.argv[1]), min_patience_s=600)
print("trying", flush=True)
timings = {{}}
turn.take(timings)
print("taken", timings["wait"], flush=True)
if sys.argv[2] == "hold":
    time.sleep(600)
turn.give_back()
print("given back", flush=True)
"""


def start_holder(tmp_path: Path, lock: Path, mode: str) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER.format(src=str(ROOT / "src")))
    return subprocess.Popen([sys.executable, str(script), str(lock), mode], stdout=subprocess.PIPE, text=True)


def free(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_second_reader_waits_until_the_first_gives_its_turn_back(tmp_path):
    lock = tmp_path / "turn.lock"
    mine = ReadTurn(lock)
    mine.take()
    assert mine.held
    other = start_holder(tmp_path, lock, "release")
    try:
        assert other.stdout.readline().strip() == "trying"
        time.sleep(0.5)  # time for it to take the turn, were the turn not held
        mine_still_first = not free(lock)
        assert mine_still_first
        mine.give_back()
        taken = other.stdout.readline().split()
        assert taken[0] == "taken" and float(taken[1]) >= 0.4, "the wait is timed as waiting"
        assert other.stdout.readline().strip() == "given back"
        assert other.wait(timeout=60) == 0
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    assert free(lock)


def test_a_reader_killed_holding_its_turn_gives_it_back(tmp_path):
    lock = tmp_path / "turn.lock"
    holder = start_holder(tmp_path, lock, "hold")
    try:
        assert holder.stdout.readline().strip() == "trying"
        assert holder.stdout.readline().startswith("taken")
        assert not free(lock)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    turn = ReadTurn(lock)
    turn.take()  # would block for ever had the kernel not released the dead holder's lock
    assert turn.held
    turn.give_back()


def test_a_holder_that_hangs_is_waited_for_only_so_long(tmp_path):
    lock = tmp_path / "turn.lock"
    first = ReadTurn(lock)
    first.take()
    time.sleep(0.2)
    first.give_back()
    assert float(lock.read_text()) >= 0.2, "the turn's length is left for the next waiters"
    holder = start_holder(tmp_path, lock, "hold")
    try:
        assert holder.stdout.readline().strip() == "trying"
        assert holder.stdout.readline().startswith("taken")
        patient = ReadTurn(lock, min_patience_s=1.0)
        timings: dict[str, float] = {}
        patient.take(timings)  # max(1 s, 3 x 0.2 s): then it reads without a turn
        assert not patient.held and timings["wait"] >= 1.0
        patient.take(timings)
        assert timings["wait"] < 1.5, "having given up once, it does not wait again that day"
    finally:
        holder.kill()
        holder.wait()


def settings_for(tmp_path: Path, **changes) -> Settings:
    return Settings(start_date=dt.date(2021, 1, 1), end_date=dt.date(2021, 1, 1), variables=("T2",),
                    data_dir=tmp_path / "data", **changes)


def test_turns_are_per_remote_source_and_data_folder_and_can_be_turned_off(tmp_path):
    pc = for_run(settings_for(tmp_path, source=PLANETARY_COMPUTER))
    assert pc.path is not None and pc.path.parent == Path(__import__("tempfile").gettempdir())
    assert for_run(settings_for(tmp_path, source=PLANETARY_COMPUTER)).path == pc.path
    other_data = Settings(start_date=dt.date(2021, 1, 1), end_date=dt.date(2021, 1, 1), variables=("T2",),
                          data_dir=tmp_path / "elsewhere", source=PLANETARY_COMPUTER)
    assert for_run(other_data).path != pc.path
    assert for_run(settings_for(tmp_path, source="s3://bucket/c.zarr")).path not in (None, pc.path)
    assert for_run(settings_for(tmp_path, source=str(tmp_path / "copy.zarr"))).path is None, "a local copy: no turns"
    assert for_run(settings_for(tmp_path, source=PLANETARY_COMPUTER, read_turns=False)).path is None


def test_no_turn_needs_no_file_and_never_waits(tmp_path):
    turn = ReadTurn(None)
    timings: dict[str, float] = {}
    turn.take(timings)
    assert not turn.held and timings == {}
    turn.give_back()


def test_a_turn_file_that_cannot_be_made_means_reading_without_turns(tmp_path):
    turn = ReadTurn(tmp_path / "no" / "such" / "folder" / "turn.lock")
    turn.take()
    assert not turn.held and turn.path is None
