"""Basins (any polygons) on the CONUS404 grid: read, checked, and their exact cell weights.

A polygon file is anything GDAL reads through pyogrio (GeoJSON, GeoPackage, Shapefile, a zipped
Shapefile), in the CRS it declares (GeoJSON: WGS 84). Each polygon is reprojected with pyproj into
the CONUS404 Lambert conformal plane, where a grid cell is the square around its centre; the
weight of a cell is the exact area of its intersection with the polygon (shapely 2, vectorised:
holes subtract, the parts of a multipolygon add). A polygon smaller than a cell gets the cells it
touches. Every refusal is a ConfigurationError naming the file and the offending feature.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conus404.core import grid
from conus404.core.exceptions import ConfigurationError
from conus404.core.subset import FittedGrid, Window

WGS84_BY_DEFINITION = (".geojson", ".json", ".csv")  # formats whose coordinates are WGS 84 by their specification


def conus404_crs():
    import pyproj

    return pyproj.CRS.from_proj4(grid.crs_attributes()["proj4"])


@dataclass(frozen=True)
class CellWeights:
    """A sparse (target x cell) matrix: entry k gives ``area[k]`` m² of target ``target[k]`` in cell
    (``row[k]``, ``col[k]``) of the store's whole grid."""

    target: np.ndarray  # int32
    row: np.ndarray  # int32
    col: np.ndarray  # int32
    area: np.ndarray  # float64, m² in the projection plane
    count: int  # number of targets

    @classmethod
    def empty(cls, count: int) -> CellWeights:
        """No cell for any of ``count`` targets."""
        return cls(*(np.zeros(0, t) for t in (np.int32, np.int32, np.int32, np.float64)), count)

    def covered_area(self) -> np.ndarray:
        return np.bincount(self.target, weights=self.area, minlength=self.count)

    @functools.cached_property
    def _covered(self) -> np.ndarray:  # computed once per weights, used by every day's means
        return self.covered_area()

    @functools.cached_property
    def _flat_indices(self) -> dict:
        return {}

    def _flat_index(self, window: Window | None, width: int) -> np.ndarray:
        """Each entry's cell as an index into the raveled field of ``window`` (``width`` columns),
        computed once per window."""
        j0, i0 = (window.j0, window.i0) if window is not None else (0, 0)
        key = (j0, i0, width)
        if key not in self._flat_indices:
            self._flat_indices[key] = (self.row.astype(np.int64) - j0) * width + (self.col - i0)
        return self._flat_indices[key]

    def within(self, window: Window) -> CellWeights:
        keep = (self.row >= window.j0) & (self.row < window.j1) & (self.col >= window.i0) & (self.col < window.i1)
        return CellWeights(self.target[keep], self.row[keep], self.col[keep], self.area[keep], self.count)

    def covering_window(self) -> Window:
        return Window(int(self.row.min()), int(self.row.max()) + 1, int(self.col.min()), int(self.col.max()) + 1)

    def means(self, field: np.ndarray, window: Window | None) -> np.ndarray:
        """Each target's area-weighted mean of ``field`` (a 2-D array of ``window``, None = the whole
        grid); cells without a value (NaN) are left out of the weights, a target without any is NaN."""
        field = np.asarray(field)
        values = field.ravel().take(self._flat_index(window, field.shape[1])).astype(np.float64)  # the cells used
        valid = np.isfinite(values)
        if valid.all():  # the usual day: the same sums, without masking
            total = np.bincount(self.target, weights=self.area * values, minlength=self.count)
            with np.errstate(invalid="ignore", divide="ignore"):
                return total / self._covered
        weight = np.where(valid, self.area, 0.0)
        total = np.bincount(self.target, weights=weight * np.where(valid, values, 0.0), minlength=self.count)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / np.bincount(self.target, weights=weight, minlength=self.count)


def read_features(path: Path, id_field: str | None, flag: str, id_flag: str):
    """The file's features as a GeoDataFrame with string ids, in the CRS it declares; refused (one
    line) when it cannot be read, is empty, lacks a CRS, or its id field is missing, empty or repeated."""
    import geopandas

    if not path.exists():
        raise ConfigurationError(f"{flag} {path}: no such file")
    try:
        frame = geopandas.read_file(path, engine="pyogrio")
    except Exception as exc:  # GDAL's own message says what is wrong with the file
        raise ConfigurationError(f"{flag} {path} cannot be read as a vector file: {exc}") from None
    if not isinstance(frame, geopandas.GeoDataFrame) or frame.geometry is None:
        columns = ", ".join(map(str, frame.columns)) or "none"
        hint = " (a CSV of id,lon,lat is a point file: --points)" if flag == "--polygons" else ""
        raise ConfigurationError(f"{flag} {path} holds a table without geometries (its columns: {columns}){hint}")
    if len(frame) == 0:
        raise ConfigurationError(f"{flag} {path} holds no features")
    if frame.crs is None:
        if path.suffix.lower() not in WGS84_BY_DEFINITION:
            raise ConfigurationError(f"{flag} {path} declares no coordinate reference system (a Shapefile needs "
                                     "its .prj beside it); reproject or define it, e.g. with ogr2ogr -a_srs")
        frame = frame.set_crs("EPSG:4326")
    fields = [c for c in frame.columns if c != frame.geometry.name]
    if not id_field:
        raise ConfigurationError(f"{flag} {path}: say which field names the features with {id_flag} "
                                 f"(its fields: {', '.join(fields) or 'none'})")
    if id_field not in fields:
        raise ConfigurationError(f"{id_flag} {id_field!r} is not a field of {path} (its fields: {', '.join(fields) or 'none'})")
    ids = frame[id_field]
    if ids.isna().any():
        raise ConfigurationError(f"{id_flag} {id_field!r}: feature(s) {', '.join(map(str, np.flatnonzero(ids.isna())[:5]))} "
                                 f"of {path} have no {id_field}")
    texts = ids.map(_id_text)
    repeated = sorted(texts[texts.duplicated()].unique())
    if repeated:
        raise ConfigurationError(f"{id_flag} {id_field!r} is not unique in {path}: {', '.join(repeated[:5])} "
                                 f"{'appear' if len(repeated) > 1 else 'appears'} more than once")
    return frame.assign(**{id_field: texts})


def _id_text(value) -> str:
    """An id as text: 7.0 from a float column is '7', as the user wrote it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_polygons(path: Path, id_field: str | None, skip_unprojectable: bool = False) -> tuple[list[str], list, list[str]]:
    """(ids, shapely polygons in the CONUS404 projection plane, ids skipped), each repaired if it was
    invalid. A polygon that cannot be projected into the Lambert conformal plane (one reaching a pole,
    e.g. Antarctica: its coordinates become infinite) is refused by name, or skipped with
    ``skip_unprojectable`` (--skip-off-grid: it is off the grid)."""
    import shapely

    frame = read_features(path, id_field, "--polygons", "--polygon-id")
    geometries, kept, skipped = [], [], []
    for feature_id, geometry in zip(list(frame[id_field]), _projected(frame.geometry), strict=True):
        if geometry is None or geometry.is_empty:
            raise ConfigurationError(f"--polygons {path}: feature {feature_id} has no geometry")
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            raise ConfigurationError(f"--polygons {path}: feature {feature_id} is a {geometry.geom_type}, not a polygon "
                                     "(points go to --points)")
        if not np.isfinite(shapely.bounds(geometry)).all():
            if skip_unprojectable:
                skipped.append(feature_id)
                continue
            raise ConfigurationError(f"--polygons {path}: feature {feature_id} cannot be projected into CONUS404's "
                                     "Lambert conformal plane (it reaches a pole); it is off the grid: "
                                     "--skip-off-grid drops such features")
        if not geometry.is_valid:
            why = shapely.is_valid_reason(geometry)
            geometry = _polygonal_part(shapely.make_valid(geometry))
            if geometry is None:
                raise ConfigurationError(f"--polygons {path}: feature {feature_id} is not a valid polygon ({why}) "
                                         "and cannot be repaired into one")
        geometries.append(geometry)
        kept.append(feature_id)
    if not kept:
        raise ConfigurationError(f"--polygons {path}: none of its {len(skipped)} polygons can be projected onto the grid")
    return kept, geometries, skipped


PROJECTED_PER_BATCH = 10_000  # features reprojected at a time: pyproj's temporaries stay small


def _projected(geometry) -> list:
    """The geometries in the CONUS404 plane, reprojected a batch at a time (all at once, a national
    file's 13 million vertices need 0.8 GB of temporaries)."""
    crs = conus404_crs()
    out: list = []
    for start in range(0, len(geometry), PROJECTED_PER_BATCH):
        out.extend(geometry.iloc[start:start + PROJECTED_PER_BATCH].to_crs(crs))
    return out


def _polygonal_part(geometry):
    """What is left of a repaired geometry that has area (a collection may hold lines and points too)."""
    import shapely

    parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon") and g.area > 0]
    return shapely.union_all(parts) if parts else None


POLYGONS_PER_BATCH = 8192  # memory: one batch's strips and cell pieces at a time


def exact_weights(geometries: list, fitted: FittedGrid) -> CellWeights:
    """The cells of the whole grid each polygon overlaps, weighted by the overlap's exact area.

    Vectorised over the polygons (shapely's array functions, no loop per polygon): every polygon is
    cut into the strips of the grid rows it spans, a row at a time (one rectangle for every polygon
    reaching that row), then each strip into its cells, a column at a time, by GEOS's rectangle
    clipping; a cell's weight is the area of its piece."""
    geometries = list(geometries)
    parts = []
    for start in range(0, len(geometries), POLYGONS_PER_BATCH):
        found = _batch_weights(geometries[start:start + POLYGONS_PER_BATCH], fitted)
        parts.append(CellWeights(found.target + start, found.row, found.col, found.area, found.count))
    if not parts:
        return CellWeights.empty(0)
    return CellWeights(np.concatenate([p.target for p in parts]).astype(np.int32), np.concatenate([p.row for p in parts]),
                       np.concatenate([p.col for p in parts]), np.concatenate([p.area for p in parts]), len(geometries))


def _batch_weights(geometries: list, fitted: FittedGrid) -> CellWeights:
    import shapely

    geoms = np.empty(len(geometries), dtype=object)
    geoms[:] = geometries
    n = len(geoms)
    half_x, half_y = abs(fitted.dx) / 2, abs(fitted.dy) / 2
    bounds = shapely.bounds(geoms).reshape(n, 4)
    j_lo, j_hi = _cell_ranges(bounds, fitted, "y")
    i_lo, i_hi = _cell_ranges(bounds, fitted, "x")
    rows = np.where((j_lo <= j_hi) & (i_lo <= i_hi), j_hi - j_lo + 1, 0)
    if not rows.any():
        return CellWeights.empty(n)
    far = float(np.abs(bounds).max()) * 2 + 1.0  # a rectangle side that leaves the other axis as it is
    strip_of = np.repeat(np.arange(n), rows)
    strip_j = j_lo[strip_of] + _ranks(rows)
    strips = _clip_grouped(geoms[strip_of], strip_j, lambda j: (-far, fitted.y0 + j * fitted.dy - half_y,
                                                               far, fitted.y0 + j * fitted.dy + half_y))
    # each strip's own columns (a multipart polygon's strips reach only some of its box's columns)
    strip_bounds = shapely.bounds(strips).reshape(len(strips), 4)
    empty = ~np.isfinite(strip_bounds).all(axis=1)
    strip_bounds[empty] = 0.0
    s_lo, s_hi = _cell_ranges(strip_bounds, fitted, "x")
    cols = np.where(empty | (s_lo > s_hi), 0, s_hi - s_lo + 1)
    piece_of = np.repeat(np.arange(len(strip_of)), cols)
    cell_i = s_lo[piece_of] + _ranks(cols)
    pieces = _clip_grouped(strips[piece_of], cell_i, lambda i: (fitted.x0 + i * fitted.dx - half_x, -far,
                                                                fitted.x0 + i * fitted.dx + half_x, far))
    area = shapely.area(pieces)
    keep = area > 0
    return CellWeights(strip_of[piece_of][keep].astype(np.int32), strip_j[piece_of][keep].astype(np.int32),
                       cell_i[keep].astype(np.int32), area[keep], n)


def _clip_grouped(geoms: np.ndarray, group: np.ndarray, rectangle) -> np.ndarray:
    """Each geometry clipped to ``rectangle(g)`` of its group ``g`` (a row or a column): one vectorised
    clip per group, since GEOS's rectangle clipping takes one rectangle at a time."""
    import shapely

    out = np.empty(len(geoms), dtype=object)
    order = np.argsort(group, kind="stable")
    values, starts = np.unique(group[order], return_index=True)
    for value, a, b in zip(values, starts, [*starts[1:], len(order)], strict=True):
        chosen = order[a:b]
        out[chosen] = shapely.clip_by_rect(geoms[chosen], *rectangle(int(value)))
    return out


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count, concatenated."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def _cell_ranges(bounds: np.ndarray, fitted: FittedGrid, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """The first and last cell index (within the grid) each polygon's bounding box reaches along ``axis``."""
    lo, hi = (bounds[:, 1], bounds[:, 3]) if axis == "y" else (bounds[:, 0], bounds[:, 2])
    origin, step, size = (fitted.y0, fitted.dy, fitted.ny) if axis == "y" else (fitted.x0, fitted.dx, fitted.nx)
    a, b = (lo - origin) / step, (hi - origin) / step
    first = np.maximum(0, np.floor(np.minimum(a, b) + 0.5)).astype(np.int64)
    last = np.minimum(size - 1, np.floor(np.maximum(a, b) + 0.5)).astype(np.int64)
    return first, last


