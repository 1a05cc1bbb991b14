"""The run's prefetch spool: raw chunks fetched ahead of the day workers, and who fetches which.

The run's prefetcher (:mod:`conus404.run.prefetch`) keeps the link busy while the run starts and while
day processes aggregate and write: it fetches the chunks of the days about to run into
``<data_dir>/.chunk_cache/prefetched/<group>/<key>``, as stored (still compressed). A day worker
asks the spool before the store (:class:`conus404.sources.chunk_cache_store.SharedChunkCache`).

Every chunk is fetched once, by whoever claims it first: a claim is ``<key>.claim``, linked into
place already ``flock``-ed (a link fails if the name exists), held while its claimer fetches.

- The prefetcher claims a key, fetches it, writes the chunk through a temporary sibling and renames
  it, then lets go. A key someone else claimed is skipped.
- A worker reads a spooled chunk if it is there. Else it claims the key, fetches it itself and spools
  it (another day may need it: an accumulation's 00Z); or,
  if the prefetcher holds the claim, waits for its ``flock`` (at most ``WAIT_LIMIT_S``) and reads the
  chunk, fetching it itself if none came (the prefetcher failed or died: the kernel drops its lock).
  A chunk storage refused to the prefetcher through the workers' own retry policy (503 after every
  retry) fails the day as its own fetch would have (:class:`~conus404.core.exceptions.ChunkFetchError`).

Groups follow :mod:`conus404.sources.chunk_cache`: the last UTC day whose hours a chunk holds (``static``
for lat/lon), so the scheduler's pruning deletes them as days finish, and the whole cache goes
at the run's end; a multi-hour chunk's raw copy goes as soon as a worker keeps it decoded.
Without a prefetcher (no ``prefetched/`` folder) a worker reads the store as before.

The file primitives here (whole-or-nothing writes, reads, waiting for an ``flock`` in an event loop)
are also the chunk cache's (:mod:`conus404.sources.chunk_cache_store`), without its zarr import.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from conus404.core.atomic import TEMP_PREFIX
from conus404.core.exceptions import ChunkFetchError

SPOOL_DIR = "prefetched"
CLAIM = ".claim"
ABSENT = ".absent"
FAILED = ".failed"  # JSON {"status", "message"}: storage refused it through every retry
WAIT_LIMIT_S = 120.0  # a fetch stuck longer than this (a hung connection) is done again by the worker
METADATA = "metadata"  # the group of the store's metadata documents and its time axis
_WAIT_POLL_S = 0.01


def spool_root(cache_root: Path) -> Path:
    return Path(cache_root) / SPOOL_DIR


def clear(cache_root: Path) -> None:
    """Delete a spool an interrupted run left: a run reads only what its own prefetcher fetched."""
    shutil.rmtree(spool_root(cache_root), ignore_errors=True)


def chunk_path(root: Path, group: str, key: str) -> Path:
    return Path(root) / group / key


def claim_path(path: Path) -> Path:
    return path.with_name(path.name + CLAIM)


def claim(path: Path) -> int | None:
    """Claim ``path``'s chunk: a descriptor of its claim file, flocked until :func:`release`, or None
    if someone claimed it before (or the spool cannot be written). The claim file appears already
    locked (made and locked under a temporary name, then linked into place), so a waiter never finds
    it unlocked before the fetch is done."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=path.parent)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.link(tmp, claim_path(path))
    except OSError:  # claimed already (or the spool is gone)
        os.close(fd)
        return None
    finally:
        os.unlink(tmp)
    return fd


def release(fd: int) -> None:
    os.close(fd)  # the flock goes with the descriptor; the claim file stays, marking the key as taken


def fulfil(path: Path, fd: int, data: bytes | None) -> None:
    """A claimer's fetch is done: the chunk into the spool (or marked absent), then the claim let go."""
    try:
        if data is None:
            mark_absent(path)
        else:
            store(path, data)
    except OSError:
        pass  # the waiters fetch it themselves
    finally:
        release(fd)


def store(path: Path, data: bytes) -> None:
    """The chunk under its spool name, whole or not at all (temporary sibling, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> bytes | None:
    """The file's bytes, or None if absent (or the folder is unusable: fetch instead)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def mark_failed(path: Path, status: int, message: str) -> None:
    path.with_name(path.name + FAILED).write_text(json.dumps({"status": status, "message": message}))


def mark_absent(path: Path) -> None:
    """The store has no such key (zarr fills a missing chunk; a format-2 store has no zarr.json)."""
    absent_path(path).touch()


def absent_path(path: Path) -> Path:
    return path.with_name(path.name + ABSENT)


async def wait_for_lock(fd: int, operation: int, limit_s: float | None = None, poll_s: float = _WAIT_POLL_S) -> bool:
    """Take ``flock(fd, operation)`` without blocking the event loop; False if ``limit_s`` passed first."""
    give_up = None if limit_s is None else time.monotonic() + limit_s
    while give_up is None or time.monotonic() < give_up:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            await asyncio.sleep(poll_s)
    return False


FETCH, ABSENT_KEY = "fetch", "absent"  # what take() says when it has no chunk


async def take(path: Path) -> tuple[bytes | str, int | None]:
    """What a worker does for one key: (the spooled chunk, None), (ABSENT_KEY, None) if the store has
    none, or (FETCH, claim) when the worker is to fetch it itself: it claimed the key now (then it
    hands the chunk on with :func:`fulfil`), or the claimer gave up without spooling it (claim None).
    ChunkFetchError if storage refused it to the prefetcher through every retry."""
    data = await asyncio.to_thread(read, path)
    if data is not None:
        return data, None
    fd = claim(path)
    if fd is not None:  # nobody had it: this worker's own fetch
        return FETCH, fd
    try:
        fd = os.open(claim_path(path), os.O_RDONLY)
    except OSError:  # pruned meanwhile
        fd = None
    if fd is not None:
        try:
            if not await wait_for_lock(fd, fcntl.LOCK_SH, WAIT_LIMIT_S):  # its claimer is fetching it
                return FETCH, None
        finally:
            os.close(fd)
    data = await asyncio.to_thread(read, path)
    if data is not None:
        return data, None
    failed = read(path.with_name(path.name + FAILED))
    if failed is not None:
        refusal = json.loads(failed)
        raise ChunkFetchError(path.name, int(refusal["status"]), str(refusal["message"]))
    return (ABSENT_KEY if absent_path(path).exists() else FETCH), None
