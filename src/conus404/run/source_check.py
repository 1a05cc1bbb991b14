"""``./run_pipeline.sh --check-source``: the live source held against every assumption the pipeline makes.

Run it before a long pull. One line per check, ``ok`` / ``warn`` / ``fail`` with what was found:
the catalogue and asset, signing, the consolidated metadata (and that it matches the arrays' own),
the layout, the grid and its projection, the time axis's encoding, steps and extent, the record's end
against the range, each requested variable's dimensions, dtype, chunks, fill value and attributes, and
one hour of each read through the hourly checks (:mod:`conus404.day.validation`). Exit 0 when nothing
failed, 1 when an assumption failed. docs/REAL_STORE.md lists the assumptions and their evidence.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from conus404.config.settings import HYTEST_OSN, Settings
from conus404.core.exceptions import CatalogError, ConfigurationError, Conus404Error, MissingDataError
from conus404.day import qc_bounds
from conus404.sources import source

OK, WARN, FAIL = "ok", "warn", "fail"
EXPECTED_GRID = (1015, 1367)
GRID_ATTRIBUTES = {"TRUELAT1": 30.0, "TRUELAT2": 50.0, "STAND_LON": -97.9000015258789, "DX": 4000.0}
WINDOW_TIME_CHUNK = 24  # time chunks longer than this: the hour is read over one spatial chunk, not the grid


@dataclasses.dataclass
class SourceCheck:
    """The checks' lines as they are made (each printed at once), and the verdict."""

    say: Callable[[str], None] = print
    lines: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def add(self, outcome: str, what: str, found: str) -> None:
        self.lines.append((outcome, what, found))
        self.say(f"{outcome:<5} {what:<18} {found}")

    def count(self, outcome: str) -> int:
        return sum(line[0] == outcome for line in self.lines)


def check_source(settings: Settings, say: Callable[[str], None] = print) -> int:
    """Run every check; 0 when none failed, 1 otherwise."""
    started = time.monotonic()
    where = f"{settings.access.source} ({settings.access.stac_url})" if settings.access.uses_planetary_computer else settings.access.source
    say(f"check-source: {where}; range {settings.request.start_date}..{settings.request.end_date}; variables "
        f"{','.join(settings.request.variables)}")
    checks = SourceCheck(say)
    try:
        _run(settings, checks)
    except Conus404Error as exc:  # a failure that stops the later checks
        checks.add(FAIL, "source", str(exc))
    finally:
        source.release_storage_clients()
    fails = checks.count(FAIL)
    say(f"checked in {time.monotonic() - started:.1f} s: {checks.count(OK)} ok, {checks.count(WARN)} warn, {fails} fail"
        + ("" if fails else "; the pipeline's assumptions hold for this request"))
    return 1 if fails else 0


def _run(settings: Settings, checks: SourceCheck) -> None:
    asset, catalogue_end = _asset(settings, checks)
    if asset is None:
        return
    meta = _consolidated_metadata(asset, settings, checks)
    if meta is None:
        return
    try:
        ds = source.normalise(source.open_dataset(asset, settings.access.retry, chunks=None))
    except Conus404Error as exc:
        checks.add(FAIL, "layout", str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - whatever the storage stack raises, the store cannot be opened
        checks.add(FAIL, "layout", f"cannot open the store: {type(exc).__name__}: {exc}")
        return
    checks.add(OK, "layout", f"time x south_north x west_east ({ds.sizes['south_north']} x {ds.sizes['west_east']}), "
               f"2-D lat/lon, {len(ds.data_vars)} data variables")
    lat, lon = np.asarray(ds["lat"].values), np.asarray(ds["lon"].values)
    _grid(ds, lat, lon, checks)
    times = _time_axis(ds, meta, checks, catalogue_end, settings)
    plans = _variables(ds, meta, settings, checks)
    if plans:
        _record(settings, plans, times, checks)
        _one_hour(ds, plans, settings, lat, lon, checks)


def _asset(settings: Settings, checks: SourceCheck):
    """The asset to open (signed for the Planetary Computer) and the catalogue's end of the record."""
    if not settings.access.uses_planetary_computer:
        asset = source.unsigned_asset(settings.access)
        checks.add(OK, "source", f"{asset.public_href} (no catalogue, no signing)")
        return asset, None
    import pystac_client

    try:
        client = pystac_client.Client.open(settings.access.stac_url, stac_io=source.stac_io(settings.access.retry), timeout=60)
        collection = client.get_collection(settings.access.collection)
    except Exception as exc:  # noqa: BLE001 - unreadable catalogue, whatever the reason
        checks.add(FAIL, "catalogue", f"cannot read collection {settings.access.collection!r} at {settings.access.stac_url}: "
                   f"{type(exc).__name__}: {exc}")
        return None, None
    item = collection.assets.get(settings.access.asset)
    if item is None:
        checks.add(FAIL, "catalogue", f"collection {settings.access.collection!r} has no asset {settings.access.asset!r} "
                   f"(it has {', '.join(collection.assets)})")
        return None, None
    open_kwargs = item.extra_fields.get("xarray:open_kwargs", {})
    interval = collection.extent.temporal.intervals[0] if collection.extent.temporal.intervals else [None, None]
    end = np.datetime64(interval[1].replace(tzinfo=None), "h") if interval[1] else None
    checks.add(OK if open_kwargs.get("consolidated") else WARN, "catalogue",
               f"collection {collection.id!r}, asset {settings.access.asset!r}: {item.href}, open_kwargs {open_kwargs}"
               + (f", record to {end}Z" if end is not None else ""))
    try:
        asset = source.sign_collection_asset(settings.access.stac_url, settings.access.collection, settings.access.asset, settings.access.sas_url,
                                             settings.access.retry)
    except CatalogError as exc:
        checks.add(FAIL, "signing", str(exc))
        return None, end
    left = asset.seconds_left()
    checks.add(OK, "signing", "a SAS token from " + settings.access.sas_url
               + (f", valid for {left / 60:.0f} more minutes (the run signs again at half its life)" if left else ""))
    return asset, end


def _consolidated_metadata(asset, settings: Settings, checks: SourceCheck) -> dict[str, Any] | None:
    """The store's consolidated metadata, checked against the arrays' own documents."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(asset.href, **source.storage_options(asset, settings.access.retry))
        meta = json.loads(fs.cat_file(f"{root.rstrip('/')}/.zmetadata"))["metadata"]
    except FileNotFoundError:
        checks.add(FAIL, "metadata", "no consolidated metadata (.zmetadata): the pipeline opens the store with it")
        return None
    except Exception as exc:  # noqa: BLE001
        checks.add(FAIL, "metadata", f"cannot read {asset.public_href}/.zmetadata: {type(exc).__name__}: {exc}")
        return None
    arrays = sorted(key[: -len("/.zarray")] for key in meta if key.endswith("/.zarray"))
    stale = []
    for name in [n for n in _inputs_asked(settings, meta) if f"{n}/.zarray" in meta]:
        try:
            own = json.loads(fs.cat_file(f"{root.rstrip('/')}/{name}/.zarray"))
        except FileNotFoundError:
            own = None
        if own != meta[f"{name}/.zarray"]:
            stale.append(name)
    if stale:
        checks.add(FAIL, "metadata", f"the consolidated metadata differs from the arrays' own for {', '.join(stale)} "
                   "(out of date, as HyTEST's once was: hytest-org/hytest#415)")
    else:
        checks.add(OK, "metadata", f"consolidated (.zmetadata, zarr format {meta.get('.zgroup', {}).get('zarr_format', '?')}) "
                   f"lists {len(arrays)} arrays; the requested ones match their own .zarray")
    return meta


def _inputs_asked(settings: Settings, meta: dict[str, Any]) -> list[str]:
    """The arrays the requested variables read (derived inputs, bucket counters), as far as the metadata says."""
    from conus404.core.variables import VariableClass, classify, counter_name
    from conus404.day.derived import DERIVED

    names: list[str] = []
    for name in settings.request.variables:
        if name in DERIVED:
            names += DERIVED[name].inputs
        elif f"{name}/.zarray" in meta:
            names.append(name)
            if classify(name, meta.get(f"{name}/.zattrs", {})) == VariableClass.BUCKET:
                names.append(counter_name(name))
    return list(dict.fromkeys(names))


def _grid(ds, lat: np.ndarray, lon: np.ndarray, checks: SourceCheck) -> None:
    from conus404.core import grid, subset

    shape = lat.shape
    try:
        fitted = subset.fit_grid(lat, lon)
    except Conus404Error as exc:
        checks.add(FAIL, "grid", str(exc))
        return
    note = "" if shape == EXPECTED_GRID else f"; not CONUS404's {EXPECTED_GRID[0]} x {EXPECTED_GRID[1]} (a subset or a test store)"
    checks.add(OK if shape == EXPECTED_GRID else WARN, "grid",
               f"lat/lon {shape[0]} x {shape[1]} fit the Lambert conformal grid (TRUELAT1 {grid.TRUELAT1:g}, TRUELAT2 "
               f"{grid.TRUELAT2:g}, STAND_LON {grid.STAND_LON:.1f}, sphere 6370 km), cells {abs(fitted.dx):.0f} x "
               f"{abs(fitted.dy):.0f} m{note}")
    stated = {k: ds.attrs[k] for k in GRID_ATTRIBUTES if k in ds.attrs}
    wrong = {k: v for k, v in stated.items() if not math.isclose(float(v), GRID_ATTRIBUTES[k], rel_tol=1e-6)}
    if wrong:
        checks.add(FAIL, "projection", f"the store's attributes say {wrong}, not CONUS404's {GRID_ATTRIBUTES}")
    elif stated:
        checks.add(OK, "projection", f"the store's attributes agree: {', '.join(f'{k} {v:g}' for k, v in stated.items())}")
    else:
        checks.add(OK, "projection", "no projection attributes in the store (as on the Planetary Computer): the grid "
                   "is derived from lat/lon, as above")


def _time_axis(ds, meta: dict[str, Any], checks: SourceCheck, catalogue_end, settings: Settings):
    from conus404.run.prefetch import TIME_UNITS

    attrs, zarray = meta.get("time/.zattrs", {}), meta.get("time/.zarray", {})
    units, calendar = attrs.get("units"), attrs.get("calendar", "standard")
    encoding = f"{np.dtype(zarray.get('dtype', '<f8')).name} {units!r} ({calendar})"
    readable = bool(units and TIME_UNITS.fullmatch(str(units)))
    checks.add(OK if readable else WARN, "time encoding",
               encoding + ("" if readable else ": the run's prefetcher cannot read it (the days fetch their own chunks)"))
    times = np.asarray(ds.indexes["time"].values, dtype="datetime64[h]")
    steps = np.diff(times).astype(int)
    irregular = np.flatnonzero(steps != 1)
    if len(irregular):
        shown = ", ".join(f"{times[i]}Z->{times[i + 1]}Z" for i in irregular[:3])
        checks.add(WARN, "time steps", f"{len(irregular)} step(s) are not one hour ({shown}): days using them fail")
    else:
        checks.add(OK, "time steps", f"{len(times):,} hourly records, no gap or repeat")
    end_note = ""
    outcome = OK
    if catalogue_end is not None and times[-1] < catalogue_end:
        outcome, end_note = FAIL, f": it ends before the catalogue's {catalogue_end}Z (the time axis ends early)"
    elif settings.access.source == HYTEST_OSN and times[-1] < np.datetime64("2022-10-01T00", "h"):
        outcome, end_note = FAIL, ": it ends before HyTEST's published 2022-10-01T00Z (the time axis ends early)"
    checks.add(outcome, "record", f"{times[0]}Z..{times[-1]}Z{end_note}")
    return ds.indexes["time"]


def _variables(ds, meta: dict[str, Any], settings: Settings, checks: SourceCheck) -> list:
    """Each requested variable planned as a day would plan it, and its arrays described."""
    from conus404.day.plan import plan_variables

    plans = []
    for name in settings.request.variables:
        one = dataclasses.replace(settings.request, variables=(name,),
                                  statistics={k: v for k, v in settings.request.statistics.items() if k == name})
        try:
            plan = plan_variables(ds, one)[0][0]
        except ConfigurationError as exc:
            checks.add(FAIL, name, str(exc))
            continue
        plans.append(plan)
        for array in plan.inputs:
            outcome, found = _describe_array(ds, meta, array, plan)
            checks.add(outcome, array if array != name else name, found)
    return plans


def _describe_array(ds, meta: dict[str, Any], name: str, plan) -> tuple[str, str]:
    zarray = meta.get(f"{name}/.zarray", {})
    var = ds[name]
    outcome, notes = OK, []
    dtype = np.dtype(zarray.get("dtype", var.dtype))
    expected = np.dtype("int32") if name.startswith("I_AC") else np.dtype("float32")
    if dtype != expected:
        outcome, notes = WARN, notes + [f"{dtype.name}, not {expected.name} as the real stores keep it"]
    fill = zarray.get("fill_value", "?")
    if fill is None and dtype.kind == "f":
        outcome = WARN
        notes.append("fill value null: a lost chunk reads as 0 in zarr (the pipeline refuses lost chunks by their key)")
    units = var.attrs.get("units")
    bounds = qc_bounds.hourly(name)
    if bounds is not None and units != bounds.units:
        outcome = FAIL
        notes.append(f"units {units!r}, not the {bounds.units!r} the checks expect: every day would be refused")
    digits = var.attrs.get("number_of_significant_digits")
    if digits:
        notes.append(f"quantised to {digits} significant digits (NCO)")
    chunks = zarray.get("chunks") or var.encoding.get("chunks") or ()
    compressor = (zarray.get("compressor") or {}).get("id", "none")
    described = (f"({', '.join(var.dims)}) {dtype.name}, chunks {' x '.join(map(str, chunks))}, {compressor}, "
                 f"fill {fill}, units {units!r}, {plan.var_class.value}")
    return outcome, described + ("; " + "; ".join(notes) if notes else "")


def _record(settings: Settings, plans, times, checks: SourceCheck) -> None:
    from conus404.run.preflight import days_outside_record, unavailable_line

    try:
        unavailable = days_outside_record(settings, plans, times)
    except ConfigurationError as exc:
        checks.add(FAIL, "range", str(exc))
        return
    if unavailable:
        checks.add(WARN, "range", unavailable_line(unavailable, len(settings.request.days)))
    else:
        checks.add(OK, "range", f"every record the {len(settings.request.days)} day(s) use is in the source")


def _one_hour(ds, plans, settings: Settings, lat: np.ndarray, lon: np.ndarray, checks: SourceCheck) -> None:
    """The first hour of the range of each requested variable's arrays, through the hourly checks."""
    from conus404.core.day_windows import hour_window
    from conus404.day import validation
    from conus404.day.day_reader import read_records

    index = ds.indexes["time"]
    for plan in plans:
        hour = hour_window(plan.var_class, settings.request.start_date, settings.request.day_boundary).first
        if hour not in index:
            checks.add(WARN, f"{plan.name} hour", f"{hour:%Y-%m-%dT%HZ} is not in the source: not read")
            continue
        position = np.array([index.get_loc(hour)])
        for name in plan.inputs:
            window, where = _window(ds, name)
            report = validation.QcReport(settings.request.start_date.isoformat(), settings.checks.max_nan_fraction,
                                         grid=(lat[window], lon[window]))
            try:
                values = read_records(ds.isel(south_north=window[0], west_east=window[1]), name, position)
            except MissingDataError as exc:
                checks.add(FAIL, f"{name} hour", str(exc))
                continue
            stamp = f"{hour:%Y-%m-%dT%HZ}"
            validation.check_units(report, name, ds[name].attrs.get("units"))
            if values.dtype.kind == "f":
                validation.check_hourly(report, name, values, values.shape[-2:], [stamp])
            entry = report.variables.get(name, {})
            span = f"{entry['hourly_min']:.6g}..{entry['hourly_max']:.6g}" if "hourly_min" in entry else "read"
            if report.failures:
                checks.add(FAIL, f"{name} hour", f"{stamp}{where}: {report.failures[0]}")
            elif report.flags:
                checks.add(WARN, f"{name} hour", f"{stamp}{where}: {span}; flagged: {report.flags[0]['message']}")
            else:
                checks.add(OK, f"{name} hour", f"{stamp}{where}: {span}, {entry.get('hourly_nan_fraction_max', 0):.1%} NaN")


def _window(ds, name: str) -> tuple[tuple[slice, slice], str]:
    """The whole grid, or one spatial chunk in the middle where time chunks are long (HyTEST's 144 hours)."""
    chunks = ds[name].encoding.get("chunks") or ()
    whole = (slice(None), slice(None))
    if not chunks or chunks[0] <= WINDOW_TIME_CHUNK or len(chunks) < 3:
        return whole, ""
    rows, cols = chunks[-2], chunks[-1]
    j = (ds.sizes["south_north"] // 2 // rows) * rows
    i = (ds.sizes["west_east"] // 2 // cols) * cols
    window = (slice(j, j + rows), slice(i, i + cols))
    return window, f" (one {rows} x {cols} chunk of {chunks[0]} hours, rows {j}.., columns {i}..)"
