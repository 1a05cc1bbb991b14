"""What basin series cost on the full CONUS404 grid: the exact weights of the polygons computed once
(read the GeoPackage, reproject, intersect with the cells, cache), a day's series of every polygon
for each field, and the tables' upkeep (issues 15 and 38).

    .venv/bin/python benchmarks/series_cost.py --polygons 1000 --fields 4
    .venv/bin/python benchmarks/series_cost.py --tessellation 110000 --fields 4 --append-days 30 --record-days 15706

--polygons N: irregular stars of 120 vertices, 10-40 km across (HUC10/HUC8 sizes, 80-1300 km²),
scattered over the domain. --tessellation N: N HRU-like polygons covering the whole domain
(benchmarks/hru_tessellation.py: 1-500 km², shared borders, holes, multipart shapes). Both written
as WGS 84 GeoPackages. One JSON line per measurement; the weights, each upkeep and the run's end
over the whole record run in a process of their own, whose peak RSS is reported.

--record-days D simulates a table that already holds D days (values written chunk by chunk, each
day's part file a sparse file of its real size, recorded in the table's ledger; the Parquet months
entered in their ledger as written, not written: 1.7 billion rows), then times a run's end over
it, and reading one basin's whole record and one day's national values from NAME.zarr.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # hru_tessellation

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


FIRST_DAY = dt.date(1979, 10, 1)


def _fields(names: list[str], shape, rng) -> list[tuple[str, np.ndarray, dict]]:
    return [(name, rng.normal(280, 10, shape).astype(np.float32), {"units": "K", "cell_methods": "time: mean"})
            for name in names]


def _settings(tmp: Path, gpkg: Path, id_field: str, days: int = 1):
    return assemble(start_date=FIRST_DAY, end_date=FIRST_DAY + dt.timedelta(days=days - 1), variables=("T2",),
                    data_dir=tmp / "data", polygons=gpkg, polygon_id=id_field)


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def phase(args) -> dict:
    """One measurement in this process (its peak RSS is the measurement's)."""
    import pyarrow.parquet  # noqa: F401  (imported before the clock starts: a run's end has them already)
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    from conus404.outputs.series import tables

    settings = _settings(args.tmp, args.gpkg, args.id_field, args.last_day + 1)
    names = [f"F{k}" for k in range(args.fields)]
    started = time.perf_counter()
    if args.phase == "weights":
        lat, lon = grid.grid_latlon()
        target = series_weights.prepare(settings.series, settings.outputs.data_dir, None, lat, lon)[0]
        extra = {"polygons": target.weights.count, "cells_weighted": int(target.weights.area.size)}
    elif args.phase == "upkeep":
        targets = series_weights.cached(settings.series, settings.outputs.data_dir, None)
        request = settings.request
        days = [FIRST_DAY + dt.timedelta(days=k) for k in range(args.first_day, args.last_day + 1)]
        from dataclasses import replace

        tables.write_tables(replace(request, start_date=days[0], end_date=days[-1]), settings.outputs.data_dir,
                            "the benchmark", targets, names)
        extra = {"days": len(days)}
    else:
        extra = simulate_record(settings, names, args.last_day + 1)
    return {**extra, "seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": _peak_rss_mb()}


def simulate_record(settings, names: list[str], record_days: int) -> dict:
    """A table holding ``record_days`` days, as the upkeep would have left it (see the module's docstring)."""
    import json as json_

    import zarr

    from conus404.core.atomic import atomic_write_text
    from conus404.outputs.series import parquet_table, zarr_table

    data_dir = settings.outputs.data_dir
    target = series_weights.cached(settings.series, data_dir, None)[0]
    days = [FIRST_DAY + dt.timedelta(days=k) for k in range(record_days)]
    count = target.weights.count
    attrs = {name: {"units": "K", "cell_methods": "time: mean"} for name in names}
    path = zarr_table.table_path(data_dir, target)
    table_id = zarr_table._create(path, (days[0], days[-1]), 0, "the benchmark", target, names, attrs)
    group = zarr.open_group(str(path), mode="r+", zarr_format=2, use_consolidated=False)
    rng = np.random.default_rng(38)
    offset = rng.normal(0, 8, count).astype(np.float32)[:, None]  # each basin's climate
    step = zarr_table.TIME_CHUNK
    for a in range(0, record_days, step):
        b = min(a + step, record_days)
        season = (10 * np.sin(2 * np.pi * np.arange(a, b) / 365.25)).astype(np.float32)[None, :]
        for k, name in enumerate(names):
            weather = rng.normal(0, 3, (count, b - a)).astype(np.float32)
            group[name][:, a:b] = 280 + k + offset + season + weather
    group[zarr_table.RECORDED][:] = 1
    size = 8 * len(names) * count + 600  # a part file's size (float64 values and its metadata)
    ledger = {}
    for day in days:
        part = zarr_table.series.part_path(data_dir, target.kind, target.name, day)
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "wb") as handle:
            handle.truncate(size)  # sparse: its size, no content (a recorded, unchanged part is never read)
        info = part.stat()
        ledger[day.isoformat()] = [info.st_size, info.st_mtime_ns]
    zarr_table._write_ledger(data_dir, target, table_id, ledger)
    months = parquet_table.month_signatures(data_dir, target, group)
    atomic_write_text(parquet_table.table_path(data_dir, target) / parquet_table.LEDGER, json_.dumps(
        {"made_for": {"table": table_id, "fields": names}, "months": {m: sig for m, (_, sig) in months.items()}}))
    return {"days": record_days, "polygons": count, "fields": len(names),
            "table_gb_on_disk": round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e9, 2)}


def _child(args, name: str, fields: int | None = None, **more) -> dict:
    import subprocess

    argv = [sys.executable, __file__, "--phase", name, "--tmp", str(args.tmp), "--gpkg", str(args.gpkg),
            "--id-field", args.id_field, "--fields", str(fields or args.fields)]
    for key, value in more.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"series_cost.py: the {name} phase failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polygons", type=int, default=1000, help="scattered HUC-sized polygons (default)")
    parser.add_argument("--tessellation", type=int, default=0, help="HRU-like polygons covering the domain instead")
    parser.add_argument("--gpkg", type=Path, help="an existing polygon file (with --id-field) instead of generating one")
    parser.add_argument("--id-field", default="hru_id")
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--days", type=int, default=5, help="days of series to time (the median is reported)")
    parser.add_argument("--append-days", type=int, default=0, help="days whose parts the tables' upkeep appends (0: not timed)")
    parser.add_argument("--record-days", type=int, default=0, help="days of a simulated whole-record table (0: not timed)")
    parser.add_argument("--record-fields", type=int, default=3, help="fields of the simulated whole-record table")
    parser.add_argument("--phase", choices=("weights", "upkeep", "simulate"), help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--first-day", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--last-day", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return 0
    if not args.tessellation:
        return scattered(args)
    with tempfile.TemporaryDirectory() as tmp_name:
        args.tmp = Path(tmp_name)
        if args.gpkg is None:
            import hru_tessellation

            started = time.perf_counter()
            frame = hru_tessellation.tessellation(args.tessellation)
            args.gpkg, args.id_field = args.tmp / "hrus.gpkg", "hru_id"
            frame.to_crs("EPSG:4326").to_file(args.gpkg, driver="GPKG")
            print(json.dumps({"measure": "tessellation", **hru_tessellation.describe(frame),
                              "seconds": round(time.perf_counter() - started, 1)}))
        weights = _child(args, "weights")
        print(json.dumps({"measure": "weights", **weights, "goal_s": 60, "goal_rss_mb": 2048}))
        settings = _settings(args.tmp, args.gpkg, args.id_field)
        started = time.perf_counter()
        target = series_weights.cached(settings.series, settings.outputs.data_dir, None)[0]
        print(json.dumps({"measure": "weights from cache (each worker)", "seconds": round(time.perf_counter() - started, 3),
                          "goal_s": 2}))
        rng = np.random.default_rng(1)
        fields = _fields([f"F{k}" for k in range(args.fields)], grid.grid_latlon()[0].shape, rng)
        per_day = []
        for day in range(max(args.days, args.append_days + 1)):
            started = time.perf_counter()
            series.publish_day(settings.outputs.data_dir, [target], FIRST_DAY + dt.timedelta(days=day), fields, None)
            per_day.append(time.perf_counter() - started)
        print(json.dumps({"measure": "series per day (means and the day's part file)", "polygons": target.weights.count,
                          "fields": args.fields, "seconds": round(float(np.median(per_day)), 3), "goal_s": 0.2}))
        if args.append_days:
            made = _child(args, "upkeep", first_day=0, last_day=args.append_days - 1)
            print(json.dumps({"measure": "table upkeep: a run's end appending its days", **made,
                              "seconds_per_day": round(made["seconds"] / args.append_days, 3), "goal_s_per_day": 0.1}))
            one = _child(args, "upkeep", first_day=0, last_day=args.append_days)
            print(json.dumps({"measure": "table upkeep: a run's end appending one day", **one, "goal_s": 0.1}))
        if args.record_days:
            import shutil

            for kind in ("hrus.zarr", "hrus.parquet", ".tables"):
                shutil.rmtree(settings.outputs.data_dir / "polygons" / kind, ignore_errors=True)
            made = _child(args, "simulate", args.record_fields, last_day=args.record_days - 1)
            print(json.dumps({"measure": "simulated whole-record table", **made}))
            end = _child(args, "upkeep", args.record_fields, first_day=0, last_day=args.record_days - 1)
            print(json.dumps({"measure": "a run's end over the whole record, every day recorded", **end,
                              "goal_s": 60, "goal_rss_mb": 2048}))
            print(json.dumps(read_costs(settings, args.record_days)))
    return 0


def read_costs(settings, record_days: int) -> dict:
    import xarray as xr

    from conus404.outputs.series import zarr_table

    target = series_weights.cached(settings.series, settings.outputs.data_dir, None)[0]
    rng = np.random.default_rng(7)
    basin, day = [], []
    with xr.open_zarr(zarr_table.table_path(settings.outputs.data_dir, target)) as ds:
        fields = [n for n in ds.data_vars if n.startswith("F")]
        for _ in range(5):
            started = time.perf_counter()
            ds[fields].isel(polygon=int(rng.integers(target.weights.count))).load()
            basin.append(time.perf_counter() - started)
            started = time.perf_counter()
            ds[fields].isel(time=int(rng.integers(record_days))).load()
            day.append(time.perf_counter() - started)
    return {"measure": "reading NAME.zarr (xr.open_zarr, every field; median of 5)", "fields": len(fields),
            "one_basin_whole_record_s": round(float(np.median(basin)), 3),
            "one_day_every_basin_s": round(float(np.median(day)), 3), "goal_s": 1}


def scattered(args) -> int:
    """Issue 15's measurements: --polygons scattered HUC-sized polygons."""
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
