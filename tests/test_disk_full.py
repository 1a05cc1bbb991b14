"""A data folder whose disk fills up: said in one line, no new day started, nothing lost, and a
rerun after freeing space completes. The disk is a small tmpfs (needs root to mount)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conus404.emulator.synthetic_store import StoreSpec
from tests import conftest

pytestmark = pytest.mark.emulator
DAYS = ["2021-01-01", "2021-01-02", "2021-01-03", "2021-01-04"]
stack = conftest.emulator_serving(StoreSpec.for_days(DAYS[0], 4, ny=16, nx=20, variables=("T2", "PREC_ACC_NC")), "disk-full")


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs, filled to the last byte after the daily folder is made."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs (the full-disk test is skipped here)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): the full-disk test is skipped")
    try:
        (mount / "data" / "unprocessed" / "daily").mkdir(parents=True)
        ballast = mount / "ballast"
        with open(ballast, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_stops_the_run_in_one_line_and_a_rerun_after_freeing_space_completes(stack, small_disk, tmp_path):
    data = small_disk / "data"
    argv = ("--foreground", "--data-dir", str(data), "--max-processes", "2")
    full = conftest.run_pipeline(tmp_path, stack, DAYS, "T2,PREC_ACC_NC", *argv)
    assert full.returncode == 73, full.stdout + full.stderr
    assert "Traceback" not in full.stdout + full.stderr
    assert "run_pipeline.sh: warning: the daily files of this request need about" in full.stdout
    lines = [line for line in full.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"the disk of the data folder {data} is full" in lines[0], full.stderr
    assert "day(s) not started" in full.stdout, "the summary says what was left for the rerun"
    assert re.search(r"failed\s+\d\s+\(transient 0, permanent 0, disk full \d\)", full.stdout), full.stdout
    started = list((data / "logs").iterdir()) if (data / "logs").is_dir() else []  # the day logs are on that disk
    assert len(started) <= 2, "no day was started once one found the disk full"
    ledger = data / "failed_jobs.json"
    if ledger.exists():
        json.loads(ledger.read_text())  # whole, valid JSON
    assert not list((data / "unprocessed" / "daily").glob(".tmp-*")), "no temporary left on the full disk"

    (small_disk / "ballast").unlink()
    again = conftest.run_pipeline(tmp_path, stack, DAYS, "T2,PREC_ACC_NC", *argv)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.name for p in (data / "unprocessed" / "daily").glob("*.nc")) == [
        f"conus404_daily_{d.replace('-', '')}.nc" for d in DAYS]
