"""Spatial subsets: the smallest index window of the CONUS404 grid that covers a lon/lat box.

CONUS404's cells are squares of the Lambert conformal projection (``conus404.core.grid``), so a
lon/lat box is a curved region in grid-index space. The window is the index rectangle of every
cell whose square the box touches: the box's edges (parallels and meridians) are traced through
the projection at under a quarter of a cell per step, and the region they enclose needs no more
(its index extent is its boundary's). The store's own lat/lon decide the grid's origin and
spacing; a store whose lat/lon are not on that projection is refused rather than guessed at.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from conus404.core import grid
from conus404.core.exceptions import ConfigurationError, SourceLayoutError

STEPS_PER_CELL = 4  # samples of the box's edges per cell of index space
GRID_TOLERANCE_CELLS = 0.05  # how far the store's lat/lon may sit from the projected grid


SERIES_CELLS = "cells "  # conus404_bbox of a polygon/point run's files: "cells " + the window covering them


def covers(held: str | None, wanted: str | None) -> bool:
    """Whether a file of the region ``held`` serves a request for ``wanted`` (conus404_bbox texts): the
    same region, or the whole domain for the cells covering a run's polygons and points (it holds them)."""
    return held == wanted or (held is None and wanted is not None and wanted.startswith(SERIES_CELLS))


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def __str__(self) -> str:
        return ",".join(repr(v) for v in (self.min_lon, self.min_lat, self.max_lon, self.max_lat))  # exact round trip


@dataclass(frozen=True)
class Window:
    """Rows ``j0:j1`` (south_north) and columns ``i0:i1`` (west_east), ends excluded."""

    j0: int
    j1: int
    i0: int
    i1: int
    clipped: bool = False  # the box reaches past the domain

    @property
    def selection(self) -> dict[str, slice]:
        return {"south_north": slice(self.j0, self.j1), "west_east": slice(self.i0, self.i1)}

    def cut(self, array):
        """The window of a 2-D (south_north, west_east) array."""
        return array[self.j0:self.j1, self.i0:self.i1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.j1 - self.j0, self.i1 - self.i0

    def __str__(self) -> str:
        return f"south_north {self.j0}:{self.j1}, west_east {self.i0}:{self.i1}"

    @classmethod
    def parse(cls, text: str | None) -> Window | None:
        """The window of its ``str`` (a daily file's conus404_window); None for None or ''."""
        if not text:
            return None
        found = re.fullmatch(r"south_north (\d+):(\d+), west_east (\d+):(\d+)", str(text).strip())
        if found is None:
            raise ValueError(f"not a grid window: {text!r}")
        return cls(*(int(g) for g in found.groups()))


def parse_bbox(value: str | list | tuple | None, what: str = "BBOX") -> BBox | None:
    """``"MIN_LON,MIN_LAT,MAX_LON,MAX_LAT"`` (or a sequence of four numbers); empty = the whole domain."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    if len(parts) != 4:
        raise ConfigurationError(f"{what} {value!r} is not MIN_LON,MIN_LAT,MAX_LON,MAX_LAT (four numbers)")
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what} {value!r}: {', '.join(map(str, parts))} are not all numbers") from None
    box = BBox(*numbers)
    if not all(math.isfinite(n) for n in numbers):
        raise ConfigurationError(f"{what} {value!r} has a value that is not a finite number")
    if not (-180 <= box.min_lon < box.max_lon <= 180):
        raise ConfigurationError(f"{what} {value!r}: longitudes must satisfy -180 <= MIN_LON < MAX_LON <= 180")
    if not (-90 <= box.min_lat < box.max_lat <= 90):
        raise ConfigurationError(f"{what} {value!r}: latitudes must satisfy -90 <= MIN_LAT < MAX_LAT <= 90")
    return box


@dataclass(frozen=True)
class FittedGrid:
    """The store's grid in the projection plane: cell (j, i) is centred on (x0 + i dx, y0 + j dy)."""

    x0: float
    y0: float
    dx: float
    dy: float
    ny: int
    nx: int

    def index_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (j, i) of projection coordinates; the cell holding a point is the nearest whole index."""
        return (np.asarray(y) - self.y0) / self.dy, (np.asarray(x) - self.x0) / self.dx


FIT_SAMPLE = 64  # rows and columns of lat/lon a grid fit looks at


def fit_grid(lat: np.ndarray, lon: np.ndarray) -> FittedGrid:
    """The regular Lambert conformal grid of the store's lat/lon.

    Raises SourceLayoutError if the lat/lon are not a regular grid of the Lambert conformal projection.
    """
    ny, nx = lat.shape
    if ny < 2 or nx < 2:
        raise SourceLayoutError(f"a {ny} x {nx} grid is too small to subset")
    # up to 64 rows and columns, the edges included: a regular grid fits them as it fits all
    rows = np.unique(np.linspace(0, ny - 1, min(ny, FIT_SAMPLE)).round().astype(int))
    cols = np.unique(np.linspace(0, nx - 1, min(nx, FIT_SAMPLE)).round().astype(int))
    sample = np.ix_(rows, cols)
    x, y = grid.xy_from_latlon(lat[sample].astype(np.float64), lon[sample].astype(np.float64))
    dx = (x[:, -1] - x[:, 0]).mean() / (nx - 1)
    dy = (y[-1, :] - y[0, :]).mean() / (ny - 1)
    x0 = x[:, 0].mean()
    y0 = y[0, :].mean()
    expected_x = x0 + dx * cols[None, :]
    expected_y = y0 + dy * rows[:, None]
    off = max(np.abs(x - expected_x).max() / abs(dx), np.abs(y - expected_y).max() / abs(dy))
    if not off < GRID_TOLERANCE_CELLS:
        raise SourceLayoutError(
            f"the store's lat/lon are {off:.2f} cells off CONUS404's Lambert conformal grid: cannot subset it by a box"
        )
    return FittedGrid(float(x0), float(y0), float(dx), float(dy), ny, nx)


def fractional_indices(lat: np.ndarray, lon: np.ndarray):
    """A function (lon, lat) -> (j, i) in index units of the store's grid, fitted to its lat/lon.

    Raises SourceLayoutError if the lat/lon are not a regular grid of the Lambert conformal projection.
    """
    fitted = fit_grid(lat, lon)

    def to_index(lon_pts: np.ndarray, lat_pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px, py = grid.xy_from_latlon(np.asarray(lat_pts, np.float64), np.asarray(lon_pts, np.float64))
        return fitted.index_of(px, py)

    return to_index


def _edge_points(box: BBox, to_index) -> tuple[np.ndarray, np.ndarray]:
    """Points along the box's four edges, under 1/STEPS_PER_CELL of a cell apart in index space."""
    corners = [(box.min_lon, box.min_lat), (box.max_lon, box.min_lat), (box.max_lon, box.max_lat),
               (box.min_lon, box.max_lat), (box.min_lon, box.min_lat)]
    js, is_ = [], []
    for (lon_a, lat_a), (lon_b, lat_b) in zip(corners, corners[1:], strict=False):
        t = np.linspace(0.0, 1.0, 257)
        j, i = to_index(lon_a + t * (lon_b - lon_a), lat_a + t * (lat_b - lat_a))
        length = float(np.hypot(np.diff(j), np.diff(i)).sum())
        t = np.linspace(0.0, 1.0, max(257, int(math.ceil(length * STEPS_PER_CELL)) + 1))
        j, i = to_index(lon_a + t * (lon_b - lon_a), lat_a + t * (lat_b - lat_a))
        js.append(j)
        is_.append(i)
    return np.concatenate(js), np.concatenate(is_)


def index_window(lat: np.ndarray, lon: np.ndarray, box: BBox) -> Window:
    """The smallest index window whose cells cover ``box`` (within the domain).

    Raises ConfigurationError if the box and the domain do not overlap.
    """
    ny, nx = lat.shape
    outside = ConfigurationError(
        f"the box {box} lies outside the CONUS404 domain (lat {np.nanmin(lat):.1f}..{np.nanmax(lat):.1f}, "
        f"lon {np.nanmin(lon):.1f}..{np.nanmax(lon):.1f})"
    )
    near = _within_domain_extent(box, lat, lon)  # far from the domain the projection runs to infinity
    if near is None:
        raise outside
    j, i = _edge_points(near, fractional_indices(lat, lon))
    inside = clip_to_rectangle(np.column_stack([j, i]), (-0.5, ny - 0.5), (-0.5, nx - 0.5))  # the cells' squares
    if len(inside) == 0:
        raise outside
    # The cell whose square holds a point: its centre is the nearest whole index.
    cj = np.clip(np.floor(inside[:, 0] + 0.5), 0, ny - 1).astype(int)
    ci = np.clip(np.floor(inside[:, 1] + 0.5), 0, nx - 1).astype(int)
    clipped = near != box or bool((j < -0.5).any() or (j > ny - 0.5).any() or (i < -0.5).any() or (i > nx - 0.5).any())
    return Window(int(cj.min()), int(cj.max()) + 1, int(ci.min()), int(ci.max()) + 1, clipped)


def _within_domain_extent(box: BBox, lat: np.ndarray, lon: np.ndarray) -> BBox | None:
    """``box`` cut to the domain's lon/lat extent plus a cell (which holds every cell's whole square)."""
    margin = float(max(np.abs(np.diff(lat, axis=0)).max(), np.abs(np.diff(lat, axis=1)).max(),
                       np.abs(np.diff(lon, axis=0)).max(), np.abs(np.diff(lon, axis=1)).max()))
    cut = BBox(max(box.min_lon, float(np.nanmin(lon)) - margin), max(box.min_lat, float(np.nanmin(lat)) - margin),
               min(box.max_lon, float(np.nanmax(lon)) + margin), min(box.max_lat, float(np.nanmax(lat)) + margin))
    return cut if cut.min_lon < cut.max_lon and cut.min_lat < cut.max_lat else None


def clip_to_rectangle(polygon: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]) -> np.ndarray:
    """Sutherland-Hodgman: the part of a closed ``polygon`` ((n, 2) of row, col) inside the rectangle."""
    points = [tuple(p) for p in polygon]
    for axis, bound, keep_below in ((0, rows[0], False), (0, rows[1], True), (1, cols[0], False), (1, cols[1], True)):
        if not points:
            break

        def inside(p, axis=axis, bound=bound, keep_below=keep_below):
            return p[axis] <= bound if keep_below else p[axis] >= bound

        result = []
        for current, previous in zip(points, points[-1:] + points[:-1], strict=True):
            if inside(current):
                if not inside(previous):
                    result.append(_crossing(previous, current, axis, bound))
                result.append(current)
            elif inside(previous):
                result.append(_crossing(previous, current, axis, bound))
        points = result
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def _crossing(a, b, axis: int, bound: float) -> tuple[float, float]:
    t = (bound - a[axis]) / (b[axis] - a[axis])
    return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
