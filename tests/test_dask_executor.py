"""EXECUTOR = "dask": each worker process is a task on a dask.distributed cluster, through the
emulator. A 2-worker LocalCluster publishes the files the subprocess executor publishes, records
an injected failure in failed_jobs.json and its retry pass mends it, and its basin tables equal the
subprocess executor's; an existing scheduler (here
started with the ``dask`` command, as dask-jobqueue would on Slurm) works through its address;
kill_all.sh leaves no process behind: neither a LocalCluster nor the day processes an existing
cluster's workers started."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from conus404.core.processes import free_loopback_port, start_process_group, stop_process_group, wait_for_port
from conus404.emulator.fault_proxy import FaultRule
from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import StoreSpec
from conus404.outputs import daily_file
from tests import conftest
from tests.conftest import group_alive, processes_mentioning

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
DAYS = ["2021-01-01", "2021-01-02", "2021-01-03", "2021-01-04"]
VARIABLES = "T2,PREC_ACC_NC,ACSWDNB"
RUN_MARKER = "CONUS404_TEST_RUN"  # in the environment of every process a test run starts


stack = conftest.emulator_serving(
    StoreSpec.for_days(DAYS[0], 4, ny=16, nx=20, variables=("T2", "PREC_ACC_NC", "ACSWDNB", "I_ACSWDNB")))


BASINS = {"1019": [(-108.0, 37.2), (-103.1, 37.0), (-102.2, 40.8), (-104.6, 41.0), (-106.9, 39.9)],
          "0710": [(-96.0, 40.0), (-92.0, 40.3), (-92.5, 44.5), (-94.0, 42.0), (-96.3, 44.0)]}


def basins(tmp: Path) -> list[str]:
    """The flags of a basin series (a GeoJSON of two basins written under ``tmp``)."""
    path = conftest.polygons_geojson(tmp / "inputs" / "basins.geojson", BASINS)
    return ["--polygons", str(path), "--polygon-id", "huc4"]


@pytest.fixture(scope="module")
def subprocess_run(stack, tmp_path_factory):
    """The reference: the same 4 days with the default executor."""
    tmp = tmp_path_factory.mktemp("subprocess-run")
    result = pipeline(tmp, stack, "--foreground")
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp


@pytest.fixture(scope="module")
def subprocess_series_run(stack, tmp_path_factory):
    """The reference of a run with basin series (its daily files are cut to the basins' window)."""
    tmp = tmp_path_factory.mktemp("subprocess-series-run")
    result = pipeline(tmp, stack, "--foreground", *basins(tmp))
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp


def pipeline(tmp: Path, stack: EmulatorStack, *flags: str, timeout: float = 300):
    return conftest.run_pipeline(tmp, stack, DAYS, VARIABLES, *flags, timeout=timeout, env={RUN_MARKER: str(tmp)})


def processes_of_run(tmp: Path) -> list[int]:
    """Live processes that inherited the run's marker: the run itself, its cluster, its day processes
    (a LocalCluster's workers show no path on their command lines)."""
    marker = f"{RUN_MARKER}={tmp}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes() + b"\0":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def assert_same_files(a_dir: Path, b_dir: Path) -> None:
    for day in map(dt.date.fromisoformat, DAYS):
        path_a = daily_file.daily_path(a_dir / "data", day)
        path_b = daily_file.daily_path(b_dir / "data", day)
        with xr.open_dataset(path_a) as a, xr.open_dataset(path_b) as b:
            assert a.attrs["conus404_data_sha256"] == b.attrs["conus404_data_sha256"], day
            for name in VARIABLES.split(","):
                xr.testing.assert_identical(a[name], b[name])


def day_processes(tmp: Path) -> list[tuple[int, str]]:
    """The run's single_download.py processes (the driver's command line names the data folder too)."""
    return [p for p in processes_mentioning("single_download.py 2021-01-0") if f"--data-dir {tmp / 'data'}" in p[1]]


def launchers(day_logs: Path) -> set[int]:
    """The PIDs that started the day processes, from each day log's attempt header."""
    pids = set()
    for path in day_logs.glob("download_*.log"):
        pids |= {int(pid) for pid in re.findall(r"attempt for .*, started by \S+ pid (\d+)(?:, forked from launch template pid \d+)? =====",
                                                path.read_text())}
    return pids


def test_a_local_cluster_publishes_the_same_files_records_a_failure_and_retries_it(stack, subprocess_series_run,
                                                                                 tmp_path):
    # day 3's read of T2 at 05Z meets 500 InternalError more often than the storage retry policy retries
    proxy = stack.inject_faults([FaultRule(r"/T2/53\.0\.0$", status=500, times=7)])
    try:
        result = pipeline(tmp_path, stack, "--foreground", "--executor", "dask", *basins(tmp_path))
    finally:
        stack.inject_faults([])
    assert result.returncode == 0, result.stdout + result.stderr
    assert proxy.counts["injected"] == 7
    log = (tmp_path / "logs" / "driver_main_run.log").read_text()
    assert "executor: dask, a LocalCluster of 2 worker(s) at tcp://127.0.0.1:" in log
    assert re.search(r"started 2021-01-01 \(Dask task conus404-download_20210101-[0-9a-f]{8}\)", log)
    driver_pid = int(re.search(r"driver \(pid (\d+)\)", log).group(1))
    assert launchers(tmp_path / "data" / "logs") and driver_pid not in launchers(tmp_path / "data" / "logs"), \
        "the day processes were started by the cluster's workers, not by the driver"
    failed = json.loads((tmp_path / "data" / "failed_jobs.json").read_text())
    assert list(failed) == ["2021-01-03"]
    assert failed["2021-01-03"]["error_class"] == "transient" and "InternalError" in failed["2021-01-03"]["message"]
    retry_log = (tmp_path / "logs" / "retry_run.log").read_text()
    assert "1 transient failure(s) to retry" in retry_log and "executor: dask" in retry_log
    assert json.loads((tmp_path / "data" / "ultimate_failures.json").read_text()) == {}
    day3 = (tmp_path / "data" / "logs" / "download_20210103.log").read_text()
    assert day3.count("attempt for 2021-01-03") == 2
    assert day3.count(conftest.FORKED) == 2, "each Dask worker forked its day processes from its launch template"
    assert_same_files(subprocess_series_run, tmp_path)
    assert_same_basin_tables(subprocess_series_run, tmp_path)
    assert re.search(r"polygon series of basins.geojson: 1 day\(s\) recorded now \(1 part file\(s\) read\), 4 in ",
                     retry_log), "the retry pass adds the day it made"
    assert processes_of_run(tmp_path) == [], "the cluster and its day processes are gone"


def assert_same_basin_tables(a_dir: Path, b_dir: Path) -> None:
    """The Zarr and Parquet tables of two runs hold the same days and values (their ids differ)."""
    names = VARIABLES.split(",")
    folder_a, folder_b = a_dir / "data" / "polygons", b_dir / "data" / "polygons"
    with xr.open_zarr(folder_a / "basins.zarr") as a, xr.open_zarr(folder_b / "basins.zarr") as b:
        assert a["conus404_day_recorded"].values.tolist() == b["conus404_day_recorded"].values.tolist() == [1] * 4
        xr.testing.assert_identical(a[names].drop_attrs(deep=False).load(), b[names].drop_attrs(deep=False).load())
    frames = [pd.read_parquet(folder / "basins.parquet").sort_values(["date", "polygon"], ignore_index=True)
              for folder in (folder_a, folder_b)]
    assert len(frames[0]) == len(DAYS) * len(BASINS)
    pd.testing.assert_frame_equal(*frames)


def ppid_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def test_a_dask_worker_killed_mid_task_ends_with_its_day_published_exactly_once(stack, subprocess_run, tmp_path):
    """The Dask worker running day 2 is SIGKILLed while the day reads (its first read of T2 at 05Z is
    held for minutes): the day process it started must not run on, the scheduler runs the task
    again, and the day ends published once, verified, the same as the reference."""
    proxy = stack.inject_faults([FaultRule(r"/T2/29\.0\.0$", delay_s=600.0, times=1)])
    injected_before = proxy.counts["injected"]  # the proxy's counts run over the module
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            run = pool.submit(pipeline, tmp_path, stack, "--foreground", "--executor", "dask")
            deadline = time.monotonic() + 120
            while proxy.counts["injected"] == injected_before or not (
                    held := [pid for pid, cmd in day_processes(tmp_path) if "single_download.py 2021-01-02" in cmd]):
                assert time.monotonic() < deadline and not run.done(), "day 2 did not reach its held read"
                time.sleep(0.1)
            day_process = held[0]
            template = ppid_of(day_process)
            dask_worker = ppid_of(template)
            assert "conus404.launch.launch_template" in Path(f"/proc/{template}/cmdline").read_text()
            os.kill(dask_worker, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
                      for pid in (day_process, template)):
                assert time.monotonic() < deadline, "the day process of the killed Dask worker ran on"
                time.sleep(0.1)
            result = run.result(timeout=300)
    finally:
        stack.inject_faults([])
    assert result.returncode == 0, result.stdout + result.stderr
    day2 = (tmp_path / "data" / "logs" / "download_20210102.log").read_text()
    attempts = day2.split("\n===== ")[1:]
    assert len(attempts) == 2 and "published" not in attempts[0], "the lost attempt published nothing"
    assert proxy.counts["injected"] == injected_before + 1, "the lost attempt was killed while its read was held"
    assert day2.count("published /") == 1 and "published /" in attempts[1], "the day was published exactly once"
    path = daily_file.daily_path(tmp_path / "data", dt.date(2021, 1, 2))
    assert daily_file.verify(path, dt.date(2021, 1, 2), VARIABLES.split(","), None) is None
    assert_same_files(subprocess_run, tmp_path)
    assert json.loads((tmp_path / "data" / "ultimate_failures.json").read_text()) == {}
    assert processes_of_run(tmp_path) == []


@pytest.fixture(scope="module")
def external_cluster(stack, tmp_path_factory):
    """A scheduler and two workers started apart from the pipeline, as on a cluster: the workers
    have the checkout's src/ on PYTHONPATH and the emulator's trust settings, nothing else."""
    tmp = tmp_path_factory.mktemp("cluster")
    port = free_loopback_port()
    env = {**os.environ, **stack.client_env(), "PYTHONPATH": str(ROOT / "src")}
    dask = [sys.executable, "-m", "dask"]
    scheduler = start_process_group([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                    tmp / "scheduler.log", env=env, cwd=tmp)
    workers = None
    try:
        wait_for_port(port, scheduler, timeout=60)
        workers = start_process_group([*dask, "worker", f"tcp://127.0.0.1:{port}", "--host", "127.0.0.1",
                                       "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                                      tmp / "workers.log", env=env, cwd=tmp)
        yield f"tcp://127.0.0.1:{port}", scheduler, workers
    finally:
        for group in (workers, scheduler):
            if group is not None:
                stop_process_group(group)


def test_an_existing_scheduler_is_used_through_its_address(stack, subprocess_run, external_cluster, tmp_path):
    address, scheduler, workers = external_cluster
    result = pipeline(tmp_path, stack, "--foreground", "--executor", "dask", "--dask-scheduler", address)
    assert result.returncode == 0, result.stdout + result.stderr
    log = (tmp_path / "logs" / "driver_main_run.log").read_text()
    assert f"executor: dask, the Dask scheduler at {address}" in log
    assert_same_files(subprocess_run, tmp_path)
    assert scheduler.poll() is None and workers.poll() is None, "the pipeline leaves a cluster it did not start running"


def test_kill_all_stops_the_day_processes_on_an_existing_clusters_workers(stack, external_cluster, tmp_path):
    """The day processes are children of the cluster's workers, outside the run's process group:
    only the driver, on SIGTERM, can have them stopped, by PID, on every worker."""
    address, scheduler, workers = external_cluster
    stack.inject_faults([FaultRule(r"/T2/\d+\.0\.0$", delay_s=600.0)])  # days that cannot finish before the check
    try:
        started = pipeline(tmp_path, stack, "--executor", "dask", "--dask-scheduler", address)
        assert started.returncode == 0, started.stderr
        pgid = int((tmp_path / "logs" / "pipeline.pid").read_text())
        deadline = time.monotonic() + 90
        while len(day_processes(tmp_path)) < 2:  # both workers' day processes, not just the driver
            assert time.monotonic() < deadline, "the days did not start"
            time.sleep(0.2)
        stopped = subprocess.run([str(ROOT / "kill_all.sh"), "--log-dir", str(tmp_path / "logs"), "--grace", "20"],
                                 capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and "It did not stop" not in stopped.stdout, stopped.stdout + stopped.stderr
        assert not group_alive(pgid)
        deadline = time.monotonic() + 5
        while day_processes(tmp_path):
            assert time.monotonic() < deadline, "day processes outlived the run on the cluster's workers"
            time.sleep(0.2)
        assert "SIGTERM received" in (tmp_path / "logs" / "driver_main_run.log").read_text()
        assert scheduler.poll() is None and workers.poll() is None, "the cluster itself is left running"
    finally:
        stack.inject_faults([])


def test_kill_all_stops_a_dask_run_with_its_cluster_and_day_processes(stack, tmp_path):
    stack.inject_faults([FaultRule(r"/T2/\d+\.0\.0$", delay_s=600.0)])  # days that cannot finish before the kill
    try:
        started = pipeline(tmp_path, stack, "--executor", "dask")
        assert started.returncode == 0, started.stderr
        pgid = int((tmp_path / "logs" / "pipeline.pid").read_text())
        deadline = time.monotonic() + 90
        while not day_processes(tmp_path):
            assert time.monotonic() < deadline, "no day started"
            time.sleep(0.2)
        assert all("conus404.launch.launch_template" in conftest.parent_command_line(pid) for pid, _ in day_processes(tmp_path)), \
            "each Dask worker forked its day processes from its own launch template"
        assert len(processes_of_run(tmp_path)) >= 5, "the run, its LocalCluster (scheduler + 2 nannies + 2 workers) and days"
        stopped = subprocess.run([str(ROOT / "kill_all.sh"), "--log-dir", str(tmp_path / "logs"), "--grace", "10"],
                                 capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and f"Stopped process group {pgid}" in stopped.stdout, stopped.stdout + stopped.stderr
        assert not group_alive(pgid)
        assert processes_of_run(tmp_path) == [], "no Dask worker or day process outlives the run"
    finally:
        stack.inject_faults([])
        if (tmp_path / "logs" / "pipeline.pid").exists():
            pgid = int((tmp_path / "logs" / "pipeline.pid").read_text())
            if group_alive(pgid):
                os.killpg(pgid, 9)
