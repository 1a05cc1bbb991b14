"""The zarr store wrapper of the shared chunk cache (its folders and rules: :mod:`conus404.sources.chunk_cache`)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from zarr.storage import WrapperStore

from conus404.sources import prefetch_spool
from conus404.sources.chunk_cache import STATIC, snapshot_dir, time_chunk_group
from conus404.sources.hour_slabs import SlicedArray, cut, shown_zarray, sliced_array
from conus404.sources.prefetch_spool import ABSENT  # marks a key the store does not have (e.g. zarr.json in format 2)
from conus404.sources.prefetch_spool import read as _read_if_present
from conus404.sources.prefetch_spool import store as _write

log = logging.getLogger("conus404.chunk_cache")
_LOCK_POLL_S = 0.02
CACHE_FORMAT = b"decoded hour slabs v1"  # in the store id: caches of another format are never mixed


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


def time_chunked_arrays(zmetadata: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """{name: (hours per chunk, chunk key separator)} of the arrays whose first dimension is time."""
    meta = zmetadata.get("metadata", {})
    arrays = {}
    for key, zarray in meta.items():
        name = key[: -len("/.zarray")]
        dims = meta.get(f"{name}/.zattrs", {}).get("_ARRAY_DIMENSIONS") or [None]
        if key.endswith("/.zarray") and dims[0] == "time":
            arrays[name] = (int(zarray["chunks"][0]), zarray.get("dimension_separator") or ".")
    return arrays


def one_dimensional_arrays(zmetadata: dict[str, Any]) -> set[str]:
    meta = zmetadata.get("metadata", {})
    return {key[: -len("/.zarray")] for key, zarray in meta.items()
            if key.endswith("/.zarray") and len(zarray.get("shape", ())) == 1}


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
        self.time_chunks: dict[str, tuple[int, str]] = {}  # arrays with time first: (hours per chunk, key separator)
        self.spool = prefetch_spool.spool_root(self.root)  # the run's prefetcher's, when it has one
        self.presented: dict[str, bytes] = {}  # name -> the .zarray zarr is shown for a sliced array
        self.hits = 0
        self._disabled = False
        self._decoding: dict[str, asyncio.Lock] = {}  # one coroutine per process decodes a given chunk
        self._in_memory: OrderedDict[str, bytes | None] = OrderedDict()  # decoded chunks, when the disk is not usable
        self._paths: dict[str, Path | None] = {}  # path_for's answers: a day asks for each chunk several times

    def _with_store(self, store) -> SharedChunkCache:
        clone = type(self)(store, self.root, self.identity, self.record, self.replay)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_store", "_is_open")})
        return clone

    def set_time_axis(self, times) -> None:
        """The store's timestamps, which say the last day each time chunk serves."""
        self.times = np.asarray(times, dtype="datetime64[h]")
        self._paths = {}

    async def get(self, key: str, prototype, byte_range=None):
        name, _, last = key.rpartition("/")
        if name in self.sliced and last == ".zarray":  # what zarr is shown, not the store's own
            return prototype.buffer.from_bytes(self.presented[name])
        if byte_range is None and (self.record or self.replay) and self._is_metadata(key):
            buffer = await self._metadata(key, prototype)
        elif key == ".zmetadata" and byte_range is None:
            buffer = await self._fetch(key, prototype)
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
        buffer = await self._fetch(key, prototype)
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
        if name in self.sliced and chunk and not chunk.startswith("."):
            shown = await self._shown_chunk(name, chunk)
            if shown is None:
                return None
            return prototype.buffer.from_bytes(shown if byte_range is None else cut(shown, byte_range))
        if byte_range is not None:
            return await self._store.get(key, prototype, byte_range)
        path = None if self._disabled else self.path_for(key)
        if path is None:
            return await self._fetch(key, prototype)
        return await self._get_through_cache(key, path, prototype)

    async def _fetch(self, key: str, prototype):
        """``key`` from the run's prefetch spool if the prefetcher has (or is getting) it, else from the store."""
        path = self._spool_path(key)
        if path is None:
            return await self._store.get(key, prototype)
        found, claim = await prefetch_spool.take(path)
        if found == prefetch_spool.ABSENT_KEY:
            return None
        if found != prefetch_spool.FETCH:
            return prototype.buffer.from_bytes(found)
        try:
            buffer = await self._store.get(key, prototype)
        except BaseException:
            if claim is not None:
                prefetch_spool.release(claim)  # a waiter fetches it itself
            raise
        if claim is not None:
            await asyncio.to_thread(prefetch_spool.fulfil, path, claim, None if buffer is None else buffer.to_bytes())
        return buffer

    def _spool_path(self, key: str) -> Path | None:
        if not self.spool.is_dir():
            return None
        if self._is_metadata(key):
            return prefetch_spool.chunk_path(self.spool, prefetch_spool.METADATA, key)
        name, _, chunk = key.partition("/")
        if not chunk or chunk.startswith("."):
            return None
        if self.arrays.get(name, 0) is None:  # static (lat/lon)
            return prefetch_spool.chunk_path(self.spool, STATIC, key)
        if name not in self.time_chunks or self.times is None:
            return None
        hours, separator = self.time_chunks[name]
        try:
            group = time_chunk_group(self.times, int(chunk.split(separator)[0]), hours)
        except ValueError:
            return None
        return None if group is None else prefetch_spool.chunk_path(self.spool, group, key)

    def _learn(self, zmetadata: bytes) -> bytes:
        """Note what to cache; returns the consolidated metadata zarr is shown (sliced arrays re-chunked)."""
        try:
            consolidated = json.loads(zmetadata)
            self.arrays = cacheable_arrays(consolidated)
            self.coordinates = one_dimensional_arrays(consolidated)
            self.time_chunks = time_chunked_arrays(consolidated)
        except (ValueError, KeyError, TypeError, AttributeError):
            self.arrays, self.coordinates, self.time_chunks = {}, set(), {}  # unreadable metadata: zarr will say so
            return zmetadata
        store_id = hashlib.sha256(CACHE_FORMAT + b"\0" + self.identity.encode() + b"\0" + zmetadata).hexdigest()[:16]
        self.store_dir = self.root / store_id
        self._paths = {}
        self.sliced, self.presented = {}, {}
        meta = consolidated.get("metadata", {})
        for name, hours in self.arrays.items():
            spec = sliced_array(meta[f"{name}/.zarray"]) if hours else None
            if spec is not None:
                self.sliced[name] = spec
                meta[f"{name}/.zarray"] = shown_zarray(meta[f"{name}/.zarray"], spec.shown_hours)
                self.presented[name] = json.dumps(meta[f"{name}/.zarray"]).encode()
        return json.dumps(consolidated).encode() if self.sliced else zmetadata

    async def _shown_chunk(self, name: str, chunk: str) -> bytes | None:
        """One shown chunk (``shown_hours`` of a store chunk), decoded."""
        spec = self.sliced[name]
        parts = chunk.split(spec.separator)
        index, first = divmod(int(parts[0]) * spec.shown_hours, spec.hours)
        key = spec.chunk_key(name, index, parts[1:])
        found = await self.chunk_hours(key, spec, index, first, spec.shown_hours)
        return None if found is None else _padded(found, spec.shown_hours * spec.slab_bytes)

    async def chunk_hours(self, key: str, spec: SlicedArray, index: int, first: int, count: int) -> bytes | None:
        """``count`` hours from hour ``first`` of chunk ``key`` (time chunk ``index``) decoded, none past
        the array's end: from the disk cache, or fetched and decoded once (None: the store lacks it)."""
        start, length = first * spec.slab_bytes, count * spec.slab_bytes
        kept = max(0, min(length, (spec.stored_hours(index) - first) * spec.slab_bytes))  # the array's last chunk is short
        path = None if self._disabled else self.path_for(key)
        if path is not None and (found := _read_range(path, start, kept)) is not None:
            self.hits += 1
            return found
        lock = self._decoding.setdefault(key, asyncio.Lock())
        async with lock:
            # a coroutine that waited here finds the chunk decoded: one range read, not the whole file
            found = None if path is None or self._disabled else _read_range(path, start, kept)
            if found is not None:
                self.hits += 1
            else:
                decoded = await self._decoded_chunk(key, spec, path, index)
                found = None if decoded is None else decoded[start:start + kept]
        if not lock.locked():
            self._decoding.pop(key, None)
        return found

    @property
    def disabled(self) -> bool:
        """The disk cache is unusable here (this process keeps a few decoded chunks in memory instead)."""
        return self._disabled

    async def _decoded_chunk(self, key: str, spec: SlicedArray, path: Path | None, index: int) -> bytes | None:
        """The whole chunk decoded, time chunk ``index`` (None where the store has no such chunk: zarr fills it)."""
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
                        await asyncio.to_thread(_write, path, memoryview(decoded)[:spec.stored_hours(index) * spec.slab_bytes])
                        self._drop_spooled(key)
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

    def _drop_spooled(self, key: str) -> None:
        """Delete the raw copy of a chunk now kept decoded: every later read is of the decoded one (a
        worker without the cache that needs it again finds no copy and fetches it itself)."""
        spooled = self._spool_path(key)
        try:
            if spooled is not None:
                spooled.unlink(missing_ok=True)
        except OSError:
            pass  # it goes with the spool at the run's end

    async def _fetch_decoded(self, key: str, spec: SlicedArray) -> bytes | None:
        from zarr.core.buffer import default_buffer_prototype

        buffer = await self._fetch(key, default_buffer_prototype())
        return None if buffer is None else await asyncio.to_thread(spec.decode, buffer.to_bytes())

    def _keep_in_memory(self, key: str, decoded: bytes | None, spec: SlicedArray) -> None:
        """Without the disk: keep one time step's chunks, so a day's 24 hours decode each chunk once."""
        self._in_memory[key] = decoded
        while len(self._in_memory) > len(spec.tiles()) + 1:
            self._in_memory.popitem(last=False)

    def path_for(self, key: str) -> Path | None:
        """Where ``key`` is cached, or None for keys that bypass the cache."""
        try:
            return self._paths[key]
        except KeyError:
            path = self._paths[key] = self._locate(key)
            return path

    def _locate(self, key: str) -> Path | None:
        name, _, chunk = key.partition("/")
        if self.store_dir is None or name not in self.arrays or not chunk or chunk.startswith("."):
            return None
        hours = self.arrays[name]
        if hours is None:
            return self.store_dir / STATIC / key
        if self.times is None or not len(self.times):
            return None
        try:
            index = int(chunk.replace("/", ".").split(".")[0])
        except ValueError:
            return None
        group = time_chunk_group(self.times, index, hours)
        return None if group is None else self.store_dir / group / key

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
            buffer = await self._fetch(key, prototype)
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
        await prefetch_spool.wait_for_lock(handle.fileno(), fcntl.LOCK_EX, poll_s=_LOCK_POLL_S)  # another worker is fetching it
        return handle

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


def _padded(data: bytes, length: int) -> bytes:
    """A shown chunk past the array's end: zarr wants it whole and reads only the part inside."""
    return data if len(data) == length else data + bytes(length - len(data))


def _write_making_parents(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, data)


