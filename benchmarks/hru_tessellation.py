"""A national HRU-like tessellation of the CONUS404 domain, for the series benchmarks (issue 38).

    .venv/bin/python benchmarks/hru_tessellation.py --count 110000 --out /tmp/hrus.gpkg

Voronoi cells of seeds on a jittered lattice over the domain plus dense clusters, clipped to
the grid's outer edge: polygons of about 1-500 km² (the National Hydrologic Model's HRUs: 109,951,
median ~50 km²) that share their borders exactly. Some cells get a hole (a lake, itself a polygon of
the tessellation); a few of those lakes are given to a cell elsewhere, which becomes a multipart
shape. Borders are split into segments of at most ``--segment-m`` metres (HRU outlines follow
terrain, with many vertices). Written in WGS 84 with an ``hru_id`` field, as a user's file would be;
the pipeline projects it back into the CONUS404 plane.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from conus404.core import grid  # noqa: E402
from conus404.outputs.series.polygons import conus404_crs  # noqa: E402


def tessellation(count: int, seed: int = 38, segment_m: float = 500.0, holes: float = 0.01, exclaves: float = 0.002):
    """A GeoDataFrame of about ``count`` polygons (``hru_id``) covering the domain, in the CONUS404 plane."""
    import geopandas
    import shapely

    rng = np.random.default_rng(seed)
    x, y = grid.projection_xy()
    half = grid.FULL_DX_M / 2
    domain = shapely.box(x[0] - half, y[0] - half, x[-1] + half, y[-1] + half)
    lakes = int(count * holes)
    seeds = count - lakes
    # most seeds on a jittered lattice (cells of 0.3-3x the mean area), 15 % in clusters (the small
    # HRUs of mountain headwaters, down to ~1 km²)
    clusters = int(seeds * 0.15)
    width, height = x[-1] - x[0], y[-1] - y[0]
    spacing = np.sqrt(width * height / (seeds - clusters))
    gx, gy = np.meshgrid(np.arange(x[0] + spacing / 2, x[-1], spacing), np.arange(y[0] + spacing / 2, y[-1], spacing))
    even = np.column_stack([gx.ravel(), gy.ravel()]) + rng.uniform(-0.45, 0.45, (gx.size, 2)) * spacing
    centres = np.column_stack([rng.uniform(x[0], x[-1], 2000), rng.uniform(y[0], y[-1], 2000)])
    pick = centres[rng.integers(0, len(centres), clusters)]
    clustered = pick + rng.standard_normal((clusters, 2)) * rng.exponential(12e3, clusters)[:, None]
    points = np.concatenate([clustered, even])
    inside = (points[:, 0] > domain.bounds[0]) & (points[:, 0] < domain.bounds[2]) & \
             (points[:, 1] > domain.bounds[1]) & (points[:, 1] < domain.bounds[3])
    points = np.unique(points[inside].round(1), axis=0)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(points), extend_to=domain))
    cells = shapely.intersection(cells, domain)
    cells = cells[shapely.area(cells) > 0]
    # lakes: a disc inside some of the larger cells, cut out of it (a hole) and kept as a polygon of its own
    areas = shapely.area(cells)
    big = np.flatnonzero(areas > 50e6)
    chosen = rng.choice(big, size=min(lakes, len(big)), replace=False)
    centroids = shapely.point_on_surface(cells[chosen])
    radius = np.sqrt(areas[chosen] * rng.uniform(0.02, 0.1, len(chosen)) / np.pi)
    discs = shapely.intersection(shapely.buffer(centroids, radius, quad_segs=8), cells[chosen])
    cells[chosen] = shapely.difference(cells[chosen], discs)
    # a few lakes belong to a cell elsewhere (an exclave): that cell becomes a multipart shape
    owners = rng.choice(len(cells), size=int(len(discs) * exclaves / max(holes, 1e-9)), replace=False)
    given = rng.choice(len(discs), size=len(owners), replace=False)
    cells[owners] = shapely.union(cells[owners], discs[given])
    keep = np.ones(len(discs), bool)
    keep[given] = False
    polygons = np.concatenate([cells, discs[keep]])
    polygons = shapely.segmentize(polygons, segment_m)
    ids = [f"{k + 1:06d}" for k in range(len(polygons))]
    return geopandas.GeoDataFrame({"hru_id": ids}, geometry=polygons, crs=conus404_crs())


def describe(frame) -> dict:
    import shapely

    area_km2 = frame.geometry.area.to_numpy() / 1e6
    geometry = frame.geometry.to_numpy()
    return {"polygons": len(frame), "area_km2_percentiles_1_50_99": [round(float(v), 1) for v in np.percentile(area_km2, [1, 50, 99])],
            "area_km2_min_max": [round(float(area_km2.min()), 2), round(float(area_km2.max()), 1)],
            "with_holes": int((shapely.get_num_interior_rings(shapely.get_parts(geometry)) > 0).sum()),
            "multipart": int((shapely.get_num_geometries(geometry) > 1).sum()),
            "vertices_median": int(np.median(shapely.get_num_coordinates(geometry))),
            "covered_share_of_domain": round(float(area_km2.sum() * 1e6 / (grid.FULL_NX * grid.FULL_NY * grid.FULL_DX_M ** 2)), 6)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=110_000)
    parser.add_argument("--segment-m", type=float, default=500.0)
    parser.add_argument("--out", type=Path, required=True, help="the GeoPackage to write (WGS 84)")
    args = parser.parse_args()
    started = time.perf_counter()
    frame = tessellation(args.count, segment_m=args.segment_m)
    made = time.perf_counter() - started
    frame.to_crs("EPSG:4326").to_file(args.out, driver="GPKG")
    print(json.dumps({"measure": "tessellation", **describe(frame), "made_s": round(made, 1),
                      "written_s": round(time.perf_counter() - started - made, 1), "path": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
