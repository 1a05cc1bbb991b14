"""Run settings: ``src/config.py`` first, then environment variables, then command-line flags.

``Settings`` is the one typed object the rest of the code reads. Each check of a user's value
lives in :mod:`conus404.config.setting_values` and fails with a :class:`ConfigurationError` that names
the value.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from conus404.config import output_settings
from conus404.config.parts import (
    PROJECT_ROOT,
    Checks,
    Execution,
    Outputs,
    Request,
    Series,
    Settings,
    SourceAccess,
    assemble,
    changed,
)
from conus404.config.setting_values import (
    format_statistics,
    merge_statistics,
    parse_bbox,
    parse_dask_scheduler,
    parse_date,
    parse_days_per_worker,
    parse_executor,
    parse_fill_missing_hours,
    parse_fraction,
    parse_launch,
    parse_max_processes,
    parse_output_url,
    parse_retry,
    parse_statistics,
    parse_storage_options,
    parse_variable_statistics,
)
from conus404.core.endpoints import (
    DEFAULT_SAS_URL,
    DEFAULT_STAC_URL,
    HYTEST_OSN,
    HYTEST_OSN_URL,
    KNOWN_SOURCES,
    OSN_ENDPOINT,
    OSN_ENDPOINT_ENV,
    OUTPUT_STORAGE_OPTIONS_ENV,
    PLANETARY_COMPUTER,
    SAS_URL_ENV,
    STAC_URL_ENV,
    STORAGE_OPTIONS_ENV,
    WORKER_ENVIRONMENT,
)
from conus404.core.exceptions import ConfigurationError

# Re-exported: what callers name with the settings (the stores' names and endpoints live in core).
__all__ = ["CALLER_DIR_ENV", "HYTEST_OSN", "HYTEST_OSN_URL", "KNOWN_SOURCES", "OSN_ENDPOINT", "OSN_ENDPOINT_ENV",
           "PLANETARY_COMPUTER", "PROJECT_ROOT", "SAS_URL_ENV", "STAC_URL_ENV", "STORAGE_OPTIONS_ENV",
           "OUTPUT_STORAGE_OPTIONS_ENV", "WORKER_ENVIRONMENT", "Checks", "Execution", "Outputs", "Request", "Series",
           "Settings", "SourceAccess", "assemble", "changed"]
CALLER_DIR_ENV = "CONUS404_CALLER_DIR"  # the folder run_pipeline.sh was run from


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), not the whole usage text, and
    ``--bbox -105,39,-104,40`` and ``--day-boundary -06:00`` work (argparse would take the negative
    value for an option)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        import sys

        args = list(sys.argv[1:] if args is None else args)
        index = 0
        while index < len(args) - 1:
            if args[index] in ("--bbox", "--day-boundary") and re.match(r"^-\d", args[index + 1]):
                args[index:index + 2] = [f"{args[index]}={args[index + 1]}"]
            index += 1
        return super().parse_known_args(args, namespace)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _storage_options(env: Mapping[str, str], env_name: str, values: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The JSON object in the environment variable ``env_name`` if set, else config's ``key``."""
    if env.get(env_name):
        return parse_storage_options(env[env_name], env_name)
    return parse_storage_options(values.get(key) or {}, key)


def worker_flags(settings: Settings) -> list[str]:
    """What a day worker must know of the settings, as its flags. Explicit even when empty, so the
    worker's own reading of config.py cannot differ from what the driver checked."""
    request, access, checks, outputs = settings.request, settings.access, settings.checks, settings.outputs
    flags = [
        "--variables", ",".join(request.variables), "--statistics", format_statistics(request.statistics),
        "--source", access.source, "--data-dir", str(outputs.data_dir),
        f"--bbox={request.bbox if request.bbox is not None else ''}", "--output-url", outputs.output_url or "",
    ]
    flags += ["--keep-hourly"] if outputs.keep_hourly else []
    flags += ["--allow-3d"] if request.allow_3d else []
    flags += ["--strict-qc"] if checks.strict_qc else []
    flags += ["--fill-missing-hours", str(checks.fill_missing_hours)] if checks.fill_missing_hours else []
    flags += [] if access.chunk_cache else ["--no-chunk-cache"]
    return flags + output_settings.worker_flags(settings)


def _absolute(path: str | Path) -> Path:
    """A path from config.py: relative to the project folder, as the shipped DATA_DIR = "data"."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def from_command_line(path: str | Path) -> Path:
    """A path given on the command line: relative to the folder the user ran the command in
    (run_pipeline.sh records it in CONUS404_CALLER_DIR before it moves to src/)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return Path(os.environ.get(CALLER_DIR_ENV) or os.getcwd()) / path


def source_from_command_line(value: str) -> str:
    """--source: a known name, a URL, or a path (relative to the user's folder); a missing path
    that looks like a misspelt name is refused with a suggestion."""
    from conus404.core.variables import suggest

    value = value.strip()
    if not value or value in KNOWN_SOURCES or "://" in value:
        return value
    path = from_command_line(value)
    if not path.exists():
        hint = suggest(value, KNOWN_SOURCES)
        if hint:
            raise ConfigurationError(f"--source {value!r} is neither a known source nor an existing path{hint}")
    return str(path)


CONFIG_KEYS = frozenset({
    "START_DATE", "END_DATE", "VARIABLE_AGG_MAP", "VARIABLES", "EXTRA_STATISTICS", "MAX_CONCURRENT_PROCESSES",
    "DAYS_PER_WORKER", "DATA_DIR", "SOURCE", "STAC_URL", "SAS_URL", "COLLECTION", "ASSET", "STORAGE_OPTIONS",
    "KEEP_HOURLY", "ALLOW_3D", "MAX_NAN_FRACTION", "STRICT_QC", "FILL_MISSING_HOURS", "CHUNK_CACHE", "PREFETCH",
    "BBOX", "OVERVIEW", "OUTPUT_URL", "OUTPUT_STORAGE_OPTIONS", "EXECUTOR", "DASK_SCHEDULER_ADDRESS", "LAUNCH",
    "RETRY", "POLYGONS", "POLYGON_ID", "POINTS", "POINT_ID", "SERIES_ONLY", "SKIP_OFF_GRID", "ROLLUPS",
    "ALLOW_PARTIAL", "DAY_BOUNDARY", "CELL_CORNERS", "COMPRESSION_LEVEL", "UNITS", "OUTPUT_ZARR", "ZARR_CHUNKS",
})


def _refuse_misspelt_keys(values: Mapping[str, Any]) -> None:
    """A name in config.py that is nearly a setting's (VARIABLE_AGG_MAPP) would silently leave the setting
    at its default: refused, naming the setting. Other names of the user's own are left alone."""
    import difflib

    for name in values:
        if name.isupper() and name not in CONFIG_KEYS:
            close = difflib.get_close_matches(name, sorted(CONFIG_KEYS), n=1, cutoff=0.85)
            if close:
                raise ConfigurationError(f"{name} is not a setting (did you mean {close[0]}?); as written it is "
                                         f"ignored and {close[0]} keeps its default")


def from_config(config: ModuleType | Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from a config module (or mapping of its names), with environment overrides."""
    values = config if isinstance(config, Mapping) else vars(config)
    env = os.environ if env is None else env
    _refuse_misspelt_keys(values)
    hints = dict(values.get("VARIABLE_AGG_MAP", {}))
    if not all(isinstance(v, bool) for v in hints.values()):
        raise ConfigurationError("VARIABLE_AGG_MAP values must be True (mean) or False (sum)")
    variables, inline = parse_variable_statistics(
        values.get("VARIABLES") or list(hints), "VARIABLES" if values.get("VARIABLES") else "VARIABLE_AGG_MAP")
    settings = assemble(
        start_date=parse_date(values.get("START_DATE", ""), "START_DATE"),
        end_date=parse_date(values.get("END_DATE", ""), "END_DATE"),
        variables=variables,
        aggregation_hints=hints,
        max_processes=parse_max_processes(values.get("MAX_CONCURRENT_PROCESSES", 2)),
        days_per_worker=parse_days_per_worker(values.get("DAYS_PER_WORKER", 1)),
        data_dir=_absolute(values.get("DATA_DIR", "data")),
        source=str(values.get("SOURCE", PLANETARY_COMPUTER)),
        stac_url=env.get(STAC_URL_ENV) or values.get("STAC_URL", DEFAULT_STAC_URL),
        sas_url=env.get(SAS_URL_ENV) or values.get("SAS_URL", DEFAULT_SAS_URL),
        collection=values.get("COLLECTION", SourceAccess.collection),
        asset=values.get("ASSET", SourceAccess.asset),
        storage_options=_storage_options(env, STORAGE_OPTIONS_ENV, values, "STORAGE_OPTIONS"),
        statistics=merge_statistics(parse_statistics(values.get("EXTRA_STATISTICS", {}), "EXTRA_STATISTICS"), inline),
        keep_hourly=bool(values.get("KEEP_HOURLY", False)),
        allow_3d=bool(values.get("ALLOW_3D", False)),
        max_nan_fraction=parse_fraction(values.get("MAX_NAN_FRACTION", 0.01), "MAX_NAN_FRACTION"),
        strict_qc=bool(values.get("STRICT_QC", False)),
        fill_missing_hours=parse_fill_missing_hours(values.get("FILL_MISSING_HOURS", 0)),
        chunk_cache=bool(values.get("CHUNK_CACHE", True)),
        prefetch=bool(values.get("PREFETCH", True)),
        bbox=parse_bbox(values.get("BBOX"), "BBOX"),
        overview=bool(values.get("OVERVIEW", False)),
        output_url=parse_output_url(values.get("OUTPUT_URL"), "OUTPUT_URL"),
        output_storage_options=_storage_options(env, OUTPUT_STORAGE_OPTIONS_ENV, values, "OUTPUT_STORAGE_OPTIONS"),
        executor=parse_executor(values.get("EXECUTOR", "subprocess")),
        dask_scheduler=parse_dask_scheduler(values.get("DASK_SCHEDULER_ADDRESS")),
        launch=parse_launch(values.get("LAUNCH", "prewarmed")),
        retry=parse_retry(values.get("RETRY", {})),
        **output_settings.from_config(values, _absolute),
    )
    return check(settings)


def add_arguments(parser: argparse.ArgumentParser, date_range: bool = True) -> None:
    """The flags the entry scripts share; each overrides the matching config.py value."""
    group = parser.add_argument_group("settings (override src/config.py)")
    if date_range:
        group.add_argument("--start", metavar="YYYY-MM-DD", help="first UTC day (START_DATE)")
        group.add_argument("--end", metavar="YYYY-MM-DD", help="last UTC day, inclusive (END_DATE)")
        group.add_argument("--max-processes", metavar="N", help="day workers at once (MAX_CONCURRENT_PROCESSES)")
        group.add_argument("--days-per-worker", metavar="N",
                           help="days each worker process runs in turn, 1 = a process per day (DAYS_PER_WORKER)")
    group.add_argument("--variables", metavar="T2:mean,min,max,PREC_ACC_NC,...",
                       help="comma-separated variables, each optionally with its daily statistics (VARIABLES)")
    group.add_argument("--statistics", metavar="T2:min,max;Q2:max", help="extra daily statistics (EXTRA_STATISTICS)")
    group.add_argument("--source", metavar="NAME_OR_URL",
                       help="planetary-computer, hytest-osn, or a Zarr URL or path (SOURCE)")
    group.add_argument("--data-dir", metavar="DIR", help="the data folder: the daily files, their ledgers, QC reports, "
                       "day logs and pictures go there (DATA_DIR, default data/)")
    group.add_argument("--output-url", metavar="URL",
                       help="also publish the daily files to this fsspec URL, e.g. s3://bucket/conus404/daily "
                       "(OUTPUT_URL; options in CONUS404_OUTPUT_STORAGE_OPTIONS); '' = DATA_DIR only")
    group.add_argument("--bbox", metavar="MIN_LON,MIN_LAT,MAX_LON,MAX_LAT",
                       help="only the smallest grid window covering this box, e.g. -105.5,39,-104.5,40.2 (BBOX); "
                       "'' = the whole domain")
    output_settings.add_arguments(group, date_range)
    group.add_argument("--keep-hourly", action="store_true", default=None, help="also keep the hourly records (KEEP_HOURLY)")
    group.add_argument("--allow-3d", action="store_true", default=None, help="accept variables with levels (ALLOW_3D)")
    group.add_argument("--strict-qc", action="store_true", default=None,
                       help="refuse days the QC only flags (supersaturated 2-m air, tiny negatives, values outside "
                       "climatology), instead of publishing them unchanged with the flags said (STRICT_QC)")
    group.add_argument("--fill-missing-hours", metavar="N",
                       help="fill up to N hours a day that the store lost (lost chunks) of an instantaneous variable "
                       "by linear interpolation in time from the hours around them (never sums or running totals, "
                       "never the day's first or last record); each filled hour is named in the QC report and the "
                       "file (FILL_MISSING_HOURS, default 0: a lost hour refuses its day)")
    group.add_argument("--no-chunk-cache", action="store_true", default=None,
                       help="fetch every day's chunks afresh, without the shared disk cache (CHUNK_CACHE = False)")
    if date_range:
        group.add_argument("--overview", action="store_true", default=None,
                           help="draw DATA_DIR/pictures/overview_START_END.png at the end of the run: each field's mean per day (OVERVIEW)")
        group.add_argument("--executor", metavar="NAME",
                           help="where day workers run: subprocess (children of the driver) or dask (EXECUTOR)")
        group.add_argument("--dask-scheduler", metavar="ADDRESS_OR_FILE",
                           help="with --executor dask: an existing scheduler, e.g. tcp://10.0.0.5:8786 or a "
                           "scheduler file; default a LocalCluster here (DASK_SCHEDULER_ADDRESS)")
        group.add_argument("--no-prefetch", action="store_true", default=None,
                           help="no run-level prefetcher: each day's process fetches all its own chunks (PREFETCH = False)")
        group.add_argument("--launch", metavar="HOW",
                           help="prewarmed: fork each worker process from a template process that has done the "
                           "imports; cold: a new interpreter per worker (LAUNCH)")


def apply_arguments(settings: Settings, args: argparse.Namespace) -> Settings:
    changes: dict[str, Any] = {}
    if getattr(args, "start", None) is not None:
        changes["start_date"] = parse_date(args.start, "--start")
    if getattr(args, "end", None) is not None:
        changes["end_date"] = parse_date(args.end, "--end")
    if getattr(args, "max_processes", None) is not None:
        changes["max_processes"] = parse_max_processes(args.max_processes)
    if getattr(args, "days_per_worker", None) is not None:
        changes["days_per_worker"] = parse_days_per_worker(args.days_per_worker, "--days-per-worker")
    if args.statistics is not None:
        changes["statistics"] = parse_statistics(args.statistics, "--statistics")
    if args.keep_hourly:
        changes["keep_hourly"] = True
    if args.allow_3d:
        changes["allow_3d"] = True
    if getattr(args, "strict_qc", None):
        changes["strict_qc"] = True
    if getattr(args, "fill_missing_hours", None) is not None:
        changes["fill_missing_hours"] = parse_fill_missing_hours(args.fill_missing_hours, "--fill-missing-hours")
    if getattr(args, "no_chunk_cache", None):
        changes["chunk_cache"] = False
    if getattr(args, "no_prefetch", None):
        changes["prefetch"] = False
    if getattr(args, "overview", None):
        changes["overview"] = True
    if getattr(args, "executor", None) is not None:
        changes["executor"] = parse_executor(args.executor, "--executor")
    if getattr(args, "launch", None) is not None:
        changes["launch"] = parse_launch(args.launch, "--launch")
    if getattr(args, "dask_scheduler", None) is not None:
        changes["dask_scheduler"] = parse_dask_scheduler(args.dask_scheduler, "--dask-scheduler")
        if changes["dask_scheduler"] and changes.get("executor", settings.execution.executor) != "dask":
            raise ConfigurationError("--dask-scheduler goes with --executor dask (the days would otherwise run here, "
                                     "ignoring the scheduler)")
    if args.variables is not None:
        changes["variables"], inline = parse_variable_statistics(args.variables, "--variables")
        changes["statistics"] = merge_statistics(changes.get("statistics", settings.request.statistics), inline)
    if args.statistics:  # the flag's own names must be asked for (config's EXTRA_STATISTICS may name others)
        variables = changes.get("variables", settings.request.variables)
        stray = [name for name in parse_statistics(args.statistics, "--statistics") if name not in variables]
        if stray:
            raise ConfigurationError(f"--statistics names {', '.join(stray)}, not among the variables asked for "
                                     f"({', '.join(variables)}): add {'them' if len(stray) > 1 else 'it'} to --variables")
    if args.source is not None:
        changes["source"] = source_from_command_line(args.source)
    if args.data_dir is not None:
        if not args.data_dir.strip():
            raise ConfigurationError("--data-dir is empty: give the folder for the data (DATA_DIR)")
        changes["data_dir"] = from_command_line(args.data_dir)
    if getattr(args, "output_url", None) is not None:
        changes["output_url"] = parse_output_url(args.output_url, "--output-url")
    if getattr(args, "bbox", None) is not None:
        changes["bbox"] = parse_bbox(args.bbox, "--bbox")
    changes.update(output_settings.changes_from(args, from_command_line))
    return check(changed(settings, **changes))


def check(settings: Settings) -> Settings:
    request = settings.request
    if request.end_date < request.start_date:
        raise ConfigurationError(
            f"the end date {request.end_date} is before the start date {request.start_date}"
        )
    if not settings.access.source:
        raise ConfigurationError("the source is empty: use planetary-computer or a Zarr URL or path")
    _refuse_writing_into_the_source(settings)
    output_settings.check(settings)
    return settings


def _refuse_writing_into_the_source(settings: Settings) -> None:
    """A local source is read, never written: no data folder (or Zarr output) equal to it, inside it
    or holding it (the pipeline would write its folders, lock and ledgers into the store, or clean_data.sh
    would reach it)."""
    if settings.access.is_remote:
        return
    store = Path(settings.access.source).expanduser().resolve()
    for what, path in (("--data-dir", settings.outputs.data_dir), ("--zarr", settings.outputs.output_zarr)):
        if not path or "://" in str(path):
            continue
        folder = Path(path).expanduser().resolve()
        if folder == store or store in folder.parents or folder in store.parents:
            relation = "is" if folder == store else ("is inside" if store in folder.parents else "holds")
            raise ConfigurationError(f"{what} {folder} {relation} the source {store}: the source is only read; "
                                     f"choose a {'data folder' if what == '--data-dir' else 'Zarr path'} apart from it")


def _config_file() -> str:
    """Where ``import config`` reads from (src/config.py unless something else is first on sys.path)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("config")
    except (ImportError, ValueError):
        spec = None
    return str(spec.origin) if spec is not None and spec.origin else str(PROJECT_ROOT / "src" / "config.py")


def load(args: argparse.Namespace | None = None, config: ModuleType | Mapping[str, Any] | None = None) -> Settings:
    """The settings for this run: ``src/config.py``, the environment, then ``args``."""
    if config is None:
        try:
            import config as user_config  # src/config.py, importable because src/ is on sys.path
        except Exception as exc:  # a broken config.py: one line that says where, not a traceback
            syntax = isinstance(exc, SyntaxError)  # only its filename is config.py's (an OSError's is the other file)
            where = (syntax and exc.filename) or _config_file()
            line = f", line {exc.lineno}" if syntax and exc.lineno else ""
            detail = exc.msg if syntax else str(exc)
            raise ConfigurationError(f"{where}{line} cannot be loaded: {type(exc).__name__}: {detail}") from None
        try:
            settings = from_config(user_config)
        except ConfigurationError as exc:  # say where the value comes from: the user did not type it just now
            raise ConfigurationError(f"{_config_file()}: {exc}") from None
    else:
        settings = from_config(config)
    return apply_arguments(settings, args) if args is not None else settings
