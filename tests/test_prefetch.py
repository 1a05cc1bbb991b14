"""The run's prefetcher and its spool: every chunk fetched once, by whoever claims it first; the
same files as a run without it; exactly the chunks the days read; nothing left behind; it ends
with its driver."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conus404.core import failures
from conus404.core.exceptions import ChunkFetchError
from conus404.emulator.synthetic_store import StoreSpec
from conus404.outputs import daily_file
from conus404.run import prefetch
from conus404.sources import prefetch_spool
from tests import conftest

ROOT = Path(__file__).resolve().parents[1]
DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(3)]
VARIABLES = "T2,PREC_ACC_NC,ACSWDNB"
CHUNK_KEY = re.compile(r"/conus404\.zarr/((?:T2|PREC_ACC_NC|ACSWDNB|I_ACSWDNB|lat|lon)/\d+(?:\.\d+)+)$")

pc_stack = conftest.emulator_serving(
    StoreSpec.for_days("2021-01-01", 3, ny=24, nx=32, variables=("T2", "PREC_ACC_NC", "ACSWDNB", "I_ACSWDNB")), "prefetch")


# -- the spool's claims (no network) ------------------------------------------------------------
def test_a_key_claimed_by_the_prefetcher_is_waited_for_and_read_not_fetched_again(tmp_path):
    path = prefetch_spool.chunk_path(tmp_path, "20210101", "T2/0.0.0")
    fd = prefetch_spool.claim(path)
    assert fd is not None and prefetch_spool.claim(path) is None  # one claimer only

    def finish_fetch():
        time.sleep(0.3)
        prefetch_spool.store(path, b"chunk bytes")
        prefetch_spool.release(fd)

    threading.Thread(target=finish_fetch).start()
    started = time.monotonic()
    assert asyncio.run(prefetch_spool.take(path)) == (b"chunk bytes", None)
    assert time.monotonic() - started >= 0.25  # it waited for the fetch in progress


def test_a_key_nobody_claimed_is_the_workers_own_fetch_and_the_prefetcher_then_skips_it(tmp_path):
    path = prefetch_spool.chunk_path(tmp_path, "20210101", "T2/1.0.0")
    found, claim = asyncio.run(prefetch_spool.take(path))
    assert found == prefetch_spool.FETCH and claim is not None
    assert prefetch_spool.claim(path) is None  # the worker's claim stands
    prefetch_spool.fulfil(path, claim, b"fetched by the worker")
    assert asyncio.run(prefetch_spool.take(path)) == (b"fetched by the worker", None)  # for a second day


def test_a_claimer_that_gave_up_leaves_the_fetch_to_the_worker_and_absent_keys_stay_absent(tmp_path):
    failed = prefetch_spool.chunk_path(tmp_path, "20210101", "T2/2.0.0")
    prefetch_spool.release(prefetch_spool.claim(failed))  # e.g. killed mid-fetch: no chunk
    assert asyncio.run(prefetch_spool.take(failed)) == (prefetch_spool.FETCH, None)
    missing = prefetch_spool.chunk_path(tmp_path, "20210101", "T2/3.0.0")
    prefetch_spool.fulfil(missing, prefetch_spool.claim(missing), None)
    assert asyncio.run(prefetch_spool.take(missing)) == (prefetch_spool.ABSENT_KEY, None)
    refused = prefetch_spool.chunk_path(tmp_path, "20210101", "T2/4.0.0")
    fd = prefetch_spool.claim(refused)
    prefetch_spool.mark_failed(refused, 503, "ServerBusy")
    prefetch_spool.release(fd)
    with pytest.raises(ChunkFetchError) as refusal:
        asyncio.run(prefetch_spool.take(refused))
    assert refusal.value.status_code == 503 and failures.failure_class(refusal.value) == "transient"


@pytest.mark.parametrize("layout,encoding", [("hytest", None), ("pc", None), ("pc", "ns-int64"),
                                             ("pc", "seconds-float64"), ("hytest", "hours-int64")])
def test_the_time_axis_is_read_whatever_its_encoding(tmp_path, layout, encoding):
    """HyTEST's float32 XTIME minutes, the PC's datetime64 in the encodings xarray may have chosen: the
    same hours as xarray decodes, so the prefetcher stays on for both stores."""
    from conus404.emulator.synthetic_store import write_store

    spec = StoreSpec.for_days("2022-09-29", 2, ny=4, nx=5, layout=layout, variables=("T2",), time_encoding=encoding)
    path = tmp_path / "s.zarr"
    write_store(spec, str(path))
    meta = json.loads((path / ".zmetadata").read_text())["metadata"]
    times = prefetch._time_axis(lambda key: (path / key).read_bytes(), meta)
    np.testing.assert_array_equal(times, xr.open_zarr(path)["time"].values.astype("datetime64[h]"))
    assert str(times[-1]) == "2022-10-01T00"


def test_the_time_units_of_cf_and_of_wrf_are_recognised():
    for units in ("minutes since 1979-10-01 00:00:00", "minutes since 1979-10-01", "hours since 1979-10-1 0:00",
                  "nanoseconds since 1970-01-01", "seconds since 1970-01-01T00:00:00Z", "days since 2000-01-01 00:00:00 UTC"):
        assert prefetch.TIME_UNITS.fullmatch(units), units
    assert not prefetch.TIME_UNITS.fullmatch("hours after 1979-10-01")


def test_the_window_lets_the_prefetcher_run_only_so_far_ahead_and_ends_with_its_input():
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(10)]
    window = prefetch._Window(days, ahead=4)
    read, write = os.pipe()
    threading.Thread(target=window.follow, args=(os.fdopen(read),), daemon=True).start()
    started = []
    starter = threading.Thread(target=lambda: started.append(window.wait_for(0)))
    starter.start()
    time.sleep(0.3)
    assert not started  # nothing before the driver's first word: the request may yet be refused
    driver = os.fdopen(write, "w")
    driver.write(json.dumps({"first_unfinished": "2021-01-01"}) + "\n")
    driver.flush()
    starter.join(5)
    assert started == [True] and window.wait_for(3)
    answered = []
    waiter = threading.Thread(target=lambda: answered.append(window.wait_for(5)))
    waiter.start()
    time.sleep(0.3)
    assert not answered  # rank 5 waits until the first unfinished day is rank 2 or later
    with driver:
        driver.write(json.dumps({"first_unfinished": "2021-01-03"}) + "\n")
        driver.flush()
        waiter.join(5)
        assert answered == [True]
    assert not window.wait_for(9)  # the input ended: the run is over


def test_while_the_request_is_checked_the_window_lets_only_the_first_days_through():
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(10)]
    window = prefetch._Window(days, ahead=4, before_check=2)
    read, write = os.pipe()
    threading.Thread(target=window.follow, args=(os.fdopen(read),), daemon=True).start()
    assert window.wait_for(0) and window.wait_for(1)  # the first wave: before the driver's first word
    answered = []
    waiter = threading.Thread(target=lambda: answered.append(window.wait_for(2)))
    waiter.start()
    time.sleep(0.3)
    assert not answered  # the third day waits for the check's verdict
    with os.fdopen(write, "w") as driver:
        driver.write(json.dumps({"first_unfinished": "2021-01-01"}) + "\n")
        driver.flush()
        waiter.join(5)
        assert answered == [True] and window.wait_for(3)


# -- runs through the emulator -------------------------------------------------------------------
def chunk_gets(stack) -> dict[str, int]:
    gets: dict[str, int] = {}
    for path, n in stack.proxy.paths.items():
        if (match := CHUNK_KEY.search(path)):
            gets[match.group(1)] = gets.get(match.group(1), 0) + n
    return gets


def planned_keys(stack) -> set[str]:
    """The prefetcher's plan for DAYS, from the store's own metadata and time axis."""
    container = stack.blob_service().get_container_client("noaa")
    meta = json.loads(container.download_blob("conus404.zarr/.zmetadata").readall())["metadata"]
    times = prefetch._time_axis(lambda key: container.download_blob(f"conus404.zarr/{key}").readall(), meta)
    job = {"variables": VARIABLES.split(","), "offset_hours": 0, "processes": 2}
    return {key for _, _, key in prefetch._ordered_keys(job, DAYS, meta, times)}


def test_a_prefetched_run_makes_the_same_files_from_the_same_chunks_each_fetched_once(pc_stack, tmp_path):
    stack = pc_stack
    stack.inject_faults([])  # the proxy counts every request
    stack.proxy.paths.clear()
    plain = conftest.run_driver(stack, tmp_path / "plain", DAYS, VARIABLES, "--no-prefetch")
    assert plain.returncode == 0, plain.stderr[-3000:]
    read_by_days = chunk_gets(stack)

    stack.proxy.paths.clear()
    prefetched = conftest.run_driver(stack, tmp_path / "prefetched", DAYS, VARIABLES)
    assert prefetched.returncode == 0, prefetched.stderr[-3000:]
    with_prefetch = chunk_gets(stack)

    assert planned_keys(stack) == set(read_by_days)  # it plans exactly what the days read, no more
    assert set(with_prefetch) == set(read_by_days)
    assert max(with_prefetch.values()) == 1, {k: n for k, n in with_prefetch.items() if n > 1}
    said = re.search(r"prefetcher: (\d+) chunk\(s\)", (tmp_path / "prefetched" / "logs" / "driver_main_run.log").read_text())
    assert said and int(said.group(1)) > 0
    for day in DAYS:
        with xr.open_dataset(daily_file.daily_path(tmp_path / "plain" / "data", day)) as a, \
                xr.open_dataset(daily_file.daily_path(tmp_path / "prefetched" / "data", day)) as b:
            for name in VARIABLES.split(","):
                np.testing.assert_array_equal(a[name].values, b[name].values)
            assert a.attrs["conus404_data_sha256"] == b.attrs["conus404_data_sha256"]
    assert not (tmp_path / "prefetched" / "data" / ".chunk_cache").exists()  # spool and cache gone with the run


def test_a_refused_request_leaves_no_spool(pc_stack, tmp_path):
    proc = conftest.run_driver(pc_stack, tmp_path, DAYS, "T2,NOT_A_VARIABLE")
    assert proc.returncode == 2 and "NOT_A_VARIABLE" in proc.stderr
    assert not (tmp_path / "data" / ".chunk_cache" / prefetch_spool.SPOOL_DIR).exists()


def test_the_prefetcher_is_in_the_runs_process_group_and_ends_with_its_driver(pc_stack, tmp_path):
    conftest.reset_faults(pc_stack)
    pc_stack.inject_faults([slow_chunk_reads()])  # keep the run going while we look
    argv = [sys.executable, str(ROOT / "src" / "driver.py"), "--start", DAYS[0].isoformat(), "--end",
            DAYS[-1].isoformat(), "--variables", VARIABLES, "--statistics", "", "--max-processes", "2",
            "--data-dir", str(tmp_path / "data"), "--log-dir", str(tmp_path / "logs")]
    driver = subprocess.Popen(argv, env={**os.environ, **pc_stack.client_env()}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, fetcher = time.monotonic() + 60, None
        while fetcher is None and time.monotonic() < deadline:
            fetcher = next((pid for pid, cmd in conftest.live_children(driver.pid) if "conus404.run.prefetch" in cmd), None)
            time.sleep(0.05)
        assert fetcher is not None, "no prefetch process started"
        assert os.getpgid(fetcher) == driver.pid  # kill_all.sh stops the run's group, the prefetcher with it
        driver.kill()  # not even a chance to close its pipe: the kernel does
        driver.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and Path(f"/proc/{fetcher}").exists() and "Z" not in _state(fetcher):
            time.sleep(0.1)
        assert not Path(f"/proc/{fetcher}").exists() or "Z" in _state(fetcher)
    finally:
        if conftest.group_alive(driver.pid):
            os.killpg(driver.pid, signal.SIGKILL)
        conftest.reset_faults(pc_stack)


def slow_chunk_reads():
    from conus404.emulator.fault_proxy import FaultRule

    return FaultRule(r"/(T2|PREC_ACC_NC|ACSWDNB|I_ACSWDNB)/\d", delay_s=0.5)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[0]
    except OSError:
        return "Z"


def settings_of(**changes):
    from conus404.config.settings import assemble

    return assemble(start_date=DAYS[0], end_date=DAYS[-1], variables=("T2",), **changes)


@pytest.mark.parametrize("source", ["planetary-computer", "hytest-osn", "s3://bucket/store.zarr"])
def test_a_remote_source_read_by_local_processes_is_prefetched_unless_told_otherwise(source):
    assert prefetch.wanted(settings_of(source=source))
    assert not prefetch.wanted(settings_of(source=source, prefetch=False))
    assert not prefetch.wanted(settings_of(source=source, chunk_cache=False))
    assert not prefetch.wanted(settings_of(source=source, executor="dask"))


def test_a_local_copy_of_the_store_is_not_prefetched(tmp_path):
    assert not prefetch.wanted(settings_of(source=str(tmp_path / "copy.zarr")))
