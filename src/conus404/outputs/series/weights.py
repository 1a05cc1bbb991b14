"""The run's series targets (a polygon file, a point file) with their cell weights, computed once
and cached for every day and process of the run, as gdptools and exactextract do.

The cache ``DATA_DIR/polygons/.weights/NAME.npz`` (``points/`` for points) holds the weights on
the store's whole grid, keyed by the file's content, the id field and the store's grid; a worker
trusts it without hashing the file again while the file's size and modification time are those
it was made from. A box (``--bbox``) only restricts the cached weights to its window.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conus404.config.parts import Series
from conus404.core import subset
from conus404.core.atomic import temporary_sibling
from conus404.core.exceptions import ConfigurationError
from conus404.outputs.series.polygons import CellWeights

log = logging.getLogger("conus404.series_weights")
POLYGON, POINT = "polygon", "point"
FOLDERS = {POLYGON: "polygons", POINT: "points"}
CACHE_VERSION = 1


@dataclass(frozen=True)
class SeriesTarget:
    """One file's features (polygons or points) on the grid the run reads."""

    kind: str  # POLYGON or POINT
    name: str  # the file's name without its extension(s): the outputs' name
    path: Path
    ids: list[str]
    weights: CellWeights  # restricted to the run's window, if it has one
    key: str  # identifies the file's content, id field and grid: a day's series is valid for it only
    extra: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)  # per-feature variables
    window: subset.Window | None = None  # the cells the run reads (a box's window), None = the whole grid

    def folder(self, data_dir: Path) -> Path:
        return Path(data_dir) / FOLDERS[self.kind]


def configured(series: Series) -> list[tuple[str, Path, str | None]]:
    """(kind, file, id field) of each series file asked for."""
    wanted = []
    if series.polygons is not None:
        wanted.append((POLYGON, series.polygons, series.polygon_id))
    if series.points is not None:
        wanted.append((POINT, series.points, series.point_id))
    return wanted


def output_name(path: Path) -> str:
    name = path.name
    for suffix in (".zip", ".shp", ".gpkg", ".geojson", ".json", ".csv", ".fgb", ".gml", ".kml"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.stem


def cache_path(data_dir: Path, kind: str, path: Path) -> Path:
    return Path(data_dir) / FOLDERS[kind] / ".weights" / f"{output_name(path)}.npz"


def _content_files(path: Path) -> list[Path]:
    """The files whose bytes make a vector file's content (a Shapefile is several)."""
    if path.suffix.lower() == ".shp":
        return sorted(p for p in path.parent.glob(f"{path.stem}.*") if p.suffix.lower() in
                      (".shp", ".shx", ".dbf", ".prj", ".cpg"))
    return [path]


def _stat(path: Path) -> list[list[Any]]:
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in _content_files(path)]


def grid_fingerprint(lat: np.ndarray, lon: np.ndarray) -> str:
    """The store's grid, cheaply: its shape and the coordinates of its corners and centre."""
    ny, nx = lat.shape
    probes = [(0, 0), (0, nx - 1), (ny - 1, 0), (ny - 1, nx - 1), (ny // 2, nx // 2)]
    return json.dumps([ny, nx, [[float(lat[j, i]), float(lon[j, i])] for j, i in probes]])


def _key(kind: str, path: Path, id_field: str | None, fingerprint: str, skip: bool = False) -> str:
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, kind, id_field, fingerprint] + (["skip"] if skip else [])).encode())
    for part in _content_files(path):
        with open(part, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


def prepare(series: Series, data_dir: Path, bbox: subset.BBox | None, lat: np.ndarray,
            lon: np.ndarray) -> list[SeriesTarget]:
    """The run's targets on the store's grid (``lat``/``lon``, the whole grid), restricted to the
    box's window; computed and cached in ``data_dir`` when the cache does not match. Raises ConfigurationError (one
    line) for a file that cannot serve: see :mod:`conus404.outputs.series.polygons` and :mod:`conus404.outputs.series.points`."""
    found = []
    window = subset.index_window(lat, lon, bbox) if bbox is not None else None
    fingerprint = grid_fingerprint(lat, lon)
    skip = series.skip_off_grid
    for kind, path, id_field in configured(series):
        cache = cache_path(data_dir, kind, path)
        loaded = _load(cache, path, id_field, fingerprint, skip)
        target, windows, same_stat = loaded or (_compute(kind, path, id_field, lat, lon, fingerprint, skip), {}, False)
        box = _box_text(bbox)
        found.append(_restricted(target, window, refuse=True, skip=skip))  # refused before anything is cached
        if not same_stat or windows.get(box, False) != _window_list(window):
            _save(cache, target, id_field, fingerprint, {**windows, box: _window_list(window)}, skip)
    return found


def cached(series: Series, data_dir: Path, bbox: subset.BBox | None) -> list[SeriesTarget] | None:
    """The run's targets from their caches in ``data_dir``, without the source's grid (for a worker,
    and the run's end); None when a cache is missing or stale (:func:`prepare` then makes it)."""
    found = []
    for kind, path, id_field in configured(series):
        loaded = _load(cache_path(data_dir, kind, path), path, id_field, None, series.skip_off_grid)
        if loaded is None or not loaded[2] or _box_text(bbox) not in loaded[1]:
            return None
        window = loaded[1][_box_text(bbox)]
        found.append(_restricted(loaded[0], subset.Window(*window) if window else None, refuse=False,
                                 skip=series.skip_off_grid))
    return found


_windows: dict[tuple, subset.Window] = {}  # series_window's answers, by what decides them


def series_window(series: Series, data_dir: Path) -> subset.Window | None:
    """The window a polygon/point run without a box reads, from the cached weights (None while they
    are not prepared: nothing is remembered then)."""
    memo = (str(data_dir), str(series.polygons), series.polygon_id, str(series.points), series.point_id)
    if memo not in _windows:
        found = cached(series, data_dir, None)
        window = read_window(None, found) if found else None
        if window is None:
            return None
        _windows[memo] = window
    return _windows[memo]


def _box_text(bbox: subset.BBox | None) -> str:
    return str(bbox) if bbox is not None else ""


def _window_list(window: subset.Window | None) -> list[int] | None:
    return [window.j0, window.j1, window.i0, window.i1] if window is not None else None


def read_window(bbox: subset.BBox | None, found: list[SeriesTarget]) -> subset.Window | None:
    """Without a box, the smallest window covering every target: only it is read (and kept)."""
    if bbox is not None or not found:
        return None
    windows = [t.weights.covering_window() for t in found]
    return subset.Window(min(w.j0 for w in windows), max(w.j1 for w in windows),
                         min(w.i0 for w in windows), max(w.i1 for w in windows))


def _compute(kind: str, path: Path, id_field: str | None, lat, lon, fingerprint: str, skip: bool = False) -> SeriesTarget:
    from conus404.outputs.series import points, polygons

    try:
        fitted = subset.fit_grid(lat, lon)
    except Exception as exc:
        raise ConfigurationError(f"--{FOLDERS[kind]} {path}: {exc}") from None
    if kind == POLYGON:
        ids, geometries, unprojectable = polygons.read_polygons(path, id_field, skip)
        if unprojectable:
            log.warning("--skip-off-grid: %d polygon(s) of %s reach a pole and are left out: %s", len(unprojectable),
                        path.name, _listed(unprojectable))
        weights = polygons.exact_weights(geometries, fitted)
        extra = {"polygon_area_m2": (np.array([g.area for g in geometries]), {
            "long_name": "area of the polygon in the CONUS404 Lambert conformal plane", "units": "m2"})}
    else:
        ids, x, y = points.read_points(path, id_field)
        row, col, on_grid = points.containing_cells(x, y, fitted)
        problem = None if skip else points.off_grid_message(path, ids, on_grid)
        if problem:
            raise ConfigurationError(problem + "; --skip-off-grid drops them")
        weights = points.point_weights(row, col, on_grid)
        extra = {
            "point_x": (x, {"long_name": "x of the point in the CONUS404 projection plane", "units": "m"}),
            "point_y": (y, {"long_name": "y of the point in the CONUS404 projection plane", "units": "m"}),
            "cell_row": (row.astype(np.int32), {"long_name": "south_north index of the cell holding the point"}),
            "cell_col": (col.astype(np.int32), {"long_name": "west_east index of the cell holding the point"}),
            "cell_lat": (np.asarray(lat, np.float64)[row, col], {"standard_name": "latitude",
                "long_name": "latitude of the centre of the cell holding the point", "units": "degree_north"}),
            "cell_lon": (np.asarray(lon, np.float64)[row, col], {"standard_name": "longitude",
                "long_name": "longitude of the centre of the cell holding the point", "units": "degree_east"}),
        }
    key = _key(kind, path, id_field, fingerprint, skip)
    return SeriesTarget(kind, output_name(path), path, ids, weights, key, extra)


def _restricted(target: SeriesTarget, window: subset.Window | None, refuse: bool, skip: bool = False) -> SeriesTarget:
    """``target`` on the cells the run reads, with its coverage of them; a feature wholly outside
    them is refused (``refuse``) with one line naming it, or left out (``skip``: --skip-off-grid)."""
    weights = target.weights.within(window) if window is not None else target.weights
    extra = dict(target.extra)
    where = f"the box's window ({window})" if window is not None else "the source's grid"
    if target.kind == POLYGON:
        coverage = weights.covered_area() / extra["polygon_area_m2"][0]
        off = [target.ids[k] for k in np.flatnonzero(coverage <= 0)]
        partly = np.flatnonzero((coverage > 0) & (coverage < 1 - 1e-9)) if refuse else []
        for k in partly[:20]:
            log.warning("polygon %s of %s: %.1f %% of it lies inside %s", target.ids[k], target.path.name,
                        100 * coverage[k], where)
        extra["polygon_coverage"] = (np.minimum(coverage, 1.0), {
            "long_name": f"share of the polygon's area inside {where}", "units": "1"})
    else:
        inside = np.zeros(weights.count, bool)
        inside[weights.target] = True
        off = [target.ids[k] for k in np.flatnonzero(~inside)]
    if off and skip:
        if refuse:  # said once, when the run is checked
            log.warning("--skip-off-grid: %d %s(s) of %s lie wholly outside %s and are left out: %s", len(off),
                        target.kind, target.path.name, where, _listed(off))
        return _without(SeriesTarget(target.kind, target.name, target.path, target.ids, weights, target.key, extra,
                                     window), set(off))
    if off and refuse:
        raise ConfigurationError(f"--{FOLDERS[target.kind]} {target.path}: {_listed(off)} "
                                 f"lie{'s' if len(off) == 1 else ''} wholly outside {where}; --skip-off-grid drops them")
    return SeriesTarget(target.kind, target.name, target.path, target.ids, weights, target.key, extra, window)


def _listed(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _without(target: SeriesTarget, dropped: set[str]) -> SeriesTarget:
    """``target`` without the features named in ``dropped`` (their cells' weights renumbered)."""
    keep = np.array([name not in dropped for name in target.ids])
    renumber = np.cumsum(keep) - 1
    w = target.weights
    cells = keep[w.target]
    weights = CellWeights(renumber[w.target[cells]].astype(np.int32), w.row[cells], w.col[cells], w.area[cells],
                          int(keep.sum()))
    extra = {name: (np.asarray(values)[keep], attrs) for name, (values, attrs) in target.extra.items()}
    ids = [name for name, kept in zip(target.ids, keep, strict=True) if kept]
    return SeriesTarget(target.kind, target.name, target.path, ids, weights, target.key, extra, target.window)


def _save(cache: Path, target: SeriesTarget, id_field: str | None, fingerprint: str,
          windows: dict[str, list[int] | None], skip: bool = False) -> None:
    meta = {"version": CACHE_VERSION, "kind": target.kind, "path": str(target.path), "id_field": id_field,
            "skip_off_grid": skip,
            "key": target.key, "fingerprint": fingerprint, "stat": _stat(target.path), "windows": windows,
            "extra": {name: attrs for name, (_, attrs) in target.extra.items()}}
    arrays = {"target": target.weights.target, "row": target.weights.row, "col": target.weights.col,
              "area": target.weights.area, "ids": np.array(target.ids, dtype=str),
              **{f"extra_{name}": values for name, (values, _) in target.extra.items()}}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    with temporary_sibling(cache) as tmp:
        tmp.write_bytes(buffer.getvalue())


def _load(cache: Path, path: Path, id_field: str | None, fingerprint: str | None,
          skip: bool = False) -> tuple[SeriesTarget, dict[str, list[int] | None], bool] | None:
    """The cached target (the windows recorded for it, whether its file's size and time are those
    recorded) if it was made from this file (same
    size and time; with ``fingerprint``, else the same content) for this id field and grid (None:
    not checked); None otherwise."""
    try:
        with np.load(cache, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != CACHE_VERSION or meta.get("id_field") != id_field or meta.get("path") != str(path):
                return None
            if bool(meta.get("skip_off_grid", False)) != skip:
                return None
            if fingerprint is not None and meta.get("fingerprint") != fingerprint:
                return None
            if meta.get("stat") != _stat(path) and (
                    fingerprint is None or meta.get("key") != _key(meta["kind"], path, id_field, fingerprint, skip)):
                return None
            ids = [str(v) for v in data["ids"]]
            weights = CellWeights(data["target"], data["row"], data["col"], data["area"], len(ids))
            extra = {name: (np.array(data[f"extra_{name}"]), attrs) for name, attrs in meta["extra"].items()}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # a torn cache is made again
        return None
    target = SeriesTarget(meta["kind"], output_name(path), path, ids, weights, meta["key"], extra)
    return target, meta.get("windows", {}), meta.get("stat") == _stat(path)
