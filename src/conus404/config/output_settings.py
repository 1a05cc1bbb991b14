"""The settings of what a run makes besides the daily grids: basin and gauge series, roll-ups, one
Zarr store, cell corners, compression, output units, and the day boundary. Their flags, config keys and checks live here; the values are
fields of the parts :class:`~conus404.config.parts.Outputs`, :class:`~conus404.config.parts.Series` and
:class:`~conus404.config.parts.Request` (units, day boundary); how each value is read is in
:mod:`conus404.config.output_values`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from conus404.config import day_boundary
from conus404.config.output_values import (
    DEFAULT_ZARR_CHUNKS,
    format_units,
    parse_compression_level,
    parse_rollups,
    parse_units,
    parse_zarr_chunks,
)
from conus404.config.parts import Outputs
from conus404.core.exceptions import ConfigurationError


def add_arguments(group, date_range: bool) -> None:
    group.add_argument("--polygons", metavar="FILE",
                       help="also make a daily series per polygon (basin) of this vector file: GeoJSON, GeoPackage, "
                       "Shapefile, zipped Shapefile (POLYGONS); '' = none")
    group.add_argument("--polygon-id", metavar="FIELD", help="the polygons' field that names them (POLYGON_ID)")
    group.add_argument("--points", metavar="FILE",
                       help="also make a daily series per point (gauge): a CSV id,lon,lat or a vector file of points "
                       "(POINTS); '' = none")
    group.add_argument("--point-id", metavar="FIELD", help="the points' id field, for a vector file (POINT_ID)")
    group.add_argument("--skip-off-grid", action="store_true", default=None,
                       help="leave out the polygons and points wholly off the grid (or the box's window), or that "
                       "reach a pole, with a warning naming them; without it such a file is refused (SKIP_OFF_GRID)")
    group.add_argument("--series-only", action="store_true", default=None,
                       help="keep only the polygon/point series, not the gridded daily files; only the window "
                       "covering them is read (SERIES_ONLY)")
    if date_range:  # written at the run's end by the driver and retry pass, not by the day workers
        group.add_argument("--rollup", metavar="monthly,annual,water-year",
                           help="at the end of the run also write these roll-ups of the daily files (ROLLUPS); '' = none")
        group.add_argument("--allow-partial", action="store_true", default=None,
                           help="write a roll-up period even before all its days are done (ALLOW_PARTIAL)")
        group.add_argument("--zarr", metavar="PATH_OR_URL",
                           help="also keep every verified day of the range in one Zarr store, e.g. data/conus404.zarr "
                           "or s3://bucket/conus404.zarr (OUTPUT_ZARR; options as for --output-url); '' = none")
        group.add_argument("--zarr-chunks", metavar="DAYS,ROWS,COLUMNS",
                           help="the Zarr store's chunks, e.g. 36,350,350 (ZARR_CHUNKS)")
    group.add_argument("--cell-corners", action="store_true", default=None,
                       help="also write each cell's four corners (lat_bnds, lon_bnds) into the daily files, for "
                       "conservative regridding (cdo remapcon); about 14 MB more per full-grid file (CELL_CORNERS)")
    group.add_argument("--compression-level", metavar="0-9",
                       help="zlib level of the daily files' fields: 0 = uncompressed (quickest to write and read, "
                       "larger files), default 1 (COMPRESSION_LEVEL)")
    group.add_argument("--units", metavar="T2:degC,PREC_ACC_NC:in",
                       help="give these variables' daily fields in other units (UDUNITS names, converted with "
                       "cf-units); refused when a variable's units cannot be converted (UNITS)")
    group.add_argument("--day-boundary", metavar="±HH:MM",
                       help="days of a fixed UTC offset, e.g. -06:00 (US Central standard time, no daylight "
                       "saving); default UTC (DAY_BOUNDARY)")


def from_config(values: Mapping[str, Any], project_path: Callable[[str], Path]) -> dict[str, Any]:
    """The fields from config.py's values (paths relative to the project, via ``project_path``)."""
    return {
        "polygons": _optional_path(values.get("POLYGONS"), project_path),
        "polygon_id": values.get("POLYGON_ID") or None,
        "points": _optional_path(values.get("POINTS"), project_path),
        "point_id": values.get("POINT_ID") or None,
        "series_only": bool(values.get("SERIES_ONLY", False)),
        "skip_off_grid": bool(values.get("SKIP_OFF_GRID", False)),
        "rollups": parse_rollups(values.get("ROLLUPS", ()), "ROLLUPS"),
        "allow_partial": bool(values.get("ALLOW_PARTIAL", False)),
        "day_boundary": day_boundary.parse(values.get("DAY_BOUNDARY", "UTC"), "DAY_BOUNDARY"),
        "cell_corners": bool(values.get("CELL_CORNERS", False)),
        "compression_level": parse_compression_level(values.get("COMPRESSION_LEVEL", 1), "COMPRESSION_LEVEL"),
        "output_units": parse_units(values.get("UNITS"), "UNITS"),
        "output_zarr": _zarr_location(values.get("OUTPUT_ZARR"), project_path),
        "zarr_chunks": parse_zarr_chunks(values.get("ZARR_CHUNKS", DEFAULT_ZARR_CHUNKS), "ZARR_CHUNKS"),
    }


def changes_from(args: argparse.Namespace, user_path: Callable[[str], Path]) -> dict[str, Any]:
    """The fields the command line sets (paths relative to the user's folder, via ``user_path``)."""
    changes: dict[str, Any] = {}
    for name in ("polygons", "points"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = user_path(value) if value.strip() else None
    for name in ("polygon_id", "point_id"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name).strip() or None
    if getattr(args, "series_only", None):
        changes["series_only"] = True
    if getattr(args, "skip_off_grid", None):
        changes["skip_off_grid"] = True
    if getattr(args, "day_boundary", None) is not None:
        changes["day_boundary"] = day_boundary.parse(args.day_boundary, "--day-boundary")
    if getattr(args, "zarr", None) is not None:
        changes["output_zarr"] = _zarr_location(args.zarr, user_path)
    if getattr(args, "zarr_chunks", None) is not None:
        changes["zarr_chunks"] = parse_zarr_chunks(args.zarr_chunks, "--zarr-chunks")
    if getattr(args, "rollup", None) is not None:
        changes["rollups"] = parse_rollups(args.rollup, "--rollup")
    if getattr(args, "allow_partial", None):
        changes["allow_partial"] = True
    if getattr(args, "cell_corners", None):
        changes["cell_corners"] = True
    if getattr(args, "units", None) is not None:
        changes["output_units"] = parse_units(args.units, "--units")
    if getattr(args, "compression_level", None) is not None:
        changes["compression_level"] = parse_compression_level(args.compression_level, "--compression-level")
    return changes


def check(settings) -> None:
    """Refuse combinations that cannot be made (ConfigurationError, one line)."""
    request, outputs, series = settings.request, settings.outputs, settings.series
    if series.series_only and not series.wanted:
        raise ConfigurationError("--series-only keeps only polygon or point series: give --polygons or --points")
    if outputs.output_zarr and (series.series_only or outputs.output_url):
        raise ConfigurationError(f"--zarr is written from the daily files on this disk: not with "
                                 f"{'--series-only' if series.series_only else '--output-url'}")
    if outputs.rollups and outputs.output_url and not series.series_only:
        raise ConfigurationError("--rollup is made from the daily files on this disk: not with --output-url")
    if "WDIR10" in request.variables and (outputs.rollups or series.wanted):
        made = "--rollup" if outputs.rollups else "--polygons/--points"
        raise ConfigurationError(f"WDIR10 is a direction: {made} would average its angles (350 and 10 degrees to 180); "
                                 "ask for U10E,V10E instead and take the direction of their means")
    strangers = [name for name in request.output_units if name not in request.variables]
    if strangers:
        raise ConfigurationError(f"--units names {', '.join(strangers)}, which is not among the variables asked for "
                                 f"({', '.join(request.variables)})")
    if series.series_only and (outputs.output_url or outputs.keep_hourly):
        raise ConfigurationError(f"--series-only keeps no gridded files: {'--output-url' if outputs.output_url else '--keep-hourly'} "
                                 "would have nothing to publish")


def worker_flags(settings) -> list[str]:
    """What a day worker must know of these settings, explicit even when empty."""
    request, outputs, series = settings.request, settings.outputs, settings.series
    flags = []
    for flag, value in (("--polygons", series.polygons), ("--polygon-id", series.polygon_id),
                        ("--points", series.points), ("--point-id", series.point_id)):
        flags += [flag, str(value or "")]
    flags += ["--series-only"] if series.series_only else []
    flags += ["--skip-off-grid"] if series.skip_off_grid else []
    flags += ["--cell-corners"] if outputs.cell_corners else []
    flags += ["--units", format_units(request.output_units), "--compression-level", str(outputs.compression_level)]
    return flags + [f"--day-boundary={day_boundary.describe(request.day_boundary)}"]


def run_flags(outputs: Outputs) -> list[str]:
    """The outputs the driver and retry pass write at a run's end (not the day workers), as flags."""
    flags = ["--rollup", ",".join(outputs.rollups), "--zarr", outputs.output_zarr or "",
             "--zarr-chunks", ",".join(map(str, outputs.zarr_chunks))]
    return flags + (["--allow-partial"] if outputs.allow_partial else [])


def _optional_path(value: Any, resolve: Callable[[str], Path]) -> Path | None:
    return resolve(str(value).strip()) if value not in (None, "") and str(value).strip() else None


def _zarr_location(value: Any, resolve: Callable[[str], Path]) -> str | None:
    """A Zarr store's URL as given, a local path resolved, or None when unset or empty."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    return text if "://" in text else str(resolve(text))
