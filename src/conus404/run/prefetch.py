"""The run's prefetcher: one process that keeps the link busy ahead of the day processes.

A day process reads its chunks, then aggregates, writes and verifies with the link idle, and the
run's first days wait for the run's own start (the launch template's imports, the check). Over a
network that idle time is most of what separates a run from the raw-fetch limit. So for a remote
source the driver starts this process first of all, cold and with light imports: it signs (the PC
SDK, as the workers do), reads the store's consolidated metadata and time axis, and fetches the
chunks of the days about to run, in the order their processes will read them, into the run's
prefetch spool (:mod:`conus404.sources.prefetch_spool`: raw chunks, each fetched once by whoever claims it
first). It stays at most ``2 × MAX_CONCURRENT_PROCESSES`` days ahead of the run's first unfinished
day, which the driver writes to its standard input when the days begin (after the check) and as
they finish; the end of that input ends it. While the request is being checked it fetches only the
first ``MAX_CONCURRENT_PROCESSES`` days' chunks: the check's second or so is link time the run
would lose, and a refused request costs at most those (deleted with the spool).

It is only an optimisation: a chunk it has not spooled, for any reason (an error, a full disk, a
kill), the day's process fetches itself. Only a chunk storage refused it through every retry of the
days' own policy fails the day that needs it, as the day's own fetch would have. It runs in the run's
process group (``kill_all.sh`` stops it); what it did is one line of the driver's log at the end.
Not used with ``--no-prefetch``, ``--no-chunk-cache``, a local copy of the store, a box, series, or
the Dask executor.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
import math
import re
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

FETCHERS_PER_PROCESS = 8  # requests in flight per day process the run allows (the raw-fetch limit's own figure)
MIN_FREE_BYTES = 2 << 30  # no prefetching onto a nearly full disk: the day files come first
STOP_WAIT_S = 10.0
SIGN_WAIT_S = 120.0  # the catalogue and token service, with their retries
_CODE = "from conus404.run.prefetch import main; main()"


# -- the driver's side ----------------------------------------------------------------------------
def wanted(settings) -> bool:
    """Whether a run prefetches: a remote source read through the chunk cache by local processes,
    the whole domain (a box or series read only some spatial chunks)."""

    return (settings.execution.prefetch and settings.access.chunk_cache and settings.execution.executor == "subprocess"
            and settings.access.is_remote and settings.request.bbox is None and not settings.series.wanted)


def _spawn() -> subprocess.Popen:
    from conus404.config.settings import PROJECT_ROOT

    code = f"import sys; sys.path.insert(0, {str(PROJECT_ROOT / 'src')!r}); {_CODE}"
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


class Prefetcher:
    """The driver's handle on the prefetch process."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self._sent: str | None = None
        self._report: str | None = None

    @classmethod
    def start(cls, settings, force: bool) -> Prefetcher | None:
        """Start prefetching the run's days (those without a daily file, unless ``force``); None if not wanted."""
        from conus404.outputs import daily_file
        from conus404.sources.chunk_cache import cache_root
        from conus404.sources.prefetch_spool import clear, spool_root

        clear(cache_root(settings.outputs.data_dir))  # an interrupted run's: never read by this one
        spool = spool_root(cache_root(settings.outputs.data_dir))
        if not wanted(settings):
            return None
        days = [d for d in settings.request.days if force or not daily_file.daily_path(settings.outputs.data_dir, d).exists()]
        if not days:
            return None
        job = {"days": [d.isoformat() for d in days], "variables": list(settings.request.variables),
               "offset_hours": settings.request.day_boundary, "processes": settings.execution.max_processes,
               "spool": str(spool), "asset": _unsigned_asset(settings)}
        if settings.access.uses_planetary_computer:
            job["sign"] = {"stac_url": settings.access.stac_url, "collection": settings.access.collection, "asset": settings.access.asset,
                           "sas_url": settings.access.sas_url}
        handle = cls(_spawn())
        handle._send(json.dumps(job))
        return handle

    def signed_asset(self):
        """The asset the prefetcher signed (the run's one signing), or None (not the PC, or it failed:
        the check then signs and says what is wrong)."""
        from conus404.sources.source import SignedAsset

        ready, _, _ = select.select([self.proc.stdout], [], [], SIGN_WAIT_S)
        if not ready:
            return None
        try:
            asset = json.loads(self.proc.stdout.readline())["asset"]
        except (ValueError, KeyError, TypeError):
            return None
        return SignedAsset.from_json(asset) if asset else None

    def _send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # it has ended: the workers fetch for themselves

    def advance(self, first_unfinished: dt.date) -> None:
        """The run's first unfinished day moved: the prefetcher may go further."""
        if first_unfinished.isoformat() != self._sent:
            self._sent = first_unfinished.isoformat()
            self._send(json.dumps({"first_unfinished": self._sent}))

    def abandon(self, cache_root: Path) -> None:
        """The request was refused: end it and delete what it spooled."""
        from conus404.sources.prefetch_spool import clear

        self.stop()
        clear(cache_root)

    def stop(self) -> str:
        """End it (its input closes; killed by PID if it does not end) and say what it did."""
        if self._report is None:
            self._report = self._stop()
        return self._report

    def _stop(self) -> str:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out = self.proc.stdout.read()  # one line, written as it ends
        self.proc.stdout.close()
        try:
            done = json.loads(out.strip().splitlines()[-1])
            said = (f"prefetcher: {done['chunks']} chunk(s), {done['bytes'] / 1e6:.0f} MB fetched ahead of the "
                    f"day processes in {done['seconds']:.1f} s")
            failed = f"; {done['failed']} not (the days fetched them)" if done["failed"] else ""
            return said + failed + (f"; {done['note']}" if done["note"] else "")
        except (ValueError, IndexError, KeyError, TypeError):
            return f"prefetcher: ended with exit code {self.proc.returncode}; the day processes fetched for themselves"


def _unsigned_asset(settings) -> dict | None:
    """The asset of a source that needs no signing (HyTEST, a Zarr URL); None for the PC."""
    if settings.access.uses_planetary_computer:
        return None
    from conus404.sources.source import unsigned_asset

    return unsigned_asset(settings.access).to_json()


# -- the prefetch process -------------------------------------------------------------------------
class _Window:
    """How far ahead it may go: days ranked below the first unfinished one's rank + ``ahead``; before
    the driver's first word (the request is still being checked), only the first ``before_check``."""

    def __init__(self, days: list[dt.date], ahead: int, before_check: int = 0) -> None:
        self.days, self.ahead = days, ahead
        self.first_rank = min(before_check, ahead) - ahead  # raised when the driver says the days begin
        self.ended = threading.Event()
        self._changed = threading.Condition()

    def follow(self, stream) -> None:
        for line in stream:
            try:
                first = dt.date.fromisoformat(json.loads(line)["first_unfinished"])
            except (ValueError, KeyError, TypeError):
                continue
            with self._changed:
                self.first_rank = bisect.bisect_left(self.days, first)
                self._changed.notify_all()
        self.ended.set()  # the driver closed the pipe (or is gone)
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, rank: int) -> bool:
        """Wait until the day of ``rank`` may be fetched; False once the run is over."""
        with self._changed:
            while not self.ended.is_set() and rank >= self.first_rank + self.ahead:
                self._changed.wait(0.5)
        return not self.ended.is_set()


def main() -> None:
    from conus404.core.processes import exit_without_teardown

    job = json.loads(sys.stdin.readline())
    days = [dt.date.fromisoformat(d) for d in job["days"]]
    processes = max(1, int(job["processes"]))
    window = _Window(days, 2 * processes, before_check=processes)
    threading.Thread(target=window.follow, args=(sys.stdin,), daemon=True).start()
    started, totals = time.monotonic(), {"chunks": 0, "bytes": 0, "failed": 0, "note": ""}
    try:
        _prefetch(job, days, window, totals)
    except Exception as exc:  # only an optimisation: the workers fetch whatever is not spooled
        totals["note"] = f"stopped early ({type(exc).__name__}: {exc})"
    print(json.dumps({**totals, "seconds": round(time.monotonic() - started, 2)}), flush=True)
    exit_without_teardown(0)


def _prefetch(job: dict, days: list[dt.date], window: _Window, totals: dict) -> None:
    from conus404.core import disk_space
    from conus404.core.failures import RETRYABLE_HTTP
    from conus404.sources import prefetch_spool
    from conus404.sources.source import SignedAsset, renewal_margin_s

    asset = None
    try:
        asset = SignedAsset.from_json(job["asset"]) if job.get("asset") else _sign(job["sign"])
    finally:  # the driver waits for this line: the run's one signing, for its check and its days
        print(json.dumps({"asset": asset.to_json() if asset is not None and job.get("sign") else None}), flush=True)
    renew_below = renewal_margin_s(asset)
    fs, root = _filesystem(asset)
    spool = Path(job["spool"])
    spool.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def spooled(group: str, key: str) -> bytes | None:
        """Fetch ``key`` into the spool unless someone claimed it; its bytes (None: absent, or not ours)."""
        path = prefetch_spool.chunk_path(spool, group, key)
        fd = prefetch_spool.claim(path)
        if fd is None:
            return None  # a worker has it, or it is spooled already
        try:
            data = fs.cat_file(f"{root}/{key}")
        except FileNotFoundError:  # zarr fills a chunk the store lacks; a format-2 store has no zarr.json
            prefetch_spool.fulfil(path, fd, None)
            return None
        except BaseException as exc:
            status = getattr(exc, "status_code", None)
            if status in RETRYABLE_HTTP:  # refused through every retry: the day's own fetch would have failed so
                prefetch_spool.mark_failed(path, status, f"{type(exc).__name__}: {exc}"[:2000])
            prefetch_spool.release(fd)
            raise
        prefetch_spool.fulfil(path, fd, data)
        with lock:
            totals["chunks"] += 1
            totals["bytes"] += len(data)
        return data

    # the store's metadata first: the run's check, opening the store, then reads it from here
    with ThreadPoolExecutor(4) as pool:
        documents = list(pool.map(lambda key: spooled(prefetch_spool.METADATA, key),
                                  ("zarr.json", ".zgroup", ".zattrs", ".zmetadata")))
    consolidated = documents[-1] or fs.cat_file(f"{root}/.zmetadata")
    meta = json.loads(consolidated)["metadata"]
    times = _time_axis(lambda key: spooled(prefetch_spool.METADATA, key) or fs.cat_file(f"{root}/{key}"), meta)

    def fetch(group: str, key: str) -> None:
        try:
            spooled(group, key)
        except Exception as exc:
            with lock:
                totals["failed"] += 1
                totals["note"] = totals["note"] or f"{key}: {type(exc).__name__}: {exc}"

    fetchers = FETCHERS_PER_PROCESS * max(1, int(job["processes"]))
    in_flight = threading.BoundedSemaphore(2 * fetchers)  # keys handed out in order, a few at a time

    def fetch_then_free(group: str, key: str) -> None:
        try:
            fetch(group, key)
        finally:
            in_flight.release()

    with ThreadPoolExecutor(fetchers) as pool:
        for rank, group, key in _ordered_keys(job, days, meta, times):
            if not window.wait_for(rank):
                break
            if totals["failed"] > 20:
                raise OSError(f"{totals['failed']} chunks failed to fetch")
            if (free := disk_space.free_bytes(spool)) is not None and free < MIN_FREE_BYTES:
                totals["note"] = f"stopped early: {free / 1e9:.1f} GB free on the data folder's disk"
                break
            if job.get("sign") and asset.seconds_left() is not None and asset.seconds_left() < renew_below:
                asset = _sign(job["sign"], fresh=True)  # the driver signs again for the days; this is for its own reads
                fs, root = _filesystem(asset)
            in_flight.acquire()
            pool.submit(fetch_then_free, group, key)


def _filesystem(asset):
    """The store's filesystem and root, with the day workers' retry policy for Azure Blob."""
    import fsspec

    from conus404.sources.source import storage_options

    return fsspec.core.url_to_fs(asset.href, **storage_options(asset))


def _sign(sign: dict, fresh: bool = False):
    from conus404.sources import source

    if fresh:
        source.refresh_token_cache()
    return source.sign_collection_asset(sign["stac_url"], sign["collection"], sign["asset"], sign["sas_url"])


# CF "UNIT since DATE [TIME]" as xarray writes datetime64 axes, and WRF's XTIME ("minutes since 1979-10-01 00:00:00")
TIME_UNITS = re.compile(r"\s*(days|hours|minutes|seconds|milliseconds|microseconds|nanoseconds) since "
                        r"(\d{4}-\d{1,2}-\d{1,2})(?:[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?\s*(?:UTC|Z)?\s*")
TIME_UNIT_CODES = {"days": "D", "hours": "h", "minutes": "m", "seconds": "s", "milliseconds": "ms",
                   "microseconds": "us", "nanoseconds": "ns"}


def _time_axis(read, meta: dict[str, Any]):
    """The store's time axis as numpy datetime64[h], from its chunks (``read(key)``) and CF units."""
    import numpy as np

    zarray, attrs = meta["time/.zarray"], meta.get("time/.zattrs", {})
    match = TIME_UNITS.fullmatch(str(attrs.get("units", "")))
    if match is None or str(attrs.get("calendar", "standard")) not in ("standard", "gregorian", "proleptic_gregorian"):
        raise ValueError(f"time units {attrs.get('units')!r} ({attrs.get('calendar')}) are not read here")
    blocks = math.ceil(zarray["shape"][0] / zarray["chunks"][0])
    values = np.concatenate([_decode(read(f"time/{i}"), zarray) for i in range(blocks)])[: zarray["shape"][0]]
    if values.dtype.kind == "f":  # WRF's XTIME (HyTEST): float32 minutes, whole ones
        values = np.rint(values.astype(np.float64))
    unit = TIME_UNIT_CODES[match.group(1)]
    year, month, day = (int(part) for part in match.group(2).split("-"))
    hour, minute, second = ([float(part) for part in match.group(3).split(":")] + [0.0])[:3] if match.group(3) else (0, 0, 0)
    epoch = np.datetime64(f"{year:04d}-{month:02d}-{day:02d}T{int(hour):02d}:{int(minute):02d}:{int(second):02d}")
    return (epoch + values.astype(np.int64).astype(f"timedelta64[{unit}]")).astype("datetime64[h]")


def _decode(raw: bytes, zarray: dict[str, Any]):
    import numcodecs
    import numpy as np

    data = numcodecs.get_codec(zarray["compressor"]).decode(raw) if zarray.get("compressor") else raw
    for spec in reversed(zarray.get("filters") or []):
        data = numcodecs.get_codec(spec).decode(data)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.dtype(zarray["dtype"]))


def _inputs(name: str, meta: dict[str, Any]) -> tuple[tuple[str, ...], Any] | None:
    """The arrays a requested variable reads and its class, as the worker plans them (None: not read)."""
    from conus404.core.variables import VariableClass, classify, counter_name
    from conus404.day.derived import DERIVED

    if name in DERIVED:
        return DERIVED[name].inputs, VariableClass.INSTANTANEOUS
    if f"{name}/.zarray" not in meta:
        return None  # the check refuses it
    var_class = classify(name, meta.get(f"{name}/.zattrs", {}))
    if var_class == VariableClass.BUCKET_COUNTER:
        return None
    return ((name, counter_name(name)) if var_class == VariableClass.BUCKET else (name,)), var_class


def _ordered_keys(job: dict, days: list[dt.date], meta: dict[str, Any], times):
    """(day rank, spool group, key) in the order the day processes read: lat/lon first, then the
    days that run at once variable by variable, each day in its own reading order."""
    import numpy as np

    from conus404.core.day_windows import record_offsets
    from conus404.day.day_reader import reading_order
    from conus404.sources.chunk_cache import STATIC, time_chunk_group

    for name in ("lat", "lon"):
        if f"{name}/.zarray" in meta:
            for key in _chunk_keys(name, meta[f"{name}/.zarray"], None):
                yield 0, STATIC, key
    plans = [p for p in (_inputs(v, meta) for v in job["variables"]) if p is not None]
    processes = max(1, int(job["processes"]))
    for first in range(0, len(days), processes):
        wave = list(enumerate(days[first:first + processes], start=first))
        orders = {rank: reading_order(len(plans), day.toordinal(), processes) for rank, day in wave}
        for slot in range(len(plans)):
            for rank, day in wave:
                inputs, var_class = plans[orders[rank][slot]]
                start = np.datetime64(day.isoformat(), "h") - np.timedelta64(int(job["offset_hours"]), "h")
                hours = start + np.array(record_offsets(var_class), dtype="timedelta64[h]")
                positions = np.searchsorted(times, hours)
                positions = [int(p) for p, h in zip(positions, hours, strict=True) if p < len(times) and times[p] == h]
                for name in inputs:
                    zarray = meta.get(f"{name}/.zarray")
                    if zarray is None:
                        continue
                    per_chunk = int(zarray["chunks"][0])
                    for index in sorted({p // per_chunk for p in positions}):
                        group = time_chunk_group(times, index, per_chunk)
                        if group is not None:
                            for key in _chunk_keys(name, zarray, index):
                                yield rank, group, key


def _chunk_keys(name: str, zarray: dict[str, Any], time_index: int | None) -> list[str]:
    """Every chunk key of ``name`` (of time chunk ``time_index``, for an array with time first)."""
    separator = zarray.get("dimension_separator") or "."
    counts = [math.ceil(s / c) for s, c in zip(zarray["shape"], zarray["chunks"], strict=True)]
    if time_index is not None:
        counts = counts[1:]
    lead = () if time_index is None else (time_index,)
    return [f"{name}/" + separator.join(map(str, (*lead, *rest))) for rest in itertools.product(*map(range, counts))]
