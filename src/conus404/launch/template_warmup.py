"""What the launch template prepares before it forks day processes, so that a day starts warm.

- **Imports.** The modules every day touches are imported before the template says it is ready;
  the remote-storage stack (Azure, S3, HTTP: 0.4 s of imports), which a run from a local
  copy of the store never touches, only when a launcher asks for it (``Settings.touches_remote_storage``),
  before the template forks that launcher's next process. Dask, which no day uses, is hidden
  (``HIDDEN_FROM_DAYS``): seeing it installed, xarray imports and consults it in every day.
- **Memory.** A day process is new each day, so every page it touches first costs a page fault.
  glibc's defaults make that worse for chunked reads: each decode thread gets its own arena, and
  freed multi-megabyte buffers go back to the kernel, so the next chunk's buffer faults again.
  ``MALLOC_TUNING`` keeps freed memory for reuse (on the benchmark's local full-grid run: 0.86 M
  page faults for 10 days before). Huge pages for the heap (``glibc.malloc.hugetlb=1``) cut the
  faults to 0.12 M but cost CPU: each run's first day processes read for 0.6-1.3 s against
  0.26-0.57 s without them, and a 10-day run took 8.9-10.4 CPU-seconds against 8.5-8.8 (perf stat,
  4 runs each), so not.
- **CPU priority.** Every day process (forked or cold: ``worker_cli.main``) runs at niceness
  +``DAY_NICENESS``: a day's decoding, aggregating and compressing yield the CPU to the run's I/O
  (the prefetcher, the driver, the template's imports and the check at the run's start), so on a
  machine with as many cores as day processes the link is not left idle while they compute. 6-day PC runs at 40 ms / 500 Mbit/s through the emulator (which
  shares the 2 cores, so its serving gains too): 21.0-22.1 s at niceness 0, 19.5-21.0 s at 10
  (four runs each, alternating).
- **Garbage collector.** What the template holds is frozen (``gc.freeze``) before forking: a
  child's collections then never walk, and so never copy, the template's objects.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import threading

CORE = (  # what a day imports; importing it once is the whole point
    "numpy", "pandas", "xarray", "zarr", "numcodecs", "netCDF4", "cftime", "fsspec",
    "h5py", "isal.isal_zlib",  # conus404.outputs.field_chunks: the daily fields' chunks
    "azure.core.exceptions",  # the worker's reads and opens catch storage's refusals
    "multiprocessing.synchronize",  # numcodecs' Blosc takes a multiprocessing lock in zarr's decode threads
    # not distributed: only xarray's to_netcdf imports it, and daily_file.write_netcdf4 avoids that
    "conus404.launch.worker_cli", "conus404.day.worker", "conus404.sources.source", "conus404.outputs.daily_file", "conus404.outputs.hourly_file",
    "conus404.sources.chunk_cache", "conus404.sources.chunk_cache_store", "conus404.sources.hour_slabs", "conus404.outputs.remote_output",
    "conus404.core.subset",
)
REMOTE = (  # only a day that reads or writes remote storage imports these
    "adlfs", "s3fs", "azure.storage.blob.aio", "aiohttp", "conus404.sources.storage_retry",
)
# Not pystac_client and planetary_computer (0.2 s): the driver (or its prefetcher) signs and hands
# the asset to the check and the days, so only a process that must sign again imports them.
MALLOC_TUNING = {  # environment of the template process (glibc reads it at start); a user's own values win
    "MALLOC_ARENA_MAX": "1",  # one heap for every thread: a freed chunk buffer is the next chunk's
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),  # chunk-sized buffers from the heap, not fresh mappings
    "MALLOC_TRIM_THRESHOLD_": str(4 << 30),  # and the heap not handed back between chunks
}


# Installed for the "dask" executor and the run's Zarr store, never used by a day, which reads numpy
# arrays (chunks=None). Finding dask installed, xarray imports dask.array at a day's first Variable:
# 0.23-0.32 s of the template's ~1 s of imports. Hidden from the template (a None entry in
# sys.modules is Python's "not installed"), the template and the days forked from it run xarray as
# it runs where dask is not installed. A cold day process (LAUNCH = "cold") still sees it.
HIDDEN_FROM_DAYS = ("dask", "distributed")


def hide_from_days() -> None:
    """Make what a day never uses look uninstalled in this process (the template, before its imports)."""
    for name in HIDDEN_FROM_DAYS:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


DAY_NICENESS = 10  # not 19: on a busy shared server the days still get a tenth of a core against a busy neighbour


def yield_cpu() -> None:
    try:
        os.nice(DAY_NICENESS)
    except OSError:
        pass  # not allowed here: the days run at the launcher's priority


def import_quietly(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        pass  # an optional part; the child imports (and reports) it itself


def import_core() -> None:
    for name in CORE:
        import_quietly(name)
    freeze()


def import_remote() -> None:
    for name in REMOTE:
        import_quietly(name)
    freeze()


def freeze() -> None:
    gc.collect()
    gc.freeze()


def threads_started() -> int:
    """Threads besides the main one (a fork copies none of them, and could copy a lock one held)."""
    return threading.active_count() - 1
