"""The check of a request before its run: writable folders, a readable source that has the
variables and the dates, inputs that parse. Everything a user can get wrong is found here before
any day is downloaded, and answered with one line and exit code 2.

The check needs the whole storage stack (xarray, zarr, adlfs, the SDK: about 2 s of imports), which
the run's launch template has already imported. So the driver does not import it: it runs the
check in a child forked from the template (:func:`check_request`), which hands back its verdict,
the warnings and the signed asset, as one JSON line. Where no template serves the run (cold or
Dask launches, no fork here), the check runs in the driver itself.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conus404.config.setting_values import DASK
from conus404.config.settings import PROJECT_ROOT, Settings
from conus404.core import disk_space
from conus404.core.exceptions import (
    AuthenticationError,
    CatalogError,
    ConfigurationError,
    SourceLayoutError,
)
from conus404.outputs import daily_file
from conus404.run import existing_files
from conus404.run.scheduler import AssetSigner

log = logging.getLogger("conus404.driver")  # its lines belong to the driver's log
_CHILD_CODE = "from conus404.run.preflight import child_main; child_main()"


@dataclass
class Verdict:
    """What the check of a request concluded when it did not refuse it."""

    warnings: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # day -> why the source cannot make it (not run)


def check_request(settings: Settings, argv: list[str], replace_different: bool = False,
                  signed=None) -> tuple[Verdict, AssetSigner]:
    """The :func:`preflight` verdict and the run's signer (holding the asset the check signed,
    or ``signed``, the run's prefetcher's: one signing per run); ConfigurationError if the request
    is refused. ``argv`` is the driver's own command line, from which the forked check rebuilds the
    same settings."""
    from conus404.launch import launch_template
    from conus404.launch.executors import uses_launch_template

    template = None
    if uses_launch_template(settings.execution):
        template = launch_template.shared_template(PROJECT_ROOT / "src", dict(os.environ))
    if template is not None:
        verdict = _forked_verdict(template, argv, settings.touches_remote_storage, signed)
        if verdict is not None:
            if "refused" in verdict:
                raise ConfigurationError(verdict["refused"])
            from conus404.sources.source import SignedAsset

            asset = verdict.get("asset")
            return (Verdict(list(verdict["warnings"]), dict(verdict.get("unavailable") or {})),
                    AssetSigner(settings, SignedAsset.from_json(asset) if asset else None))
    signer = AssetSigner(settings, signed)
    return preflight(settings, signer, replace_different), signer


def _forked_verdict(template, argv: list[str], remote: bool, signed=None) -> dict | None:
    """The forked check's verdict, or None (then the driver checks by itself) if it gave none."""
    from conus404.launch.launch_template import LaunchTemplateError

    try:
        if remote:
            template.warm_remote()
        child = template.popen([sys.executable, "-c", _CHILD_CODE, *argv], stdin_text=True, stderr_fd=sys.stderr.fileno())
    except LaunchTemplateError as exc:
        log.warning("%s: checking the request in the driver instead", exc)
        return None
    try:  # the asset (with its token) on the child's input, never on a command line
        child.stdin.write(json.dumps(signed.to_json() if signed is not None else None) + "\n")
        child.stdin.close()
    except OSError:
        pass  # it has ended already: its exit code says why
    out = child.stdout.read()
    child.stdout.close()
    code = child.wait()
    lines = out.strip().splitlines()
    try:
        verdict = json.loads(lines[-1])
        if isinstance(verdict, dict) and ("refused" in verdict or "warnings" in verdict):
            return verdict
    except (IndexError, ValueError):
        pass
    log.warning("the forked check of the request ended (exit %s) without a verdict: checking in the driver", code)
    return None


def child_main() -> None:
    """The forked check: the driver's command line (and on its input the run's signed asset, or
    null) in, one JSON verdict line out (exit 0 or 2)."""
    from conus404.config import settings as settings_mod
    from conus404.core.processes import exit_without_teardown
    from conus404.run import run_options as driver_options
    from conus404.sources.source import SignedAsset

    args = driver_options.build_parser().parse_args(sys.argv[1:])
    try:
        options = driver_options.run_options(args, force=args.force)
        driver_options.setup_logging(options.log_dir / "driver_main_run.log")
        settings = settings_mod.load(args)
        handed = json.loads(sys.stdin.readline() or "null")
        signer = AssetSigner(settings, SignedAsset.from_json(handed) if handed else None)
        checked = preflight(settings, signer, replace_different=args.force or args.replace_different)
        asset = signer.current()
        verdict = {"warnings": checked.warnings, "unavailable": checked.unavailable,
                   "asset": asset.to_json() if asset is not None else None}
    except ConfigurationError as exc:
        verdict = {"refused": str(exc)}
    print(json.dumps(verdict), flush=True)
    exit_without_teardown(2 if "refused" in verdict else 0)


def open_checked(settings: Settings, signer: AssetSigner):
    """The opened source, or ConfigurationError (exit 2) saying why it cannot be read."""
    from conus404.sources import source

    what = settings.access.stac_url if settings.access.uses_planetary_computer else settings.access.source
    from conus404.config.settings import KNOWN_SOURCES

    local = Path(settings.access.source) if settings.access.source not in KNOWN_SOURCES and "://" not in settings.access.source else None
    if local is not None and local.is_file():
        raise ConfigurationError(f"--source {local} is a file; a Zarr store is a folder (e.g. .../conus404_hourly.zarr)")
    if local is not None and not local.exists():
        raise ConfigurationError(f"cannot read the source {local}: there is no such folder")
    try:
        try:
            ds, _ = source.open_source(settings.access, settings.outputs.data_dir, signer.current(), record_metadata=True)
        except AuthenticationError:  # the token handed over expired on the way here: sign again, once
            log.warning("storage refused the token: signing again")
            ds, _ = source.open_source(settings.access, settings.outputs.data_dir, signer.renew(), record_metadata=True)
    except (CatalogError, AuthenticationError, SourceLayoutError) as exc:
        raise ConfigurationError(f"cannot read the source: {exc}") from None
    except Exception as exc:  # whatever the storage stack raises, the answer is "unreadable source"
        if type(exc).__name__ in ("GroupNotFoundError", "FileNotFoundError", "NodeNotFoundError"):
            raise ConfigurationError(f"the source {what} is not a Zarr store: no Zarr metadata (.zmetadata, .zgroup) "
                                     "is there") from None
        raise ConfigurationError(f"cannot read the source {what}: {type(exc).__name__}: {exc}") from None
    _refuse_daily_store(ds, what)
    return ds


def _refuse_daily_store(ds, what: str) -> None:
    """A store of days (this pipeline's own --zarr output, say) is not an hourly CONUS404 source: every day
    would fail on its missing hours."""
    times = ds.indexes["time"]
    if len(times) > 1:
        step = np.median(np.diff(times.values.astype("datetime64[s]")).astype(np.int64))
        if step != 3600:
            mine = " (this pipeline's own daily Zarr store?)" if "conus404_first_day" in ds.attrs else ""
            raise ConfigurationError(f"the source {what} is not an hourly CONUS404 store{mine}: its time steps are "
                                     f"{step / 3600:g} h, not 1 h")


def _check_against_source(settings: Settings, signer: AssetSigner) -> Verdict:
    """Raises ConfigurationError for a request the source cannot serve; returns warnings and the days
    it cannot make."""
    from conus404.day import plan

    ds = open_checked(settings, signer)
    plans, _ = plan.plan_variables(ds, settings.request)  # unknown / 3-D / counter variables
    if settings.request.bbox is not None:
        from conus404.core import subset

        try:
            window = subset.index_window(np.asarray(ds["lat"].values), np.asarray(ds["lon"].values), settings.request.bbox)
        except SourceLayoutError as exc:
            raise ConfigurationError(f"--bbox: {exc}") from None
        log.info("the box %s is the grid window %s (%d x %d cells)%s", settings.request.bbox, window, *window.shape,
                 "; it reaches past the domain, so the window stops at its edge" if window.clipped else "")
    unavailable = days_outside_record(settings, plans, ds.indexes["time"])
    verdict = Verdict([unavailable_line(unavailable, len(settings.request.days))] if unavailable else [], unavailable)
    if settings.series.wanted:
        _prepare_series(settings, np.asarray(ds["lat"].values), np.asarray(ds["lon"].values))
        if settings.series.series_only:
            return verdict
    cells = window.shape[0] * window.shape[1] if settings.request.bbox is not None else ds.sizes["south_north"] * ds.sizes["west_east"]
    to_make = sum(not daily_file.daily_path(settings.outputs.data_dir, d).exists() for d in settings.request.days)
    warning = None if settings.outputs.output_url else disk_space.space_warning(
        settings.outputs.data_dir, to_make, len(plan.output_names(settings.request)), cells)
    verdict.warnings += [warning] if warning else []
    return verdict


def _prepare_series(settings: Settings, lat: np.ndarray, lon: np.ndarray) -> None:
    """Check the polygon and point files (ConfigurationError: one line) and have their weights cached."""
    from conus404.outputs.series import weights as series_weights

    started = time.monotonic()
    series_weights.prepare(settings.series, settings.outputs.data_dir, settings.request.bbox, lat, lon)
    log.info("series weights ready in %.1f s", time.monotonic() - started)


def days_outside_record(settings: Settings, plans, times) -> dict[str, str]:
    """The range's days whose hourly records (by the day windows of the requested variables' classes:
    a day of 60-minute sums ends with the next day's 00Z record) are not all inside the source's record,
    each with why: days at the record's edges (the PC's last day lacks its closing 00Z). A range with a
    day that starts outside the record, or whose every day is outside it, is a ConfigurationError."""
    from conus404.core.day_windows import day_start, hour_window

    first, last = times.min(), times.max()
    offset = settings.request.day_boundary
    need_first = min(hour_window(p.var_class, settings.request.start_date, offset).first for p in plans)
    need_last = max(hour_window(p.var_class, settings.request.end_date, offset).last for p in plans)
    if need_first >= first and need_last <= last:
        return {}
    refusal = ConfigurationError(
        f"the range {settings.request.start_date}..{settings.request.end_date} is outside the source's record "
        f"{first:%Y-%m-%dT%HZ}..{last:%Y-%m-%dT%HZ}: its days use the hourly records "
        f"{need_first:%Y-%m-%dT%HZ}..{need_last:%Y-%m-%dT%HZ}"
    )
    if day_start(settings.request.start_date, offset) < first or day_start(settings.request.end_date, offset) > last:
        raise refusal
    unavailable = {}
    for day in dict.fromkeys((settings.request.start_date, settings.request.end_date)):  # only the edge days can reach past it
        windows = [(p.name, hour_window(p.var_class, day, offset)) for p in plans]
        outside = [(name, w) for name, w in windows if w.first < first or w.last > last]
        if outside:
            name, window = outside[0]
            edge = window.last if window.last > last else window.first
            unavailable[day.isoformat()] = (f"the source's record is {first:%Y-%m-%dT%HZ}..{last:%Y-%m-%dT%HZ}, but "
                                            f"{name} of {day} needs {edge:%Y-%m-%dT%HZ}")
    if len(unavailable) == len(settings.request.days):
        raise refusal
    return unavailable


def unavailable_line(unavailable: dict[str, str], total: int) -> str:
    """One line naming the days the source cannot make (they are recorded as failed, not run)."""
    days = sorted(unavailable)
    shown = ", ".join(days[:4]) + (f" and {len(days) - 4} more" if len(days) > 4 else "")
    return (f"{len(days)} of the range's {total} day(s) cannot be made from this source and will not be run "
            f"({shown}): {unavailable[days[0]]}; the other {total - len(days)} are")


def ensure_writable(folder: Path, what: str) -> None:
    """Create ``folder`` and prove a file can be written there, or raise ConfigurationError."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise ConfigurationError(f"cannot write to the {what} {folder}: {exc.strerror or exc}") from None


def preflight(settings: Settings, signer: AssetSigner, replace_different: bool = False) -> Verdict:
    """Check the request: writable folders, a readable source that has the variables and dates.

    Raises ConfigurationError (exit 2) before any day runs; returns warnings (e.g. the request will
    not fit on the data folder's disk) and the days the source's record cannot make.
    """
    from conus404.sources import source

    # the request itself first (URLs, names, statistics, units, its own files), so that the first line a
    # user sees names their mistake; only then what the data folder already holds is compared with it
    ensure_writable(daily_file.daily_dir(settings.outputs.data_dir), "data folder")
    if settings.outputs.output_url:
        from conus404.outputs.remote_output import RemoteOutput

        RemoteOutput.of(settings.outputs).check_writable()
    if settings.execution.executor == DASK and settings.execution.dask_scheduler:
        from conus404.launch.executors.dask import check_scheduler

        check_scheduler(settings.execution.dask_scheduler)
    try:
        verdict = _check_against_source(settings, signer)
    finally:
        source.release_storage_clients()
    if not replace_different and not settings.outputs.output_url and not settings.series.series_only:
        existing_files.refuse_other_fields(settings)
    if not settings.series.series_only:  # after the polygons' weights: they decide the cells a run covers
        existing_files.refuse_other_coverage(settings)
        existing_files.refuse_other_day_boundary(settings)
    if settings.outputs.output_zarr:
        from conus404.day.plan import output_names, region_text
        from conus404.outputs.zarr_output import ZarrOutput

        ZarrOutput.of(settings.outputs).check(settings.request, output_names(settings.request), region_text(settings))
    return verdict
