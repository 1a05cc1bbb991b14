"""A day's basin and gauge values: one small file per day and target, written by the day's worker
while the day's fields are in memory, atomically and verified, like the daily files.

``DATA_DIR/polygons/.days/NAME/NAME_YYYYMMDD.npz`` (``points/`` for points) holds one value per
field and feature (float32, as the tables hold them), the fields' attributes, the target's key (the
weights it was made with) and a SHA-256 of it all. The tables of the whole range (:mod:`conus404.outputs.series.tables`) are built from
these at the end of a run, so a kill at any moment loses at most the days in flight.

Values come from the fields as the daily file stores them (float32), so a series made later from
an existing daily file equals one made during the run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from conus404.core.atomic import temporary_sibling
from conus404.core.subset import Window
from conus404.outputs.daily_file import DAY_ONLY_ATTRIBUTES
from conus404.outputs.day_output import DayOutput, MadeDay
from conus404.outputs.series.weights import FOLDERS, SeriesTarget

log = logging.getLogger("conus404.series")
PARTS = ".days"


def part_path(data_dir: Path, kind: str, name: str, day: dt.date) -> Path:
    return Path(data_dir) / FOLDERS[kind] / PARTS / name / f"{name}_{day:%Y%m%d}.npz"


def day_values(target: SeriesTarget, fields: Iterable[tuple[str, np.ndarray, dict[str, Any]]],
               window: Window | None) -> tuple[list[str], np.ndarray, dict[str, dict[str, Any]]]:
    """(names, values[field, feature], attributes) of the 2-D fields (those with levels are left out)."""
    names, rows, attrs = [], [], {}
    for name, values, field_attrs in fields:
        if np.ndim(values) != 2:
            continue
        names.append(name)
        rows.append(target.weights.means(np.asarray(values, dtype=np.float32), window))
        attrs[name] = {k: v for k, v in field_attrs.items()
                       if isinstance(v, str | int | float) and k not in DAY_ONLY_ATTRIBUTES}
    return names, np.array(rows, dtype=np.float64).reshape(len(names), target.weights.count), attrs


def _digest(meta: dict[str, Any], values: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()


def publish_part(data_dir: Path, target: SeriesTarget, day: dt.date, names: list[str], values: np.ndarray,
                 attrs: dict[str, dict[str, Any]]) -> Path:
    path = part_path(data_dir, target.kind, target.name, day)
    # Held as every table holds them, float32: half the bytes to keep, read and verify (a national
    # model's 110,000 HRUs x 4 fields: 1.76 MB a day, not 3.5). The checksum stays that of the values
    # as float64, so the part files of earlier versions (float64 values) verify as before.
    values = np.ascontiguousarray(values, dtype=np.float32)
    meta = {"day": day.isoformat(), "key": target.key, "fields": names, "attrs": attrs, "features": target.weights.count}
    buffer = io.BytesIO()
    np.savez(buffer, values=values, meta=np.array(json.dumps({**meta, "sha256": _digest(meta, values)})))
    with temporary_sibling(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
        problem = part_problem(tmp, day, target.key, names)
        if problem:
            raise OSError(f"the series file {path.name} did not read back correctly before publishing: {problem}")
    return path


def read_part(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["meta"])), np.array(data["values"])


def part_problem(path: Path, day: dt.date, key: str, names: Iterable[str]) -> str | None:
    """None if ``path`` is a whole series file of ``day`` for the weights ``key`` holding ``names``."""
    return checked_part(path, day, key, names)[0]


def checked_part(path: Path, day: dt.date, key: str,
                 names: Iterable[str]) -> tuple[str | None, dict[str, Any] | None, np.ndarray | None]:
    """(what is wrong or None, its metadata, its values): the file read and checked once."""
    try:
        meta, values = read_part(path)
    except FileNotFoundError:
        return "it does not exist", None, None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # a torn .npz is a bad zip
        return f"it cannot be read ({type(exc).__name__}: {exc})", None, None
    if meta.get("day") != day.isoformat():
        return f"it is not the series of {day}", None, None
    if meta.get("key") != key:
        return "it was made for another polygon or point file (or grid)", None, None
    missing = sorted(set(names) - set(meta.get("fields", ())))
    if missing:
        return f"it lacks {', '.join(missing)}", None, None
    sha = meta.pop("sha256", None)
    if values.shape != (len(meta["fields"]), meta["features"]) or _digest(meta, values) != sha:
        return "its values do not match the checksum written with them", None, None
    return None, meta, values


def parts_done(data_dir: Path, names: list[str], targets: list[SeriesTarget] | None) -> Any:
    """A check that a day's series files in ``data_dir`` all exist and verify (False for every day
    while the targets' cached weights are missing or stale, ``targets`` None: the run makes them first)."""

    def check(day: dt.date) -> bool:
        if targets is None:
            return False
        return all(part_problem(part_path(data_dir, t.kind, t.name, day), day, t.key, names) is None
                   for t in targets)

    return check


def publish_day(data_dir: Path, targets: list[SeriesTarget], day: dt.date,
                fields: Iterable[tuple[str, np.ndarray, dict[str, Any]]], window: Window | None) -> list[Path]:
    """Each target's series of ``day`` from the day's fields (of ``window``, None = the whole grid)."""
    fields = list(fields)
    written = []
    for target in targets:
        names, values, attrs = day_values(target, fields, window)
        written.append(publish_part(data_dir, target, day, names, values, attrs))
    return written


class SeriesOutput(DayOutput):
    """The day's value of every series target (polygons, points), from the day's fields."""

    def __init__(self, data_dir: Path, targets: list[SeriesTarget]) -> None:
        self.data_dir, self.targets = data_dir, targets

    def write(self, made: MadeDay) -> str:
        step = time.monotonic()
        written = publish_day(self.data_dir, self.targets, made.day, made.field_values(), made.window)
        made.timings["series"] = time.monotonic() - step
        return " ".join(map(str, written))


def file_window(path: Path) -> Window | None:
    """The grid window a daily file holds (None: the whole grid)."""
    from conus404.outputs import daily_file

    return Window.parse((daily_file.attributes(path) or {}).get("conus404_window"))


def from_daily_file(path: Path, names: list[str]) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """The fields of an existing daily file, for series made after it (no download)."""
    import xarray as xr

    with xr.open_dataset(path, engine="netcdf4") as ds:
        return [(name, ds[name].values[0], dict(ds[name].attrs)) for name in names]
