"""DAYS_PER_WORKER: the driver hands several days to one worker process, through the emulator.
Each day keeps its own outcome, ledger entry and statistics; the files are the ones a process per
day makes; a worker stopped mid-batch fails exactly the days it had not finished."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import xarray as xr

from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import Defect, StoreSpec
from conus404.outputs import daily_file
from tests import conftest

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(4)]


stack = conftest.emulator_serving(StoreSpec.for_days("2021-01-01", 4, ny=16, nx=20, variables=("T2", "PREC_ACC_NC"), defects=(Defect("negative", "2021-01-02T05"),)))


def run_driver(stack: EmulatorStack, tmp: Path, *flags: str) -> subprocess.CompletedProcess:
    return conftest.run_driver(stack, tmp, DAYS, "T2,PREC_ACC_NC", *flags)


def test_batches_give_per_day_outcomes_and_the_same_files(stack, tmp_path):
    batched = run_driver(stack, tmp_path / "batched", "--days-per-worker", "3")  # 4 days, 2 processes: 2 + 2
    single = run_driver(stack, tmp_path / "single", "--days-per-worker", "1")
    assert batched.returncode == single.returncode == 1  # 2021-01-02 has a negative amount
    logs = tmp_path / "batched" / "logs"
    assert sorted(p.name for p in (tmp_path / "batched" / "data" / "logs").iterdir()) == [
        "download_20210101-20210102.log", "download_20210103-20210104.log"]
    ledger = json.loads((tmp_path / "batched" / "data" / "failed_jobs.json").read_text())
    assert list(ledger) == ["2021-01-02"]
    assert ledger["2021-01-02"]["error_class"] == "permanent"
    assert ledger["2021-01-02"]["log"].endswith("download_20210101-20210102.log")
    lines = [json.loads(line) for line in (logs / "day_results.jsonl").read_text().splitlines()]
    assert sorted((r["day"], r["status"]) for r in lines) == [
        ("2021-01-01", "published"), ("2021-01-02", "failed"), ("2021-01-03", "published"), ("2021-01-04", "published")]
    assert all(r["peak_rss_mb"] > 0 for r in lines)
    for day in (DAYS[0], DAYS[2], DAYS[3]):
        a = xr.open_dataset(daily_file.daily_path(tmp_path / "batched" / "data", day))
        b = xr.open_dataset(daily_file.daily_path(tmp_path / "single" / "data", day))
        assert a.attrs["conus404_data_sha256"] == b.attrs["conus404_data_sha256"]
        xr.testing.assert_identical(a["T2"], b["T2"])


def test_a_batch_stopped_by_its_timeout_fails_its_unfinished_days_as_transient(stack, tmp_path):
    """Days 2 and 4 hang (their T2 reads are held for 10 minutes, released when the emulator stops)
    far past a 10 s-per-day timeout that a healthy day of this size meets many times over."""
    from conus404.emulator.fault_proxy import FaultRule

    stack.inject_faults([FaultRule(r"/T2/(2[4-9]|3\d|4[0-7]|7[2-9]|8\d|9[0-5])\.0\.0$", delay_s=600.0)])
    try:
        proc = run_driver(stack, tmp_path, "--days-per-worker", "2", "--day-timeout", "10")
    finally:
        stack.inject_faults([])
    assert proc.returncode == 1
    ledger = json.loads((tmp_path / "data" / "failed_jobs.json").read_text())
    assert sorted(ledger) == ["2021-01-02", "2021-01-04"], "the finished first day of each batch is kept"
    assert {e["error_class"] for e in ledger.values()} == {"transient"}
    assert all("timed out after 20 s" in e["message"] for e in ledger.values()), ledger
    for day in (DAYS[0], DAYS[2]):
        assert daily_file.verify(daily_file.daily_path(tmp_path / "data", day), day, ["T2", "PREC_ACC_NC"]) is None
