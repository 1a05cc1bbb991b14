"""The write stage: which outputs a day makes, from the settings. Each is a
:class:`~conus404.outputs.day_output.DayOutput`; the worker calls them in this order (the daily file
first: it is the day's place, unless only series are kept; the copy elsewhere last)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from conus404.config.parts import Settings
from conus404.day.plan import VariablePlan
from conus404.outputs import daily_file
from conus404.outputs.day_output import DayOutput
from conus404.outputs.remote_output import RemoteCopy, RemoteOutput
from conus404.outputs.series.days import SeriesOutput
from conus404.outputs.series.weights import SeriesTarget


def outputs_for(settings: Settings, day: dt.date, final: Path, remote: RemoteOutput | None, ds: Any,
                lat: np.ndarray, lon: np.ndarray, description: dict[str, str], plans: list[VariablePlan],
                targets: list[SeriesTarget]) -> list[DayOutput]:
    """The day's outputs: ``ds`` is the source as read (the run's window), ``lat``/``lon`` its grid."""
    outputs: list[DayOutput] = []
    if not settings.series.series_only:
        outputs.append(daily_file.DailyFileOutput(final, settings.outputs.compression_level,
                                                  dict(settings.request.output_units)))
    if targets:
        outputs.append(SeriesOutput(settings.outputs.data_dir, targets))
    if settings.outputs.keep_hourly:
        from conus404.outputs.hourly_file import HourlyFile

        source_attrs = {name: dict(ds[name].attrs) for plan in plans for name in plan.inputs}
        outputs.append(HourlyFile(daily_file.hourly_dir(settings.outputs.data_dir), day, lat, lon, description,
                                  source_attrs, settings.request.day_boundary, settings.outputs.cell_corners))
    if remote is not None:
        outputs.append(RemoteCopy(remote, final))
    return outputs
