"""The daily fields written as ready-made chunks: the file netCDF4 reads back holds what HDF5
itself would have written (values, filters, chunking, attributes), the chunks are HDF5's shuffle
then deflate, and whatever is not one such chunk is left to HDF5."""

from __future__ import annotations

import datetime as dt
import zlib

import netCDF4
import numpy as np
import pytest

from conus404.core.grid import grid_latlon
from conus404.outputs import daily_file
from conus404.outputs.field_chunks import shuffled_deflate

DAY = dt.date(2021, 1, 1)
NY, NX = 30, 40


def _dataset():
    lat, lon = grid_latlon(NY, NX)
    rng = np.random.default_rng(3)
    t2 = (280 + 5 * np.sin(np.arange(NX) / 7) + rng.normal(0, 0.2, (NY, NX))).astype(np.float32)
    t2[4:9, 10:20] = np.nan  # a gap: NaN, the fields' fill value
    rain = np.where(rng.random((NY, NX)) < 0.6, 0, rng.gamma(0.5, 2, (NY, NX))).astype(np.float32)
    soil = rng.normal(290, 3, (4, NY, NX)).astype(np.float32)
    fields = [daily_file.DailyField("T2", t2, {"units": "K", "cell_methods": "time: mean"}),
              daily_file.DailyField("PREC_ACC_NC", rain, {"units": "mm", "cell_methods": "time: sum"}),
              daily_file.DailyField("TSLB", soil, {"units": "K", "cell_methods": "time: mean"}, level_dim="soil_layers_stag")]
    return daily_file.build_dataset(DAY, lat, lon, fields, {"source": "test"})


def _unshuffled(data: bytes, itemsize: int) -> bytes:
    """HDF5's shuffle undone, written out independently: byte planes back to values."""
    planes = np.frombuffer(data, np.uint8).reshape(itemsize, -1)
    return planes.T.copy().tobytes()


@pytest.mark.parametrize("level", [1, 4])
def test_a_chunk_is_hdf5s_shuffle_then_deflate(level):
    values = _dataset()["TSLB"].values
    chunk = shuffled_deflate(values, level)
    assert _unshuffled(zlib.decompress(chunk), 4) == values.tobytes()


def _contents(path):
    """Every variable's values (as stored), attributes, filters and chunking, read by netCDF4."""
    with netCDF4.Dataset(path) as nc:
        out = {}
        for name, var in nc.variables.items():
            var.set_auto_maskandscale(False)
            out[name] = (np.asarray(var[...]), {k: str(var.getncattr(k)) for k in var.ncattrs()},
                         {k: v for k, v in (var.filters() or {}).items() if v}, var.chunking())
        return out, {k: str(nc.getncattr(k)) for k in nc.ncattrs()}


@pytest.mark.parametrize("level", [1, 0, 5])
def test_the_published_file_holds_what_hdf5_itself_would_have_written(tmp_path, level):
    ds = _dataset()
    path = daily_file.daily_path(tmp_path, DAY)
    daily_file.publish(ds, path, level=level)
    reference = tmp_path / "by_hdf5.nc"
    ds.to_netcdf(reference, engine="netcdf4", format="NETCDF4", encoding=daily_file._encoding(ds, level))
    (variables, attrs), (expected, expected_attrs) = _contents(path), _contents(reference)
    assert attrs == expected_attrs and variables.keys() == expected.keys()
    for name, (values, var_attrs, filters, chunking) in expected.items():
        got = variables[name]
        np.testing.assert_array_equal(got[0], values, err_msg=name)  # NaN where NaN
        assert got[1:] == (var_attrs, filters, chunking), name
    if level:
        assert variables["T2"][2] == {"zlib": True, "shuffle": True, "complevel": level}
        assert variables["T2"][3] == [1, NY, NX] and variables["TSLB"][3] == [1, 4, NY, NX]
    assert daily_file.verify(path, DAY, ["T2", "PREC_ACC_NC", "TSLB"]) is None


def test_the_fields_chunks_are_the_ones_made_here(tmp_path):
    import h5py

    ds = _dataset()
    path = daily_file.daily_path(tmp_path, DAY)
    daily_file.publish(ds, path)
    with h5py.File(path, "r") as f:
        for name in ("T2", "PREC_ACC_NC", "TSLB"):
            _mask, stored = f[name].id.read_direct_chunk((0,) * f[name].ndim)
            assert stored == shuffled_deflate(ds[name].values, 1), f"{name} was compressed by HDF5, not here"


def test_a_field_not_stored_as_one_chunk_is_left_to_hdf5(tmp_path):
    ds = _dataset()
    encoding = daily_file._encoding(ds, 1)
    encoding["T2"]["chunksizes"] = (1, NY // 2, NX)  # two chunks: not written aside
    path = tmp_path / "two_chunks.nc"
    daily_file.write_netcdf4(ds, path, encoding, chunks_written_aside=["T2", "PREC_ACC_NC"])
    with netCDF4.Dataset(path) as nc:
        assert nc["T2"].chunking() == [1, NY // 2, NX]
        np.testing.assert_array_equal(nc["T2"][...].filled(np.nan), ds["T2"].values)
        np.testing.assert_array_equal(nc["PREC_ACC_NC"][...].filled(np.nan), ds["PREC_ACC_NC"].values)


def test_without_h5py_the_fields_are_still_written_by_hdf5(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # import h5py now fails
    ds = _dataset()
    path = daily_file.daily_path(tmp_path, DAY)
    daily_file.publish(ds, path)
    assert daily_file.verify(path, DAY, ["T2", "PREC_ACC_NC", "TSLB"]) is None
    with netCDF4.Dataset(path) as nc:
        np.testing.assert_array_equal(nc["T2"][...].filled(np.nan)[0], ds["T2"].values[0])
