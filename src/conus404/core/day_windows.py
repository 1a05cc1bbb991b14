"""Which hourly records make a day of each variable class (WRF's time stamps; see
:mod:`conus404.day.aggregation` for how they become one value), for UTC days and days of a fixed
offset: the same rules from the day's start."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conus404.core.variables import VariableClass

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
