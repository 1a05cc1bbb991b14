"""What basin series cost on the full CONUS404 grid (issue 15's goals): computing the exact
weights of N HUC-sized polygons once (read the GeoPackage, reproject, intersect with the cells,
cache), and, per day, the series of those polygons for each field (the weighted means plus the
verified day file).

    .venv/bin/python benchmarks/series_cost.py --polygons 1000 --fields 4

Polygons: irregular stars of 120 vertices, 10-40 km across (HUC10/HUC8 sizes, 80-1300 km²),
scattered over the domain, written as WGS 84 to a GeoPackage. One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from conus404.config.settings import assemble  # noqa: E402
from conus404.core import grid
from conus404.outputs.series import days as series
from conus404.outputs.series import weights as series_weights


def huc_like_polygons(count: int, seed: int = 15):
    import geopandas
    from shapely.geometry import Polygon

    rng = np.random.default_rng(seed)
    x_full, y_full = grid.projection_xy()
    shapes = []
    for _ in range(count):
        cx = rng.uniform(x_full[0] + 60e3, x_full[-1] - 60e3)
        cy = rng.uniform(y_full[0] + 60e3, y_full[-1] - 60e3)
        radius = rng.uniform(5e3, 20e3)
        theta = np.linspace(0, 2 * np.pi, 120, endpoint=False)
        wobble = 1 + 0.35 * np.sin(3 * theta + rng.uniform(0, 6)) + 0.1 * rng.standard_normal(theta.size)
        r = radius * np.clip(wobble, 0.3, None)
        lat, lon = grid.latlon_from_xy(cx + r * np.cos(theta), cy + r * np.sin(theta))
        shapes.append(Polygon(np.column_stack([lon, lat])))
    return geopandas.GeoDataFrame({"huc10": [f"{k:010d}" for k in range(count)]}, geometry=shapes, crs="EPSG:4326")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polygons", type=int, default=1000)
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--days", type=int, default=5, help="days of series to time (the median is reported)")
    args = parser.parse_args()
    lat, lon = grid.grid_latlon()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "huc10.gpkg"
        huc_like_polygons(args.polygons).to_file(path, driver="GPKG")
        settings = assemble(start_date=dt.date(2021, 1, 1), end_date=dt.date(2021, 1, 1), variables=("T2",),
                            data_dir=tmp / "data", polygons=path, polygon_id="huc10")
        started = time.perf_counter()
        target = series_weights.prepare(settings.series, settings.outputs.data_dir, None, lat, lon)[0]
        weights_s = time.perf_counter() - started
        print(json.dumps({"measure": "weights", "polygons": args.polygons, "cells_weighted": int(target.weights.area.size),
                          "seconds": round(weights_s, 2), "goal_s": 30, "share_of_goal": round(weights_s / 30, 3)}))
        started = time.perf_counter()
        cached = series_weights.cached(settings.series, settings.outputs.data_dir, None)[0]
        print(json.dumps({"measure": "weights from cache (each worker)", "seconds": round(time.perf_counter() - started, 3)}))
        rng = np.random.default_rng(1)
        fields = [(f"F{k}", rng.normal(280, 10, lat.shape).astype(np.float32), {"units": "K"}) for k in range(args.fields)]
        per_day = []
        for day in range(args.days):
            started = time.perf_counter()
            series.publish_day(settings.outputs.data_dir, [cached], dt.date(2021, 1, 1) + dt.timedelta(days=day), fields, None)
            per_day.append(time.perf_counter() - started)
        median = float(np.median(per_day))
        print(json.dumps({"measure": "series per day", "polygons": args.polygons, "fields": args.fields,
                          "seconds": round(median, 4), "goal_s": 0.1, "share_of_goal": round(median / 0.1, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
