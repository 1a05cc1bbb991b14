"""Hours read straight from the decoded chunk cache: the values zarr reads from the store itself,
over any window; a chunk the store lacks is refused by its key (never NaN or 0); anything it cannot
serve exactly is left to zarr (and still read right)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.storage import LocalStore, WrapperStore

from conus404.core.exceptions import LostChunkError
from conus404.day.day_reader import read_records
from conus404.sources import source
from conus404.sources.cached_hours import ENCODING_KEY, read_hours, remember_cache
from conus404.sources.chunk_cache_store import SharedChunkCache

STEPS, NY, NX = 100, 12, 16


class CountingStore(WrapperStore):
    """Counts the data gets that reach the real store."""

    def __init__(self, store, log: list) -> None:
        super().__init__(store)
        self.log = log

    def _with_store(self, store):
        return type(self)(store, self.log)

    async def get(self, key, prototype, byte_range=None):
        if key.startswith("T2/") and not key.endswith((".zarray", ".zattrs")):
            self.log.append(key)
        return await self._store.get(key, prototype, byte_range)


@pytest.fixture(scope="module")
def tiled_store(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """48-hour chunks (the last one short: 96..99), edge tiles in space, a filter and a compressor;
    one chunk (time chunk 1, tile 0.1) missing from the store."""
    path = tmp_path_factory.mktemp("stores") / "tiled.zarr"
    values = np.random.default_rng(7).normal(280, 5, (STEPS, NY, NX)).astype("float32")
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    t2 = group.create_array("T2", shape=values.shape, chunks=(48, 5, 7), dtype="float32", fill_value=np.nan,
                            filters=[numcodecs.Shuffle(elementsize=4)], compressors=numcodecs.Zstd(level=3))
    t2[:] = values
    t2.attrs["_ARRAY_DIMENSIONS"] = ["time", "south_north", "west_east"]
    scaled = group.create_array("Q2", shape=values.shape, chunks=(48, 5, 7), dtype="int16", fill_value=-1)
    scaled[:] = np.round(values - 270).astype("int16")
    scaled.attrs.update({"_ARRAY_DIMENSIONS": ["time", "south_north", "west_east"], "scale_factor": 0.5})
    time_axis = group.create_array("time", shape=(STEPS,), chunks=(STEPS,), dtype="int64")
    time_axis[:] = np.arange(STEPS)
    time_axis.attrs.update({"_ARRAY_DIMENSIONS": ["time"], "units": "hours since 2021-01-01", "calendar": "standard"})
    for name in ("lat", "lon"):
        coordinate = group.create_array(name, shape=(NY, NX), chunks=(NY, NX), dtype="float32")
        coordinate[:] = 40.0
        coordinate.attrs["_ARRAY_DIMENSIONS"] = ["south_north", "west_east"]
    zarr.consolidate_metadata(str(path))
    (path / "T2" / "1.0.1").unlink()  # hours 48..95 of tile (0, 1)
    return path, values


def open_cached(path: Path, root: Path, log: list):
    cache = SharedChunkCache(CountingStore(LocalStore(str(path), read_only=True), log), root, identity=str(path))
    ds = xr.open_zarr(cache, chunks=None)
    cache.set_time_axis(ds.indexes["time"])
    remember_cache(ds, cache)
    return ds, cache


WINDOWS = [(5, 6), (1, 25), (23, 48), (96, 100), (0, 48)]  # clear of the chunk the store lacks
LOST_WINDOWS = [(40, 60), (95, 100), (0, 100), (48, 49)]


def test_hours_read_from_the_cache_are_the_stores_values_over_any_window(tiled_store, tmp_path):
    path, values = tiled_store
    plain = xr.open_zarr(path, chunks=None)
    log: list = []
    ds, _ = open_cached(path, tmp_path / "cache", log)
    for lo, hi in WINDOWS:  # the first reads fetch and decode; later ones find chunks decoded
        got = read_hours(ds, "T2", np.arange(lo, hi))
        assert got is not None and got.dtype == np.float32 and got.shape == (hi - lo, NY, NX)
        np.testing.assert_array_equal(got, values[lo:hi])
        np.testing.assert_array_equal(got, plain["T2"].isel(time=slice(lo, hi)).values)  # zarr itself
    assert len(log) == len(set(log)) == 2 * 3 * 3  # every chunk of time chunks 0 and 2 asked for once
    for lo, hi in LOST_WINDOWS:  # refused by the key, with the hours it holds
        with pytest.raises(LostChunkError) as lost:
            read_hours(ds, "T2", np.arange(lo, hi))
        assert lost.value.key == "T2/1.0.1" and lost.value.positions == range(max(lo, 48), min(hi, 96))
    second_log: list = []
    second, _ = open_cached(path, tmp_path / "cache", second_log)
    np.testing.assert_array_equal(read_hours(second, "T2", np.arange(0, 48)), values[0:48])
    assert second_log == []  # all from the decoded cache
    mixed, _ = open_cached(path, tmp_path / "other", [])  # zarr and direct reads share one decoded cache
    np.testing.assert_array_equal(mixed["T2"].isel(time=slice(10, 20)).values, values[10:20])
    np.testing.assert_array_equal(read_hours(mixed, "T2", np.arange(0, 48)), values[0:48])


def test_what_the_cache_cannot_serve_exactly_is_left_to_zarr(tiled_store, tmp_path):
    path, values = tiled_store
    ds, cache = open_cached(path, tmp_path / "cache", [])
    assert read_hours(ds, "Q2", np.arange(0, 24)) is None  # scaled integers: xarray decodes them
    assert read_hours(ds, "T2", np.array([0, 2, 4])) is None  # not consecutive hours
    assert read_hours(ds, "T2", np.arange(90, 101)) is None  # past the array's end
    assert read_hours(ds.isel(south_north=slice(0, 4)), "T2", np.arange(0, 24)) is None  # not the whole array
    plain = xr.open_zarr(path, chunks=None)
    np.testing.assert_array_equal(read_records(ds, "Q2", np.arange(0, 24)), plain["Q2"].isel(time=slice(0, 24)).values)
    np.testing.assert_array_equal(read_records(ds, "T2", np.array([0, 2, 4])), values[[0, 2, 4]])
    cache._disabled = True  # an unusable cache folder: zarr's reads keep a few chunks in memory instead
    assert read_hours(ds, "T2", np.arange(0, 24)) is None
    np.testing.assert_array_equal(read_records(ds, "T2", np.arange(0, 24)), values[0:24])


def test_the_source_opened_through_the_cache_reads_from_it(tiled_store, tmp_path):
    path, values = tiled_store
    asset = source.SignedAsset(str(path), {})
    ds = source.open_dataset(asset, chunk_cache_dir=tmp_path / "cache", record_metadata=True, chunks=None)
    assert isinstance(ds.encoding[ENCODING_KEY], SharedChunkCache)
    got = read_hours(source.normalise(ds), "T2", np.arange(20, 44))  # renamed and trimmed: still found
    assert got is not None
    np.testing.assert_array_equal(got, values[20:44])
    assert ENCODING_KEY not in source.open_dataset(asset, chunks=None).encoding  # no cache, nothing to find


def test_concurrent_readers_decode_each_chunk_once(tiled_store, tmp_path):
    path, values = tiled_store
    log: list = []
    ds, cache = open_cached(path, tmp_path / "cache", log)

    async def both():
        spec = cache.sliced["T2"]
        return await asyncio.gather(*(cache.chunk_hours("T2/0.1.1", spec, 0, 0, 48) for _ in range(4)))

    answers = asyncio.run(both())
    assert len(set(answers)) == 1 and log == ["T2/0.1.1"]  # one fetch and decode for four readers
    np.testing.assert_array_equal(np.frombuffer(answers[0], "<f4").reshape(48, 5, 7), values[0:48, 5:10, 7:14])
