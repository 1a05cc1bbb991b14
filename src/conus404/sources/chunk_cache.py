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

Multi-hour chunks are kept *decoded*: a day's read takes its hours of each tile from the decoded
file with ``pread`` (:mod:`conus404.sources.cached_hours`; zarr, where it reads them, is shown the arrays
a few hours per chunk with no compressor: :mod:`conus404.sources.hour_slabs`) instead of decompressing
whole 144-hour chunks again for each of their six days. So each chunk is fetched and decompressed
once per run. If the cache folder cannot be written,
decoded chunks are held in memory instead (one time step's worth of spatial chunks per array).

Chunks of one hour (the Planetary Computer's layout) are read by one day only and bypass the
cache. The store id hashes the store's URL and its consolidated metadata, so a changed store
never serves old chunks.

Opening the store costs a worker seven sequential requests (zarr.json, .zgroup, .zattrs,
.zmetadata, and the time axis three times). The run's check of the source, which opens the
store once anyway, records those answers in ``.metadata/<url hash>/`` (``record=True``); the
day workers replay them (``replay=True``) and open the store without a request. The record is
made afresh at every run's start and deleted with the cache at its end.

This module holds the folders' layout and their pruning, which the driver and the retry pass use
without importing zarr; the store wrapper zarr reads through is
:class:`conus404.sources.chunk_cache_store.SharedChunkCache`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path

CACHE_DIR_NAME = ".chunk_cache"
STATIC = "static"
METADATA = ".metadata"  # the run's record of the store's metadata and coordinates (not a store id)


def cache_root(data_dir: Path) -> Path:
    return Path(data_dir) / CACHE_DIR_NAME


def snapshot_dir(root: Path, identity: str) -> Path:
    return Path(root) / METADATA / hashlib.sha256(identity.encode()).hexdigest()[:16]


def forget_metadata(root: Path) -> None:
    """Delete the metadata a run's check recorded (a pass that makes no such check must not replay an old one)."""
    shutil.rmtree(Path(root) / METADATA, ignore_errors=True)


def expiry_folder(day: dt.date) -> str:
    return f"{day:%Y%m%d}"


def time_chunk_group(times, index: int, hours: int) -> str | None:
    """The folder of time chunk ``index`` of an array of ``hours`` per chunk: the day of its last
    hour in ``times`` (the store's time axis, numpy datetime64), None past the axis's end."""
    first = index * hours
    if first >= len(times):
        return None
    last = times[min(first + hours, len(times)) - 1]
    return expiry_folder(last.astype("datetime64[D]").item())


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
