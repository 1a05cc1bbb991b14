"""Hours decoded straight from a local store's chunk files: the values written into the store, over
any window; a chunk file the store lacks is refused by its key (never NaN or 0); whatever it cannot
serve exactly is left to zarr (and still read right)."""

from __future__ import annotations

from pathlib import Path

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr

from conus404.core.exceptions import LostChunkError, MissingDataError
from conus404.day.day_reader import read_records
from conus404.sources import source
from conus404.sources.local_hours import ENCODING_KEY, read_hours, remember_local_store

STEPS, NY, NX = 60, 12, 16


def _array(group, name: str, values: np.ndarray, chunks, **kwargs):
    array = group.create_array(name, shape=values.shape, chunks=chunks, dtype=values.dtype, **kwargs)
    array[:] = values
    array.attrs["_ARRAY_DIMENSIONS"] = ["time", "south_north", "west_east"][-values.ndim:]
    return array


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """One-hour chunks: T2 whole-grid Blosc (decoded in place), TD2 in edge tiles with a filter and
    Zstd, Q2 scaled integers, SNOW in 12-hour chunks; T2's hour 7 and TD2's hour 3 tile (0, 1) missing."""
    path = tmp_path_factory.mktemp("stores") / "local.zarr"
    rng = np.random.default_rng(11)
    values = {name: rng.normal(280, 5, (STEPS, NY, NX)).astype("float32") for name in ("T2", "TD2", "SNOW")}
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    _array(group, "T2", values["T2"], (1, NY, NX), fill_value=np.nan,
           compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE))
    _array(group, "TD2", values["TD2"], (1, 5, 7), fill_value=np.nan,
           filters=[numcodecs.Shuffle(elementsize=4)], compressors=numcodecs.Zstd(level=3))
    _array(group, "SNOW", values["SNOW"], (12, NY, NX), fill_value=np.nan, compressors=numcodecs.Zlib(level=1))
    values["Q2"] = np.round(values["T2"] - 270).astype("int16")
    scaled = _array(group, "Q2", values["Q2"], (1, NY, NX), fill_value=-1)
    scaled.attrs["scale_factor"] = 0.5
    time_axis = group.create_array("time", shape=(STEPS,), chunks=(STEPS,), dtype="int64")
    time_axis[:] = np.arange(STEPS)
    time_axis.attrs.update({"_ARRAY_DIMENSIONS": ["time"], "units": "hours since 2021-01-01", "calendar": "standard"})
    for name in ("lat", "lon"):
        _array(group, name, np.full((NY, NX), 40.0, "float32"), (NY, NX))
    zarr.consolidate_metadata(str(path))
    (path / "T2" / "7.0.0").unlink()
    (path / "TD2" / "3.0.1").unlink()
    return path, values


LOST = {"T2": (7, "T2/7.0.0"), "TD2": (3, "TD2/3.0.1")}


def opened(path: Path):
    ds = xr.open_zarr(str(path), chunks=None)
    remember_local_store(ds, path)
    return ds


WINDOWS = [(0, 1), (0, 24), (3, 27), (6, 9), (36, 60)]


@pytest.mark.parametrize("name", ["T2", "TD2"])
@pytest.mark.parametrize("window", WINDOWS)
def test_hours_decoded_from_the_files_are_the_values_written(local_store, name, window):
    path, values = local_store
    first, last = window
    hour, key = LOST[name]
    if first <= hour < last:  # a chunk file the store lacks: refused by its key, whatever zarr would fill
        with pytest.raises(LostChunkError) as lost:
            read_hours(opened(path), name, np.arange(first, last))
        assert lost.value.key == key and hour in lost.value.positions
        return
    got = read_hours(opened(path), name, np.arange(first, last))
    assert got is not None, "a one-hour float array with NaN fill is decoded here"
    assert got.dtype == np.float32 and got.shape == (last - first, NY, NX)
    np.testing.assert_array_equal(got, values[name][first:last])


def test_what_it_does_not_serve_is_left_to_zarr_and_still_read_right(local_store):
    path, values = local_store
    ds = opened(path)
    assert read_hours(ds, "Q2", np.arange(0, 24)) is None  # a scale factor to apply
    assert read_hours(ds, "SNOW", np.arange(0, 24)) is None  # multi-hour chunks: the decoded cache's or zarr's
    assert read_hours(ds, "T2", np.array([0, 2, 4])) is None  # not consecutive
    assert read_hours(ds, "T2", np.arange(50, STEPS + 1)) is None  # past the end: zarr says what is wrong
    assert read_hours(ds.isel(south_north=slice(0, 6)), "T2", np.arange(0, 24)) is None  # a window of the grid
    assert read_hours(xr.open_zarr(str(path), chunks=None), "T2", np.arange(0, 24)) is None  # not remembered
    np.testing.assert_array_equal(read_records(ds, "SNOW", np.arange(5, 29)), values["SNOW"][5:29])
    stored = values["Q2"][0:3]
    np.testing.assert_array_equal(read_records(ds, "Q2", np.arange(0, 3)), np.where(stored == -1, np.nan, stored * 0.5))


def test_a_local_source_is_opened_with_its_folder_remembered_and_read_through_it(local_store, monkeypatch):
    path, values = local_store
    ds = source.open_dataset(source.SignedAsset(href=str(path), storage_options={}), chunks=None)
    assert ENCODING_KEY in ds.encoding
    served = []

    def spy(ds, name, positions):
        got = read_hours(ds, name, positions)
        served.append(got is not None)
        return got

    monkeypatch.setattr("conus404.day.day_reader.read_local_hours", spy)
    np.testing.assert_array_equal(read_records(ds, "TD2", np.arange(4, 28)), values["TD2"][4:28])
    assert served == [True], "the day's records came from the chunk files, not through zarr"
    with pytest.raises(MissingDataError, match=r"TD2 at 2021-01-01T03Z.*lacks its chunk TD2/3.0.1"):
        read_records(ds, "TD2", np.arange(0, 24))  # the day's error names the variable and the hour
