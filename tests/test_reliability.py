"""Reliability under injected faults and crashes: every day completes, identical to a clean run."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import xarray as xr

from conus404.emulator.fault_proxy import FaultRule
from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import StoreSpec
from conus404.outputs import daily_file
from tests import conftest
from tests.conftest import group_alive

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
CHUNKS = r"\.zarr/[A-Z0-9_]+/\d+\.\d+\.\d+$"  # data chunk reads, not metadata
DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(4)]
VARIABLES = "T2,TD2,PREC_ACC_NC,ACSNOM,ACSWDNB"
CLEAN_SECONDS: list[float] = []  # measured once, reported beside the faulty runs (not asserted)


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
    stack = EmulatorStack(tmp_path_factory.mktemp("reliability"), tls=tls_files, store_cache=conftest.STORE_CACHE).start()
    try:
        stack.add_store(StoreSpec.for_days(str(DAYS[0]), len(DAYS), ny=24, nx=32,
                                          variables=("T2", "TD2", "PREC_ACC_NC", "ACSNOM", "ACSWDNB", "I_ACSWDNB")))
        stack.inject_faults([])
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def clean_run(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    stack.proxy.rules = []
    started = time.monotonic()
    result = run_pipeline(tmp, stack)
    assert result.returncode == 0, result.stdout + result.stderr
    CLEAN_SECONDS.append(time.monotonic() - started)
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
    started = time.monotonic()
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
    report = {"seconds": round(time.monotonic() - started, 1), "clean_seconds": round(CLEAN_SECONDS[0], 1),
              "injected": injected, "forwarded": forwarded, "share": round(share, 3),
              "token_429": stack.service.requests["token_throttled"] - tokens_before.get("token_throttled", 0),
              "hits": dict(zip(kinds, (r.hits for r in rules), strict=True))}
    print(json.dumps(report))
    assert result.returncode == 0, result.stdout + result.stderr + json.dumps(report)
    assert share > 0.12, "the faults were really injected"
    assert report["token_429"] >= 2
    assert digests(tmp_path / "data") == clean_run, "every day, identical to the clean run"


def test_five_percent_503_costs_little_time(stack, clean_run, tmp_path):
    """Correctness under 5 % 503s; the time ratio is measured in benchmarks/fault_cost.py."""
    rule = FaultRule(CHUNKS, status=503, probability=0.05)
    stack.proxy.rules = [rule]
    started = time.monotonic()
    try:
        result = run_pipeline(tmp_path, stack)
    finally:
        stack.proxy.rules = []
    print(json.dumps({"seconds": round(time.monotonic() - started, 1), "clean_seconds": round(CLEAN_SECONDS[0], 1),
                      "injected_503": rule.hits}))
    assert result.returncode == 0, result.stderr
    assert digests(tmp_path / "data") == clean_run



def _workers_of(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and b"single_download.py" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
    return pids


def _drivers_of(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
                if os.getpgid(int(entry.name)) == pgid and (b"driver.py" in cmd or b"retry_failed.py" in cmd) and b"bash" not in cmd:
                    pids.append(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
    return pids


class Watcher(threading.Thread):
    """Samples daily/ while the campaign runs: every file under a final name must verify."""

    def __init__(self, data_dir: Path, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.data_dir, self.names = data_dir, names
        self.stop = threading.Event()
        self.samples = 0
        self.bad: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for day in DAYS:
                path = daily_file.daily_path(self.data_dir, day)
                if path.exists():
                    problem = daily_file.verify(path, day, self.names)
                    self.samples += 1
                    if problem and path.exists():
                        self.bad.append(f"{path.name}: {problem}")
            time.sleep(0.02)


def kill_schedule(rng: random.Random, rounds: int) -> list[str]:
    """What each round kills, shuffled: half of them a day's worker, a quarter the driver or retry
    pass, a quarter the whole process group."""
    kinds = (["worker", "worker", "driver", "group"] * rounds)[:rounds]
    rng.shuffle(kinds)
    return kinds


def _wait_for_workers(pgid: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and group_alive(pgid):
        found = _workers_of(pgid)
        if found:
            return found
        time.sleep(0.05)
    return []


@pytest.mark.parametrize("rounds", [4, pytest.param(40, marks=pytest.mark.slow)])
def test_a_crash_campaign_loses_nothing_and_ends_identical(stack, clean_run, tmp_path, rounds):
    rng = random.Random(20261125)
    stack.proxy.rules = [FaultRule(CHUNKS, delay_s=0.15)]  # days of a few seconds: time to land kills
    data, logs = tmp_path / "data", tmp_path / "logs"
    watcher = Watcher(data, ["T2", "T2_min", "T2_max", "TD2", "PREC_ACC_NC", "ACSNOM", "ACSWDNB"])
    watcher.start()
    kills = {"worker": 0, "driver": 0, "group": 0}
    rounds_taken: list[tuple[str, float]] = []  # (what was killed, seconds the round took): printed, not asserted
    try:
        for target in kill_schedule(rng, rounds):
            round_started = time.monotonic()
            started = run_pipeline(tmp_path, stack, "--force", background=True)
            assert started.returncode == 0, started.stdout + started.stderr
            pgid = int((logs / "pipeline.pid").read_text())
            if target == "worker":  # at a random moment of a running day's work
                workers = _wait_for_workers(pgid, 60)
                time.sleep(rng.uniform(0.0, 1.0))
                workers = [pid for pid in workers if Path(f"/proc/{pid}").exists()] or _workers_of(pgid)
            else:
                time.sleep(rng.uniform(0.3, 2.5))
            if target == "worker" and workers:
                os.kill(rng.choice(workers), signal.SIGKILL)
                kills["worker"] += 1
            elif target == "driver" and _drivers_of(pgid):
                os.kill(_drivers_of(pgid)[0], signal.SIGKILL)
                kills["driver"] += 1
            elif group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
                kills["group"] += 1
            deadline = time.monotonic() + 60
            while group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
                kills["group"] += 1
                while group_alive(pgid):
                    time.sleep(0.1)
            rounds_taken.append((target, round(time.monotonic() - round_started, 1)))
            ledger = data / "failed_jobs.json"
            if ledger.exists():
                json.loads(ledger.read_text())  # always whole, valid JSON
    finally:
        stack.proxy.rules = []
    final = run_pipeline(tmp_path, stack)
    watcher.stop.set()
    watcher.join(10)
    print(json.dumps({"kills": kills, "watcher_samples": watcher.samples, "rounds": rounds_taken}))
    assert final.returncode == 0, final.stdout + final.stderr
    assert min(kills.values()) >= 1 and sum(kills.values()) >= rounds, kills  # every kind of kill landed
    assert watcher.bad == [], watcher.bad[:3]
    assert watcher.samples > 50
    assert digests(data) == clean_run, "every day complete and identical to the clean run"
    assert list((data / "unprocessed" / "daily").glob(".tmp-*")) == [], "stale temporaries were cleaned"
