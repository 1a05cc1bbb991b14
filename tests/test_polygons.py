"""Exact cell weights of polygons (polygons.exact_weights, CellWeights) against an independent
computation written here: each cell sampled densely with points, counted inside the polygon
(a point-in-polygon test, not an intersection area). Sum of weights = the polygon's area for a
non-convex polygon, one with a hole, a multipolygon and one smaller than a cell (unit tests)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from conus404.core.subset import FittedGrid, Window
from conus404.outputs.series.polygons import CellWeights, exact_weights

GRID = FittedGrid(x0=-22_000.0, y0=-14_000.0, dx=4_000.0, dy=4_000.0, ny=9, nx=12)  # cell (j, i) centred at x0 + i dx
SAMPLES = 160  # per cell side: a boundary cell's sampled share is within ~1/SAMPLES of the truth
CELL_AREA = GRID.dx * GRID.dy

NON_CONVEX = Polygon([(-19_000, -11_000), (5_000, -11_500), (5_500, -3_000), (-6_000, -4_000), (-7_000, 9_000),
                      (-18_000, 10_000)])
WITH_HOLE = Polygon([(-3_000, -9_000), (19_000, -9_000), (19_000, 12_000), (-3_000, 12_000)],
                    holes=[[(2_500, -2_500), (13_000, -3_500), (12_000, 6_000), (3_000, 7_000)]])
MULTI = MultiPolygon([Polygon([(-21_000, 11_000), (-15_500, 11_000), (-15_500, 17_500), (-21_000, 17_500)]),
                      Polygon([(14_000, -13_500), (23_000, -13_000), (20_000, -6_000)])])
SMALL = Polygon([(6_900, 1_100), (8_600, 1_300), (8_200, 2_700), (7_100, 2_400)])  # inside one cell? across two
POLYGONS = [NON_CONVEX, WITH_HOLE, MULTI, SMALL]


def sampled_areas(polygon) -> dict[tuple[int, int], float]:
    """Area of ``polygon`` in each cell, by counting sample points of the cell inside it."""
    offsets = (np.arange(SAMPLES) + 0.5) / SAMPLES - 0.5
    found = {}
    for j in range(GRID.ny):
        for i in range(GRID.nx):
            cx, cy = GRID.x0 + i * GRID.dx, GRID.y0 + j * GRID.dy
            xs, ys = np.meshgrid(cx + offsets * GRID.dx, cy + offsets * GRID.dy)
            share = shapely.contains_xy(polygon, xs.ravel(), ys.ravel()).mean()
            if share > 0:
                found[(j, i)] = share * CELL_AREA
    return found


def as_cells(weights: CellWeights, target: int) -> dict[tuple[int, int], float]:
    mine = weights.target == target
    return {(int(j), int(i)): float(a) for j, i, a in zip(weights.row[mine], weights.col[mine], weights.area[mine], strict=True)}


@pytest.fixture(scope="module")
def weights() -> CellWeights:
    return exact_weights(POLYGONS, GRID)


@pytest.mark.parametrize("index", range(len(POLYGONS)), ids=["non-convex", "hole", "multipolygon", "smaller-than-a-cell"])
def test_weights_are_the_exact_overlap_areas(weights, index):
    polygon = POLYGONS[index]
    exact = as_cells(weights, index)
    assert sum(exact.values()) == pytest.approx(polygon.area, rel=1e-9), "the weights add up to the polygon's area"
    sampled = sampled_areas(polygon)
    tolerance = 4 * CELL_AREA / SAMPLES  # a cell's boundary crosses at most ~4 rows/columns of samples
    for cell in set(exact) | set(sampled):
        assert exact.get(cell, 0.0) == pytest.approx(sampled.get(cell, 0.0), abs=tolerance), cell
    assert all(0 < area <= CELL_AREA * (1 + 1e-12) for area in exact.values())


def test_a_hole_subtracts_and_the_parts_of_a_multipolygon_add(weights):
    hole = Polygon(WITH_HOLE.interiors[0])
    assert sum(as_cells(weights, 1).values()) == pytest.approx(Polygon(WITH_HOLE.exterior).area - hole.area, rel=1e-9)
    assert sum(as_cells(weights, 2).values()) == pytest.approx(sum(p.area for p in MULTI.geoms), rel=1e-9)


def test_a_polygon_smaller_than_a_cell_gets_the_cells_it_touches(weights):
    cells = as_cells(weights, 3)
    assert 1 <= len(cells) <= 4 and SMALL.area < CELL_AREA
    touched = {cell for cell, area in sampled_areas(SMALL).items() if area > 0}
    assert set(cells) == touched


def test_a_polygon_partly_off_the_grid_keeps_the_part_on_it():
    half_off = Polygon([(-30_000, -5_000), (-14_000, -5_000), (-14_000, 3_000), (-30_000, 3_000)])
    found = exact_weights([half_off], GRID)
    on_grid = half_off.intersection(shapely.box(GRID.x0 - GRID.dx / 2, GRID.y0 - GRID.dy / 2,
                                                GRID.x0 + (GRID.nx - 0.5) * GRID.dx, GRID.y0 + (GRID.ny - 0.5) * GRID.dy))
    assert found.covered_area()[0] == pytest.approx(on_grid.area, rel=1e-9)
    assert found.covered_area()[0] / half_off.area == pytest.approx(10 / 16, rel=1e-9)
    nowhere = exact_weights([Polygon([(90_000, 90_000), (99_000, 90_000), (95_000, 99_000)])], GRID)
    assert nowhere.covered_area()[0] == 0 and len(nowhere.area) == 0


def test_means_are_area_weighted_and_skip_cells_without_values(weights):
    rng = np.random.default_rng(7)
    field = rng.normal(280, 5, (GRID.ny, GRID.nx))
    field[4, 5] = np.nan
    got = weights.means(field, None)
    for index in range(len(POLYGONS)):
        cells = {c: a for c, a in as_cells(weights, index).items() if np.isfinite(field[c])}
        expected = sum(a * field[c] for c, a in cells.items()) / sum(cells.values())
        assert got[index] == pytest.approx(expected, rel=1e-12)
    window = Window(2, 8, 1, 11)
    inside = weights.within(window)
    assert inside.means(field[2:8, 1:11], window) == pytest.approx(inside.means(field, None), rel=1e-12, nan_ok=True)
