"""Reliability under injected faults and crashes: every day completes, identical to a clean run."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import xarray as xr

from conus404 import daily_file
from conus404.emulator.fault_proxy import FaultRule
from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import StoreSpec

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
CHUNKS = r"\.zarr/[A-Z0-9_]+/\d+\.\d+\.\d+$"  # data chunk reads, not metadata
DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(4)]
VARIABLES = "T2,TD2,PREC_ACC_NC,ACSNOM,ACSWDNB"


def run_pipeline(tmp: Path, stack: EmulatorStack, *flags: str, background: bool = False):
    argv = [str(ROOT / "run_pipeline.sh"), "--start", str(DAYS[0]), "--end", str(DAYS[-1]), "--variables", VARIABLES,
            "--statistics", "T2:min,max", "--max-processes", "2", "--data-dir", str(tmp / "data"),
            "--log-dir", str(tmp / "logs"), "--progress-interval", "2", "--retry-backoff", "1", *flags]
    if not background:
        argv.append("--foreground")
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, env={**os.environ, **stack.client_env()},
                          stdin=subprocess.DEVNULL)


def digests(data_dir: Path) -> dict[str, str]:
    out = {}
    for day in DAYS:
        path = daily_file.daily_path(data_dir, day)
        if path.exists():
            with xr.open_dataset(path) as ds:
                out[str(day)] = ds.attrs["conus404_data_sha256"]
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tls_files):
    stack = EmulatorStack(tmp_path_factory.mktemp("reliability"), tls=tls_files).start()
    try:
        stack.add_store(StoreSpec.for_days(str(DAYS[0]), len(DAYS), ny=24, nx=32))
        stack.inject_faults([])
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def clean_run(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    stack.proxy.rules = []
    result = run_pipeline(tmp, stack)
    assert result.returncode == 0, result.stdout + result.stderr
    found = digests(tmp / "data")
    assert len(found) == len(DAYS)
    return found


def test_mixed_storage_faults_throttled_tokens_and_short_tokens_change_nothing(stack, clean_run, tmp_path):
    rules = [
        FaultRule(CHUNKS, status=503, probability=0.06),
        FaultRule(CHUNKS, status=500, probability=0.04),
        FaultRule(CHUNKS, status=503, retry_after_s=1, probability=0.04),  # ServerBusy + Retry-After: how Azure Blob throttles
        FaultRule(CHUNKS, drop=True, probability=0.03),
        FaultRule(CHUNKS, truncate=True, probability=0.04),
        FaultRule(CHUNKS, delay_s=0.3, probability=0.02),
    ]
    stack.proxy.rules = rules
    stack.proxy.counts.clear()
    stack.service.token_lifetime = dt.timedelta(seconds=60)
    stack.service.token_throttle_rate = 0.3
    stack.service.token_throttle_first = 2  # the run's first signing meets two 429s
    tokens_before = dict(stack.service.requests)
    try:
        result = run_pipeline(tmp_path, stack)
    finally:
        stack.proxy.rules = []
        stack.service.token_lifetime = dt.timedelta(hours=1)
        stack.service.token_throttle_rate = 0.0
    injected, forwarded = stack.proxy.counts["injected"], stack.proxy.counts["forwarded"]
    share = injected / (injected + forwarded)
    kinds = [f"{r.status or ('drop' if r.drop else 'truncate' if r.truncate else 'delay')}"
             f"{'+Retry-After' if r.retry_after_s else ''}" for r in rules]
    report = {"injected": injected, "forwarded": forwarded, "share": round(share, 3),
              "token_429": stack.service.requests["token_throttled"] - tokens_before.get("token_throttled", 0),
              "hits": dict(zip(kinds, (r.hits for r in rules), strict=True))}
    print(json.dumps(report))
    assert result.returncode == 0, result.stdout + result.stderr + json.dumps(report)
    assert share > 0.12, "the faults were really injected"
    assert report["token_429"] >= 2
    assert digests(tmp_path / "data") == clean_run, "every day, identical to the clean run"


def test_five_percent_503_costs_little_time(stack, clean_run, tmp_path):
    """Correctness under 5 % 503s; the time ratio is measured in benchmarks/fault_cost.py."""
    stack.proxy.rules = [FaultRule(CHUNKS, status=503, probability=0.05)]
    try:
        result = run_pipeline(tmp_path, stack)
    finally:
        stack.proxy.rules = []
    assert result.returncode == 0, result.stderr
    assert digests(tmp_path / "data") == clean_run
