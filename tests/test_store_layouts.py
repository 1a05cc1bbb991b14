"""The emulated stores' layouts against what is published of the real ones (docs/REAL_STORE.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr
import zarr

from conus404.emulator import store_layouts
from conus404.emulator.synthetic_store import Defect, StoreSpec, build_dataset, lost_chunk_keys, write_store


@pytest.fixture(scope="module")
def pc(tmp_path_factory):
    path = tmp_path_factory.mktemp("pc") / "pc.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=40, nx=56, variables=("T2", "U", "V", "SWDOWN")), str(path))
    return path


@pytest.fixture(scope="module")
def hytest(tmp_path_factory):
    path = tmp_path_factory.mktemp("hytest") / "hytest.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=40, nx=56, layout="hytest", variables=("T2", "U", "V")), str(path))
    return path


def _meta(path) -> dict:
    return json.loads((path / ".zmetadata").read_text())["metadata"]


def test_pc_layout_four_attributes_staggered_winds_and_lat_lon_chunks(pc):
    ds = xr.open_zarr(pc)
    assert sorted(ds.attrs) == ["abstract", "acknowledgement", "description", "license"]
    assert ds["U"].dims == ("time", "bottom_top", "south_north", "west_east_stag") and ds.sizes["west_east_stag"] == 57
    assert ds["V"].dims == ("time", "bottom_top", "south_north_stag", "west_east") and ds.sizes["south_north_stag"] == 41
    assert ds["lat_u"].dims == ("south_north", "west_east_stag") and ds["lat_v"].dims == ("south_north_stag", "west_east")
    meta = _meta(pc)
    # (882, 1188) of 1015 x 1367, scaled to the grid: lat/lon span several chunks, as on the real store
    assert meta["lat/.zarray"]["chunks"] == [math.ceil(40 * 882 / 1015), math.ceil(56 * 1188 / 1367)]
    assert meta["U/.zarray"]["chunks"] == [1, 1, 40, 57]
    assert meta["time/.zattrs"]["axis"] == "T" and meta["time/.zattrs"]["long_name"] == "time"
    assert meta["SWDOWN/.zattrs"]["number_of_significant_digits"] == "5"


def test_staggered_coordinates_lie_half_a_cell_from_the_mass_points(pc):
    ds = xr.open_zarr(pc).load()
    lon, lon_u = ds["lon"].values.astype(float), ds["lon_u"].values.astype(float)
    inner = 0.5 * (lon[:, :-1] + lon[:, 1:])
    np.testing.assert_allclose(lon_u[:, 1:-1], inner, atol=0.02)  # mid-way between neighbouring columns
    lat, lat_v = ds["lat"].values.astype(float), ds["lat_v"].values.astype(float)
    np.testing.assert_allclose(lat_v[1:-1], 0.5 * (lat[:-1] + lat[1:]), atol=0.02)


def test_hytest_layout_xtime_wrf_attributes_and_staggered_dims(hytest):
    meta = _meta(hytest)
    assert meta["time/.zarray"]["dtype"] == "<f4" and meta["time/.zattrs"]["units"].startswith("minutes since 1979-10-01")
    attrs = meta[".zattrs"]
    assert (attrs["TRUELAT1"], attrs["TRUELAT2"], attrs["MAP_PROJ"], attrs["DX"]) == (30.0, 50.0, 1, 4000.0)
    assert attrs["STAND_LON"] == pytest.approx(-97.9, abs=1e-5) and attrs["BUCKET_J"] == 1.0e9
    ds = xr.open_zarr(hytest)
    assert ds["U"].dims == ("time", "y", "x_stag") and ds["V"].dims == ("time", "y_stag", "x")
    assert meta["T2/.zarray"]["chunks"] == [144, 40, 56] and meta["T2/.zarray"]["compressor"]["id"] == "zstd"
    # stored minutes are XTIME: the hours since 1979-10-01 x 60
    raw = zarr.open_array(hytest / "time", mode="r")[:]
    expected = (ds["time"].values - np.datetime64("1979-10-01T00")) / np.timedelta64(1, "m")
    np.testing.assert_array_equal(raw, expected.astype(np.float32))


@pytest.mark.parametrize("encoding", sorted(store_layouts.TIME_ENCODINGS))
def test_every_time_encoding_decodes_to_the_same_hours(tmp_path, encoding):
    spec = StoreSpec.for_days("2021-01-01", 1, ny=4, nx=5, variables=("T2",), time_encoding=encoding)
    write_store(spec, str(tmp_path / "s.zarr"))
    decoded = xr.open_zarr(tmp_path / "s.zarr")["time"].values
    expected = np.arange(np.datetime64("2021-01-01T00"), np.datetime64("2021-01-02T01"), np.timedelta64(1, "h"))
    np.testing.assert_array_equal(decoded.astype("datetime64[h]"), expected)
    units = _meta(tmp_path / "s.zarr")["time/.zattrs"]["units"]
    assert units.split(" since ")[0] == store_layouts.TIME_ENCODINGS[encoding]["units"].split(" since ")[0]


@pytest.mark.parametrize("fill", ["nan", "null"])
def test_a_lost_chunk_is_absent_and_zarr_reads_it_as_the_fill_value(tmp_path, fill):
    spec = StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7, variables=("T2", "PREC_ACC_NC"), fill_value=fill,
                              defects=(Defect("lost_chunk", "2021-01-01T05"),))
    path = tmp_path / "s.zarr"
    write_store(spec, str(path))
    assert lost_chunk_keys(spec) == ["PREC_ACC_NC/5.0.0"]
    assert not (path / "PREC_ACC_NC" / "5.0.0").exists() and (path / "PREC_ACC_NC" / "4.0.0").exists()
    assert _meta(path)["PREC_ACC_NC/.zarray"]["fill_value"] == ("NaN" if fill == "nan" else None)
    read = xr.open_zarr(path)["PREC_ACC_NC"].values[5]
    assert np.isnan(read).all() if fill == "nan" else (read == 0).all()  # what a reader without the guard sees


def test_a_hytest_lost_chunk_is_one_tile_of_144_hours(tmp_path):
    spec = StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7, layout="hytest", variables=("PREC_ACC_NC",),
                              defects=(Defect("lost_chunk", "2021-01-01T05"),))
    write_store(spec, str(tmp_path / "h.zarr"))
    assert lost_chunk_keys(spec) == ["PREC_ACC_NC/0.0.0"]
    assert not (tmp_path / "h.zarr" / "PREC_ACC_NC" / "0.0.0").exists()


def test_the_surface_fields_reach_where_real_ones_do():
    """Values near the bounds no earlier test data came near: a desert skin above 340 K, SST 0 over land,
    snow at Noah-MP's 2,000 mm cap, a deep afternoon boundary layer, negative canopy evaporation."""
    spec = StoreSpec.for_days("2021-07-01", 1, ny=40, nx=56, variables=(
        "TSK", "TG", "TRAD", "SST", "SSTSK", "PBLH", "SNOW", "LAI", "ACECAN"))
    ds = build_dataset(spec)
    assert ds["TSK"].values.max() > 340.0 and ds["TRAD"].values.max() > 340.0
    sst = ds["SST"].values
    assert (sst == 0).mean() > 0.5 and sst[sst > 0].min() > 270.0  # land is 0, the sea a sea temperature
    assert (ds["SSTSK"].values[sst == 0] == 0).all()
    assert ds["SNOW"].values.max() == 2000.0 and ds["PBLH"].values.max() > 4000.0
    assert ds["ACECAN"].values.min() < 0 < ds["ACECAN"].values.max()
    assert ds["LAI"].values.max() > 4.7  # above Noah-MP's table maximum: dynamic vegetation has no cap
