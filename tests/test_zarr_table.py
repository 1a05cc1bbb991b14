"""The series tables kept up day by day (conus404.outputs.series.zarr_table and parquet_table), on
part files made here: the Zarr and Parquet tables hold exactly the verified parts' values; an upkeep
reads only the part files of days it has not recorded (or that changed); a kill at any moment
leaves readable tables whose recorded days are right, and a rerun completes them."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conus404.outputs.series import days as series
from conus404.outputs.series import parquet_table, zarr_table
from conus404.outputs.series.polygons import CellWeights
from conus404.outputs.series.weights import POLYGON, SeriesTarget

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["T2", "PREC_ACC_NC"]
ATTRS = {"T2": {"units": "K", "cell_methods": "time: mean"}, "PREC_ACC_NC": {"units": "mm", "cell_methods": "time: sum"}}
FIRST = dt.date(2020, 12, 20)


def make_target(count: int, key: str = "k1") -> SeriesTarget:
    ids = [f"hru{k:05d}" for k in range(count)]
    weights = CellWeights(np.arange(count, dtype=np.int32), np.zeros(count, np.int32), np.zeros(count, np.int32),
                          np.ones(count), count)
    return SeriesTarget(POLYGON, "hrus", Path("/inputs/hrus.gpkg"), ids, weights, key,
                        {"polygon_area_m2": (np.full(count, 4e6), {"units": "m2"})})


def day_values(day: dt.date, count: int) -> np.ndarray:
    """[field, feature], different for every day, feature and field; a NaN where a basin has no value."""
    base = (day - FIRST).days * 1000.0 + np.arange(count)
    values = np.stack([250.0 + base / 7.0, base / 13.0])
    values[1, (day.toordinal() % count)] = np.nan
    return values


def publish(data_dir: Path, target: SeriesTarget, days) -> None:
    for day in days:
        series.publish_part(data_dir, target, day, NAMES, day_values(day, target.weights.count), ATTRS)


def span(first: dt.date, n: int) -> list[dt.date]:
    return [first + dt.timedelta(days=k) for k in range(n)]


def expected(days, count: int) -> np.ndarray:
    """[field, feature, day] as the tables store them (float32)."""
    return np.stack([day_values(d, count) for d in days], axis=-1).astype(np.float32)


def assert_tables_hold(data_dir: Path, target: SeriesTarget, days, exactly: bool = True) -> None:
    """The Zarr and Parquet tables hold ``days`` with the values of their parts (float32)."""
    days = sorted(days)
    held = assert_zarr_holds(data_dir, target, days)
    assert not exactly or held == days
    frame = pd.read_parquet(parquet_table.table_path(data_dir, target))
    assert set(frame.columns) == {"date", "polygon", *NAMES, "year"}
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    assert sorted(set(frame["date"])) == held and len(frame) == len(held) * target.weights.count
    want = expected(days, target.weights.count)
    for k, name in enumerate(NAMES):
        table = frame.pivot(index="polygon", columns="date", values=name).loc[target.ids, days]
        np.testing.assert_array_equal(table.to_numpy(), want[k])


def assert_zarr_holds(data_dir: Path, target: SeriesTarget, days) -> list[dt.date]:
    """The Zarr table marks at least ``days``, with their parts' values; the days it marks."""
    with xr.open_zarr(zarr_table.table_path(data_dir, target)) as ds:
        recorded = ds[zarr_table.RECORDED].values.astype(bool)
        held = [dt.date.fromisoformat(str(t)[:10]) for t in ds["time"].values[recorded]]
        assert set(days) <= set(held) and list(ds["polygon"].values) == target.ids
        if days:
            chosen = ds.sel(time=[np.datetime64(d.isoformat(), "ns") for d in days])
            want = expected(days, target.weights.count)
            for k, name in enumerate(NAMES):
                np.testing.assert_array_equal(chosen[name].values, want[k])
    return held


def upkeep(data_dir: Path, target: SeriesTarget, days) -> zarr_table.Upkeep:
    done = zarr_table.record(data_dir, days, 0, "the test", target, NAMES)
    parquet_table.update(data_dir, target, NAMES)
    return done


def test_the_tables_hold_the_parts_values_and_an_upkeep_reads_only_new_or_changed_parts(tmp_path):
    target = make_target(7)
    first_run = span(FIRST, 20)  # across a month and a year
    publish(tmp_path, target, first_run)
    done = upkeep(tmp_path, target, first_run)
    assert done.recorded == first_run and done.parts_read == 20 and done.held == 20
    assert_tables_hold(tmp_path, target, first_run)
    with xr.open_zarr(zarr_table.table_path(tmp_path, target)) as ds:  # CF timeSeries, as the NetCDF table
        assert ds.attrs["featureType"] == "timeSeries" and ds["polygon"].attrs["cf_role"] == "timeseries_id"
        assert ds["T2"].dims == ("polygon", "time") and ds["T2"].attrs["units"] == "K"
        assert ds["T2"].attrs["cell_methods"] == "time: mean area: mean (area-weighted over the polygon)"

    again = upkeep(tmp_path, target, first_run)
    assert again.recorded == [] and again.parts_read == 0, "a rerun reads no part file"

    later = span(FIRST + dt.timedelta(days=20), 5)  # the table grows at its end
    publish(tmp_path, target, later)
    grown = upkeep(tmp_path, target, first_run + later)
    assert grown.recorded == later and grown.parts_read == 5 and grown.held == 25
    assert_tables_hold(tmp_path, target, first_run + later)

    redone = first_run[3]  # a part made again (e.g. --force): read and recorded again
    time.sleep(0.01)
    series.publish_part(tmp_path, target, redone, NAMES, day_values(redone, 7) + 1.0, ATTRS)
    assert upkeep(tmp_path, target, first_run + later).parts_read == 1
    with xr.open_zarr(zarr_table.table_path(tmp_path, target)) as ds:
        np.testing.assert_array_equal(ds["T2"].sel(time=np.datetime64(redone.isoformat(), "ns")).values,
                                      (day_values(redone, 7)[0] + 1.0).astype(np.float32))


def test_a_part_that_does_not_verify_never_enters_a_table(tmp_path):
    target = make_target(5)
    days = span(FIRST, 4)
    publish(tmp_path, target, days)
    bad = series.part_path(tmp_path, POLYGON, "hrus", days[2])
    bad.write_bytes(bad.read_bytes()[:-40])  # torn
    other = make_target(5, key="other weights")
    series.publish_part(tmp_path, other, days[3], NAMES, day_values(days[3], 5), ATTRS)  # another file's
    upkeep(tmp_path, target, days)
    assert_tables_hold(tmp_path, target, days[:2])


def test_a_part_file_of_an_earlier_version_with_float64_values_still_verifies_and_enters_the_tables(tmp_path):
    import hashlib

    target = make_target(6)
    days = span(FIRST, 3)
    publish(tmp_path, target, days[:2])
    with np.load(series.part_path(tmp_path, POLYGON, "hrus", days[0])) as data:
        assert data["values"].dtype == np.float32  # what is written now: as the tables hold them
    values = day_values(days[2], 6)  # written as before: float64 values, their SHA-256 beside them
    meta = {"day": days[2].isoformat(), "key": target.key, "fields": NAMES, "attrs": ATTRS, "features": 6}
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    digest.update(values.astype("<f8").tobytes())
    old = series.part_path(tmp_path, POLYGON, "hrus", days[2])
    np.savez(old, values=values, meta=np.array(json.dumps({**meta, "sha256": digest.hexdigest()})))
    assert series.part_problem(old, days[2], target.key, NAMES) is None
    assert upkeep(tmp_path, target, days).recorded == days
    assert_tables_hold(tmp_path, target, days)


def test_a_range_starting_earlier_or_other_weights_make_the_table_anew_from_the_parts(tmp_path):
    target = make_target(4)
    publish(tmp_path, target, span(FIRST, 3) + span(FIRST + dt.timedelta(days=5), 5))
    upkeep(tmp_path, target, span(FIRST + dt.timedelta(days=5), 5))
    earlier = upkeep(tmp_path, target, span(FIRST, 3))
    assert earlier.held == 8  # days 1-3 asked for now, 6-10 kept: all from their parts
    assert_tables_hold(tmp_path, target, span(FIRST, 3) + span(FIRST + dt.timedelta(days=5), 5))
    other = make_target(4, key="k2")
    publish(tmp_path, other, span(FIRST, 2))
    upkeep(tmp_path, other, span(FIRST, 2))
    assert_tables_hold(tmp_path, other, span(FIRST, 2))


_UPKEEP = """
import sys, time
sys.path[:0] = [{src!r}, {root!r}]
from tests import test_zarr_table as t
target = t.make_target({count})
print("ready", flush=True)
started = time.monotonic()
t.upkeep(t.Path({data!r}), target, t.span(t.FIRST, {days}))
print(time.monotonic() - started, flush=True)
"""


def start_upkeep(data: Path, count: int, days: int) -> subprocess.Popen:
    code = _UPKEEP.format(src=str(ROOT / "src"), root=str(ROOT), count=count, data=str(data), days=days)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_a_kill_at_any_moment_leaves_readable_tables_with_right_days_and_a_rerun_completes_them(tmp_path):
    import shutil

    count, days = 4200, 120  # three feature chunks; parts across two time chunks (a year's end) and four months
    target = make_target(count)
    data = tmp_path / "data"
    publish(data, target, span(FIRST, days))
    whole = start_upkeep(data, count, days)
    seconds = float(whole.stdout.readline())  # how long an uninterrupted upkeep takes here
    assert whole.wait() == 0
    rng = np.random.default_rng(38)
    for moment in rng.uniform(0.0, 1.0, 4):
        for table in (zarr_table.table_path(data, target), parquet_table.table_path(data, target)):
            shutil.rmtree(table, ignore_errors=True)
        child = start_upkeep(data, count, days)
        time.sleep(moment * seconds)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        table = zarr_table.table_path(data, target)
        if (table / ".zmetadata").exists():  # readable, and whatever is marked is right
            with xr.open_zarr(table) as ds:
                marked = [dt.date.fromisoformat(str(t)[:10])
                          for t in ds["time"].values[ds[zarr_table.RECORDED].values.astype(bool)]]
            assert_zarr_holds(data, target, marked)
        folder = parquet_table.table_path(data, target)
        if list(folder.rglob("*.parquet")):
            frame = pd.read_parquet(folder)  # whole files only, each day with every feature
            assert len(frame) % count == 0 and not any(p.name.startswith(".") for p in folder.rglob("*.parquet"))
        final = upkeep(data, target, span(FIRST, days))  # the rerun
        assert final.held == days
        assert_tables_hold(data, target, span(FIRST, days))
        assert set(json.loads((folder / parquet_table.LEDGER).read_text())["months"]) == \
            {"2020-12", "2021-01", "2021-02", "2021-03", "2021-04"}


@pytest.mark.parametrize("count", [1, 2049])
def test_recorded_days_gives_the_values_of_the_days_asked_for(tmp_path, count):
    target = make_target(count)
    publish(tmp_path, target, span(FIRST, 6))
    upkeep(tmp_path, target, span(FIRST, 6))
    asked = [FIRST + dt.timedelta(days=k) for k in (1, 4, 5, 9)]
    days, values, attrs = zarr_table.recorded_days(tmp_path, target, NAMES, asked, 0)
    assert days == asked[:3] and attrs == ATTRS
    for k, name in enumerate(NAMES):
        np.testing.assert_array_equal(values[name], np.stack([day_values(d, count)[k] for d in days]).astype(np.float32))
