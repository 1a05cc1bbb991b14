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

Chunks of one hour (the Planetary Computer's layout) are read by one day only and bypass the
cache, as do metadata and coordinates. The store id hashes the store's URL and its
consolidated metadata, so a changed store never serves old chunks.
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
from pathlib import Path
from typing import Any

import numpy as np
from zarr.storage import WrapperStore

from conus404.atomic import TEMP_PREFIX

log = logging.getLogger("conus404.chunk_cache")
CACHE_DIR_NAME = ".chunk_cache"
STATIC = "static"
_LOCK_POLL_S = 0.02


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


class SharedChunkCache(WrapperStore):
    """A zarr store wrapper that serves multi-day and static chunks from the shared disk cache."""

    def __init__(self, store, root: Path, identity: str = "") -> None:
        super().__init__(store)
        self.root = Path(root)
        self.identity = identity
        self.arrays: dict[str, int | None] = {}
        self.store_dir: Path | None = None
        self.times: np.ndarray | None = None  # the store's time axis, once opened
        self.hits = 0
        self._disabled = False

    def _with_store(self, store) -> SharedChunkCache:
        clone = type(self)(store, self.root, self.identity)
        clone.arrays, clone.store_dir, clone.times = self.arrays, self.store_dir, self.times
        return clone

    def set_time_axis(self, times) -> None:
        """The store's timestamps, which say the last day each time chunk serves."""
        self.times = np.asarray(times, dtype="datetime64[h]")

    async def get(self, key: str, prototype, byte_range=None):
        if key == ".zmetadata" and byte_range is None:
            buffer = await self._store.get(key, prototype)
            if buffer is not None:
                self._learn(buffer.to_bytes())
            return buffer
        path = None if byte_range is not None or self._disabled else self.path_for(key)
        if path is None:
            return await self._store.get(key, prototype, byte_range)
        return await self._get_through_cache(key, path, prototype)

    def _learn(self, zmetadata: bytes) -> None:
        try:
            self.arrays = cacheable_arrays(json.loads(zmetadata))
        except (ValueError, KeyError, TypeError, AttributeError):
            self.arrays = {}  # unreadable metadata: zarr will say so; the cache just stays out of the way
        store_id = hashlib.sha256(self.identity.encode() + b"\0" + zmetadata).hexdigest()[:16]
        self.store_dir = self.root / store_id

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


def expiry_folder(day: dt.date) -> str:
    return f"{day:%Y%m%d}"


def prune(root: Path, before: dt.date | None = None) -> int:
    """Delete cached chunks whose last day is before ``before`` (all of them if None). Returns folders removed."""
    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    for store_dir in [p for p in root.iterdir() if p.is_dir()]:
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
