"""A target's table as a chunked Zarr store, kept up day by day: ``DATA_DIR/polygons/NAME.zarr``
(``points/`` for points), ``polygon`` (``point``) x ``time``.

Layout (Zarr format 2, consolidated, read by a plain ``xr.open_zarr``): one float32 variable per
daily field, attributes as the NetCDF table's (CF timeSeries, the ids as ``timeseries_id``), the
per-feature variables (area and coverage, or the cell holding each point), ``time_bnds`` and
``conus404_day_recorded`` (1 once a day's values are in). The time axis runs every day from the
first day it was made for to the last asked for, growing at its end. Chunks of ``FEATURE_CHUNK``
features x ``TIME_CHUNK`` days (at most): one basin's 40 years and one day's national map are each
a few dozen small reads.

Upkeep (:func:`record`) is incremental: the days whose part file (:mod:`.days`) verifies and is not
yet recorded, or has changed since (its size and modification time are kept in the table's
ledger ``.tables/NAME.json`` beside it, tied to the store by its ``conus404_table_id``), are written one time chunk at a time (memory: one chunk row of
every feature), then marked, then entered in the ledger. Zarr writes each chunk file atomically,
so a kill at any moment leaves a readable store in which every marked day is correct; a rerun
records what was not marked. A store made for other weights, fields or day boundary, or starting
after the range asked for, is made anew from the part files.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conus404.core.atomic import atomic_write_text
from conus404.outputs import cf, daily_file
from conus404.outputs.series import days as series
from conus404.outputs.series.weights import SeriesTarget
from conus404.outputs.zarr_output import grow_time_axis

log = logging.getLogger("conus404.series_tables")
FEATURE_CHUNK = 2048
TIME_CHUNK = 366
RECORDED = "conus404_day_recorded"
TABLE_ID = "conus404_table_id"


@dataclass(frozen=True)
class Upkeep:
    """What one upkeep did: days newly recorded (in order), part files read, days the table holds."""

    recorded: list[dt.date]
    parts_read: int
    held: int


def table_path(data_dir: Path, target: SeriesTarget) -> Path:
    return target.folder(data_dir) / f"{target.name}.zarr"


def ledger_path(data_dir: Path, target: SeriesTarget) -> Path:
    return target.folder(data_dir) / ".tables" / f"{target.name}.json"


def read_ledger(data_dir: Path, target: SeriesTarget, table_id: str | None) -> dict[str, list[int]]:
    """Day (ISO) -> [size, mtime_ns] of the part file each recorded day of the store ``table_id`` was
    read from (empty for another store's ledger, or none)."""
    try:
        ledger = json.loads(ledger_path(data_dir, target).read_text())
        return dict(ledger["parts"]) if table_id is not None and ledger["table"] == table_id else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_ledger(data_dir: Path, target: SeriesTarget, table_id: str, parts: dict[str, list[int]]) -> None:
    atomic_write_text(ledger_path(data_dir, target), json.dumps({"table": table_id, "parts": parts}, sort_keys=True))


def _stamp(path: Path) -> list[int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def record(data_dir: Path, days: Iterable[dt.date], day_boundary: int, source: str, target: SeriesTarget,
           names: list[str]) -> Upkeep:
    """Bring the table up to date with the verified part files of ``days``."""
    import zarr

    days = sorted(days)
    path = table_path(data_dir, target)
    if not days:
        return Upkeep([], 0, 0)
    usable = _usable(path, target, names, day_boundary)
    first, table_id = usable if usable else (None, None)
    if first is None or first > days[0]:  # a new store; over the old one's days too if it was only too late
        span = (min(days[0], first), max(days[-1], _last_day(path, first))) if first else (days[0], days[-1])
        if path.exists():
            log.info("%s is made anew (it was made for other weights, fields, day boundary or a later start)", path)
            shutil.rmtree(path)
        return _rebuild(data_dir, path, span, day_boundary, source, target, names)
    group = zarr.open_group(str(path), mode="r+", zarr_format=2, use_consolidated=False)
    if (days[-1] - first).days + 1 > group["time"].shape[0]:
        grow_time_axis(str(path), group, (days[-1] - first).days + 1, RECORDED)
    ledger = read_ledger(data_dir, target, table_id)
    marks = np.asarray(group[RECORDED][:])
    todo = []
    for day in days:
        stamp = _stamp(series.part_path(data_dir, target.kind, target.name, day))
        if stamp is not None and not (marks[(day - first).days] and ledger.get(day.isoformat()) == stamp):
            todo.append((day, stamp))
    recorded, read = _write(data_dir, group, first, todo, target, names, table_id, ledger)
    return Upkeep(recorded, read, int(np.asarray(group[RECORDED][:]).sum()))


def days_done(data_dir: Path, names: list[str], targets: list[SeriesTarget] | None, day_boundary: int) -> Any:
    """A check that a day's series are made and verified: a part file the table recorded and that is
    unchanged since (its size and modification time), without reading it, as the daily files'
    records do; any other part file read and verified (:func:`.days.parts_done`)."""
    full = series.parts_done(data_dir, names, targets)
    if targets is None:
        return full
    ledgers = {}
    for target in targets:
        usable = _usable(table_path(data_dir, target), target, names, day_boundary)
        ledgers[target.name] = read_ledger(data_dir, target, usable[1]) if usable else {}

    def check(day: dt.date) -> bool:
        for target in targets:
            part = series.part_path(data_dir, target.kind, target.name, day)
            recorded = ledgers[target.name].get(day.isoformat())
            if recorded is None or _stamp(part) != recorded:
                return full(day)
        return True

    return check


def _last_day(path: Path, first: dt.date) -> dt.date:
    with open(path / ".zmetadata") as handle:
        return first + dt.timedelta(days=json.load(handle)["metadata"]["time/.zarray"]["shape"][0] - 1)


def _usable(path: Path, target: SeriesTarget, names: list[str], day_boundary: int) -> tuple[dt.date, str] | None:
    """(first day, table id) of the existing store at ``path`` if this target can go on writing into it."""
    from conus404.config import day_boundary as boundary

    try:
        with open(path / ".zmetadata") as handle:
            attrs = json.load(handle)["metadata"][".zattrs"]
        same = (attrs["conus404_series_key"] == target.key and attrs["conus404_variables"].split() == sorted(names)
                and attrs["conus404_day_boundary"] == boundary.describe(day_boundary))
        return (dt.date.fromisoformat(attrs["conus404_first_day"]), str(attrs[TABLE_ID])) if same else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _rebuild(data_dir: Path, path: Path, span: tuple[dt.date, dt.date], day_boundary: int, source: str,
             target: SeriesTarget, names: list[str]) -> Upkeep:
    """A new store over ``span``, every day of it with a verifying part file recorded."""
    import zarr

    todo = []
    day = span[0]
    while day <= span[1]:
        stamp = _stamp(series.part_path(data_dir, target.kind, target.name, day))
        if stamp is not None:
            todo.append((day, stamp))
        day += dt.timedelta(days=1)
    attrs = _field_attributes(data_dir, target, names, [d for d, _ in todo])
    if attrs is None:
        return Upkeep([], 0, 0)  # no day to hold yet: no store
    table_id = _create(path, span, day_boundary, source, target, names, attrs)
    group = zarr.open_group(str(path), mode="r+", zarr_format=2, use_consolidated=False)
    recorded, read = _write(data_dir, group, span[0], todo, target, names, table_id, {})
    return Upkeep(recorded, read, len(recorded))


def _field_attributes(data_dir: Path, target: SeriesTarget, names: list[str],
                      days: list[dt.date]) -> dict[str, dict[str, Any]] | None:
    """The fields' attributes, from the first verifying part file of ``days`` (None: none verifies)."""
    for day in days:
        problem, meta, _ = series.checked_part(series.part_path(data_dir, target.kind, target.name, day), day,
                                               target.key, names)
        if problem is None:
            return {name: meta["attrs"].get(name, {}) for name in names}
    return None


def _create(path: Path, span: tuple[dt.date, dt.date], day_boundary: int, source: str, target: SeriesTarget,
            names: list[str], field_attrs: dict[str, dict[str, Any]]) -> str:
    """A new empty store (coordinates and metadata only); its table id."""
    import uuid

    import numcodecs
    import xarray as xr
    import zarr

    from conus404.config import day_boundary as boundary

    dim, count = target.kind, target.weights.count
    n = (span[1] - span[0]).days + 1
    chunks = (min(FEATURE_CHUNK, count), min(TIME_CHUNK, n))
    start = np.array([daily_file.day_start_utc(span[0] + dt.timedelta(days=k), day_boundary) for k in range(n)])
    data_vars: dict[str, Any] = {"time_bnds": (("time", "nv"), np.stack([start, start + np.timedelta64(1, "D")], axis=1)),
                                 RECORDED: (("time",), np.zeros(n, np.uint8), {
                                     "long_name": "1 once the day's values are in the table (a day without it is not yet)"})}
    for name, (extra, extra_attrs) in target.extra.items():
        data_vars[name] = ((dim,), extra, extra_attrs)
    coords = {"time": ("time", start, time_attributes(day_boundary)),
              dim: (dim, np.array(target.ids, dtype=str), id_attributes(target))}
    title, summary = describe(target)
    where = (target.extra["cell_lat"][0], target.extra["cell_lon"][0]) if "cell_lat" in target.extra else (None, None)
    ds = xr.Dataset(data_vars, coords=coords, attrs={
        **cf.discovery_attributes(title, summary, *where, start[0], start[-1] + np.timedelta64(1, "D"), source),
        **target_attributes(target), "title": title,
        "conus404_first_day": span[0].isoformat(), "conus404_variables": " ".join(sorted(names)),
        "conus404_day_boundary": boundary.describe(day_boundary),
        "conus404_chunks": f"{dim} {chunks[0]}, time {chunks[1]}", TABLE_ID: (table_id := uuid.uuid4().hex),
        # the daily files' attributes of each field, as the days' part files hold them (roll-ups use them)
        "conus404_field_attributes": json.dumps(field_attrs, sort_keys=True)})
    encoding: dict[str, dict[str, Any]] = {v: {**enc, "chunks": (chunks[1],) + ((2,) if v == "time_bnds" else ())}
                                           for v, enc in daily_file.days_time_encoding().items()}
    encoding[RECORDED] = {"chunks": (chunks[1],)}
    ds.to_zarr(str(path), mode="w-", consolidated=False, zarr_format=2, encoding=encoding)
    group = zarr.open_group(str(path), mode="r+", zarr_format=2, use_consolidated=False)
    for name in names:  # no chunk written: NaN until a day is recorded
        array = group.create_array(name, shape=(count, n), chunks=chunks, dtype="float32", fill_value=np.nan,
                                   compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE))
        array.attrs.update({**table_attributes(field_attrs.get(name, {}), dim), "_ARRAY_DIMENSIONS": [dim, "time"]})
    zarr.consolidate_metadata(str(path), zarr_format=2)  # last: a store without it is remade
    return table_id


def _write(data_dir: Path, group, first: dt.date, todo: list[tuple[dt.date, list[int]]], target: SeriesTarget,
           names: list[str], table_id: str, ledger: dict[str, list[int]]) -> tuple[list[dt.date], int]:
    """Write ``todo`` (day, part stamp) one time chunk at a time; (days recorded, part files read)."""
    per_chunk = group[names[0]].chunks[1]
    by_chunk: dict[int, list[tuple[dt.date, list[int]]]] = {}
    for day, stamp in todo:
        by_chunk.setdefault((day - first).days // per_chunk, []).append((day, stamp))
    recorded, read = [], 0
    for chunk_days in by_chunk.values():
        columns, rows, stamps = [], [], {}
        for day, stamp in chunk_days:
            problem, meta, values = series.checked_part(series.part_path(data_dir, target.kind, target.name, day), day,
                                                        target.key, names)
            read += 1
            if problem is not None:
                continue  # not verified: never enters a table (the run redoes the day)
            columns.append((day - first).days)
            rows.append(values[[meta["fields"].index(n) for n in names]].astype(np.float32))  # as the table holds them
            stamps[day.isoformat()] = stamp
        if not columns:
            continue
        a, b = min(columns), max(columns) + 1
        marks = np.asarray(group[RECORDED][a:b])
        keep_old = bool(np.any(marks))
        for k, name in enumerate(names):
            block = np.asarray(group[name][:, a:b]) if keep_old else np.full((target.weights.count, b - a), np.nan, np.float32)
            for column, row in zip(columns, rows, strict=True):
                block[:, column - a] = row[k]
            group[name][:, a:b] = block
        marks[np.array(columns) - a] = 1
        group[RECORDED][a:b] = marks  # after the values: a kill before this leaves the days unmarked
        ledger.update(stamps)
        _write_ledger(data_dir, target, table_id, ledger)
        recorded += [first + dt.timedelta(days=c) for c in columns]
    return sorted(recorded), read


def recorded_days(data_dir: Path, target: SeriesTarget, names: list[str], days: Iterable[dt.date],
                  day_boundary: int) -> tuple[list[dt.date], dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """(recorded days among ``days``, values per field [day, feature] float32, field attributes) from the
    table; nothing if it has none (or was made for something else)."""
    import zarr

    path = table_path(data_dir, target)
    usable = _usable(path, target, names, day_boundary)
    first = usable[0] if usable else None
    empty = ([], {n: np.zeros((0, target.weights.count), np.float32) for n in names}, {})
    if first is None:
        return empty
    group = zarr.open_group(str(path), mode="r", zarr_format=2, use_consolidated=True)
    marks = np.asarray(group[RECORDED][:])
    index = [(d - first).days for d in sorted(days) if 0 <= (d - first).days < marks.size]
    index = [i for i in index if marks[i]]
    if not index:
        return empty
    a, b = index[0], index[-1] + 1
    take = np.array(index) - a
    values = {name: np.asarray(group[name][:, a:b])[:, take].T for name in names}
    attrs = json.loads(group.attrs["conus404_field_attributes"])
    return [first + dt.timedelta(days=i) for i in index], values, attrs


# -- attributes shared with the NetCDF table --------------------------------------------------------
def table_attributes(field_attrs: dict[str, Any], dim: str) -> dict[str, Any]:
    """A field's attributes in a table: the daily file's, the spatial step added to cell_methods."""
    attrs = {k: v for k, v in field_attrs.items() if k not in ("grid_mapping", "coordinates")}
    spatial = "area: mean (area-weighted over the polygon)" if dim == "polygon" else "area: point (the cell holding it)"
    if attrs.get("cell_methods") and spatial not in attrs["cell_methods"]:
        attrs["cell_methods"] = f"{attrs['cell_methods']} {spatial}"
    return attrs


def time_attributes(day_boundary: int) -> dict[str, str]:
    from conus404.config import day_boundary as boundary

    return {"standard_name": "time", "bounds": "time_bnds", "axis": "T",
            "long_name": f"start of the day (local 00:00 at {boundary.describe(day_boundary)}), in UTC"}


def id_attributes(target: SeriesTarget) -> dict[str, str]:
    return {"cf_role": "timeseries_id", "long_name": f"{target.kind} id (the field of {target.path.name})"}


def describe(target: SeriesTarget) -> tuple[str, str]:
    """(title, summary) of a target's tables."""
    dim = target.kind
    title = f"CONUS404 daily {'basin' if dim == 'polygon' else 'point'} series of {target.path.name}"
    summary = (f"Daily CONUS404 values per {dim} of {target.path.name}: "
               + ("each polygon's area-weighted mean of the 4-km cells it overlaps." if dim == "polygon" else
                  "each point's value is that of the 4-km cell holding it."))
    return title, summary


def target_attributes(target: SeriesTarget) -> dict[str, str]:
    return {"featureType": "timeSeries", "conus404_series_of": str(target.path), "conus404_series_key": target.key,
            "conus404_weights": ("exact area of each 4-km cell's overlap with the polygon in the CONUS404 Lambert "
                                 "conformal plane" if target.kind == "polygon" else "the cell whose square holds the point")}
