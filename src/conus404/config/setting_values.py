"""How each value a user gives (in ``src/config.py``, the environment or a flag) is read and
checked: one function per kind of value, each failing with a :class:`ConfigurationError` that
names the value and says what would do. :mod:`conus404.config.settings` applies them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conus404.core.exceptions import ConfigurationError

_VARIABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SUBPROCESS = "subprocess"  # the executors (conus404.launch): where worker processes run
DASK = "dask"
EXECUTORS = (SUBPROCESS, DASK)


def parse_date(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"{what} {value!r} is not a date of the form YYYY-MM-DD") from None


def parse_variable_statistics(
    value: str | list[str] | tuple[str, ...], what: str = "variables"
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Names, and the statistics asked for inline: ``"T2:mean,min,max,PREC_ACC_NC"`` ->
    (("T2", "PREC_ACC_NC"), {"T2": ("mean", "min", "max")}). After ``NAME:STAT`` further
    statistic names belong to NAME until the next variable."""
    from conus404.core.variables import STATISTICS

    tokens = [v.strip() for v in value.split(",")] if isinstance(value, str) else [
        part.strip() for v in value for part in str(v).split(",")]
    names: list[str] = []
    inline: dict[str, list[str]] = {}
    current = None
    for token in filter(None, tokens):
        name, sep, stat = (part.strip() for part in token.partition(":"))
        if not sep and (current is None or token not in STATISTICS):
            names.append(token)  # a variable without statistics
            current = None
            continue
        if sep:
            names.append(name)
            current = inline.setdefault(name, [])
        else:
            stat = token  # one more statistic of the variable before it
        if stat not in STATISTICS:
            raise ConfigurationError(f"{what}: unknown statistic {stat!r} for {names[-1]}; use {', '.join(STATISTICS)}")
        current.append(stat)
    stats = {name: tuple(dict.fromkeys(s)) for name, s in inline.items()}
    return _checked_names(names, what), stats


def _checked_names(names: list[str], what: str) -> tuple[str, ...]:
    if not names:
        raise ConfigurationError(f"{what} is empty: name at least one variable, e.g. T2,PREC_ACC_NC")
    bad = [n for n in names if not _VARIABLE_NAME.match(n)]
    if bad:
        raise ConfigurationError(f"{what}: {', '.join(map(repr, bad))} is not a variable name")
    return tuple(dict.fromkeys(names))  # drop repeats, keep order


def parse_max_processes(value: Any) -> int:
    return _whole_number(value, "max processes", 1, 64, "use 1 to 64")


def parse_days_per_worker(value: Any, what: str = "DAYS_PER_WORKER") -> int:
    return _whole_number(value, what, 1, 31, "use 1 (a process per day) to 31")


def parse_fill_missing_hours(value: Any, what: str = "FILL_MISSING_HOURS") -> int:
    return _whole_number(value, what, 0, 22, "use 0 (never fill) up to 22 (a day's hours but its first and last)")


def _whole_number(value: Any, what: str, low: int, high: int, advice: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"{what} {value!r} is not a whole number") from None
    if not low <= number <= high:
        raise ConfigurationError(f"{what} {number} is out of range: {advice}")
    return number


def merge_statistics(*parts: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    merged: dict[str, tuple[str, ...]] = {}
    for part in parts:
        for name, stats in part.items():
            merged[name] = tuple(dict.fromkeys((*merged.get(name, ()), *stats)))
    return merged


def parse_statistics(value: str | Mapping[str, Any], what: str = "statistics") -> dict[str, tuple[str, ...]]:
    """``"T2:min,max;Q2:max"`` or ``{"T2": ["min", "max"]}`` -> {"T2": ("min", "max")}."""
    from conus404.core.variables import STATISTICS

    if isinstance(value, str):
        pairs = {}
        for part in filter(None, (p.strip() for p in value.split(";"))):
            name, sep, stats = part.partition(":")
            if not sep:
                raise ConfigurationError(f"{what}: {part!r} is not VARIABLE:STAT[,STAT] (e.g. T2:min,max)")
            pairs[name.strip()] = [s.strip() for s in stats.split(",") if s.strip()]
        value = pairs
    out = {}
    for name, stats in dict(value).items():
        bad = [s for s in stats if s not in STATISTICS]
        if bad:
            raise ConfigurationError(f"{what}: {name}: unknown statistic {', '.join(map(repr, bad))}; use {', '.join(STATISTICS)}")
        out[str(name)] = tuple(dict.fromkeys(stats))
    return out


def format_statistics(statistics: Mapping[str, tuple[str, ...]]) -> str:
    """The flag form of EXTRA_STATISTICS, the inverse of :func:`parse_statistics`."""
    return ";".join(f"{name}:{','.join(stats)}" for name, stats in statistics.items() if stats)


def parse_bbox(value: Any, what: str):
    from conus404.core.subset import parse_bbox as parse

    return parse(value, what)


def parse_executor(value: Any, what: str = "EXECUTOR") -> str:
    name = str(value).strip().lower()
    if name not in EXECUTORS:
        raise ConfigurationError(f"{what} {value!r} is not an executor: use {' or '.join(EXECUTORS)}")
    return name


LAUNCHES = ("prewarmed", "cold")


def parse_launch(value: Any, what: str = "LAUNCH") -> str:
    name = str(value).strip().lower()
    if name not in LAUNCHES:
        raise ConfigurationError(f"{what} {value!r} is not a way to launch workers: use {' or '.join(LAUNCHES)}")
    return name


def parse_dask_scheduler(value: Any, what: str = "DASK_SCHEDULER_ADDRESS") -> str | None:
    """``tcp://host:port`` (any ``scheme://``) or the path of a scheduler file; empty = a LocalCluster."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if not scheme.isalpha() or not rest:
            raise ConfigurationError(f"{what} {text!r} is not an address such as tcp://10.0.0.5:8786")
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"{what} {text!r} is neither an address such as tcp://10.0.0.5:8786 "
                                 "nor an existing scheduler file")
    return str(path.resolve())


def parse_output_url(value: Any, what: str) -> str | None:
    """An fsspec URL with a known protocol (``s3://bucket/prefix``); empty = DATA_DIR only."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not rest.strip("/"):
        raise ConfigurationError(f"{what} {text!r} is not a URL such as s3://bucket/conus404/daily "
                                 "(for a local folder, use --data-dir)")
    try:
        import fsspec

        fsspec.get_filesystem_class(scheme)
    except (ValueError, ImportError) as exc:
        raise ConfigurationError(f"{what} {text!r}: no filesystem for {scheme}:// ({exc})") from None
    return text


def parse_fraction(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what} {value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise ConfigurationError(f"{what} {number} must be between 0 and 1")
    return number


def parse_retry(value: Mapping[str, Any]):
    """RETRY = {"attempts": 6, "initial_backoff_s": 0.1, "max_backoff_s": 20, "jitter": 0.5}."""
    from conus404.config.retry_policy import RetrySettings

    if not isinstance(value, Mapping):
        raise ConfigurationError("RETRY must be a dict such as {'attempts': 6, 'max_backoff_s': 20}")
    known = set(RetrySettings.__dataclass_fields__)
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigurationError(f"RETRY: unknown key(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
    try:
        settings = RetrySettings(**{k: type(getattr(RetrySettings, k))(v) for k, v in value.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"RETRY: {exc}") from None
    if (settings.attempts < 0 or settings.initial_backoff_s < 0 or settings.max_backoff_s < 0
            or settings.throttle_budget_s < 0 or not 0 <= settings.jitter <= 1):
        raise ConfigurationError("RETRY: attempts and backoffs cannot be negative; jitter is between 0 and 1")
    return settings


def parse_storage_options(value: Any, what: str) -> dict[str, Any]:
    """A dict, or a JSON object given as text (from the environment)."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigurationError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} must be a JSON object / dict of fsspec options, such as {{\"anon\": true}}")
    return dict(value)
