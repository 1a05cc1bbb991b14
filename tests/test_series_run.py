"""Basin and gauge series end to end through the emulator (--polygons, --points, --series-only):
every polygon's daily value equals numpy's area-weighted mean of the day computed here from the
store's own hourly values, every point's the value of the cell holding it; a run killed mid-way
and rerun ends with the tables of an uninterrupted run; --series-only leaves no gridded file; a
later polygon run over existing daily files makes the series without downloading."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conus404.core import grid, subset
from conus404.emulator.fault_proxy import FaultRule
from conus404.emulator.synthetic_store import StoreSpec, build_dataset
from conus404.outputs import daily_file
from tests import conftest
from tests.conftest import group_alive

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=k) for k in range(3)]
VARIABLES = "T2,PREC_ACC_NC"
SPEC = StoreSpec.for_days("2021-01-01", 3, ny=40, nx=54, variables=("T2", "PREC_ACC_NC"))
BASINS = {  # lon/lat rings; the last is smaller than one of this store's ~100 km cells
    "1019": [(-108.0, 37.2), (-103.1, 37.0), (-102.2, 40.8), (-104.6, 41.0), (-106.9, 39.9)],
    "0710": [(-96.0, 40.0), (-92.0, 40.3), (-92.5, 44.5), (-94.0, 42.0), (-96.3, 44.0)],
    "1801": [(-122.35, 38.0), (-122.2, 38.0), (-122.2, 38.12), (-122.35, 38.12)],
}
GAUGES = {"06752000": (-105.0, 40.6), "05587450": (-90.6, 39.0), "11447650": (-121.5, 38.5)}

stack = conftest.emulator_serving(SPEC)


def inputs(tmp: Path) -> tuple[Path, Path]:
    conftest.polygons_geojson(tmp / "basins.geojson", BASINS)
    (tmp / "gauges.csv").write_text("id,lon,lat\n" + "".join(f"{k},{lon},{lat}\n" for k, (lon, lat) in GAUGES.items()))
    return tmp / "basins.geojson", tmp / "gauges.csv"


def run(tmp: Path, stack, *flags: str, series: bool = True, timeout: float = 300):
    basins, gauges = inputs(tmp / "inputs")
    extra = ["--polygons", str(basins), "--polygon-id", "huc4", "--points", str(gauges)] if series else []
    return conftest.run_pipeline(tmp, stack, DAYS, VARIABLES, *extra, *flags, timeout=timeout)


def tables(tmp: Path) -> dict[str, xr.Dataset]:
    found = {}
    for kind in ("polygons/basins", "points/gauges"):
        with xr.open_dataset(tmp / "data" / f"{kind}.nc") as ds:
            found[kind] = ds.load()
    return found


@pytest.fixture(scope="module")
def reference(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("series-reference")
    result = run(tmp, stack, "--foreground")
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp


def daily_from_store() -> dict[str, np.ndarray]:
    """Each field's daily values [day, y, x] by the documented rules, from the store's own hourly
    values: T2 the mean of 00Z..23Z, PREC_ACC_NC the sum of 01Z..00Z(+1); stored as float32."""
    ds = build_dataset(SPEC)
    t2 = ds["T2"].values.astype(np.float64)
    prec = ds["PREC_ACC_NC"].values.astype(np.float64)
    return {"T2": np.stack([t2[24 * d:24 * d + 24].mean(axis=0) for d in range(len(DAYS))]).astype(np.float32),
            "PREC_ACC_NC": np.stack([prec[24 * d + 1:24 * d + 25].sum(axis=0) for d in range(len(DAYS))]).astype(np.float32)}


def test_basin_and_gauge_values_equal_numpy_from_the_store(reference):
    found = tables(reference)
    basins, gauges = found["polygons/basins"], found["points/gauges"]
    assert list(basins["polygon"].values) == list(BASINS) and list(gauges["point"].values) == list(GAUGES)
    assert list(basins["time"].values) == [np.datetime64(d.isoformat(), "ns") for d in DAYS]
    assert basins.attrs["featureType"] == "timeSeries" and basins["polygon"].attrs["cf_role"] == "timeseries_id"
    assert basins["T2"].dims == ("polygon", "time") and gauges["T2"].dims == ("point", "time")  # CF H.2.1
    weights = np.load(reference / "data" / "polygons" / ".weights" / "basins.npz")
    daily = daily_from_store()
    for name, values in daily.items():
        for k in range(len(BASINS)):
            mine = weights["target"] == k
            w, rows, cols = weights["area"][mine], weights["row"][mine], weights["col"][mine]
            expected = (values[:, rows, cols] * w).sum(axis=1) / w.sum()
            np.testing.assert_allclose(basins[name].transpose("time", "polygon").values[:, k], expected, rtol=2e-6, err_msg=f"{name} {k}")
        assert basins[name].attrs["units"] == {"T2": "K", "PREC_ACC_NC": "mm"}[name]
    assert basins["polygon_coverage"].values == pytest.approx(1.0)
    assert basins["polygon_area_m2"].values[2] < (grid.FULL_DX_M * 1366 / 53) ** 2, "the small basin is under a cell"
    # a point's value is the cell whose square holds it: nearest centre along each axis of the plane
    lat, lon = build_dataset(SPEC)["lat"].values, build_dataset(SPEC)["lon"].values
    gx, gy = grid.xy_from_latlon(lat.astype(np.float64), lon.astype(np.float64))
    for k, (plon, plat) in enumerate(GAUGES.values()):
        x, y = grid.xy_from_latlon(np.float64(plat), np.float64(plon))
        row, col = int(np.argmin(np.abs(gy[:, 0] - y))), int(np.argmin(np.abs(gx[0] - x)))
        assert (int(gauges["cell_row"][k]), int(gauges["cell_col"][k])) == (row, col)
        for name, values in daily.items():
            np.testing.assert_array_equal(gauges[name].transpose("time", "point").values[:, k], values[:, row, col])
    # CF: the IOOS checker finds nothing of high or medium priority in the series files
    from tests.conftest import cf_findings as findings

    for kind in ("polygons/basins", "points/gauges"):
        found = findings(reference / "data" / f"{kind}.nc", reference)
        assert found["high_priorities"] == [] and found["medium_priorities"] == [], (kind, found)
    # the CSVs hold the NetCDF's values
    for name in daily:
        table = pd.read_csv(reference / "data" / "polygons" / f"basins_{name}.csv", dtype={"date": str})
        assert list(table.columns) == ["date", *BASINS] and list(table["date"]) == [d.isoformat() for d in DAYS]
        np.testing.assert_array_equal(table[list(BASINS)].to_numpy(np.float32), basins[name].values.T)
        points = pd.read_csv(reference / "data" / "points" / f"gauges_{name}.csv")
        np.testing.assert_array_equal(points[list(GAUGES)].to_numpy(np.float32), gauges[name].values.T)


def long_tables(tmp: Path) -> dict[str, tuple[xr.Dataset, pd.DataFrame]]:
    """Each target's Zarr table (loaded) and Parquet table, by "polygons/basins" and "points/gauges"."""
    found = {}
    for kind in ("polygons/basins", "points/gauges"):
        with xr.open_zarr(tmp / "data" / f"{kind}.zarr") as ds:
            found[kind] = (ds.load(), pd.read_parquet(tmp / "data" / f"{kind}.parquet"))
    return found


def assert_long_tables_equal_the_netcdf_tables(tmp: Path) -> None:
    wide = tables(tmp)
    for kind, (store, frame) in long_tables(tmp).items():
        dim = wide[kind]["T2"].dims[0]
        recorded = store["conus404_day_recorded"].values.astype(bool)
        assert recorded.all() and list(store["time"].values) == list(wide[kind]["time"].values)
        assert list(store[dim].values) == list(wide[kind][dim].values)
        frame = frame.assign(date=pd.to_datetime(frame["date"]))
        assert len(frame) == len(DAYS) * wide[kind].sizes[dim] and set(frame["year"].astype(int)) == {2021}
        for name in VARIABLES.split(","):
            np.testing.assert_array_equal(store[name].values, wide[kind][name].values)  # (feature, time), float32
            assert store[name].attrs == wide[kind][name].attrs
            pivot = frame.pivot(index=dim, columns="date", values=name).loc[list(wide[kind][dim].values)]
            np.testing.assert_array_equal(pivot.to_numpy(), wide[kind][name].values)
            assert pivot.to_numpy().dtype == np.float32
        # and every day's values are those of its part file, made by the day's own process
        for k, day in enumerate(DAYS):
            part = tmp / "data" / kind.split("/")[0] / ".days" / kind.split("/")[1] / f"{kind.split('/')[1]}_{day:%Y%m%d}.npz"
            with np.load(part) as data:
                meta = json.loads(str(data["meta"]))
                for name in VARIABLES.split(","):
                    np.testing.assert_array_equal(store[name].values[:, k],
                                                  data["values"][meta["fields"].index(name)].astype(np.float32))


def test_the_zarr_and_parquet_tables_equal_the_netcdf_tables_and_the_days_parts(reference):
    assert_long_tables_equal_the_netcdf_tables(reference)
    log = (reference / "logs" / "driver_main_run.log").read_text()
    assert re.search(r"polygon series of basins.geojson: 3 day\(s\) recorded now \(3 part file\(s\) read\), 3 in ", log)


def test_a_run_killed_mid_way_is_completed_by_its_rerun(stack, reference, tmp_path):
    proxy = stack.inject_faults([FaultRule(r"/T2/53\.0\.0$", delay_s=600.0)])  # day 3 held in a read
    injected_before = proxy.counts["injected"]
    try:
        started = run(tmp_path, stack)
        assert started.returncode == 0, started.stderr
        pgid = int((tmp_path / "logs" / "pipeline.pid").read_text())
        deadline = time.monotonic() + 120
        parts = tmp_path / "data" / "polygons" / ".days" / "basins"
        while proxy.counts["injected"] == injected_before or len(list(parts.glob("*.npz"))) < 2:
            assert time.monotonic() < deadline and group_alive(pgid), "days 1 and 2 were not made"
            time.sleep(0.2)
        stopped = subprocess.run([str(ROOT / "kill_all.sh"), "--log-dir", str(tmp_path / "logs"), "--grace", "5"],
                                 capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and not group_alive(pgid), stopped.stdout + stopped.stderr
    finally:
        stack.inject_faults([])
    again = run(tmp_path, stack, "--foreground")
    assert again.returncode == 0, again.stdout + again.stderr
    for kind, ds in tables(tmp_path).items():
        xr.testing.assert_identical(ds.drop_attrs(), tables(reference)[kind].drop_attrs())
    assert_long_tables_equal_the_netcdf_tables(tmp_path)


def test_a_day_the_retry_pass_makes_is_added_to_the_tables(stack, reference, tmp_path):
    """Day 3 hangs once past its timeout (a transient failure): the driver's end records days 1-2, the
    retry pass's end reads day 3's part file only and the tables equal an uninterrupted run's."""
    stack.inject_faults([FaultRule(r"/T2/53\.0\.0$", delay_s=600.0, times=1)])
    try:
        result = run(tmp_path, stack, "--foreground", "--series-only", "--day-timeout", "10")
    finally:
        stack.inject_faults([])
    assert result.returncode == 0, result.stdout + result.stderr
    said = r"polygon series of basins.geojson: (\d+) day\(s\) recorded now \((\d+) part file\(s\) read\), (\d+) in "
    assert re.findall(said, (tmp_path / "logs" / "driver_main_run.log").read_text()) == [("2", "2", "2")]
    assert re.findall(said, (tmp_path / "logs" / "retry_run.log").read_text()) == [("1", "1", "3")]
    for kind, ds in tables(tmp_path).items():
        xr.testing.assert_identical(ds.drop_attrs(), tables(reference)[kind].drop_attrs())
    assert_long_tables_equal_the_netcdf_tables(tmp_path)


def test_series_only_keeps_no_grid_and_reads_only_the_window(stack, reference, tmp_path):
    result = run(tmp_path, stack, "--foreground", "--series-only", "--rollup", "monthly", "--allow-partial")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not list(daily_file.daily_dir(tmp_path / "data").glob("*.nc")), "no gridded daily file"
    for kind, ds in tables(tmp_path).items():
        xr.testing.assert_identical(ds.drop_attrs(), tables(reference)[kind].drop_attrs())
    # the series are the run's output, so they are what is rolled up: January's 3 days, partial
    basins = tables(reference)["polygons/basins"]
    with xr.open_dataset(tmp_path / "data" / "polygons" / "basins_monthly.nc") as month:
        assert int(month["days_used"].values[0]) == 3 and month["time"].values[0] == np.datetime64("2021-01-01")
        assert month["T2"].dims == ("polygon", "time")  # CF H.2.1: data(feature, time)
        np.testing.assert_allclose(month["T2"].values[:, 0], basins["T2"].values.astype(np.float64).mean(axis=1), rtol=1e-6)
        np.testing.assert_allclose(month["PREC_ACC_NC"].values[:, 0],
                                   basins["PREC_ACC_NC"].values.astype(np.float64).sum(axis=1), rtol=1e-6)
        assert month["T2"].attrs["cell_methods"].startswith("time: mean")
        assert month["T2"].attrs["conus404_rollup_rule"] == "the mean of the period's daily values"
    assert "reading the grid window" in (tmp_path / "logs" / "driver_main_run.log").read_text()
    again = run(tmp_path, stack, "--foreground", "--series-only")
    log = (tmp_path / "logs" / "driver_main_run.log").read_text()
    assert again.returncode == 0 and "already valid        3" in log
    # a resume reads no part file of a day its tables hold
    assert re.findall(r"polygon series of basins.geojson: (\d+) day\(s\) recorded now \((\d+) part", log)[-1] == ("0", "0")


def test_series_over_existing_daily_files_need_no_download(stack, reference, tmp_path):
    grids = run(tmp_path, stack, "--foreground", series=False)
    assert grids.returncode == 0, grids.stdout + grids.stderr
    proxy = stack.inject_faults([FaultRule(r"/(T2|PREC_ACC_NC)/\d+\.0\.0$", status=404)])  # any chunk read would fail
    injected_before = proxy.counts["injected"]  # the proxy's counts run over the module
    try:
        result = run(tmp_path, stack, "--foreground")
    finally:
        stack.inject_faults([])
    assert result.returncode == 0, result.stdout + result.stderr
    assert proxy.counts["injected"] == injected_before, "no chunk was read"
    for kind, ds in tables(tmp_path).items():
        xr.testing.assert_identical(ds.drop_attrs(), tables(reference)[kind].drop_attrs())
    # the reference run kept only the cells covering its polygons and points: the window of these whole grids
    for day in DAYS:
        with xr.open_dataset(daily_file.daily_path(tmp_path / "data", day)) as whole, \
                xr.open_dataset(daily_file.daily_path(reference / "data", day)) as kept:
            window = subset.Window.parse(kept.attrs["conus404_window"])
            assert kept.attrs["conus404_bbox"] == f"cells {window}" and "conus404_window" not in whole.attrs
            assert window.shape < (SPEC.ny, SPEC.nx) and window.j1 - window.j0 < SPEC.ny
            for name in ("lat", "lon", "T2", "PREC_ACC_NC"):
                np.testing.assert_array_equal(kept[name].values, whole.isel(window.selection)[name].values)


def test_a_bad_polygon_file_stops_the_run_before_it_starts(stack, tmp_path):
    basins, _ = inputs(tmp_path / "inputs")
    result = conftest.run_pipeline(tmp_path, stack, DAYS, VARIABLES, "--polygons", str(basins), "--polygon-id", "HUC8",
                                   "--foreground")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--polygon-id 'HUC8' is not a field of" in result.stderr
    assert not (tmp_path / "data" / "unprocessed").exists() or not list((tmp_path / "data" / "unprocessed").rglob("*.nc"))
