"""Days of a fixed UTC offset (--day-boundary): the offset's forms and refusals, the shifted hour
windows, and end to end a UTC-6 day against numpy over the store's own hourly values on the
shifted windows (and not equal to the UTC day); the record's edges and a mixed data folder are
refused in one line before anything starts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conus404.config import day_boundary
from conus404.core.day_windows import hour_window
from conus404.core.exceptions import ConfigurationError
from conus404.core.variables import VariableClass
from conus404.emulator.synthetic_store import StoreSpec, build_dataset
from conus404.outputs import daily_file
from tests import conftest

SPEC = StoreSpec.for_days("2021-01-01", 3, ny=6, nx=8, variables=("T2", "PREC_ACC_NC", "ACSNOM"))
VARIABLES = "T2,PREC_ACC_NC,ACSNOM"
DAY = dt.date(2021, 1, 2)

stack = conftest.emulator_serving(SPEC)


@pytest.mark.parametrize("text, hours", [("UTC", 0), ("", 0), ("+00:00", 0), ("-06:00", -6), ("UTC-05:00", -5),
                                         ("+09:00", 9), ("-12:00", -12), ("+14:00", 14)])
def test_the_forms_of_an_offset(text, hours):
    assert day_boundary.parse(text) == hours
    assert day_boundary.parse(day_boundary.describe(hours)) == hours


@pytest.mark.parametrize("text, message", [("+25:00", "UTC offsets run from -12:00 to"), ("6", "is not a UTC offset"),
                                           ("-6", "is not a UTC offset"), ("+05:30", "must be whole hours"),
                                           ("CST", "is not a UTC offset")])
def test_a_malformed_offset_is_refused(text, message):
    with pytest.raises(ConfigurationError, match=message):
        day_boundary.parse(text, "--day-boundary")


def test_a_utc_minus_6_day_takes_the_records_from_its_local_midnight():
    stamps = lambda w: [t.strftime("%d %HZ") for t in w.hours]  # noqa: E731
    instant = hour_window(VariableClass.INSTANTANEOUS, DAY, -6)
    assert stamps(instant)[0] == "02 06Z" and stamps(instant)[-1] == "03 05Z" and len(instant.hours) == 24
    prior = hour_window(VariableClass.PRIOR_HOUR, DAY, -6)
    assert stamps(prior)[0] == "02 07Z" and stamps(prior)[-1] == "03 06Z" and len(prior.hours) == 24
    assert stamps(hour_window(VariableClass.SINCE_START, DAY, -6)) == ["02 06Z", "03 06Z"]
    assert stamps(hour_window(VariableClass.INSTANTANEOUS, DAY, 9))[0] == "01 15Z"


def run(tmp, stack, first, last, *flags):
    return conftest.run_driver(stack, tmp, [first, last], VARIABLES, *flags)


@pytest.mark.emulator
def test_a_utc_minus_6_day_equals_numpy_on_the_shifted_windows(stack, tmp_path):
    local = run(tmp_path / "local", stack, DAY, DAY, "--day-boundary", "-06:00")
    utc = run(tmp_path / "utc", stack, DAY, DAY)
    assert local.returncode == 0 and utc.returncode == 0, local.stderr[-2000:] + utc.stderr[-2000:]
    store = build_dataset(SPEC)
    hours = pd.DatetimeIndex(store["time"].values)
    at = lambda stamp: int(hours.get_loc(pd.Timestamp(stamp)))  # noqa: E731
    t2 = store["T2"].values.astype(np.float64)
    prec = store["PREC_ACC_NC"].values.astype(np.float64)
    snow = store["ACSNOM"].values.astype(np.float64)
    start = at("2021-01-02T06:00")
    expected = {"T2": t2[start:start + 24].mean(axis=0), "PREC_ACC_NC": prec[start + 1:start + 25].sum(axis=0),
                "ACSNOM": snow[at("2021-01-03T06:00")] - snow[start]}
    with xr.open_dataset(daily_file.daily_path(tmp_path / "local" / "data", DAY)) as ds, \
            xr.open_dataset(daily_file.daily_path(tmp_path / "utc" / "data", DAY)) as day_utc:
        assert ds.attrs["conus404_day_boundary"] == "UTC-06:00" and day_utc.attrs["conus404_day_boundary"] == "UTC"
        assert ds["time"].values[0] == np.datetime64("2021-01-02T06:00")
        assert list(ds["time_bnds"].values[0]) == [np.datetime64("2021-01-02T06:00"), np.datetime64("2021-01-03T06:00")]
        for name, values in expected.items():
            np.testing.assert_allclose(ds[name].values[0], values.astype(np.float32), rtol=2e-6, err_msg=name)
            assert not np.allclose(ds[name].values[0], day_utc[name].values[0]), f"{name}: the UTC day is another day"
    # a rerun at another boundary into this folder is refused, its file untouched
    made = daily_file.daily_path(tmp_path / "local" / "data", DAY).stat().st_mtime_ns
    mixed = run(tmp_path / "local", stack, DAY, DAY)
    assert mixed.returncode == 2 and "holds a day starting at local 00:00 of UTC-06:00, not of UTC" in mixed.stderr
    assert daily_file.daily_path(tmp_path / "local" / "data", DAY).stat().st_mtime_ns == made


@pytest.mark.emulator
@pytest.mark.parametrize("first, last, boundary, needs", [
    (dt.date(2021, 1, 1), dt.date(2021, 1, 1), "+06:00", "2020-12-31T18Z"),  # east of UTC: starts the evening before
    (dt.date(2021, 1, 3), dt.date(2021, 1, 3), "-06:00", "2021-01-04T06Z"),  # west: ends after the last record
])
def test_days_whose_shifted_windows_leave_the_record_are_refused(stack, tmp_path, first, last, boundary, needs):
    result = run(tmp_path, stack, first, last, f"--day-boundary={boundary}")
    assert result.returncode == 2 and needs in result.stderr and "outside the source's record" in result.stderr
    assert not daily_file.daily_dir(tmp_path / "data").exists() or not list(daily_file.daily_dir(tmp_path / "data").glob("*.nc"))
