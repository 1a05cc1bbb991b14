"""The aggregate stage: a day's fields from its hours, one variable at a time (so peak memory stays
near one variable's day of records): each variable's records read, checked hour by hour, made daily
by its class's rule (:mod:`conus404.day.aggregation`) and checked again (:mod:`conus404.day.validation`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from conus404 import __version__, source_commit
from conus404.core.day_windows import HourWindow, hour_window
from conus404.core.variables import VariableClass, aggregation_rule, counter_name
from conus404.day import aggregation, derived, validation
from conus404.day.day_reader import DayReader, locate_hours, reading_order
from conus404.day.derived import DERIVED
from conus404.day.plan import VariablePlan, field_names
from conus404.outputs import daily_file


def _field_attrs(plan: VariablePlan, statistic: str, window: HourWindow) -> dict[str, Any]:
    attrs = {k: plan.attrs[k] for k in ("units", "long_name", "description", "conus404_formula") if k in plan.attrs}
    spec = DERIVED.get(plan.name)
    if "long_name" in attrs or statistic != plan.statistics[0]:  # an extra statistic says which it is (T2_max)
        named = attrs.get("long_name") or attrs.get("description") or plan.name
        attrs["long_name"] = aggregation.daily_long_name(
            named, VariableClass.INSTANTANEOUS if spec is not None else plan.var_class, statistic)
    attrs["cell_methods"] = aggregation.cell_methods(statistic)
    attrs["conus404_class"] = "derived" if spec is not None else plan.var_class.value
    rule = spec.rule() if spec is not None else aggregation_rule(plan.var_class)
    attrs["conus404_rule"] = rule if statistic == plan.statistics[0] else f"the {statistic} of the hourly values"
    attrs["conus404_hour_window"] = window.describe()
    attrs["conus404_source_variables"] = " ".join(plan.inputs)
    return attrs


def aggregate_day(
    ds, day: dt.date, plans: list[VariablePlan], report: validation.QcReport, hourly_sink=None, reopen=None,
    timings: dict[str, float] | None = None, offset_hours: int = 0, lat=None, lon=None,
    read_ahead: bool = False, processes: int = 1, fill_missing_hours: int = 0,
):
    """Read, check and aggregate each variable in turn. Returns (fields, bytes read).

    Reading (one variable ahead with ``read_ahead``, signing again with ``reopen``, in an order that
    differs between the ``processes`` days running at once) is :mod:`conus404.day.day_reader`'s; seconds
    spent waiting for it go to ``timings``.
    """
    time_index = pd.DatetimeIndex(ds.indexes["time"])
    grid_shape = (ds.sizes["south_north"], ds.sizes["west_east"])
    daily_by_name: dict[str, np.ndarray] = {}
    bytes_read = 0
    windows = [hour_window(plan.var_class, day, offset_hours) for plan in plans]
    positions = [locate_hours(time_index, window, f"{plan.name} of {day}") for plan, window in zip(plans, windows, strict=True)]
    # Hourly files keep the variables in the request's order; without them neighbouring days read in different orders.
    order = list(range(len(plans))) if hourly_sink is not None else reading_order(len(plans), day.toordinal(), processes)
    fill = [fill_missing_hours if plans[i].var_class == VariableClass.INSTANTANEOUS else 0 for i in order]
    reader = DayReader(ds, [(plans[i].inputs, positions[i]) for i in order], reopen, timings, read_ahead, fill)
    by_plan: dict[int, list[daily_file.DailyField]] = {}
    try:
        for index, i in enumerate(order):
            records = reader.records(index)
            by_plan[i] = []
            bytes_read += _aggregate_variable(plans[i], windows[i], records, report, by_plan[i], daily_by_name,
                                              hourly_sink, grid_shape, lat, lon)
    finally:
        reader.close()
    report.filled.update(reader.filled)
    fields = [field for i in range(len(plans)) for field in by_plan[i]]
    validation.check_dew_point(report, daily_by_name)
    return fields, bytes_read


def _aggregate_variable(plan: VariablePlan, window: HourWindow, records: dict[str, np.ndarray],
                        report: validation.QcReport, fields: list, daily_by_name: dict, hourly_sink, grid_shape,
                        lat, lon) -> int:
    """Check and aggregate one variable's records into ``fields``; returns the bytes they hold."""
    stamps = [f"{t:%Y-%m-%dT%HZ}" for t in window.hours]
    if hourly_sink is not None:
        hourly_sink(plan, window, records)
    spec = DERIVED.get(plan.name)
    if spec is not None:
        context = derived.HourContext(lat, lon, window.hours)
        hourly = derived.hourly_values(spec, records, context)
    else:
        hourly = records[plan.name]
        validation.check_units(report, plan.name, plan.attrs.get("units"))
    validation.check_hourly(report, plan.name, hourly, grid_shape, stamps)
    counter = records.get(counter_name(plan.name)) if plan.var_class == VariableClass.BUCKET else None
    report.entry(plan.name).update({"class": plan.var_class.value, "window": window.describe()})
    for statistic, out_name in zip(plan.statistics, field_names(plan), strict=True):
        if statistic == plan.statistics[0]:
            values = (derived.daily_value(spec, hourly, records, context) if spec is not None
                      else aggregation.daily_value(plan.var_class, hourly, counter))
        else:
            values = aggregation.hourly_statistic(statistic, hourly)
        rounding = 0.0
        if plan.var_class in (VariableClass.SINCE_START, VariableClass.BUCKET):
            rounding = 2.0 * float(np.spacing(np.float32(np.nanmax(np.abs(hourly)) if hourly.size else 0.0)))
        validation.check_daily(report, out_name, plan.var_class, values, plan.name, rounding, len(window.hours))
        daily_by_name[out_name] = values
        fields.append(daily_file.DailyField(out_name, values, _field_attrs(plan, statistic, window), plan.level_dim))
    return sum(r.nbytes for r in records.values())


def provenance(description: dict[str, str], plans: list[VariablePlan]) -> dict[str, str]:
    return {
        **description,
        "history": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} created by the conus404 daily pipeline",
        "conus404_tool_version": __version__,
        "conus404_tool_commit": source_commit(),
        "conus404_created": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
        "conus404_rules": "; ".join(
            f"{p.name}: {aggregation_rule(p.var_class)}" for p in plans
        ),
    }
