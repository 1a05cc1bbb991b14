"""Basins (any polygons) on the CONUS404 grid: read, checked, and their exact cell weights.

A polygon file is anything GDAL reads through pyogrio (GeoJSON, GeoPackage, Shapefile, a zipped
Shapefile), in the CRS it declares (GeoJSON: WGS 84). Each polygon is reprojected with pyproj into
the CONUS404 Lambert conformal plane, where a grid cell is the square around its centre; the
weight of a cell is the exact area of its intersection with the polygon (shapely 2, vectorised:
holes subtract, the parts of a multipolygon add). A polygon smaller than a cell gets the cells it
touches. Every refusal is a ConfigurationError naming the file and the offending feature.
"""

from __future__ import annotations

import math
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

    def covered_area(self) -> np.ndarray:
        return np.bincount(self.target, weights=self.area, minlength=self.count)

    def within(self, window: Window) -> CellWeights:
        keep = (self.row >= window.j0) & (self.row < window.j1) & (self.col >= window.i0) & (self.col < window.i1)
        return CellWeights(self.target[keep], self.row[keep], self.col[keep], self.area[keep], self.count)

    def covering_window(self) -> Window:
        return Window(int(self.row.min()), int(self.row.max()) + 1, int(self.col.min()), int(self.col.max()) + 1)

    def means(self, field: np.ndarray, window: Window | None) -> np.ndarray:
        """Each target's area-weighted mean of ``field`` (a 2-D array of ``window``, None = the whole
        grid); cells without a value (NaN) are left out of the weights, a target without any is NaN."""
        j0, i0 = (window.j0, window.i0) if window is not None else (0, 0)
        values = np.asarray(field, dtype=np.float64)[self.row - j0, self.col - i0]
        valid = np.isfinite(values)
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
    for feature_id, geometry in zip(list(frame[id_field]), frame.geometry.to_crs(conus404_crs()), strict=True):
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


def _polygonal_part(geometry):
    """What is left of a repaired geometry that has area (a collection may hold lines and points too)."""
    import shapely

    parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon") and g.area > 0]
    return shapely.union_all(parts) if parts else None


def exact_weights(geometries: list, fitted: FittedGrid) -> CellWeights:
    """The cells of the whole grid each polygon overlaps, weighted by the overlap's exact area."""
    import shapely

    half_x, half_y = abs(fitted.dx) / 2, abs(fitted.dy) / 2
    targets, rows, cols, areas = [], [], [], []
    for index, geometry in enumerate(geometries):
        shapely.prepare(geometry)
        minx, miny, maxx, maxy = geometry.bounds
        (j_a, j_b), (i_a, i_b) = fitted.index_of(np.array([minx, maxx]), np.array([miny, maxy]))
        j_lo, j_hi = _cell_range(j_a, j_b, fitted.ny)
        i_lo, i_hi = _cell_range(i_a, i_b, fitted.nx)
        if j_lo > j_hi or i_lo > i_hi:
            continue  # wholly off the grid
        jj, ii = np.meshgrid(np.arange(j_lo, j_hi + 1), np.arange(i_lo, i_hi + 1), indexing="ij")
        jj, ii = jj.ravel(), ii.ravel()
        cx, cy = fitted.x0 + ii * fitted.dx, fitted.y0 + jj * fitted.dy
        cells = shapely.box(cx - half_x, cy - half_y, cx + half_x, cy + half_y)
        inside = shapely.contains_properly(geometry, cells)
        edge = shapely.intersects(geometry, cells) & ~inside
        area = np.zeros(len(cells))
        area[inside] = shapely.area(cells[inside])
        area[edge] = shapely.area(shapely.intersection(cells[edge], geometry))
        keep = area > 0
        targets.append(np.full(int(keep.sum()), index, np.int32))
        rows.append(jj[keep].astype(np.int32))
        cols.append(ii[keep].astype(np.int32))
        areas.append(area[keep])
    if not targets:
        return CellWeights(*(np.zeros(0, t) for t in (np.int32, np.int32, np.int32, np.float64)), len(geometries))
    return CellWeights(np.concatenate(targets), np.concatenate(rows), np.concatenate(cols), np.concatenate(areas),
                       len(geometries))


def _cell_range(a: float, b: float, n: int) -> tuple[int, int]:
    """The cells (whole indices, within 0..n-1) whose squares the index interval [a, b] reaches."""
    lo, hi = min(a, b), max(a, b)
    return max(0, math.floor(lo + 0.5)), min(n - 1, math.floor(hi + 0.5))
