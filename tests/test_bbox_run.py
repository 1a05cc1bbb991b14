"""--bbox end to end through the emulator: a box run's files hold exactly the window cut from a
whole-domain run's, record the box and window, keep 2-D lat/lon; mixing coverages in one data
folder is refused before anything is touched."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr

from conus404.core import subset
from conus404.emulator.synthetic_store import StoreSpec
from conus404.outputs import daily_file
from tests import conftest

pytestmark = pytest.mark.emulator
DAYS = [dt.date(2021, 1, 1), dt.date(2021, 1, 2)]
VARIABLES = "T2,PREC_ACC_NC,ACSWDNB"
BOX = "-105.5,38.5,-101,41.5"  # Colorado's Front Range and plains


stack = conftest.emulator_serving(StoreSpec.for_days("2021-01-01", 2, ny=40, nx=50, variables=("T2", "PREC_ACC_NC", "ACSWDNB", "I_ACSWDNB")))


def test_a_box_run_equals_the_window_cut_from_a_whole_domain_run(stack, tmp_path):
    whole = conftest.run_driver(stack, tmp_path / "whole", DAYS, VARIABLES, "--statistics", "T2:min,max")
    boxed = conftest.run_driver(stack, tmp_path / "box", DAYS, VARIABLES, "--statistics", "T2:min,max", "--bbox", BOX,
                                "--keep-hourly")
    assert whole.returncode == 0 and boxed.returncode == 0, whole.stderr[-2000:] + boxed.stderr[-2000:]
    for day in DAYS:
        with xr.open_dataset(daily_file.daily_path(tmp_path / "whole" / "data", day)) as full, \
                xr.open_dataset(daily_file.daily_path(tmp_path / "box" / "data", day)) as part:
            # the window for the box (its rule is checked against brute force in test_subset.py)
            window = subset.index_window(full["lat"].values, full["lon"].values, subset.parse_bbox(BOX))
            assert part.attrs["conus404_bbox"] == str(subset.parse_bbox(BOX))
            assert part.attrs["conus404_window"] == str(window)
            assert part["lat"].dims == ("south_north", "west_east") and part["lat"].shape == window.shape
            assert window.shape[0] < full.sizes["south_north"] and window.shape[1] < full.sizes["west_east"]
            cut = full.isel(window.selection)
            for name in ("lat", "lon", "T2", "T2_min", "T2_max", "PREC_ACC_NC", "ACSWDNB"):
                np.testing.assert_array_equal(part[name].values, cut[name].values, err_msg=name)
            # every cell centre inside the box is in the file
            lat, lon = full["lat"].values, full["lon"].values
            box = subset.parse_bbox(BOX)
            inside = (lat >= box.min_lat) & (lat <= box.max_lat) & (lon >= box.min_lon) & (lon <= box.max_lon)
            assert inside.sum() == inside[window.j0:window.j1, window.i0:window.i1].sum() > 0
    log = (tmp_path / "box" / "logs" / "driver_main_run.log").read_text()
    assert f"is the grid window {window}" in log
    with xr.open_dataset(daily_file.hourly_dir(tmp_path / "box" / "data") / "conus404_hourly_20210102.nc") as hourly:
        assert hourly.attrs["conus404_window"] == str(window) and hourly["T2"].shape == (25, *window.shape)  # 00Z..00Z(+1)
    from tests.conftest import cf_findings as findings  # CF of an emulated run's hourly file

    found = findings(daily_file.hourly_dir(tmp_path / "box" / "data") / "conus404_hourly_20210102.nc", tmp_path)
    assert found["high_priorities"] == [] and found["medium_priorities"] == [], found

    # the box run's rerun skips its files; a whole-domain run into its folder is refused, files untouched
    again = conftest.run_driver(stack, tmp_path / "box", DAYS, VARIABLES, "--statistics", "T2:min,max", "--bbox", BOX)
    assert again.returncode == 0 and "already valid        2" in (tmp_path / "box" / "logs" / "driver_main_run.log").read_text()
    before = {p: p.stat().st_mtime_ns for p in daily_file.daily_dir(tmp_path / "box" / "data").glob("*.nc")}
    mixed = conftest.run_driver(stack, tmp_path / "box", DAYS, VARIABLES, "--statistics", "T2:min,max")
    assert mixed.returncode == 2
    assert f"covers the box {subset.parse_bbox(BOX)}, not the whole domain: use another --data-dir" in mixed.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert not (daily_file.daily_dir(tmp_path / "box" / "data") / "quarantine").exists()


def test_a_box_outside_the_domain_is_a_usage_error(stack, tmp_path):
    proc = conftest.run_driver(stack, tmp_path, DAYS, VARIABLES, "--bbox", "10,45,20,50")
    assert proc.returncode == 2
    assert "the box 10.0,45.0,20.0,50.0 lies outside the CONUS404 domain" in proc.stderr
    assert not (tmp_path / "data" / "logs").exists()
