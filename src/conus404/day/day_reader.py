"""Reading a day's hourly records: each variable's in one read, the next one's already on its way
while the current one is checked and aggregated.

Why the read-ahead (remote sources): between one variable's last chunk and the next one's first
request the link would stand idle for the whole aggregation; one variable ahead (not more) keeps it
busy at the cost of one more variable's records in memory. From local disk, reading is decoding:
CPU the aggregation needs too (measured minutes apart on the local 10-day full-grid run:
7.7-8.6 s with it, 6.0-6.9 s without).

Why the days of one run read their variables in different orders (``reading_order``): the day
processes running at once serve neighbouring days, and where a store's chunks span several days
(HyTEST's 144 hours) they need the same chunks. Read in the same order, the second process waits at
every chunk for the first one's fetch and decode (the shared chunk cache lets one process do each);
started on different variables, each fetches and decodes its own and then finds the other's done.

When storage refuses the token mid-day (it expired), ``reopen()`` signs again and the variable is
read again, up to MAX_RESIGNS_PER_DAY times; then the day fails as transient.

Before any record: ``open_and_read_grid`` opens the source and reads lat/lon; ``locate_hours`` finds
a window's hours in the store's time axis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from conus404.core.day_windows import HourWindow
from conus404.core.exceptions import AuthenticationError, LostChunkError, MissingDataError
from conus404.sources.cached_hours import read_hours
from conus404.sources.local_hours import read_hours as read_local_hours
from conus404.sources.lost_chunks import as_missing_data

if TYPE_CHECKING:  # pandas is imported where hours are located: the run's prefetcher reads no hours
    import pandas as pd

log = logging.getLogger("conus404.worker")
MAX_RESIGNS_PER_DAY = 2


@contextmanager
def refused_token_as_authentication_error(what: str):
    """Storage's 401/403 (typically a token that expired) as our AuthenticationError."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    try:
        yield
    except (ClientAuthenticationError, HttpResponseError) as exc:
        if getattr(exc, "status_code", None) in (401, 403):
            code = getattr(exc, "error_code", None)
            raise AuthenticationError(what, exc.status_code, str(getattr(code, "value", code) or "")) from None
        raise


def read_records(ds, name: str, positions: np.ndarray, fill_up_to: int = 0,
                 filled: dict[str, list[str]] | None = None) -> np.ndarray:
    """The variable's records at ``positions`` (one read of exactly those time chunks); MissingDataError
    naming the hour where the store lacks a chunk of them, unless ``fill_up_to`` allows filling such
    hours in time (:func:`filled_in_time`; the filled hours' stamps go to ``filled[name]``)."""
    try:
        return _read(ds, name, positions)
    except LostChunkError as lost:
        if fill_up_to > 0 and len(positions) > 2:
            return filled_in_time(ds, name, positions, fill_up_to, lost, filled if filled is not None else {})
        raise as_missing_data(ds, name, positions, lost) from None


def _read(ds, name: str, positions: np.ndarray) -> np.ndarray:
    with refused_token_as_authentication_error(f"the records of {name}"):
        direct = read_hours(ds, name, positions)  # straight from the run's decoded multi-hour chunks, where it can
        if direct is None:  # or from a local copy's chunk files
            direct = read_local_hours(ds, name, positions)
        return direct if direct is not None else np.asarray(ds[name].isel(time=as_slice(positions)).values)


def filled_in_time(ds, name: str, positions: np.ndarray, fill_up_to: int, lost: LostChunkError,
                   filled: dict[str, list[str]]) -> np.ndarray:
    """The records with the hours the store lost (up to ``fill_up_to``, never the first or the last)
    filled by linear interpolation in time from the nearest hours it has (--fill-missing-hours); the
    day's MissingDataError otherwise. Only for instantaneous values: the caller asks for nothing else."""
    hours: list[np.ndarray | None] = []
    for position in positions:
        try:
            hours.append(_read(ds, name, np.array([position]))[0])
        except LostChunkError:
            hours.append(None)
    gaps = [k for k, hour in enumerate(hours) if hour is None]
    if len(gaps) > fill_up_to or gaps[0] == 0 or gaps[-1] == len(hours) - 1:
        raise as_missing_data(ds, name, positions, lost)
    have = [k for k, hour in enumerate(hours) if hour is not None]
    for k in gaps:
        before, after = max(i for i in have if i < k), min(i for i in have if i > k)
        share = (k - before) / (after - before)
        hours[k] = (hours[before] * (1 - share) + hours[after] * share).astype(hours[before].dtype)
    times = ds.indexes["time"]
    filled[name] = [f"{times[int(positions[k])]:%Y-%m-%dT%HZ}" for k in gaps]
    log.warning("%s: the store lacks %d hour(s) of the day (%s): filled by linear interpolation in time",
                name, len(gaps), ", ".join(filled[name]))
    return np.stack(hours)


def reading_order(count: int, day_number: int, processes: int) -> list[int]:
    """The order in which a day reads its ``count`` variables: rotated by a share of ``count`` that
    differs between neighbouring days, for up to ``processes`` days running at once."""
    slots = max(1, min(processes, count))
    start = (day_number % slots) * count // slots
    return [(start + i) % count for i in range(count)]


def as_slice(positions: np.ndarray) -> slice | np.ndarray:
    """Evenly spaced ascending positions as a slice: zarr reads a slice about twice as fast as a list."""
    if len(positions) > 1:
        step = int(positions[1] - positions[0])
        if step > 0 and np.array_equal(positions, positions[0] + step * np.arange(len(positions))):
            return slice(int(positions[0]), int(positions[-1]) + 1, step)
    return positions


class DayReader:
    """The records of ``wanted[i]`` = (input names, time positions), in order, one read ahead
    unless ``read_ahead`` is False.

    Seconds the caller waits for records go to ``timings["read"]``.
    """

    def __init__(self, ds, wanted: Sequence[tuple[Sequence[str], np.ndarray]],
                 reopen: Callable[[], Any] | None = None, timings: dict[str, float] | None = None,
                 read_ahead: bool = True, fill_up_to: Sequence[int] | None = None) -> None:
        self.ds, self.wanted, self.reopen = ds, list(wanted), reopen
        self.fill_up_to = list(fill_up_to) if fill_up_to is not None else [0] * len(self.wanted)
        self.filled: dict[str, list[str]] = {}  # variable -> the hours filled in time
        self.timings = timings if timings is not None else {}
        self.resigns = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="read-ahead") if read_ahead and len(self.wanted) > 1 else None
        self._ahead: tuple[int, Future] | None = None

    def _read(self, index: int, ds) -> dict[str, np.ndarray]:
        names, positions = self.wanted[index]
        return {name: read_records(ds, name, positions, self.fill_up_to[index], self.filled) for name in names}

    def records(self, index: int) -> dict[str, np.ndarray]:
        """The records of ``wanted[index]`` (called for 0, 1, 2, ... in turn)."""
        while True:
            try:
                reading = time.monotonic()
                ahead, self._ahead = self._ahead, None
                records = ahead[1].result() if ahead is not None and ahead[0] == index else self._read(index, self.ds)
                if index + 1 < len(self.wanted) and self._pool is not None:
                    self._ahead = (index + 1, self._pool.submit(self._read, index + 1, self.ds))
                self.timings["read"] = self.timings.get("read", 0.0) + time.monotonic() - reading
                if index == len(self.wanted) - 1:
                    self.close()
                return records
            except AuthenticationError:
                if self.reopen is None or self.resigns >= MAX_RESIGNS_PER_DAY:
                    self.close()
                    raise
                self.resigns += 1
                log.warning("storage refused the token while reading %s: signing again and re-reading",
                            ", ".join(self.wanted[index][0]))
                self.ds = self.reopen()

    def close(self) -> None:
        """Stop reading ahead (also when the day failed mid-read)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead[1].cancel()
            try:
                ahead[1].result()  # a read in flight is waited for: its thread must not outlive the day
            except Exception:  # noqa: BLE001 - the day has already failed or finished
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def locate_hours(time_index: pd.DatetimeIndex, window: HourWindow, what: str) -> np.ndarray:
    """Positions of the window's hours in the store's time axis; MissingDataError if any is absent."""
    import pandas as pd

    wanted = pd.DatetimeIndex(window.hours)
    positions = np.flatnonzero(time_index.isin(wanted))
    found = time_index[positions]
    if found.has_duplicates:
        dupes = sorted({t.isoformat() for t in found[found.duplicated()]})
        raise MissingDataError(f"the source repeats the timestamp(s) {', '.join(dupes)} needed by {what}")
    missing = wanted.difference(found)
    if len(missing):
        end = time_index.max()
        if missing.min() > end:
            raise MissingDataError(
                f"the source ends at {end:%Y-%m-%dT%HZ}, but {what} needs records up to {window.last:%Y-%m-%dT%HZ}"
            )
        shown = ", ".join(f"{t:%Y-%m-%dT%HZ}" for t in missing[:5])
        raise MissingDataError(f"the source lacks hourly record(s) {shown} needed by {what}")
    order = pd.Index(found).get_indexer(wanted)
    return positions[order]


def open_and_read_grid(open_source: Callable[[bool], tuple[Any, dict[str, str]]], timings: dict[str, float] | None = None):
    """Open the source and read lat/lon, signing again once if the handed-over token is refused.

    lat/lon are read here, not at the end: after a re-signing mid-day the first handle's token
    may no longer be accepted. Their seconds go to ``timings["read"]`` (fetched, by the first
    days of a run: reading, not a fixed cost).
    """
    for fresh in (False, True):
        try:
            ds, description = open_source(fresh)
            reading = time.monotonic()
            with refused_token_as_authentication_error("lat/lon"):
                lat, lon = np.asarray(ds["lat"].values), np.asarray(ds["lon"].values)
            if timings is not None:
                timings["read"] = timings.get("read", 0.0) + time.monotonic() - reading
            return ds, description, lat, lon
        except AuthenticationError:
            if fresh:
                raise
            log.warning("storage refused the token the worker was given: signing again")
    raise AssertionError("unreachable")
