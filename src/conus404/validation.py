"""Checks a day must pass before it is published, and the per-day QC report they fill.

Two stages, both before anything is written under a final name:
  hourly  on each variable's records as read: units, grid shape, NaN share, physical range
  daily   on the aggregated values: physical range, TD2 <= T2, amounts that cannot be negative
Ranges are in the source's units (CONUS404 keeps WRF units: K, Pa, kg kg-1, mm, J m-2, W m-2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conus404.exceptions import DataValidationError
from conus404.variables import VariableClass


@dataclass(frozen=True)
class Range:
    units: str
    low: float
    high: float


# Hourly values, source units. Generous: they catch wrong units and broken data, not weather.
HOURLY_RANGES: dict[str, Range] = {
    **{name: Range("K", 170.0, 340.0) for name in ("T2", "TD2", "TH2", "TSK", "TG", "TV", "TRAD", "SST", "SSTSK")},
    "Q2": Range("kg kg-1", 0.0, 0.06),
    "PSFC": Range("Pa", 40_000.0, 110_000.0),
    "U10": Range("m s-1", -110.0, 110.0),
    "V10": Range("m s-1", -110.0, 110.0),
    "WSPD10": Range("m s-1", 0.0, 160.0),
    "SWDOWN": Range("W m-2", 0.0, 1500.0),
    "GLW": Range("W m-2", 0.0, 900.0),
    "COSZEN": Range("dimensionless", -1.0, 1.0),
    "PBLH": Range("m", 0.0, 8000.0),
    "SNOW": Range("kg m-2", 0.0, 200_000.0),
    "SNOWH": Range("m", 0.0, 200.0),
    "LAI": Range("m-2/m-2", 0.0, 20.0),
    **{name: Range("mm", 0.0, 500.0) for name in ("PREC_ACC_NC", "SNOW_ACC_NC", "GRAUPEL_ACC_NC", "ACRAINLSM", "ACSNOWLSM", "RAINNCV")},
    # derived (conus404.derived), each hour's value
    "RH2": Range("%", 0.0, 130.0),  # model air can be supersaturated; not clipped
    "SH2": Range("kg kg-1", 0.0, 0.06),
    "VPD2": Range("kPa", -2.0, 15.0),
    "U10E": Range("m s-1", -110.0, 110.0),
    "V10E": Range("m s-1", -110.0, 110.0),
    "WDIR10": Range("degree", 0.0, 360.0),
    "WSPD2": Range("m s-1", 0.0, 120.0),
    "ETO": Range("mm", -1.0, 5.0),  # per hour; dew makes night-time values slightly negative
    "ETR": Range("mm", -1.0, 7.0),
}
# Daily values whose plausible range is not the hourly one (sums of hourly amounts).
DAILY_RANGES: dict[str, Range] = {"ETO": Range("mm", -5.0, 40.0), "ETR": Range("mm", -5.0, 60.0)}
# Daily differences of running totals that cannot be negative (melt, radiation energy).
NON_NEGATIVE_TOTALS = {"ACSNOM"} | {
    f"AC{band}{d}{lvl}{c}" for band in ("SW", "LW") for d in ("DN", "UP") for lvl in ("B", "T") for c in ("", "C")
}
MAX_DAILY_RADIATION_J = 1.5e8  # ~1,700 W m-2 all day: above any real daily energy


@dataclass
class QcReport:
    """What the checks measured and concluded for one day; written as JSON next to the logs."""

    date: str
    max_nan_fraction: float
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def entry(self, name: str) -> dict[str, Any]:
        return self.variables.setdefault(name, {})

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def raise_if_failed(self) -> None:
        if self.failures:
            more = f" (and {len(self.failures) - 1} more; see the QC report)" if len(self.failures) > 1 else ""
            raise DataValidationError(self.failures[0] + more)

    def as_dict(self, status: str) -> dict[str, Any]:
        return {
            "date": self.date,
            "status": status,
            "max_nan_fraction": self.max_nan_fraction,
            "failures": self.failures,
            "variables": self.variables,
        }


def _finite_extremes(values: np.ndarray) -> tuple[float, float] | None:
    """(min, max) ignoring NaN, without copying the array; None when nothing is finite."""
    if values.size == 0:
        return None
    if np.issubdtype(values.dtype, np.floating):
        low, high = np.fmin.reduce(values, axis=None), np.fmax.reduce(values, axis=None)
    else:
        low, high = values.min(), values.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return float(low), float(high)


def check_units(report: QcReport, name: str, units: str | None) -> None:
    expected = HOURLY_RANGES.get(name)
    if expected is not None and units is not None and units != expected.units:
        report.fail(f"{name} is in {units!r}, not {expected.units!r}: not the CONUS404 units this pipeline checks")


def check_hourly(
    report: QcReport, name: str, hourly: np.ndarray, grid_shape: tuple[int, int], timestamps: list[str]
) -> None:
    """Shape, NaN share per record and physical range of one variable's records."""
    entry = report.entry(name)
    if hourly.shape[-2:] != grid_shape:
        report.fail(f"{name} has grid {hourly.shape[-2:]}, expected {grid_shape}")
        return
    lows, highs, nan_share = _record_extremes(report, name, hourly, timestamps)
    entry["hourly_nan_fraction_max"] = float(nan_share.max()) if len(nan_share) else 0.0
    worst = int(nan_share.argmax()) if len(nan_share) else 0
    if len(nan_share) and nan_share[worst] > report.max_nan_fraction:
        report.fail(
            f"{name} at {timestamps[worst]} is {nan_share[worst]:.1%} missing (NaN), "
            f"above the {report.max_nan_fraction:.1%} allowed"
        )
    if not np.isfinite(lows).any():
        report.fail(f"{name} has no finite values in the day")
        return
    entry["hourly_min"], entry["hourly_max"] = float(np.nanmin(lows)), float(np.nanmax(highs))
    allowed = HOURLY_RANGES.get(name)
    if allowed is not None:
        for i in range(len(lows)):
            if lows[i] < allowed.low or highs[i] > allowed.high:
                bad = lows[i] if lows[i] < allowed.low else highs[i]
                report.fail(
                    f"{name} at {timestamps[i]} has {bad:.6g} {allowed.units}, "
                    f"outside the plausible {allowed.low:g}..{allowed.high:g}"
                )
                break


def _record_extremes(report: QcReport, name: str, hourly: np.ndarray, timestamps: list[str]):
    """Per record: finite min, finite max (NaN when none) and NaN share.

    Two passes over the data in the usual case (no NaN, no inf): NaN-propagating min/max per
    record; only records where those are not finite are looked at again, exactly.
    """
    count = hourly.shape[0]
    flat = hourly.reshape(count, -1)
    if flat.shape[1] == 0:
        return np.full(count, np.nan), np.full(count, np.nan), np.zeros(count)
    lows, highs = flat.min(axis=1).astype(np.float64), flat.max(axis=1).astype(np.float64)
    nan_share = np.zeros(count)
    for i in np.flatnonzero(~(np.isfinite(lows) & np.isfinite(highs))):
        record = flat[i]
        nan_share[i] = float(np.isnan(record).mean())
        if np.isinf(record).any():
            report.fail(f"{name} at {timestamps[i]} has infinite values")
        finite = _finite_extremes(np.where(np.isinf(record), np.nan, record))
        lows[i], highs[i] = finite if finite else (np.nan, np.nan)
    return lows, highs, nan_share


def check_daily(
    report: QcReport,
    name: str,
    var_class: VariableClass,
    values: np.ndarray,
    source_name: str,
    rounding: float = 0.0,
) -> None:
    """Range and sign of one aggregated field.

    ``rounding`` is how far a difference of float32 running totals can stray below zero by
    rounding alone (two units in the last place of the largest total).
    """
    entry = report.entry(name)
    nan_share = float(np.isnan(values).mean())
    entry["nan_fraction"] = nan_share
    extremes = _finite_extremes(values)
    if extremes is None:
        report.fail(f"daily {name} has no finite values")
        return
    entry["min"], entry["max"] = extremes
    entry["mean"] = float(np.nanmean(values))
    if nan_share > report.max_nan_fraction:
        report.fail(f"daily {name} is {nan_share:.1%} missing, above the {report.max_nan_fraction:.1%} allowed")
    low, high = extremes
    if var_class in (VariableClass.SINCE_START, VariableClass.BUCKET) and source_name in NON_NEGATIVE_TOTALS:
        if low < -rounding:
            report.fail(f"daily {name} falls by {low:.6g}: a running total that can only grow decreased")
        if source_name.startswith("AC") and high > MAX_DAILY_RADIATION_J:
            report.fail(f"daily {name} is {high:.6g} J m-2, above any real day's radiation energy")
    allowed = DAILY_RANGES.get(source_name) or HOURLY_RANGES.get(source_name)
    if allowed is not None and var_class == VariableClass.INSTANTANEOUS:
        if low < allowed.low or high > allowed.high:
            report.fail(f"daily {name} spans {low:.6g}..{high:.6g}, outside {allowed.low:g}..{allowed.high:g} {allowed.units}")
    if allowed is not None and var_class == VariableClass.PRIOR_HOUR and low < 0:
        report.fail(f"daily {name} is negative ({low:.6g} {allowed.units}): an amount that cannot be negative")


def check_dew_point(report: QcReport, daily: dict[str, np.ndarray], tolerance_k: float = 0.01) -> None:
    """TD2 <= T2 holds hourly, so it holds for the daily means too."""
    if "T2" in daily and "TD2" in daily:
        excess = daily["TD2"].astype(np.float64) - daily["T2"].astype(np.float64)
        worst = np.nanmax(excess) if np.isfinite(excess).any() else 0.0
        if worst > tolerance_k:
            report.fail(f"daily TD2 exceeds T2 by up to {worst:.3g} K: dew point above air temperature")
