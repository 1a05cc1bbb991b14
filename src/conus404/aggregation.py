"""Daily aggregation rules: which hourly records a day uses, and how they become one value.

Timestamps follow WRF: an instantaneous record at t is the state at t; a "prior 60 minutes"
record at t is the amount in (t-1h, t]; a running total at t includes everything up to t. Hence
for UTC day D (the same rules as HyTEST's daily product, with exact running-total differences):

  instantaneous  mean of 00Z..23Z of D            (24 records)
  prior_hour     sum of 01Z of D .. 00Z of D+1     (24 records: the hours that fall inside D)
  since_start    v(00Z D+1) - v(00Z D)             (2 records)
  bucket         same, of AC + I_AC x 1e9          (2 records of each)

NaN propagates: a cell missing in any record is missing in the day (as ``skipna=False``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from conus404.variables import BUCKET_J, VariableClass, default_statistic

if TYPE_CHECKING:  # pandas is imported where a window is made: the run's prefetcher needs only the offsets
    import pandas as pd


@dataclass(frozen=True)
class HourWindow:
    """The hourly records a day of one variable class uses."""

    var_class: VariableClass
    hours: tuple[pd.Timestamp, ...]

    @property
    def first(self) -> pd.Timestamp:
        return self.hours[0]

    @property
    def last(self) -> pd.Timestamp:
        return self.hours[-1]

    def describe(self) -> str:
        """e.g. '2021-01-01T01:00Z..2021-01-02T00:00Z (24 hourly records)'."""
        fmt = "%Y-%m-%dT%H:%MZ"
        joiner = " and " if len(self.hours) == 2 else ".."
        return f"{self.first.strftime(fmt)}{joiner}{self.last.strftime(fmt)} ({len(self.hours)} hourly records)"


def day_start(day: dt.date, offset_hours: int = 0) -> pd.Timestamp:
    """The UTC instant day ``day`` starts: its local 00:00 at ``offset_hours`` east of UTC."""
    import pandas as pd

    return pd.Timestamp(day.year, day.month, day.day) - pd.Timedelta(hours=offset_hours)


def record_offsets(var_class: VariableClass) -> tuple[int, ...]:
    """The hours after a day's start whose records the day of ``var_class`` uses."""
    if var_class == VariableClass.INSTANTANEOUS:
        return tuple(range(24))
    if var_class == VariableClass.PRIOR_HOUR:
        return tuple(range(1, 25))
    if var_class in (VariableClass.SINCE_START, VariableClass.BUCKET):
        return (0, 24)
    raise ValueError(f"{var_class} has no daily aggregation")


def hour_window(var_class: VariableClass, day: dt.date, offset_hours: int = 0) -> HourWindow:
    """The records of day ``day`` (a UTC day, or one of a fixed offset: the same rules from its start)."""
    import pandas as pd

    start = day_start(day, offset_hours)
    return HourWindow(var_class, tuple(start + pd.Timedelta(hours=h) for h in record_offsets(var_class)))


def bucket_total(values: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """WRF's true radiation total from the bucket value and its reset counter (float64)."""
    return values.astype(np.float64) + counter.astype(np.float64) * BUCKET_J


def daily_value(var_class: VariableClass, hourly: np.ndarray, counter: np.ndarray | None = None) -> np.ndarray:
    """The day's value from the records of :func:`hour_window` (first axis = time), as float32."""
    # float64 accumulators without a float64 copy of the whole day (memory: one variable's records)
    if var_class == VariableClass.INSTANTANEOUS:
        out = hourly.mean(axis=0, dtype=np.float64)
    elif var_class == VariableClass.PRIOR_HOUR:
        out = hourly.sum(axis=0, dtype=np.float64)
    elif var_class == VariableClass.SINCE_START:
        out = hourly[-1].astype(np.float64) - hourly[0].astype(np.float64)
    elif var_class == VariableClass.BUCKET:
        if counter is None:
            raise ValueError("a bucket variable needs its I_AC counter")
        total = bucket_total(hourly, counter)
        out = total[-1] - total[0]
    else:
        raise ValueError(f"{var_class} has no daily aggregation")
    return out.astype(np.float32)


def hourly_statistic(statistic: str, hourly: np.ndarray) -> np.ndarray:
    """min / max / mean / sum over the day's hourly records (NaN propagates), as float32."""
    if statistic in ("min", "max"):
        return (np.min if statistic == "min" else np.max)(hourly, axis=0).astype(np.float32)
    reducer = np.mean if statistic == "mean" else np.sum
    return reducer(hourly, axis=0, dtype=np.float64).astype(np.float32)


def cell_methods(statistic: str) -> str:
    """CF cell_methods for a daily statistic over time."""
    return {"mean": "time: mean", "sum": "time: sum", "min": "time: minimum", "max": "time: maximum"}[statistic]


_RUNNING_TOTAL_WORDS = re.compile(
    r"[\s,]*(accumulated\s+)?(since\s+(last|model)\b.*|over\s+prior\s+\d+\s+minutes.*)$", re.IGNORECASE)


def daily_long_name(long_name: str, var_class: VariableClass, statistic: str) -> str:
    """The daily field's long_name: a day's difference of a running total, or sum of hourly amounts,
    is the day's total, not the source's "accumulated since ..."; an instantaneous field's mean keeps
    its name (cell_methods says how the day was made), its minimum and maximum say so."""
    if var_class == VariableClass.INSTANTANEOUS:
        extreme = {"min": "minimum", "max": "maximum"}.get(statistic)
        return f"daily {extreme} (over the UTC day's hourly values) of {long_name}" if extreme else long_name
    what = _RUNNING_TOTAL_WORDS.sub("", " ".join(long_name.replace(" ,", ",").split()))
    what = re.sub(r"^(accumulated\s+)?(total\s+)?", "", what, flags=re.IGNORECASE).strip(" ,")
    if var_class == VariableClass.PRIOR_HOUR and statistic == "max":
        return f"largest hourly amount in the UTC day of {what}"
    return f"daily total (over the UTC day) of {what}"


def output_name(variable: str, statistic: str, var_class: VariableClass) -> str:
    """The class's own statistic keeps the source name (T2); extra ones get a suffix (T2_max)."""
    return variable if statistic == default_statistic(var_class) else f"{variable}_{statistic}"


def allowed_statistics(var_class: VariableClass) -> tuple[str, ...]:
    """Extra statistics that make sense for a class (running totals have only their difference)."""
    if var_class == VariableClass.INSTANTANEOUS:
        return ("mean", "min", "max")
    if var_class == VariableClass.PRIOR_HOUR:
        return ("sum", "max")  # max = the wettest hour
    return ("sum",)
