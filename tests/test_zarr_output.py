"""One Zarr store for the range (--zarr): through the emulator it equals the daily files day by
day and a wider range appends without touching what is there; a writer killed with SIGKILL
mid-write leaves only correct marked days and its rerun fills the rest without rewriting a marked
day's chunks; a path that is a file or another request's store is refused in one line."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conus404.config import output_values
from conus404.config.settings import assemble, changed
from conus404.core import grid
from conus404.emulator.synthetic_store import StoreSpec
from conus404.outputs import daily_file, zarr_output
from tests import conftest

DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=k) for k in range(4)]
VARIABLES = "T2,PREC_ACC_NC"
stack = conftest.emulator_serving(StoreSpec.for_days("2021-01-01", 4, ny=12, nx=16, variables=("T2", "PREC_ACC_NC")))


def chunk_digests(store: Path) -> dict[str, str]:
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in store.rglob("*") if p.is_file() and not p.name.startswith(".")}


def assert_store_equals_daily_files(store: Path, data_dir: Path, days: list[dt.date]) -> None:
    with xr.open_zarr(store, consolidated=True) as ds:
        assert list(ds["time"].values) == [np.datetime64(d.isoformat(), "ns") for d in days]
        assert list(ds[zarr_output.WRITTEN].values) == [1] * len(days)
        for k, day in enumerate(days):
            with xr.open_dataset(daily_file.daily_path(data_dir, day)) as daily:
                for name in ("T2", "PREC_ACC_NC"):
                    np.testing.assert_array_equal(ds[name].values[k], daily[name].values[0], err_msg=f"{name} {day}")
                    assert ds[name].attrs["cell_methods"] == daily[name].attrs["cell_methods"]
                    assert ds[name].attrs["units"] == daily[name].attrs["units"]
                np.testing.assert_array_equal(ds["lat"].values, daily["lat"].values)
                assert list(ds["time_bnds"].values[k]) == list(daily["time_bnds"].values[0])
        assert ds["crs"].attrs["grid_mapping_name"] == "lambert_conformal_conic"
        x, y = grid.xy_from_latlon(ds["lat"].values.astype(np.float64), ds["lon"].values.astype(np.float64))
        np.testing.assert_allclose(ds["x"].values, x.mean(axis=0), atol=5.0)  # metres: the cells' own projection
        np.testing.assert_allclose(ds["y"].values, y.mean(axis=1), atol=5.0)
        assert ds["west_east"].attrs["standard_name"] == "projection_x_coordinate" and ds["x"].dims == ("west_east",)


@pytest.mark.emulator
def test_the_store_equals_the_daily_files_and_a_wider_range_appends(stack, tmp_path):
    store = tmp_path / "conus404.zarr"
    first = conftest.run_driver(stack, tmp_path, DAYS[:3], VARIABLES, "--zarr", str(store), "--zarr-chunks", "1,8,8")
    assert first.returncode == 0, first.stderr[-3000:]
    assert_store_equals_daily_files(store, tmp_path / "data", DAYS[:3])
    before = chunk_digests(store)
    wider = conftest.run_driver(stack, tmp_path, DAYS, VARIABLES, "--zarr", str(store), "--zarr-chunks", "1,8,8")
    assert wider.returncode == 0, wider.stderr[-3000:]
    assert_store_equals_daily_files(store, tmp_path / "data", DAYS)
    with xr.open_zarr(store) as ds:  # ACDD coverage follows the extended axis
        assert ds.attrs["time_coverage_start"] == f"{DAYS[0]}T00:00:00Z"
        assert ds.attrs["time_coverage_end"] == f"{DAYS[-1] + dt.timedelta(days=1)}T00:00:00Z"
        assert ds.attrs["time_coverage_duration"] == f"P{len(DAYS)}D" and ds.attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    after = chunk_digests(store)
    kept = {k: v for k, v in before.items() if k.split("/")[0] in ("T2", "PREC_ACC_NC")}
    assert kept and all(after[k] == v for k, v in kept.items()), "the days already there were not rewritten"
    assert len([k for k in after if k.startswith("T2/")]) == 4 * len([k for k in kept if k.startswith("T2/")]) // 3
    again = conftest.run_driver(stack, tmp_path, DAYS, VARIABLES, "--zarr", str(store), "--zarr-chunks", "1,8,8")
    assert again.returncode == 0 and chunk_digests(store) == after, "a rerun writes nothing"


WRITER = """
import datetime as dt, sys
from pathlib import Path
from conus404.outputs import daily_file, zarr_output
from conus404.config.settings import assemble
data, store, days = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
settings = assemble(start_date=dt.date(2021, 1, 1), end_date=dt.date(2021, 1, 1) + dt.timedelta(days=days - 1),
                    variables=("T2",), data_dir=data, output_zarr=store, zarr_chunks=(1, 4, 4))
zarr_output.ZarrOutput.of(settings.outputs).write(settings.request, settings.outputs.data_dir, ["T2"], lambda d: True)
"""


def write_days(data_dir: Path, days: list[dt.date], corners: bool = False) -> None:
    lat, lon = grid.grid_latlon(6, 8)
    rng = np.random.default_rng(3)
    for day in days:
        field = daily_file.DailyField("T2", rng.normal(270, 5, (6, 8)).astype(np.float32),
                                      {"units": "K", "cell_methods": "time: mean"})
        daily_file.publish(daily_file.build_dataset(day, lat, lon, [field], {"source": "test"}, corners=corners),
                           daily_file.daily_path(data_dir, day))


def test_days_with_cell_corners_give_a_store_with_the_same_corners(tmp_path):
    from conus404.config.settings import assemble
    from conus404.outputs import zarr_output

    days = [dt.date(2021, 1, 1), dt.date(2021, 1, 2)]
    write_days(tmp_path / "data", days, corners=True)
    settings = assemble(start_date=days[0], end_date=days[-1], variables=("T2",), data_dir=tmp_path / "data",
                        output_zarr=str(tmp_path / "z.zarr"), zarr_chunks=(1, 4, 4))
    zarr_output.ZarrOutput.of(settings.outputs).write(settings.request, settings.outputs.data_dir, ["T2"], lambda d: True)
    with xr.open_zarr(tmp_path / "z.zarr") as store, xr.open_dataset(daily_file.daily_path(tmp_path / "data", days[0])) as day:
        np.testing.assert_array_equal(store["lat_bnds"].values, day["lat_bnds"].values)
        np.testing.assert_array_equal(store["lon_bnds"].values, day["lon_bnds"].values)
        assert store["lon"].attrs["bounds"] == "lon_bnds"


def marked_days(store: Path) -> np.ndarray:
    import zarr

    try:
        return np.asarray(zarr.open_group(str(store), mode="r", use_consolidated=False)[zarr_output.WRITTEN][:]).astype(bool)
    except (FileNotFoundError, KeyError, ValueError):
        return np.zeros(0, bool)


def test_a_writer_killed_mid_write_leaves_correct_marked_days_and_the_rerun_fills_the_rest(tmp_path):
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=k) for k in range(20)]
    write_days(tmp_path / "data", days)
    # day 14's file is replaced by a FIFO: the writer blocks opening it, mid-write, after the days before it
    held = daily_file.daily_path(tmp_path / "data", days[14])
    real = held.read_bytes()
    held.unlink()
    os.mkfifo(held)
    store = tmp_path / "store.zarr"
    env = {**os.environ, "PYTHONPATH": str(Path(zarr_output.__file__).resolve().parents[2])}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "data"), str(store), str(len(days)), "all"],
                              env=env)
    deadline = time.monotonic() + 120
    while marked_days(store).sum() < 14:  # days 0..13 written and marked, then it waits on day 14
        assert writer.poll() is None and time.monotonic() < deadline, "the writer did not reach day 14"
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    marked = marked_days(store)
    assert list(np.flatnonzero(marked)) == list(range(14)), "killed mid-write: only the days before 14 are marked"
    with xr.open_zarr(store) as ds:
        for k in np.flatnonzero(marked):
            with xr.open_dataset(daily_file.daily_path(tmp_path / "data", days[k])) as daily:
                np.testing.assert_array_equal(ds["T2"].values[k], daily["T2"].values[0])
    before = {k: v for k, v in chunk_digests(store).items() if k.startswith("T2/") and int(k.split("/")[1].split(".")[0]) < 14}
    held.unlink()
    held.write_bytes(real)
    rerun = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path / "data"), str(store), str(len(days)), "all"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = chunk_digests(store)
    assert before and all(after[k] == v for k, v in before.items()), "a marked day's chunks were rewritten"
    with xr.open_zarr(store) as ds:
        assert ds[zarr_output.WRITTEN].values.all()
        for k, day in enumerate(days):
            with xr.open_dataset(daily_file.daily_path(tmp_path / "data", day)) as daily:
                np.testing.assert_array_equal(ds["T2"].values[k], daily["T2"].values[0])


def test_a_path_that_is_a_file_or_another_requests_store_is_refused(tmp_path):
    from conus404.core.exceptions import ConfigurationError

    settings = assemble(start_date=dt.date(2021, 1, 1), end_date=dt.date(2021, 1, 3), variables=("T2",),
                        data_dir=tmp_path / "data", output_zarr=str(tmp_path / "file.zarr"))
    (tmp_path / "file.zarr").write_text("not a store")
    with pytest.raises(ConfigurationError, match=r"is a file, not a Zarr store"):
        zarr_output.ZarrOutput.of(settings.outputs).check(settings.request, ["T2"], None)
    write_days(tmp_path / "data", [dt.date(2021, 1, 1)])
    made = assemble(start_date=dt.date(2021, 1, 1), end_date=dt.date(2021, 1, 1), variables=("T2",),
                    data_dir=tmp_path / "data", output_zarr=str(tmp_path / "s.zarr"))
    zarr_output.ZarrOutput.of(made.outputs).write(made.request, made.outputs.data_dir, ["T2"], lambda d: True)
    stamp = (tmp_path / "s.zarr" / ".zmetadata").stat().st_mtime_ns
    for other, message in [(dict(variables=("T2", "Q2")), r"holds another request's store \(fields: T2, not Q2, T2\)"),
                           (dict(day_boundary=-6), r"\(day boundary: UTC, not UTC-06:00\)"),
                           (dict(start_date=dt.date(2020, 12, 31)), r"starts on 2021-01-01: a range from 2020-12-31")]:
        asked = changed(made, **other)
        with pytest.raises(ConfigurationError, match=message):
            zarr_output.ZarrOutput.of(asked.outputs).check(asked.request, list(asked.request.variables), None)
    with pytest.raises(ConfigurationError, match=r"\(region: the whole domain, not the box"):
        zarr_output.ZarrOutput.of(made.outputs).check(made.request, ["T2"], "-105.0,39.0,-104.0,40.0")
    assert (tmp_path / "s.zarr" / ".zmetadata").stat().st_mtime_ns == stamp, "nothing changed"
    with pytest.raises(ConfigurationError, match=r"three positive whole numbers"):
        output_values.parse_zarr_chunks("36,350", "--zarr-chunks")
