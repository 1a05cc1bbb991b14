"""The index window of a lon/lat box, checked against a brute-force computation that works the other
way round: sample points inside every cell's square (Lambert conformal x/y, the grid's own
definition of a cell), map them to lon/lat, and see which fall in the box."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from conus404.core import grid, subset
from conus404.core.exceptions import ConfigurationError, SourceLayoutError

SAMPLES = 21  # per side of a cell's square


@functools.lru_cache(maxsize=4)
def cell_samples(ny: int, nx: int, rows: tuple[int, ...], cols: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """lat, lon of SAMPLES x SAMPLES points spread over each cell's square, (rows, cols, s, s)."""
    x, y = grid.projection_xy(ny, nx)
    dx, dy = x[1] - x[0], y[1] - y[0]
    r, c = np.array(rows), np.array(cols)
    offsets = np.arange(SAMPLES) / (SAMPLES - 1) - 0.5
    px = x[c][None, :, None, None] + offsets[None, None, None, :] * dx + 0 * y[r][:, None, None, None]
    py = y[r][:, None, None, None] + offsets[None, None, :, None] * dy + 0 * x[c][None, :, None, None]
    return grid.latlon_from_xy(px, py)


def touched_cells(ny: int, nx: int, box: subset.BBox, rows=None, cols=None) -> np.ndarray:
    """(rows, cols) booleans: whether any sample point of the cell's square lies in ``box``."""
    rows = tuple(range(ny)) if rows is None else tuple(int(r) for r in rows)
    cols = tuple(range(nx)) if cols is None else tuple(int(c) for c in cols)
    lat, lon = cell_samples(ny, nx, rows, cols)
    inside = (lat >= box.min_lat) & (lat <= box.max_lat) & (lon >= box.min_lon) & (lon <= box.max_lon)
    return inside.any(axis=(2, 3))


def grown(box: subset.BBox, degrees: float) -> subset.BBox:
    return subset.BBox(box.min_lon - degrees, box.min_lat - degrees, box.max_lon + degrees, box.max_lat + degrees)


def store_latlon(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    lat, lon = grid.grid_latlon(ny, nx)
    return lat.astype(np.float32), lon.astype(np.float32)  # as stores keep them


def test_the_window_covers_the_box_and_is_minimal_for_200_random_boxes():
    ny, nx = 60, 80
    lat, lon = store_latlon(ny, nx)
    cell_degrees = float(np.abs(np.diff(lat, axis=0)).max())
    rng = np.random.default_rng(404)
    checked = 0
    for _ in range(200):
        west, south = rng.uniform(-130, -66), rng.uniform(21, 52)
        box = subset.BBox(west, south, west + rng.uniform(0.3, 15), south + rng.uniform(0.3, 8))
        touched = touched_cells(ny, nx, box)
        if not touched.any():
            with pytest.raises(ConfigurationError, match="lies outside the CONUS404 domain"):
                subset.index_window(lat, lon, box)
            continue
        window = subset.index_window(lat, lon, box)
        rows, cols = np.nonzero(touched)
        # covers: every cell the box touches is in the window
        assert window.j0 <= rows.min() and rows.max() < window.j1 and window.i0 <= cols.min() and cols.max() < window.i1, box
        # minimal: each edge row/column of the window is touched (allowing slivers thinner than the
        # brute force's sample spacing: the box grown by a tenth of a cell)
        near = touched_cells(ny, nx, grown(box, 0.1 * cell_degrees))
        assert near[window.j0, window.i0:window.i1].any() and near[window.j1 - 1, window.i0:window.i1].any(), box
        assert near[window.j0:window.j1, window.i0].any() and near[window.j0:window.j1, window.i1 - 1].any(), box
        checked += 1
    assert checked > 100


def test_a_small_box_on_the_full_grid_gives_the_brute_force_window():
    lat, lon = store_latlon(grid.FULL_NY, grid.FULL_NX)
    box = subset.BBox(-105.3, 39.5, -104.6, 40.1)  # around Boulder and Denver
    window = subset.index_window(lat, lon, box)
    rows, cols = np.arange(window.j0 - 3, window.j1 + 3), np.arange(window.i0 - 3, window.i1 + 3)
    touched = touched_cells(grid.FULL_NY, grid.FULL_NX, box, rows, cols)
    hit_rows, hit_cols = rows[touched.any(axis=1)], cols[touched.any(axis=0)]
    assert (window.j0, window.j1 - 1, window.i0, window.i1 - 1) == (hit_rows.min(), hit_rows.max(), hit_cols.min(), hit_cols.max())
    assert not window.clipped
    # 0.6 degrees of latitude is about 67 km: 17 or 18 cells of 4 km
    assert 17 <= window.shape[0] <= 19


def test_boxes_reaching_past_the_domain_are_clipped_and_whole_world_is_the_whole_grid():
    lat, lon = store_latlon(60, 80)
    world = subset.index_window(lat, lon, subset.BBox(-180, -90, 180, 90))
    assert (world.j0, world.j1, world.i0, world.i1, world.clipped) == (0, 60, 0, 80, True)
    east = subset.index_window(lat, lon, subset.BBox(-75, 35, -40, 45))
    assert east.i1 == 80 and east.clipped


@pytest.mark.parametrize(("text", "message"), [
    ("-105,39,-104", "is not MIN_LON,MIN_LAT,MAX_LON,MAX_LAT"),
    ("-105,39,west,40", "are not all numbers"),
    ("-104,39,-105,40", "MIN_LON < MAX_LON"),
    ("-105,41,-104,40", "MIN_LAT < MAX_LAT"),
    ("-200,39,-104,40", "-180 <= MIN_LON"),
    ("-105,nan,-104,40", "not a finite number"),
])
def test_bad_boxes_are_refused_with_the_value(text, message):
    with pytest.raises(ConfigurationError, match=message):
        subset.parse_bbox(text, "--bbox")


def test_parse_round_trips_through_its_text():
    box = subset.parse_bbox("-105.123456789,39.1,-104.5,40.25")
    assert subset.parse_bbox(str(box)) == box
    assert subset.parse_bbox("") is None and subset.parse_bbox(None) is None
    assert subset.parse_bbox((-105, 39, -104, 40)) == subset.BBox(-105.0, 39.0, -104.0, 40.0)


def test_a_grid_off_the_projection_is_refused():
    lat, lon = store_latlon(20, 30)
    lon = lon + np.linspace(0, 3, 20)[:, None]  # a skewed grid
    with pytest.raises(SourceLayoutError, match="cells off CONUS404's Lambert conformal grid"):
        subset.index_window(lat, lon, subset.BBox(-100, 35, -95, 40))


def test_clip_to_rectangle_keeps_the_part_inside():
    square = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    part = subset.clip_to_rectangle(square, (0.0, 5.0), (-0.5, 5.0))
    assert part[:, 0].min() == 0.0 and part[:, 0].max() == 1.0 and part[:, 1].min() == -0.5 and part[:, 1].max() == 1.0
    assert len(subset.clip_to_rectangle(square, (2.0, 3.0), (2.0, 3.0))) == 0


def test_a_whole_domain_file_serves_a_polygon_run_but_no_other_region_does():
    cells = f"{subset.SERIES_CELLS}{subset.Window(3, 9, 4, 12)}"
    assert subset.covers(None, cells), "the whole domain holds the cells covering the polygons"
    assert subset.covers(cells, cells) and subset.covers(None, None) and subset.covers("1.0,2.0,3.0,4.0", "1.0,2.0,3.0,4.0")
    assert not subset.covers(cells, None), "a window is not the whole domain"
    assert not subset.covers("1.0,2.0,3.0,4.0", cells) and not subset.covers(None, "1.0,2.0,3.0,4.0")
    assert not subset.covers(f"{subset.SERIES_CELLS}{subset.Window(3, 9, 4, 11)}", cells)
    window = subset.Window(3, 9, 4, 12)
    assert subset.Window.parse(str(window)) == window and subset.Window.parse(None) is None
