"""The shared chunk cache: what it caches, where, that it returns the store's values, that
multi-hour chunks are served decoded a few hours per chunk, that concurrent workers fetch a chunk once,
that it prunes by day, and that a broken cache only costs speed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore, WrapperStore

from conus404.emulator.synthetic_store import StoreSpec, write_store
from conus404.sources import prefetch_spool
from conus404.sources.chunk_cache import forget_metadata, prune
from conus404.sources.chunk_cache_store import SharedChunkCache, cacheable_arrays


class CountingStore(WrapperStore):
    """Counts (and optionally slows) the gets that reach the real store: the 'network'."""

    def __init__(self, store, delay_s: float = 0.0, log: list | None = None) -> None:
        super().__init__(store)
        self.delay_s = delay_s
        self.log = log if log is not None else []

    def _with_store(self, store):
        return type(self)(store, self.delay_s, self.log)

    async def get(self, key, prototype, byte_range=None):
        self.log.append(key)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await self._store.get(key, prototype, byte_range)


@pytest.fixture(scope="module")
def daily_chunked_store(tmp_path_factory) -> Path:
    """Three days plus the closing 00Z, 24-hour time chunks (like HyTEST's, only shorter)."""
    path = tmp_path_factory.mktemp("stores") / "daily-chunks.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 3, ny=12, nx=16, variables=("T2", "PREC_ACC_NC"), time_chunk=24), str(path))
    return path


def open_cached(path: Path, root: Path, log: list):
    store = CountingStore(LocalStore(str(path), read_only=True), log=log)
    cache = SharedChunkCache(store, root, identity=str(path))
    ds = xr.open_zarr(cache, chunks=None)
    cache.set_time_axis(ds.indexes["time"])
    return ds, cache


def data_gets(log: list, array: str) -> list[str]:
    return [k for k in log if k.startswith(f"{array}/") and not k.split("/")[-1].startswith(".")]


def test_cacheable_arrays_are_multi_hour_and_static_ones():
    meta = {"metadata": {
        "T2/.zarray": {"chunks": [144, 175, 175]}, "T2/.zattrs": {"_ARRAY_DIMENSIONS": ["time", "y", "x"]},
        "Q2/.zarray": {"chunks": [1, 1015, 1367]}, "Q2/.zattrs": {"_ARRAY_DIMENSIONS": ["time", "south_north", "west_east"]},
        "lat/.zarray": {"chunks": [175, 175]}, "lat/.zattrs": {"_ARRAY_DIMENSIONS": ["y", "x"]},
        "time/.zarray": {"chunks": [46000]}, "time/.zattrs": {"_ARRAY_DIMENSIONS": ["time"]},
    }}
    assert cacheable_arrays(meta) == {"T2": 144, "lat": None}


def test_second_reader_gets_the_same_values_without_fetching(daily_chunked_store, tmp_path):
    plain = xr.open_zarr(daily_chunked_store, chunks=None)
    first_log, second_log = [], []
    first, _ = open_cached(daily_chunked_store, tmp_path / "cache", first_log)
    second, cache = open_cached(daily_chunked_store, tmp_path / "cache", second_log)
    window = slice(0, 24)
    np.testing.assert_array_equal(first["T2"].isel(time=window).values, plain["T2"].isel(time=window).values)
    np.testing.assert_array_equal(second["T2"].isel(time=window).values, plain["T2"].isel(time=window).values)
    np.testing.assert_array_equal(second["lat"].values, plain["lat"].values)
    assert data_gets(first_log, "T2") == ["T2/0.0.0"]
    assert data_gets(second_log, "T2") == []  # served from disk
    assert cache.hits >= 1


def test_a_spooled_chunk_once_kept_decoded_leaves_the_spool(daily_chunked_store, tmp_path):
    """The prefetcher's raw copy of a multi-hour chunk is read, decoded into the cache and deleted
    (the cache's disk holds the decoded copy only); a worker that needs the raw chunk again (its
    cache unusable) is told to fetch it itself."""
    root = tmp_path / "cache"
    spooled = prefetch_spool.chunk_path(prefetch_spool.spool_root(root), "20210102", "T2/1.0.0")
    claim = prefetch_spool.claim(spooled)  # as the prefetcher fetches it
    prefetch_spool.fulfil(spooled, claim, (daily_chunked_store / "T2" / "1.0.0").read_bytes())
    plain = xr.open_zarr(daily_chunked_store, chunks=None)["T2"].isel(time=slice(24, 48)).values
    log: list = []
    ds, cache = open_cached(daily_chunked_store, root, log)
    np.testing.assert_array_equal(ds["T2"].isel(time=slice(24, 48)).values, plain)
    assert data_gets(log, "T2") == []  # read from the spool, not the store
    assert (cache.store_dir / "20210102" / "T2" / "1.0.0").is_file()
    assert not spooled.exists()
    assert asyncio.run(prefetch_spool.take(spooled)) == (prefetch_spool.FETCH, None)


def test_chunks_are_filed_under_the_last_day_they_serve_and_pruned_by_day(daily_chunked_store, tmp_path):
    root = tmp_path / "cache"
    ds, cache = open_cached(daily_chunked_store, root, [])
    _ = ds["T2"].isel(time=slice(0, 73)).values  # every chunk: 00Z..23Z of each day, and 00Z of the 4th
    _ = ds["lat"].values
    groups = sorted(p.name for p in cache.store_dir.iterdir())
    assert groups == ["20210101", "20210102", "20210103", "20210104", "static"]
    assert (cache.store_dir / "20210102" / "T2" / "1.0.0").is_file()
    prune(root, before=dt.date(2021, 1, 3))
    assert sorted(p.name for p in cache.store_dir.iterdir()) == ["20210103", "20210104", "static"]
    prune(root)
    assert not root.exists()


def test_a_changed_store_at_the_same_url_does_not_reuse_old_chunks(tmp_path):
    """The store id hashes the URL and the consolidated metadata: a store rewritten with another
    extent (as when a host extends its record) gets a fresh cache."""
    first, second = tmp_path / "a.zarr", tmp_path / "b.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=8, nx=8, variables=("T2",), time_chunk=48, seed=1), str(first))
    write_store(StoreSpec.for_days("2021-01-01", 2, ny=8, nx=8, variables=("T2",), time_chunk=48, seed=2), str(second))

    def open_as_same_url(path: Path):
        cache = SharedChunkCache(LocalStore(str(path), read_only=True), tmp_path / "cache", identity="az://noaa/x.zarr")
        ds = xr.open_zarr(cache, chunks=None)
        cache.set_time_axis(ds.indexes["time"])
        return ds, cache

    a, cache_a = open_as_same_url(first)
    _ = a["T2"].isel(time=slice(0, 24)).values
    b, cache_b = open_as_same_url(second)
    assert cache_a.store_dir != cache_b.store_dir
    np.testing.assert_array_equal(b["T2"].isel(time=slice(0, 24)).values,
                                  xr.open_zarr(second, chunks=None)["T2"].isel(time=slice(0, 24)).values)


def test_concurrent_readers_fetch_each_chunk_once(daily_chunked_store, tmp_path):
    """Two readers (as two day workers) asking for the same chunk at once: one fetch, both served."""
    root, log = tmp_path / "cache", []
    prototype = default_buffer_prototype()
    results: dict[int, bytes] = {}
    shown: dict[int, int] = {}

    def reader(index: int) -> None:
        store = CountingStore(LocalStore(str(daily_chunked_store), read_only=True), delay_s=0.3, log=log)
        cache = SharedChunkCache(store, root, identity="same")

        async def run() -> None:
            await cache.get(".zmetadata", prototype)
            cache.set_time_axis(xr.open_zarr(daily_chunked_store, chunks=None).indexes["time"])
            shown[index] = cache.sliced["T2"].shown_hours
            key = f"T2/{24 // shown[index] + 1}.0.0"  # the second shown chunk of the store's chunk 1
            results[index] = (await cache.get(key, prototype)).to_bytes()

        asyncio.run(run())

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert log.count("T2/1.0.0") == 1
    first = 24 + shown[0]
    raw = zarr.open_array(LocalStore(str(daily_chunked_store / "T2"), read_only=True), mode="r")[first:first + shown[0]]
    assert shown[0] == 12 and results[0] == results[1] == np.ascontiguousarray(raw).tobytes()
    assert time.monotonic() - started < 10


def test_an_unusable_cache_folder_costs_speed_not_data(daily_chunked_store, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    log: list = []
    ds, cache = open_cached(daily_chunked_store, blocker, log)
    plain = xr.open_zarr(daily_chunked_store, chunks=None)
    np.testing.assert_array_equal(ds["T2"].isel(time=slice(24, 48)).values, plain["T2"].isel(time=slice(24, 48)).values)
    np.testing.assert_array_equal(ds["T2"].isel(time=slice(24, 48)).values, plain["T2"].isel(time=slice(24, 48)).values)
    assert data_gets(log, "T2").count("T2/1.0.0") == 1  # held decoded in memory instead
    assert blocker.read_text().startswith("a file")


@pytest.mark.parametrize("separator", [".", "/"])
def test_multi_hour_chunks_are_shown_12_hours_per_chunk_and_decoded_once(tmp_path, separator):
    """Against zarr reading the store itself: a store with filters, edge chunks in time and space,
    and either dimension separator reads the same through the cache, over any window; each chunk
    is fetched once, kept decoded (the last time chunk without its padding), and read again by a
    second reader without any fetch."""
    path = tmp_path / "tiled.zarr"
    values = np.random.default_rng(4).normal(280, 5, (100, 12, 16)).astype("float32")
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    t2 = group.create_array("T2", shape=values.shape, chunks=(48, 5, 7), dtype="float32",
                            filters=[numcodecs.Delta("<f4")], compressors=numcodecs.Zstd(level=3),
                            chunk_key_encoding={"name": "v2", "separator": separator})
    t2[:] = values
    t2.attrs["_ARRAY_DIMENSIONS"] = ["time", "south_north", "west_east"]
    time_axis = group.create_array("time", shape=(100,), chunks=(100,), dtype="int64")
    time_axis[:] = np.arange(100)
    time_axis.attrs.update({"_ARRAY_DIMENSIONS": ["time"], "units": "hours since 2021-01-01", "calendar": "standard"})
    lat = group.create_array("lat", shape=(12, 16), chunks=(12, 16), dtype="float32")
    lat[:] = 40.0
    lat.attrs["_ARRAY_DIMENSIONS"] = ["south_north", "west_east"]
    zarr.consolidate_metadata(str(path))
    plain = xr.open_zarr(path, chunks=None)
    first_log: list = []
    first, cache = open_cached(path, tmp_path / "cache", first_log)
    assert first["T2"].encoding["chunks"] == (12, 5, 7) and cache.sliced["T2"].hours == 48
    shown = json.loads(asyncio.run(cache.get("T2/.zarray", default_buffer_prototype())).to_bytes())
    assert shown["chunks"] == [12, 5, 7] and shown["compressor"] is None and shown["filters"] is None
    # one hour, a day of sums (01Z..00Z), across a chunk's end, the short last chunk (96..99), everything
    for window in (slice(5, 6), slice(1, 25), slice(23, 49), slice(95, 100), slice(0, 100)):
        np.testing.assert_array_equal(first["T2"].isel(time=window).values, plain["T2"].isel(time=window).values)
    fetched = data_gets(first_log, "T2")
    assert len(fetched) == len(set(fetched)) == 3 * 3 * 3  # every chunk, once
    second_log: list = []
    second, _ = open_cached(path, tmp_path / "cache", second_log)
    np.testing.assert_array_equal(second["T2"].isel(time=slice(30, 60)).values, values[30:60])
    assert data_gets(second_log, "T2") == []
    raw = zarr.open_array(LocalStore(str(path / "T2"), read_only=True), mode="r")
    stored = next(cache.store_dir.rglob(f"T2/1{separator}2{separator}2"))  # time chunk 1, the corner tile
    decoded = np.frombuffer(stored.read_bytes(), "<f4").reshape(48, 5, 7)  # whole chunks: edges padded
    np.testing.assert_array_equal(decoded[:, :2, :2], raw[48:96, 10:12, 14:16])
    # the last time chunk keeps only the 4 hours inside the array (96..99), not its padding to 48
    last = next(cache.store_dir.rglob(f"T2/2{separator}0{separator}0"))
    assert last.stat().st_size == 4 * 5 * 7 * 4
    np.testing.assert_array_equal(np.frombuffer(last.read_bytes(), "<f4").reshape(4, 5, 7), raw[96:100, 0:5, 0:7])
    np.testing.assert_array_equal(second["T2"].isel(time=slice(90, 100)).values, values[90:100])
    assert data_gets(second_log, "T2") == []


def test_workers_replay_the_metadata_the_runs_check_recorded(daily_chunked_store, tmp_path):
    """The check records what opening the store asked for; a worker then opens it without one
    request for metadata or the time axis, and reads the same values as zarr on the store."""
    root = tmp_path / "cache"
    check_log: list = []
    check = SharedChunkCache(CountingStore(LocalStore(str(daily_chunked_store), read_only=True), log=check_log),
                             root, identity="az://noaa/x.zarr", record=True)
    xr.open_zarr(check, chunks=None)
    assert {".zmetadata", "time/0"} <= set(check_log)
    worker_log: list = []
    worker = SharedChunkCache(CountingStore(LocalStore(str(daily_chunked_store), read_only=True), log=worker_log),
                              root, identity="az://noaa/x.zarr", replay=True)
    ds = xr.open_zarr(worker, chunks=None)
    assert worker_log == []  # zarr.json (absent), .zgroup, .zattrs, .zmetadata, time: all replayed
    worker.set_time_axis(ds.indexes["time"])
    plain = xr.open_zarr(daily_chunked_store, chunks=None)
    np.testing.assert_array_equal(ds.indexes["time"], plain.indexes["time"])
    np.testing.assert_array_equal(ds["T2"].isel(time=slice(24, 48)).values, plain["T2"].isel(time=slice(24, 48)).values)
    assert data_gets(worker_log, "T2") == ["T2/1.0.0"]

    forget_metadata(root)  # as the retry pass does: a worker with no record fetches, and is still right
    late_log: list = []
    late = SharedChunkCache(CountingStore(LocalStore(str(daily_chunked_store), read_only=True), log=late_log),
                            root, identity="az://noaa/x.zarr", replay=True)
    np.testing.assert_array_equal(xr.open_zarr(late, chunks=None).indexes["time"], plain.indexes["time"])
    assert ".zmetadata" in late_log
