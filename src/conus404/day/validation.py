"""Checks a day must pass before it is published, and the per-day QC report they fill.

Two outcomes, never confused:
  refuse  the data are broken: a lost chunk or hour, NaN above the allowed share, wrong units or grid,
          a value no model run can give, a running total that falls beyond rounding. Nothing is published.
  flag    the model can give it, a person would not expect it: supersaturated 2-m air (TD2 above T2),
          the tiny negatives WRF leaves, values outside climatology. The day is published unchanged;
          the QC report and the daily file say what, where and how much (``strict`` refuses instead).
The bounds, each with its source, are :mod:`conus404.day.qc_bounds`'. Values are never clipped or altered.

Two stages, both before anything is written under a final name:
  hourly  on each variable's records as read: units, grid shape, NaN share, physical range
  daily   on the aggregated values: range, TD2 against T2, amounts and running totals' signs
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conus404.core.exceptions import DataValidationError
from conus404.core.variables import VariableClass
from conus404.day import qc_bounds
from conus404.day.qc_bounds import Bounds


@dataclass
class QcReport:
    """What the checks measured and concluded for one day; written as JSON next to the logs."""

    date: str
    max_nan_fraction: float
    strict: bool = False  # flags refuse the day (--strict-qc)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    filled: dict[str, list[str]] = field(default_factory=dict)  # variable -> hours filled in time (--fill-missing-hours)
    grid: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # lat, lon: to say where

    def entry(self, name: str) -> dict[str, Any]:
        return self.variables.setdefault(name, {})

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def flag(self, variable: str, check: str, message: str, cells: int, worst: float, at: int | None = None,
             hour: str | None = None) -> None:
        """Something the model can give but a person would not expect: published, and said."""
        where = self.where(at)
        if hour:
            where = {"time": hour, **where}
        text = message + (f" (worst {worst:.6g}" + "".join(f", {k} {v}" for k, v in where.items()
                                                          if k in ("time", "lat", "lon")) + ")")
        self.flags.append({"variable": variable, "check": check, "message": text, "cells": int(cells),
                           "worst": float(worst), "where": where})
        self.entry(variable).setdefault("flags", []).append(check)
        if self.strict:
            self.failures.append(f"{text}: refused by --strict-qc")

    def where(self, flat_index: int | None) -> dict[str, Any]:
        """Grid indices (and lat/lon, when known) of a cell given by its index in the flattened grid."""
        if flat_index is None or self.grid is None:
            return {}
        lat, lon = self.grid
        j, i = np.unravel_index(int(flat_index), lat.shape)
        return {"south_north": int(j), "west_east": int(i), "lat": round(float(lat[j, i]), 3),
                "lon": round(float(lon[j, i]), 3)}

    def raise_if_failed(self) -> None:
        if self.failures:
            more = f" (and {len(self.failures) - 1} more; see the QC report)" if len(self.failures) > 1 else ""
            raise DataValidationError(self.failures[0] + more)

    def flag_messages(self) -> list[str]:
        return [f"{f['variable']}: {f['message']}" for f in self.flags]

    def flags_by_field(self) -> dict[str, str]:
        """Each flagged variable's flags, as one text (for the daily file's field)."""
        flagged: dict[str, list[str]] = {}
        for flag in self.flags:
            flagged.setdefault(flag["variable"], []).append(flag["message"])
        return {name: "; ".join(messages) for name, messages in flagged.items()}

    def file_attributes(self) -> dict[str, str]:
        """What the day's checks concluded, for the daily file: ``passed``, or ``flagged`` and each flag,
        and the hours filled in time."""
        attrs = {"conus404_qc": self.status(failed=False)}
        if self.flags:
            attrs["conus404_qc_flags"] = "; ".join(self.flag_messages())
        if self.filled:
            attrs["conus404_filled_hours"] = self.filled_text(list(self.filled)) + (
                " (lost by the store; filled by linear interpolation in time from the hours around them)")
        return attrs

    def filled_text(self, names: list[str]) -> str:
        """'U10: 2021-01-02T05Z, 2021-01-02T06Z' for those of ``names`` with filled hours ('' if none)."""
        return "; ".join(f"{name}: {', '.join(self.filled[name])}" for name in names if name in self.filled)

    def status(self, failed: bool) -> str:
        return "failed" if failed else ("flagged" if self.flags else "passed")

    def as_dict(self, status: str) -> dict[str, Any]:
        return {
            "date": self.date,
            "status": status,
            "max_nan_fraction": self.max_nan_fraction,
            "strict_qc": self.strict,
            "failures": self.failures,
            "flags": self.flags,
            "filled_hours": self.filled,
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
    expected = qc_bounds.hourly(name)
    if expected is not None and units is not None and units != expected.units:
        report.fail(f"{name} is in {units!r}, not {expected.units!r}: not the CONUS404 units this pipeline checks")


def check_hourly(
    report: QcReport, name: str, hourly: np.ndarray, grid_shape: tuple[int, int], timestamps: list[str]
) -> None:
    """Shape, NaN share per record and range of one variable's records."""
    entry = report.entry(name)
    if hourly.shape[-2:] != grid_shape:
        report.fail(f"{name} has grid {hourly.shape[-2:]}, expected {grid_shape}")
        return
    bounds = qc_bounds.hourly(name)
    values = hourly
    if bounds is not None and bounds.zero_is_absent and np.issubdtype(hourly.dtype, np.floating):
        values = np.where(hourly == 0, np.nan, hourly)  # SST's land cells: not part of its range
        entry["zero_cells_share"] = float(np.mean(hourly == 0))
    lows, highs, nan_share = _record_extremes(report, name, values, hourly, timestamps)
    entry["hourly_nan_fraction_max"] = float(nan_share.max()) if len(nan_share) else 0.0
    worst = int(nan_share.argmax()) if len(nan_share) else 0
    if len(nan_share) and nan_share[worst] > report.max_nan_fraction:
        report.fail(
            f"{name} at {timestamps[worst]} is {nan_share[worst]:.1%} missing (NaN), "
            f"above the {report.max_nan_fraction:.1%} allowed"
        )
    if not np.isfinite(lows).any():
        if not (bounds is not None and bounds.zero_is_absent and np.isfinite(hourly).any()):
            report.fail(f"{name} has no finite values in the day")
        return
    entry["hourly_min"], entry["hourly_max"] = float(np.nanmin(lows)), float(np.nanmax(highs))
    if bounds is None:
        return
    for i in range(len(lows)):
        if lows[i] < bounds.possible[0] or highs[i] > bounds.possible[1]:
            bad = lows[i] if lows[i] < bounds.possible[0] else highs[i]
            report.fail(f"{name} at {timestamps[i]} has {bad:.6g} {bounds.units}, outside the possible "
                        f"{bounds.possible[0]:g}..{bounds.possible[1]:g} (broken data or wrong units)")
            return
    if np.nanmin(lows) < bounds.usual[0] or np.nanmax(highs) > bounds.usual[1]:
        _flag_unusual_hours(report, name, values, bounds, timestamps, lows, highs)


def _flag_unusual_hours(report: QcReport, name: str, values: np.ndarray, bounds: Bounds, timestamps: list[str],
                        lows: np.ndarray, highs: np.ndarray) -> None:
    """One flag per side: how many cell-hours lie beyond the usual bound, the worst one and where.

    Only the records whose extremes cross the bound are looked at, one at a time (no copy of the day):
    the worst value beyond a side is that record's extreme, so it is found by argmin/argmax.
    """
    flat = values.reshape(values.shape[0], -1)
    for side in ("below", "above"):
        limit = bounds.usual[0] if side == "below" else bounds.usual[1]
        crossing = np.flatnonzero(lows < limit) if side == "below" else np.flatnonzero(highs > limit)
        if not len(crossing):
            continue
        count = sum(int(np.count_nonzero(flat[i] < limit if side == "below" else flat[i] > limit)) for i in crossing)
        hour = int(crossing[np.argmin(lows[crossing])] if side == "below" else crossing[np.argmax(highs[crossing])])
        record = flat[hour]
        cell = int(np.nanargmin(record) if side == "below" else np.nanargmax(record))
        what = "tiny negatives the model leaves" if side == "below" and limit == 0 else "outside climatology"
        report.flag(name, f"hourly_{side}_usual",
                    f"{count} cell-hour(s) in {len(crossing)} hour(s) {side} the usual {limit:g} {bounds.units} ({what})",
                    count, float(record[cell]), cell, timestamps[hour])


def _record_extremes(report: QcReport, name: str, hourly: np.ndarray, raw: np.ndarray, timestamps: list[str]):
    """Per record: finite min, finite max (NaN when none) and NaN share (of ``raw``, as read).

    Two passes over the data in the usual case (no NaN, no inf): NaN-propagating min/max per
    record; only records where those are not finite are looked at again, exactly.
    """
    count = hourly.shape[0]
    flat = hourly.reshape(count, -1)
    if flat.shape[1] == 0:
        return np.full(count, np.nan), np.full(count, np.nan), np.zeros(count)
    lows, highs = flat.min(axis=1).astype(np.float64), flat.max(axis=1).astype(np.float64)
    nan_share = np.zeros(count)
    raw_flat = raw.reshape(count, -1)
    for i in np.flatnonzero(~(np.isfinite(lows) & np.isfinite(highs))):
        record = flat[i]
        nan_share[i] = float(np.isnan(raw_flat[i]).mean()) if np.issubdtype(raw.dtype, np.floating) else 0.0
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
    hours: int = 24,
) -> None:
    """Range and sign of one aggregated field.

    ``rounding`` is how far a difference of float32 running totals can stray below zero by
    rounding alone (two units in the last place of the largest total); ``hours`` the records summed.
    """
    entry = report.entry(name)
    nan_share = float(np.isnan(values).mean())
    entry["nan_fraction"] = nan_share
    bounds = qc_bounds.daily(source_name)
    checked = np.where(values == 0, np.nan, values) if bounds is not None and bounds.zero_is_absent else values
    extremes = _finite_extremes(checked)
    if extremes is None:
        if _finite_extremes(values) is None:  # (a field only of SST's land zeros has nothing to check)
            report.fail(f"daily {name} has no finite values")
        return
    entry["min"], entry["max"] = extremes
    entry["mean"] = float(np.nanmean(values))
    if nan_share > report.max_nan_fraction:
        report.fail(f"daily {name} is {nan_share:.1%} missing, above the {report.max_nan_fraction:.1%} allowed")
    low, high = extremes
    if var_class in (VariableClass.SINCE_START, VariableClass.BUCKET) and source_name in qc_bounds.NON_NEGATIVE_TOTALS:
        if low < -rounding:
            report.fail(f"daily {name} falls by {low:.6g}: a running total that can only grow decreased")
        if source_name.startswith("AC") and high > qc_bounds.MAX_DAILY_RADIATION_J:
            report.fail(f"daily {name} is {high:.6g} J m-2, above any real day's radiation energy")
    if bounds is None:
        return
    if var_class == VariableClass.INSTANTANEOUS and (low < bounds.possible[0] or high > bounds.possible[1]):
        report.fail(f"daily {name} spans {low:.6g}..{high:.6g}, outside the possible "
                    f"{bounds.possible[0]:g}..{bounds.possible[1]:g} {bounds.units}")
    if var_class == VariableClass.PRIOR_HOUR:
        _check_daily_amount(report, name, checked, bounds, low, high, hours)


def _check_daily_amount(report: QcReport, name: str, values: np.ndarray, bounds: Bounds, low: float, high: float,
                        hours: int) -> None:
    """A day's total of hourly amounts: below -hours x the hourly tolerance refused, tiny negatives flagged."""
    tolerance = hours * bounds.possible[0]
    if low < tolerance:
        report.fail(f"daily {name} is negative ({low:.6g} {bounds.units}), beyond the {tolerance:g} the model's "
                    "rounding leaves: an amount that cannot be negative")
    elif low < 0:
        cells = int(np.count_nonzero(values < 0))
        report.flag(name, "daily_negative", f"negative in {cells} cell(s) (tiny negatives the model leaves)",
                    cells, low, int(np.nanargmin(values)))
    usual_high = qc_bounds.DAILY_AMOUNT_USUAL_MM if bounds.units == "mm" else bounds.usual[1] * hours
    if high > usual_high:
        cells = int(np.count_nonzero(values > usual_high))
        report.flag(name, "daily_above_usual", f"above the usual {usual_high:g} {bounds.units} in {cells} cell(s)",
                    cells, high, int(np.nanargmax(values)))


def check_dew_point(report: QcReport, daily: dict[str, np.ndarray]) -> None:
    """TD2 above T2 is supersaturated air, which WRF's 2-m diagnostics give (flagged) up to a bound (refused)."""
    if "T2" not in daily or "TD2" not in daily:
        return
    excess = daily["TD2"].astype(np.float64) - daily["T2"].astype(np.float64)
    if not np.isfinite(excess).any():
        return
    worst = float(np.nanmax(excess))
    if worst > qc_bounds.MAX_DEW_POINT_EXCESS_K:
        report.fail(f"daily TD2 exceeds T2 by up to {worst:.3g} K, beyond the {qc_bounds.MAX_DEW_POINT_EXCESS_K:g} K "
                    "any supersaturation of the model's 2-m air reaches")
    elif worst > qc_bounds.DEW_POINT_ROUNDING_K:
        with np.errstate(invalid="ignore"):
            cells = int(np.count_nonzero(excess > qc_bounds.DEW_POINT_ROUNDING_K))
        report.flag("TD2", "dew_point_above_temperature",
                    f"daily mean TD2 above T2 in {cells} cell(s), by up to {worst:.3g} K (supersaturated 2-m air)",
                    cells, worst, int(np.nanargmax(excess)))
