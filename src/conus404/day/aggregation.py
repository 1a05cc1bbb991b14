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

import re

import numpy as np

from conus404.core.variables import BUCKET_J, VariableClass, default_statistic


def bucket_total(values: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """WRF's true radiation total from the bucket value and its reset counter (float64)."""
    return values.astype(np.float64) + counter.astype(np.float64) * BUCKET_J


def daily_value(var_class: VariableClass, hourly: np.ndarray, counter: np.ndarray | None = None) -> np.ndarray:
    """The day's value from the records of :func:`conus404.core.day_windows.hour_window` (first axis = time), as float32."""
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
