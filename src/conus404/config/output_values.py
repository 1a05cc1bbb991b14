"""How each output setting's value is read: ``--units``, ``--rollup``, ``--zarr-chunks``,
``--compression-level``. Each refuses a value it cannot read with a one-line ConfigurationError
that names the flag or config key (``what``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conus404.core.exceptions import ConfigurationError

ROLLUP_KINDS = ("monthly", "annual", "water-year")
DEFAULT_ZARR_CHUNKS = (36, 350, 350)


def parse_units(value: str | Mapping[str, Any] | None, what: str = "--units") -> dict[str, str]:
    """``"T2:degC,PREC_ACC_NC:in"`` (or a mapping) to {variable: unit}; ConfigurationError if malformed
    or if UDUNITS does not know a unit."""
    if not value:
        return {}
    pairs = value.items() if isinstance(value, Mapping) else [
        token.split(":", 1) if ":" in token else (token, "") for token in str(value).split(",") if token.strip()]
    out: dict[str, str] = {}
    for name, unit in pairs:
        name, unit = str(name).strip(), str(unit).strip()
        if not name or not unit:
            raise ConfigurationError(f"{what}: {value!r} is not VARIABLE:UNIT[,VARIABLE:UNIT...], e.g. T2:degC,PREC_ACC_NC:in")
        udunits(unit, f"{what}: {unit!r} (for {name})")
        out[name] = unit
    return out


def format_units(units: Mapping[str, str]) -> str:
    """The flag form, the inverse of :func:`parse_units`."""
    return ",".join(f"{name}:{unit}" for name, unit in units.items())


def udunits(text: str, what: str):
    """The cf-units Unit of ``text``; ConfigurationError naming ``what`` if UDUNITS does not know it."""
    from cf_units import Unit

    try:
        unit = Unit(text)
    except ValueError:
        raise ConfigurationError(f"{what} is not a unit UDUNITS knows") from None
    if unit.is_unknown() or unit.is_no_unit():
        raise ConfigurationError(f"{what} is not a unit UDUNITS knows")
    return unit


def parse_rollups(value, what: str = "ROLLUPS") -> tuple[str, ...]:
    """``"monthly,annual,water-year"`` (or a sequence) -> the kinds, in that order; '' = none."""
    if value is None:
        return ()
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else [str(p).strip() for p in value]
    parts = [p for p in parts if p]
    unknown = [p for p in parts if p not in ROLLUP_KINDS]
    if unknown:
        raise ConfigurationError(f"{what}: unknown roll-up {unknown[0]!r}; use {', '.join(ROLLUP_KINDS)} (comma-separated)")
    return tuple(k for k in ROLLUP_KINDS if k in parts)


def parse_zarr_chunks(value, what: str = "ZARR_CHUNKS") -> tuple[int, int, int]:
    """``(36, 350, 350)`` or ``"36,350,350"``: days, south_north cells, west_east cells per chunk."""
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    try:
        numbers = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3 or min(numbers) < 1:
        raise ConfigurationError(f"{what} {value!r} is not three positive whole numbers DAYS,ROWS,COLUMNS, e.g. 36,350,350")
    return numbers  # type: ignore[return-value]


def parse_compression_level(value: Any, what: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) > 9:
        raise ConfigurationError(f"{what} {value!r} must be a zlib level from 0 (uncompressed) to 9")
    return int(text)
