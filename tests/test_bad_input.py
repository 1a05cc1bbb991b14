"""A catalogue of bad inputs. Each gets one clear line and exit 2 before any download, or is
recorded and handled, never a traceback, never deleted data."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import StoreSpec
from tests import conftest

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
STORE_VARIABLES = ("T2", "PREC_ACC_NC", "ACSWDNB", "I_ACSWDNB", "TK")


stack = conftest.emulator_serving(StoreSpec.for_days("2021-01-01", 2, ny=6, nx=7, variables=STORE_VARIABLES), "bad-input")


def run(tmp: Path, stack: EmulatorStack, *flags: str, env: dict | None = None):
    argv = [str(ROOT / "run_pipeline.sh"), "--foreground", "--start", "2021-01-01", "--end", "2021-01-02",
            "--variables", "T2,PREC_ACC_NC", "--statistics", "", "--data-dir", str(tmp / "data"),
            "--log-dir", str(tmp / "logs"), "--retry-backoff", "0.2", *flags]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
                          env={**os.environ, **stack.client_env(), **(env or {})})


def _wrong_layout(tmp: Path) -> str:
    path = tmp / "not_conus.zarr"
    xr.Dataset({"T2": (("t", "a"), np.zeros((2, 3), np.float32))}).to_zarr(path, zarr_format=2)
    return str(path)


def _plain_file(tmp: Path) -> str:
    path = tmp / "store.txt"
    path.write_text("not a zarr store")
    return str(path)


def _point_csv(tmp: Path) -> str:
    path = tmp / "gauges.csv"
    path.write_text("id,lon,lat\n09380000,-111.59,36.86\n")
    return str(path)


_STORE_ENTRIES = (".zmetadata", "PREC_ACC_NC", "T2", "lat", "lat_u", "lat_v", "lon", "lon_u", "lon_v", "time")


def _local_store(tmp: Path) -> str:
    path = tmp / "store.zarr"
    if not path.exists():
        from conus404.emulator.synthetic_store import write_store

        write_store(StoreSpec.for_days("2021-01-01", 2, ny=6, nx=7, variables=("T2", "PREC_ACC_NC")), str(path))
    return str(path)


def _daily_store(tmp: Path) -> str:
    """A store of days (as this pipeline's --zarr output is)."""
    path = tmp / "daily.zarr"
    times = np.array(["2021-01-01", "2021-01-02", "2021-01-03"], dtype="datetime64[ns]")
    lat, lon = np.meshgrid(np.linspace(30, 40, 7), np.linspace(-110, -100, 6), indexing="ij")
    xr.Dataset({"T2": (("time", "south_north", "west_east"), np.full((3, 7, 6), 280.0, np.float32))},
               coords={"time": times, "lat": (("south_north", "west_east"), lat.astype(np.float32)),
                       "lon": (("south_north", "west_east"), lon.astype(np.float32))},
               attrs={"conus404_first_day": "2021-01-01"}).to_zarr(path, zarr_format=2, consolidated=True)
    return str(path)


def _empty_folder(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


def _folder_of_notes(tmp: Path) -> str:
    (tmp / "notes").mkdir()
    (tmp / "notes" / "todo.txt").write_text("someone's notes")
    return str(tmp / "notes")


USAGE_ERRORS = [
    # dates and ranges
    (("--start", "2021-1-1"), "'2021-1-1' is not a date"),
    (("--start", "2021-02-30"), "'2021-02-30' is not a date"),
    (("--end", "yesterday"), "'yesterday' is not a date"),
    (("--start", "2021-01-02", "--end", "2021-01-01"), "before the start date"),
    (("--start", "1970-01-01", "--end", "1970-01-02"), "outside the source's record"),
    (("--end", "2030-12-31"), "outside the source's record"),
    # variables and statistics
    (("--variables", ","), "is empty"),
    (("--variables", "T2,FOO"), "'FOO' is not a variable of the source"),
    (("--variables", "t2"), "(did you mean T2"),
    (("--variables", "TK"), "set ALLOW_3D"),
    (("--variables", "I_ACSWDNB"), "ask for ACSWDNB instead"),
    (("--variables", "WSPD10"), "WSPD10 needs U10, V10"),
    (("--variables", "T2", "--statistics", "T2:median"), "unknown statistic 'median'"),
    (("--variables", "PREC_ACC_NC", "--statistics", "PREC_ACC_NC:min"), "statistic min is not defined"),
    (("--statistics", "T2"), "is not VARIABLE:STAT"),
    # output units (issue 17)
    (("--units", "PREC_ACC_NC:K"), "--units: PREC_ACC_NC is in 'mm', which cannot be converted to 'K'"),
    (("--units", "T2:furlongs_per_fortnight"), "--units: 'furlongs_per_fortnight' (for T2) is not a unit UDUNITS knows"),
    (("--units", "T2"), "--units: 'T2' is not VARIABLE:UNIT"),
    (("--variables", "WDIR10", "--rollup", "monthly"), "WDIR10 is a direction: --rollup would average its angles"),
    (("--units", "Q2:g/kg"), "--units names Q2, which is not among the variables asked for (T2, PREC_ACC_NC)"),
    # concurrency and run options
    (("--max-processes", "0"), "out of range"),
    (("--max-processes", "abc"), "'abc' is not a whole number"),
    (("--max-processes", "1000"), "out of range"),
    (("--days-per-worker", "0"), "--days-per-worker 0 is out of range: use 1 (a process per day) to 31"),
    (("--days-per-worker", "two"), "--days-per-worker 'two' is not a whole number"),
    (("--day-timeout", "-5"), "must be a positive number of seconds"),
    (("--progress-interval", "0"), "must be a positive number of seconds"),
    (("--retry-rounds", "-1"), "--retry-rounds -1 cannot be negative"),
    (("--retry-backoff", "-2"), "--retry-backoff -2 must be zero or more seconds"),
    (("--bbox", "-105,39,-104"), "--bbox '-105,39,-104' is not MIN_LON,MIN_LAT,MAX_LON,MAX_LAT"),
    (("--bbox", "10,45,20,50"), "the box 10.0,45.0,20.0,50.0 lies outside the CONUS404 domain"),
    (("--executor", "threads"), "--executor 'threads' is not an executor: use subprocess or dask"),
    (("--executor", "dask", "--dask-scheduler", "10.0.0.5"), "neither an address such as tcp://"),
    (("--executor", "dask", "--dask-scheduler", "tcp://127.0.0.1:9"), "cannot reach the Dask scheduler tcp://127.0.0.1:9"),
    (("--bogus",), "unrecognized arguments: --bogus"),
    # outputs of issues 15 and 16
    (("--rollup", "weekly"), "--rollup: unknown roll-up 'weekly'; use monthly, annual, water-year"),
    (("--day-boundary", "+25:00"), "--day-boundary '+25:00': UTC offsets run from -12:00 to +14:00"),
    (("--day-boundary", "6"), "--day-boundary '6' is not a UTC offset"),
    (("--compression-level", "12"), "--compression-level '12' must be a zlib level from 0 (uncompressed) to 9"),
    (("--compression-level", "fast"), "--compression-level 'fast' must be a zlib level from 0 (uncompressed) to 9"),
    (("--zarr", "A_FILE"), "is a file, not a Zarr store"),
    (("--zarr", "A_FOLDER_OF_NOTES"), "is a folder that holds something else"),
    (("--zarr-chunks", "36,0,350"), "--zarr-chunks '36,0,350' is not three positive whole numbers"),
    (("--series-only",), "--series-only keeps only polygon or point series: give --polygons or --points"),
    (("--polygons", "NO_FILE", "--polygon-id", "huc"), "no such file"),
    # sources and folders
    (("--source", "/nonexistent/store.zarr"), "cannot read the source /nonexistent/store.zarr"),
    (("--source", "WRONG_LAYOUT"), "not a CONUS404 layout"),
    (("--source", "PLAIN_FILE"), "is a file; a Zarr store is a folder"),
    (("--source", " "), "source is empty"),
    (("--data-dir", "/proc/conus404-data"), "cannot write to the data folder"),
    (("--data-dir", "A_FILE"), "cannot write to the data folder"),
    ((), "cannot read the source: "),  # unreachable STAC URL, via the environment below
    # what a new user tripped on (issue 36): each one line, exit 2, nothing written, no retry pass
    (("--polygons", "A_POINT_CSV", "--polygon-id", "id"), "holds a table without geometries (its columns: id, lon, lat)"),
    (("--output-url", "ftp://127.0.0.1:9/x"), "OUTPUT_URL 'ftp://127.0.0.1:9/x' cannot be used"),
    (("--dask-scheduler", "tcp://127.0.0.1:9"), "--dask-scheduler goes with --executor dask"),
    (("--statistics", "T2:min;Q2:max"), "--statistics names Q2, not among the variables asked for (T2, PREC_ACC_NC)"),
    (("--source", "LOCAL_STORE", "--data-dir", "INSIDE_LOCAL_STORE"), "is inside the source"),
    (("--source", "LOCAL_STORE", "--data-dir", "LOCAL_STORE"), "is the source"),
    (("--source", "A_DAILY_STORE"), "is not an hourly CONUS404 store (this pipeline's own daily Zarr store?)"),
    (("--source", "AN_EMPTY_FOLDER"), "is not a Zarr store: no Zarr metadata"),
]


@pytest.mark.parametrize(("flags", "message"), USAGE_ERRORS, ids=[m for _, m in USAGE_ERRORS])
def test_usage_errors_are_one_line_and_exit_2(stack, tmp_path, flags, message):
    replacements = {"WRONG_LAYOUT": _wrong_layout, "PLAIN_FILE": _plain_file, "A_FILE": _plain_file,
                    "A_FOLDER_OF_NOTES": _folder_of_notes, "NO_FILE": lambda tmp: str(tmp / "basins.gpkg"),
                    "A_POINT_CSV": _point_csv, "LOCAL_STORE": _local_store, "A_DAILY_STORE": _daily_store,
                    "INSIDE_LOCAL_STORE": lambda tmp: str(tmp / "store.zarr" / "data"),
                    "AN_EMPTY_FOLDER": _empty_folder}
    flags = tuple(replacements[f](tmp_path) if f in replacements else f for f in flags)
    env = {"CONUS404_STAC_URL": "http://127.0.0.1:9/api/stac/v1"} if not flags else None
    result = run(tmp_path, stack, *flags, env=env)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists(), "a refused request writes nothing: no data folder, lock or cache"
    assert "retry pass" not in result.stdout and not (tmp_path / "logs" / "retry_run.log").exists()
    assert not (tmp_path / "logs" / "pipeline.pid").exists()
    store = tmp_path / "store.zarr"
    if store.exists():  # the source is only read
        assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".") or p.name == ".zmetadata") == \
            sorted(_STORE_ENTRIES)


def test_a_corrupt_failure_ledger_is_kept_aside_and_the_run_goes_on(stack, tmp_path):
    ledger = tmp_path / "data" / "failed_jobs.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text('{"2021-01-01": {"error_class": "transient", ')  # cut mid-write by an old tool
    result = run(tmp_path, stack)
    assert result.returncode == 0, result.stderr
    [kept] = list(ledger.parent.glob("failed_jobs.json.unreadable-*"))
    assert kept.read_text().startswith('{"2021-01-01"')
    assert "could not be read" in (tmp_path / "logs" / "driver_main_run.log").read_text()


def test_a_driver_that_fails_fails_the_run_and_says_so_on_the_terminal(stack, tmp_path):
    (tmp_path / "data" / "failed_jobs.json").mkdir(parents=True)  # the ledger cannot be written: the driver fails
    result = run(tmp_path, stack)
    assert result.returncode == 70, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "the run failed: the driver stopped with an error" in lines[0], result.stderr
    assert "ERROR the driver failed" in (tmp_path / "logs" / "driver_main_run.log").read_text()


@pytest.mark.parametrize("content", [b"\x89HDF\r\n\x1a\n truncated", b"someone else's notes"], ids=["truncated", "foreign"])
def test_a_bad_file_under_a_final_name_is_kept_aside_and_redone(stack, tmp_path, content):
    daily = tmp_path / "data" / "unprocessed" / "daily"
    daily.mkdir(parents=True)
    (daily / "conus404_daily_20210101.nc").write_bytes(content)
    result = run(tmp_path, stack)
    assert result.returncode == 0, result.stderr
    assert re.search(r"quarantined\s+1\s+\(files that did not verify", result.stdout), result.stdout
    [kept] = list((daily / "quarantine").iterdir())
    assert kept.read_bytes() == content, "never deleted"
    with xr.open_dataset(daily / "conus404_daily_20210101.nc") as ds:
        assert ds.attrs["conus404_day"] == "2021-01-01"


def test_a_last_day_whose_records_the_source_lacks_is_refused_before_the_run(stack, tmp_path):
    # the store's last record is 2021-01-03T00Z: that date is in the record, but its day's records
    # are not (T2 needs 00Z..23Z of the day, PREC_ACC_NC the hours ending 01Z..24Z); the worker's own
    # check for a gap inside the record is in test_worker.py
    result = run(tmp_path, stack, "--start", "2021-01-03", "--end", "2021-01-03")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and "its days use the hourly records 2021-01-03T00Z..2021-01-04T00Z" in lines[0], lines
    assert not (tmp_path / "data" / "logs").exists(), "nothing was started"
    assert not (tmp_path / "data" / "ultimate_failures.json").exists()


@pytest.mark.parametrize(("value", "message"), [
    ("{anon: true", "CONUS404_STORAGE_OPTIONS is not valid JSON"),
    ('["anon"]', "CONUS404_STORAGE_OPTIONS must be a JSON object"),
])
def test_storage_options_from_the_environment_must_be_a_json_object(stack, tmp_path, value, message):
    result = run(tmp_path, stack, env={"CONUS404_STORAGE_OPTIONS": value})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_a_rerun_asking_for_other_fields_is_refused_or_done_but_never_silently_redone(stack, tmp_path):
    assert run(tmp_path, stack).returncode == 0  # T2 and PREC_ACC_NC for two days
    daily = tmp_path / "data" / "unprocessed" / "daily"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in daily.glob("*.nc")}
    assert len(before) == 2

    fewer = run(tmp_path, stack, "--variables", "T2")  # a file holding more than asked is done
    assert fewer.returncode == 0, fewer.stdout + fewer.stderr
    assert re.search(r"already valid\s+2", fewer.stdout), fewer.stdout

    other = run(tmp_path, stack, "--variables", "T2,ACSWDNB")
    lines = [line for line in other.stderr.splitlines() if line.strip()]
    assert other.returncode == 2 and len(lines) == 1, other.stdout + other.stderr
    assert ("2 daily file(s) of the range lack asked fields: conus404_daily_20210101.nc holds PREC_ACC_NC, T2 "
            "(lacks ACSWDNB)") in lines[0] and "--replace-different" in lines[0], lines[0]
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in daily.glob("*.nc")} == before, "untouched"
    assert not (daily / "quarantine").exists()

    replaced = run(tmp_path, stack, "--variables", "T2,ACSWDNB", "--replace-different")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert len(list((daily / "quarantine").iterdir())) == 2, "the old files are kept aside, never deleted"
    for path in daily.glob("*.nc"):
        with xr.open_dataset(path) as ds:
            assert ds.attrs["conus404_variables"] == "ACSWDNB T2"
