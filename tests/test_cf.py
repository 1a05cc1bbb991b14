"""CF-1.8 / ACDD-1.3 of the files: the IOOS compliance checker finds nothing of high or medium
priority in a daily file; x/y and the cell corners agree with the projection computed another way."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr

from conus404.core import grid
from conus404.outputs import cf, daily_file
from tests.conftest import cf_findings as findings

NY, NX = 20, 24


def grid_and_day():
    lat, lon = grid.grid_latlon(NY, NX)
    rng = np.random.default_rng(17)
    fields = [
        daily_file.DailyField("T2", rng.normal(275, 5, (NY, NX)).astype("float32"),
                              {"units": "K", "long_name": "daily mean of TEMP at 2 M", "cell_methods": "time: mean"}),
        daily_file.DailyField("T2_max", rng.normal(280, 5, (NY, NX)).astype("float32"),
                              {"units": "K", "long_name": "daily maximum of TEMP at 2 M", "cell_methods": "time: maximum"}),
        daily_file.DailyField("PREC_ACC_NC", rng.gamma(1, 2, (NY, NX)).astype("float32"),
                              {"units": "mm", "long_name": "daily total of precipitation", "cell_methods": "time: sum"}),
    ]
    return lat, lon, fields


@pytest.mark.parametrize("corners", [False, True], ids=["default", "cell-corners"])
def test_a_daily_file_has_no_high_or_medium_cf_finding(tmp_path, corners):
    lat, lon, fields = grid_and_day()
    path = tmp_path / "conus404_daily_20210101.nc"
    ds = daily_file.build_dataset(dt.date(2021, 1, 1), lat, lon, fields, {"source": "a synthetic test grid"},
                                  corners=corners)
    daily_file.publish(ds, path)
    found = findings(path, tmp_path)
    assert found["high_priorities"] == [], found
    assert found["medium_priorities"] == [], found
    with xr.open_dataset(path) as written:
        assert written.attrs["Conventions"] == "CF-1.8, ACDD-1.3"
        assert "_FillValue" not in written["time"].encoding and "_FillValue" not in written["time_bnds"].encoding
        assert written["PREC_ACC_NC"].attrs["standard_name"] == "lwe_thickness_of_precipitation_amount"
        assert written["T2_max"].attrs["standard_name"] == "air_temperature"
        assert written["T2"].attrs["units_metadata"] == "temperature: on_scale"
        assert written.attrs["time_coverage_start"] == "2021-01-01T00:00:00Z"
        assert written.attrs["time_coverage_duration"] == "P1D"
        assert written.attrs["geospatial_lat_max"] == pytest.approx(float(lat.max()), abs=1e-4)
        # the dimensions' coordinate variables are the projection coordinates; x/y the same metres
        assert written["west_east"].attrs["standard_name"] == "projection_x_coordinate"
        assert written["south_north"].attrs["standard_name"] == "projection_y_coordinate"
        assert written["x"].dims == ("west_east",) and written["y"].dims == ("south_north",)
        np.testing.assert_array_equal(written["x"].values, written["west_east"].values)
        np.testing.assert_array_equal(written["y"].values, written["south_north"].values)
        assert written["T2"].dims == ("time", "south_north", "west_east")
        assert ("lat_bnds" in written.variables) == corners and ("bounds" in written["lat"].attrs) == corners


def test_the_acdd_discovery_attributes_are_all_there(tmp_path):
    lat, lon, fields = grid_and_day()
    path = tmp_path / "conus404_daily_20210101.nc"
    daily_file.publish(daily_file.build_dataset(dt.date(2021, 1, 1), lat, lon, fields, {}), path)
    found = findings(path, tmp_path, "acdd:1.3")
    assert found["high_priorities"] == [], found


def test_x_y_and_the_cell_corners_match_the_projection_computed_by_hand():
    """Against grid.py's own Lambert conformal formulas (not pyproj): x/y of the centres give back
    the store's lat/lon; each corner is the projection of the centre +- half a cell."""
    lat, lon = grid.grid_latlon(NY, NX)
    coords = cf.grid_coordinates(lat, lon, corners=True)
    x, y = coords["x"][1], coords["y"][1]
    back_lat, back_lon = grid.latlon_from_xy(*np.meshgrid(x, y))
    np.testing.assert_allclose(back_lat, lat, atol=1e-6)
    np.testing.assert_allclose(back_lon, lon, atol=1e-6)
    dx, dy = x[1] - x[0], y[1] - y[0]
    lat_bnds, lon_bnds = coords["lat_bnds"][1], coords["lon_bnds"][1]
    assert lat_bnds.shape == (NY, NX, 4)
    for corner, (a, b) in enumerate([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]):
        want_lat, want_lon = grid.latlon_from_xy(*np.meshgrid(x + a * dx, y + b * dy))
        np.testing.assert_allclose(lat_bnds[..., corner], want_lat, atol=1e-4)
        np.testing.assert_allclose(lon_bnds[..., corner], want_lon, atol=1e-4)
    # neighbouring cells share their corners: the grid tiles the plane without gaps
    np.testing.assert_allclose(lat_bnds[:, :-1, 1], lat_bnds[:, 1:, 0], atol=1e-4)
    np.testing.assert_allclose(lat_bnds[:-1, :, 3], lat_bnds[1:, :, 0], atol=1e-4)


def test_a_window_one_cell_wide_has_no_projection_coordinates_but_still_lat_lon():
    lat, lon = grid.grid_latlon(NY, NX)
    coords = cf.grid_coordinates(lat[:, :1], lon[:, :1], corners=True)
    assert set(coords) == {"lat", "lon"} and "bounds" not in coords["lat"][2]


TARGET_GRID = """gridtype = lonlat
xsize    = 8
ysize    = 5
xfirst   = -115
xinc     = 5
yfirst   = 30
yinc     = 4
"""


def test_cdo_remapcon_regrids_a_daily_file_with_cell_corners(tmp_path):
    """Conservative regridding needs the cells' corners (cdo: "Source grid cell corner coordinates
    missing!" without them). A constant field stays that constant; a smooth one stays in range."""
    import shutil
    import subprocess

    cdo = shutil.which("cdo")
    if cdo is None:
        pytest.skip("cdo is not installed here (Debian/Ubuntu: apt install cdo): the remapcon check is skipped")
    lat, lon, _ = grid_and_day()
    smooth = (280.0 + 0.2 * lat + 0.05 * lon).astype("float32")
    fields = [daily_file.DailyField("T2", smooth, {"units": "K", "long_name": "TEMP at 2 M", "cell_methods": "time: mean"}),
              daily_file.DailyField("ONE", np.full((NY, NX), 7.0, "float32"), {"units": "1", "long_name": "constant",
                                                                                 "cell_methods": "time: mean"})]
    source = tmp_path / "conus404_daily_20210101.nc"
    daily_file.publish(daily_file.build_dataset(dt.date(2021, 1, 1), lat, lon, fields, {}, corners=True), source)
    (tmp_path / "target.txt").write_text(TARGET_GRID)
    out = tmp_path / "regridded.nc"
    done = subprocess.run([cdo, "-s", f"remapcon,{tmp_path / 'target.txt'}", str(source), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with xr.open_dataset(out) as regridded:
        one = regridded["ONE"].values
        assert np.isfinite(one).sum() >= 30, "most target cells lie inside the domain"
        np.testing.assert_allclose(one[np.isfinite(one)], 7.0, rtol=1e-5)
        t2 = regridded["T2"].values[np.isfinite(regridded["T2"].values)]
        assert smooth.min() - 1e-3 <= t2.min() and t2.max() <= smooth.max() + 1e-3
