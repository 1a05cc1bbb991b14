"""Gauges and stations (any points) on the CONUS404 grid: read, checked, and the cell holding each.

A CSV with columns ``id,lon,lat`` (WGS 84), or any vector file of points with ``--point-id``. Each
point is projected with pyproj into the CONUS404 Lambert conformal plane; its value is the cell
whose square holds it (a point on a shared edge goes to the cell with the larger index).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conus404.core.exceptions import ConfigurationError
from conus404.core.subset import FittedGrid
from conus404.outputs.series.polygons import CellWeights, conus404_crs, read_features

CSV_COLUMNS = ("id", "lon", "lat")


def read_points(path: Path, id_field: str | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, x, y) of the points in the CONUS404 projection plane."""
    import pyproj

    if path.suffix.lower() == ".csv":
        ids, lon, lat = _read_csv(path)
    else:
        frame = read_features(path, id_field, "--points", "--point-id")
        ids = list(frame[id_field])
        for feature_id, geometry in zip(ids, frame.geometry, strict=True):
            if geometry is None or geometry.is_empty or geometry.geom_type != "Point":
                kind = "no geometry" if geometry is None or geometry.is_empty else f"a {geometry.geom_type}"
                raise ConfigurationError(f"--points {path}: feature {feature_id} is {kind}, not a point "
                                         "(polygons go to --polygons)")
        frame = frame.to_crs("EPSG:4326")
        lon, lat = frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()
    to_plane = pyproj.Transformer.from_crs("EPSG:4326", conus404_crs(), always_xy=True)
    x, y = to_plane.transform(lon, lat)
    return ids, np.asarray(x, np.float64), np.asarray(y, np.float64)


def _read_csv(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    import pandas as pd

    if not path.exists():
        raise ConfigurationError(f"--points {path}: no such file")
    try:
        table = pd.read_csv(path, dtype={"id": str}, skipinitialspace=True)
    except Exception as exc:
        raise ConfigurationError(f"--points {path} cannot be read as a CSV file: {exc}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigurationError(f"--points {path} lacks the column(s) {', '.join(missing)}: a CSV of points has "
                                 f"the columns {','.join(CSV_COLUMNS)} (its columns: {', '.join(table.columns)})")
    if len(table) == 0:
        raise ConfigurationError(f"--points {path} holds no points")
    if table["id"].isna().any():
        raise ConfigurationError(f"--points {path}: row(s) {', '.join(map(str, np.flatnonzero(table['id'].isna())[:5] + 2))} "
                                 "have no id")
    ids = table["id"].str.strip()
    repeated = sorted(ids[ids.duplicated()].unique())
    if repeated:
        raise ConfigurationError(f"--points {path}: the id(s) {', '.join(repeated[:5])} appear more than once")
    coords = {}
    for name, limit in (("lon", 180.0), ("lat", 90.0)):
        values = pd.to_numeric(table[name], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | (np.abs(values) > limit)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ConfigurationError(f"--points {path}: point {ids.iloc[first]} has {name} {str(table[name].iloc[first])!r}, "
                                     f"not a number within ±{limit:g} degrees")
        coords[name] = values
    return list(ids), coords["lon"], coords["lat"]


def containing_cells(x: np.ndarray, y: np.ndarray, fitted: FittedGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, on_grid) of the cell whose square holds each point."""
    j, i = fitted.index_of(x, y)
    row = np.floor(j + 0.5).astype(np.int64)
    col = np.floor(i + 0.5).astype(np.int64)
    on_grid = (row >= 0) & (row < fitted.ny) & (col >= 0) & (col < fitted.nx)
    return row, col, on_grid


def point_weights(row: np.ndarray, col: np.ndarray, on_grid: np.ndarray) -> CellWeights:
    """Each point's one cell, with weight 1 (so a point's value is its cell's)."""
    index = np.flatnonzero(on_grid)
    return CellWeights(index.astype(np.int32), row[index].astype(np.int32), col[index].astype(np.int32),
                       np.ones(len(index)), len(row))


def off_grid_message(path: Path, ids: list[str], on_grid: np.ndarray) -> str | None:
    off = [ids[k] for k in np.flatnonzero(~on_grid)]
    if not off:
        return None
    more = f" and {len(off) - 5} more" if len(off) > 5 else ""
    return f"--points {path}: {', '.join(off[:5])}{more} lie{'s' if len(off) == 1 else ''} outside the source's grid"

