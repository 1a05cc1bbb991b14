"""Day windows and reductions on small hand-made arrays."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from conus404.core.day_windows import hour_window
from conus404.core.variables import VariableClass
from conus404.day import aggregation

DAY = dt.date(2021, 3, 14)


def test_windows_follow_the_wrf_timestamp_meaning():
    inst = hour_window(VariableClass.INSTANTANEOUS, DAY)
    prior = hour_window(VariableClass.PRIOR_HOUR, DAY)
    ends = hour_window(VariableClass.SINCE_START, DAY)
    assert inst.hours[0] == pd.Timestamp("2021-03-14T00") and inst.hours[-1] == pd.Timestamp("2021-03-14T23")
    assert prior.hours[0] == pd.Timestamp("2021-03-14T01") and prior.hours[-1] == pd.Timestamp("2021-03-15T00")
    assert len(inst.hours) == len(prior.hours) == 24
    assert ends.hours == (pd.Timestamp("2021-03-14T00"), pd.Timestamp("2021-03-15T00"))
    assert hour_window(VariableClass.BUCKET, DAY).hours == ends.hours
    assert prior.describe() == "2021-03-14T01:00Z..2021-03-15T00:00Z (24 hourly records)"
    with pytest.raises(ValueError):
        hour_window(VariableClass.BUCKET_COUNTER, DAY)


def test_mean_and_sum_in_double_precision():
    hourly = np.stack([np.full((2, 2), 280.0 + h, np.float32) for h in range(24)])
    np.testing.assert_allclose(aggregation.daily_value(VariableClass.INSTANTANEOUS, hourly), 291.5)
    rain = np.zeros((24, 2, 2), np.float32)
    rain[5, 0, 0], rain[23, 0, 0] = 2.5, 0.5
    np.testing.assert_allclose(aggregation.daily_value(VariableClass.PRIOR_HOUR, rain), [[3.0, 0.0], [0.0, 0.0]])


def test_running_total_difference_and_bucket_reset():
    total = np.array([[120.0], [131.5]], np.float32).reshape(2, 1, 1)
    np.testing.assert_allclose(aggregation.daily_value(VariableClass.SINCE_START, total), 11.5)
    # bucket: 0.99e9 -> reset -> 0.01e9 means 0.02e9 J m-2 gained, not -0.98e9
    ac = np.array([0.99e9, 0.01e9], np.float32).reshape(2, 1, 1)
    count = np.array([7, 8], np.int32).reshape(2, 1, 1)
    np.testing.assert_allclose(aggregation.daily_value(VariableClass.BUCKET, ac, count), 0.02e9, rtol=1e-6)
    with pytest.raises(ValueError):
        aggregation.daily_value(VariableClass.BUCKET, ac)


def test_nan_propagates_to_the_day():
    hourly = np.ones((24, 1, 2), np.float32)
    hourly[3, 0, 1] = np.nan
    out = aggregation.daily_value(VariableClass.INSTANTANEOUS, hourly)
    assert out[0, 0] == 1.0 and np.isnan(out[0, 1])


def test_names_and_cell_methods():
    assert aggregation.output_name("T2", "mean", VariableClass.INSTANTANEOUS) == "T2"
    assert aggregation.output_name("T2", "max", VariableClass.INSTANTANEOUS) == "T2_max"
    assert aggregation.output_name("PREC_ACC_NC", "sum", VariableClass.PRIOR_HOUR) == "PREC_ACC_NC"
    assert aggregation.cell_methods("min") == "time: minimum"
    assert aggregation.allowed_statistics(VariableClass.SINCE_START) == ("sum",)


@pytest.mark.parametrize(("source_long_name", "var_class", "statistic", "daily"), [
    ("Accumulated total liquid water out of the snowpack since model initial time", VariableClass.SINCE_START, "sum",
     "daily total (over the UTC day) of liquid water out of the snowpack"),
    ("Accumulated downwelling shortwave radiation flux at bottom, accumulated since last bucket_J (1.0e9 J m-2) reset",
     VariableClass.BUCKET, "sum", "daily total (over the UTC day) of downwelling shortwave radiation flux at bottom"),
    ("Accumulated grid scale  precipitation , accumulated over prior 60 minutes", VariableClass.PRIOR_HOUR, "sum",
     "daily total (over the UTC day) of grid scale precipitation"),
    ("Accumulated grid scale  precipitation , accumulated over prior 60 minutes", VariableClass.PRIOR_HOUR, "max",
     "largest hourly amount in the UTC day of grid scale precipitation"),
    ("Temperature at 2 m", VariableClass.INSTANTANEOUS, "mean", "Temperature at 2 m"),
])
def test_daily_long_names_say_what_the_day_holds_not_the_running_total(source_long_name, var_class, statistic, daily):
    # the source strings are the CONUS404 collection's (ACSNOM, ACSWDNB, PREC_ACC_NC)
    assert aggregation.daily_long_name(source_long_name, var_class, statistic) == daily
