"""A chunk cache on local disk, shared by a run's day workers, for chunks that several days read.

HyTEST's layout keeps 144 hours per chunk, so each of six consecutive days would fetch the same
chunks again, and every day reads the static lat/lon. Such chunks are kept under
``<data_dir>/.chunk_cache/<store id>/<expiry day>/<key>``:

- written through a temporary sibling and renamed, so a reader sees a whole chunk or none;
- fetched by one worker at a time: a worker holds an ``flock`` on ``<file>.lock`` while it
  fetches (the kernel drops it if the worker dies); the others wait, then read the file;
- grouped by the last UTC day whose hour windows touch them, so the scheduler deletes a group
  as soon as every day up to it has finished (:func:`prune`), and the whole cache
  when the run ends. Static arrays sit in ``static/`` until then.

Multi-hour chunks are kept *decoded*, and zarr is shown those arrays re-chunked by the hour
(``chunks[0] = 1``, no compressor): a day's read takes its 24 hour slabs from the decoded file
with ``pread`` instead of decompressing whole 144-hour chunks again for each of their six days.
So each chunk is fetched and decompressed once per run. If the cache folder cannot be written,
decoded chunks are held in memory instead (one time step's worth of spatial chunks per array).

Chunks of one hour (the Planetary Computer's layout) are read by one day only and bypass the
cache. The store id hashes the store's URL and its consolidated metadata, so a changed store
never serves old chunks.

Opening the store costs a worker seven sequential requests (zarr.json, .zgroup, .zattrs,
.zmetadata, and the time axis three times). The run's check of the source, which opens the
store once anyway, records those answers in ``.metadata/<url hash>/`` (``record=True``); the
day workers replay them (``replay=True``) and open the store without a request. The record is
made afresh at every run's start and deleted with the cache at its end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from zarr.storage import WrapperStore

from conus404.atomic import TEMP_PREFIX
from conus404.hour_slabs import SlicedArray, cut, hourly_zarray, sliced_array

log = logging.getLogger("conus404.chunk_cache")
CACHE_DIR_NAME = ".chunk_cache"
STATIC = "static"
_LOCK_POLL_S = 0.02
METADATA = ".metadata"  # the run's record of the store's metadata and coordinates (not a store id)
ABSENT = ".absent"  # marks a metadata key the store does not have (e.g. zarr.json in a format-2 store)
CACHE_FORMAT = b"decoded hour slabs v1"  # in the store id: caches of another format are never mixed


def cache_root(data_dir: Path) -> Path:
    return Path(data_dir) / CACHE_DIR_NAME


def cacheable_arrays(zmetadata: dict[str, Any]) -> dict[str, int | None]:
    """Arrays worth caching: {name: hours per chunk} for multi-hour chunks, {name: None} for static ones."""
    meta = zmetadata.get("metadata", {})
    arrays: dict[str, int | None] = {}
    for key, zarray in meta.items():
        if not key.endswith("/.zarray"):
            continue
        name = key[: -len("/.zarray")]
        dims = meta.get(f"{name}/.zattrs", {}).get("_ARRAY_DIMENSIONS", [])
        if len(dims) < 2:  # coordinates (time, x, y): small, and needed fresh
            continue
        if dims[0] == "time" and zarray["chunks"][0] > 1:
            arrays[name] = int(zarray["chunks"][0])
        elif "time" not in dims:
            arrays[name] = None
    return arrays


def one_dimensional_arrays(zmetadata: dict[str, Any]) -> set[str]:
    meta = zmetadata.get("metadata", {})
    return {key[: -len("/.zarray")] for key, zarray in meta.items()
            if key.endswith("/.zarray") and len(zarray.get("shape", ())) == 1}


def snapshot_dir(root: Path, identity: str) -> Path:
    return Path(root) / METADATA / hashlib.sha256(identity.encode()).hexdigest()[:16]


class SharedChunkCache(WrapperStore):
    """A zarr store wrapper that serves multi-day and static chunks from the shared disk cache."""

    def __init__(self, store, root: Path, identity: str = "", record: bool = False, replay: bool = False) -> None:
        super().__init__(store)
        self.root = Path(root)
        self.identity = identity
        self.record, self.replay = record, replay
        self.arrays: dict[str, int | None] = {}
        self.store_dir: Path | None = None
        self.times: np.ndarray | None = None  # the store's time axis, once opened
        self.sliced: dict[str, SlicedArray] = {}
        self.coordinates: set[str] = set()  # 1-D arrays: recorded with the metadata
        self.presented: dict[str, bytes] = {}  # name -> the .zarray zarr is shown for a sliced array
        self.hits = 0
        self._disabled = False
        self._decoding: dict[str, asyncio.Lock] = {}  # one coroutine per process decodes a given chunk
        self._in_memory: OrderedDict[str, bytes | None] = OrderedDict()  # decoded chunks, when the disk is not usable

    def _with_store(self, store) -> SharedChunkCache:
        clone = type(self)(store, self.root, self.identity, self.record, self.replay)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_store", "_is_open")})
        return clone

    def set_time_axis(self, times) -> None:
        """The store's timestamps, which say the last day each time chunk serves."""
        self.times = np.asarray(times, dtype="datetime64[h]")

    async def get(self, key: str, prototype, byte_range=None):
        if byte_range is None and (self.record or self.replay) and self._is_metadata(key):
            buffer = await self._metadata(key, prototype)
        elif key == ".zmetadata" and byte_range is None:
            buffer = await self._store.get(key, prototype)
        else:
            return await self._get_data(key, prototype, byte_range)
        if key == ".zmetadata" and buffer is not None:
            buffer = prototype.buffer.from_bytes(self._learn(buffer.to_bytes()))
        return buffer

    def _is_metadata(self, key: str) -> bool:
        """Metadata documents, and the chunks of 1-D arrays (the time axis) once the metadata is known."""
        name, _, last = key.rpartition("/")
        if last.startswith(".") or last == "zarr.json":
            return True
        return bool(self.store_dir) and name in self.coordinates

    async def _metadata(self, key: str, prototype):
        """``key`` as the run's check recorded it, or fetched (and recorded, when this is that check)."""
        path = snapshot_dir(self.root, self.identity) / key
        if self.replay and not self.record:
            if (found := await asyncio.to_thread(_read_if_present, path)) is not None:
                return prototype.buffer.from_bytes(found)
            if path.with_name(path.name + ABSENT).exists():
                return None
        buffer = await self._store.get(key, prototype)
        if self.record:
            try:
                if buffer is None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.unlink(missing_ok=True)
                    path.with_name(path.name + ABSENT).touch()
                else:
                    path.with_name(path.name + ABSENT).unlink(missing_ok=True)
                    await asyncio.to_thread(_write_making_parents, path, buffer.to_bytes())
            except OSError as exc:  # the workers will simply ask the store themselves
                log.info("the store's metadata is not recorded for the day workers: %s", exc)
                self.record = False
        return buffer

    async def _get_data(self, key: str, prototype, byte_range):
        name, _, chunk = key.partition("/")
        if name in self.sliced and chunk == ".zarray" and byte_range is None:
            return prototype.buffer.from_bytes(self.presented[name])
        if name in self.sliced and chunk and not chunk.startswith("."):
            slab = await self._hour_slab(name, chunk)
            if slab is None:
                return None
            return prototype.buffer.from_bytes(slab if byte_range is None else cut(slab, byte_range))
        path = None if byte_range is not None or self._disabled else self.path_for(key)
        if path is None:
            return await self._store.get(key, prototype, byte_range)
        return await self._get_through_cache(key, path, prototype)

    def _learn(self, zmetadata: bytes) -> bytes:
        """Note what to cache; returns the consolidated metadata zarr is shown (sliced arrays re-chunked)."""
        try:
            consolidated = json.loads(zmetadata)
            self.arrays = cacheable_arrays(consolidated)
            self.coordinates = one_dimensional_arrays(consolidated)
        except (ValueError, KeyError, TypeError, AttributeError):
            self.arrays, self.coordinates = {}, set()  # unreadable metadata: zarr will say so
            return zmetadata
        store_id = hashlib.sha256(CACHE_FORMAT + b"\0" + self.identity.encode() + b"\0" + zmetadata).hexdigest()[:16]
        self.store_dir = self.root / store_id
        self.sliced, self.presented = {}, {}
        meta = consolidated.get("metadata", {})
        for name, hours in self.arrays.items():
            spec = sliced_array(meta[f"{name}/.zarray"]) if hours else None
            if spec is not None:
                self.sliced[name] = spec
                meta[f"{name}/.zarray"] = hourly_zarray(meta[f"{name}/.zarray"])
                self.presented[name] = json.dumps(meta[f"{name}/.zarray"]).encode()
        return json.dumps(consolidated).encode() if self.sliced else zmetadata

    async def _hour_slab(self, name: str, chunk: str) -> bytes | None:
        """One hour of one chunk, decoded: from the disk cache, or fetched and decoded once."""
        spec = self.sliced[name]
        parts = chunk.split(spec.separator)
        index, slab = divmod(int(parts[0]), spec.hours)
        key = f"{name}/" + spec.separator.join([str(index), *parts[1:]])
        start = slab * spec.slab_bytes
        path = None if self._disabled else self.path_for(key)
        if path is not None and (found := _read_range(path, start, spec.slab_bytes)) is not None:
            self.hits += 1
            return found
        lock = self._decoding.setdefault(key, asyncio.Lock())
        async with lock:
            decoded = await self._decoded_chunk(key, spec, path)
        if not lock.locked():
            self._decoding.pop(key, None)
        return None if decoded is None else decoded[start:start + spec.slab_bytes]

    async def _decoded_chunk(self, key: str, spec: SlicedArray, path: Path | None) -> bytes | None:
        """The whole chunk decoded (None where the store has no such chunk: zarr fills it)."""
        if key in self._in_memory:
            self._in_memory.move_to_end(key)
            return self._in_memory[key]
        if path is not None and not self._disabled:
            if (found := await asyncio.to_thread(_read_if_present, path)) is not None:
                self.hits += 1  # a sibling coroutine or another worker decoded it meanwhile
                return found
            handle = await self._lock(path)
            try:
                if handle is not None and (found := await asyncio.to_thread(_read_if_present, path)) is not None:
                    self.hits += 1
                    return found
                decoded = await self._fetch_decoded(key, spec)
                if decoded is not None and handle is not None:
                    try:
                        await asyncio.to_thread(_write, path, decoded)
                        return decoded
                    except OSError as exc:
                        self._give_up(exc)
            finally:
                if handle is not None:
                    handle.close()
        else:
            decoded = await self._fetch_decoded(key, spec)
        self._keep_in_memory(key, decoded, spec)
        return decoded

    async def _fetch_decoded(self, key: str, spec: SlicedArray) -> bytes | None:
        from zarr.core.buffer import default_buffer_prototype

        buffer = await self._store.get(key, default_buffer_prototype())
        return None if buffer is None else await asyncio.to_thread(spec.decode, buffer.to_bytes())

    def _keep_in_memory(self, key: str, decoded: bytes | None, spec: SlicedArray) -> None:
        """Without the disk: keep one time step's chunks, so a day's 24 hours decode each chunk once."""
        self._in_memory[key] = decoded
        while len(self._in_memory) > spec.spatial_chunks + 1:
            self._in_memory.popitem(last=False)

    def path_for(self, key: str) -> Path | None:
        """Where ``key`` is cached, or None for keys that bypass the cache."""
        name, _, chunk = key.partition("/")
        if self.store_dir is None or name not in self.arrays or not chunk or chunk.startswith("."):
            return None
        hours = self.arrays[name]
        if hours is None:
            return self.store_dir / STATIC / key
        if self.times is None or not len(self.times):
            return None
        try:
            first = int(chunk.replace("/", ".").split(".")[0]) * hours
        except ValueError:
            return None
        if first >= len(self.times):
            return None
        last = self.times[min(first + hours, len(self.times)) - 1]
        return self.store_dir / expiry_folder(last.astype("datetime64[D]").item()) / key

    async def _get_through_cache(self, key: str, path: Path, prototype):
        cached = await asyncio.to_thread(_read_if_present, path)
        if cached is not None:
            self.hits += 1
            return prototype.buffer.from_bytes(cached)
        handle = await self._lock(path)
        try:
            if handle is not None:
                cached = await asyncio.to_thread(_read_if_present, path)  # another worker fetched it meanwhile
                if cached is not None:
                    self.hits += 1
                    return prototype.buffer.from_bytes(cached)
            buffer = await self._store.get(key, prototype)
            if buffer is not None and handle is not None:
                try:
                    await asyncio.to_thread(_write, path, buffer.to_bytes())
                except OSError as exc:
                    self._give_up(exc)
            return buffer
        finally:
            if handle is not None:
                handle.close()  # releases the flock

    async def _lock(self, path: Path):
        """An open lock file holding an exclusive flock on ``path``'s lock, or None if the cache is unusable."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_name(path.name + ".lock"), "a")
        except OSError as exc:
            self._give_up(exc)
            return None
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except BlockingIOError:
                await asyncio.sleep(_LOCK_POLL_S)  # another worker is fetching this chunk

    def _give_up(self, exc: OSError) -> None:
        if not self._disabled:
            note = " (disk full)" if exc.errno == errno.ENOSPC else ""
            log.warning("chunk cache off for this worker%s: %s", note, exc)
        self._disabled = True


def _read_range(path: Path, start: int, length: int) -> bytes | None:
    """``length`` bytes at ``start`` (page-cache reads: done in the event loop), or None if absent."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, length, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == length else None


def _read_if_present(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # absent, or the cache folder is unusable: fetch instead
        return None


def _write(path: Path, data: bytes) -> None:
    """Temporary sibling, then rename: readers never see part of a chunk. No fsync: a chunk lost
    to a crash is simply fetched again."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def forget_metadata(root: Path) -> None:
    """Delete the metadata a run's check recorded (a pass that makes no such check must not replay an old one)."""
    shutil.rmtree(Path(root) / METADATA, ignore_errors=True)


def _write_making_parents(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, data)


def expiry_folder(day: dt.date) -> str:
    return f"{day:%Y%m%d}"


def prune(root: Path, before: dt.date | None = None) -> int:
    """Delete cached chunks whose last day is before ``before`` (all of them if None). Returns folders removed."""
    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    for store_dir in [p for p in root.iterdir() if p.is_dir() and (before is None or p.name != METADATA)]:
        for group in [p for p in store_dir.iterdir() if p.is_dir()]:
            if before is None or (group.name != STATIC and group.name < expiry_folder(before)):
                shutil.rmtree(group, ignore_errors=True)
                removed += 1
        if before is None:
            shutil.rmtree(store_dir, ignore_errors=True)
    if before is None:
        try:
            os.rmdir(root)
        except OSError:
            pass
    return removed
