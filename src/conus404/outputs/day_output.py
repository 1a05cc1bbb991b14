"""The one small interface every output of a day implements, and what the day hands each.

A day's worker (:mod:`conus404.day.worker`) calls every output it was given, in a loop, at four
moments: ``take_hours`` as each variable's hours are read (only an output that keeps hours uses
them), ``write`` once the day has passed its checks, ``discard`` if the day fails after all, and
``deliver`` once the day's QC report is written (a copy made only of a day wholly done). ``write``
and ``deliver`` say where the day now is, if they put it somewhere. A new output is a new module
with a class like these, and one line in :mod:`conus404.day.day_outputs`; the worker does not change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conus404.core.subset import Window


@dataclass
class MadeDay:
    """A day that passed its checks: its fields and the dataset of its daily file."""

    day: dt.date
    fields: list  # daily_file.DailyField, in their final units
    dataset: Any  # the xarray Dataset of the daily file: fields, grid, attributes
    window: Window | None  # the grid window read (None: the whole grid)
    region: str | None  # what the files record of the region asked for (conus404_bbox)
    timings: dict[str, float] = field(default_factory=dict)  # each output adds its seconds

    def field_values(self) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
        """(name, values, attributes as in the file) of each field."""
        return [(f.name, f.values, self.dataset[f.name].attrs) for f in self.fields]


class DayOutput:
    """One product of a day. Every method does nothing unless the output needs that moment."""

    keeps_hours = False  # whether take_hours wants the records (the day then reads in the request's order)

    def take_hours(self, plan, window, records: dict[str, np.ndarray]) -> None:
        """One variable's hourly records as read (``plan``: its VariablePlan, ``window``: its HourWindow)."""

    def write(self, made: MadeDay) -> str | None:
        """Write the day (atomically: nothing under a final name until it is whole); returns where."""
        return None

    def discard(self) -> None:
        """The day failed: leave nothing of it."""

    def deliver(self, made: MadeDay) -> str | None:
        """After the day's QC report: copy the day elsewhere; returns where it now is."""
        return None
