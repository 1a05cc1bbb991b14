"""Monthly, annual and water-year roll-ups (rollups.write_rollups) over daily files written here
with known values: each field rolled up by its daily cell_methods against numpy; a partial period
is written only with --allow-partial and says how many days it holds; water years start on
1 October; a period is rewritten when one of its days changed and left alone otherwise (unit tests)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conus404.config import output_values
from conus404.config.settings import Settings, assemble
from conus404.core import grid
from conus404.core.exceptions import ConfigurationError
from conus404.emulator.synthetic_store import StoreSpec, build_dataset
from conus404.outputs import daily_file, rollups
from tests import conftest

NY, NX = 5, 7
LAT, LON = grid.grid_latlon(NY, NX)
FIELDS = {"T2": "time: mean", "T2_min": "time: minimum", "T2_max": "time: maximum", "PREC_ACC_NC": "time: sum"}


def values_of(day: dt.date, name: str, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(day.toordinal() * 10 + list(FIELDS).index(name))
    base = {"T2": 270.0, "T2_min": 262.0, "T2_max": 279.0, "PREC_ACC_NC": 0.0}[name]
    return (base + shift + rng.gamma(2.0, 2.0, (NY, NX))).astype(np.float32)


def write_day(data_dir: Path, day: dt.date, shift: float = 0.0, corners: bool = False) -> None:
    fields = [daily_file.DailyField(name, values_of(day, name, shift), {"units": "K" if name != "PREC_ACC_NC" else "mm",
                                                                        "cell_methods": method, "long_name": name})
              for name, method in FIELDS.items()]
    ds = daily_file.build_dataset(day, LAT, LON, fields, {"source": "test"}, corners=corners)
    daily_file.publish(ds, daily_file.daily_path(data_dir, day))


def settings(tmp: Path, first: dt.date, last: dt.date, kinds="monthly,annual,water-year", partial=False) -> Settings:
    return assemble(start_date=first, end_date=last, variables=("T2", "PREC_ACC_NC"), data_dir=tmp,
                    rollups=output_values.parse_rollups(kinds), allow_partial=partial)


def run(tmp: Path, first: dt.date, last: dt.date, **kwargs) -> list[Path]:
    s = settings(tmp, first, last, **kwargs)
    return rollups.write_rollups(s.request, s.outputs, list(FIELDS), lambda d: daily_file.daily_path(tmp, d).exists())


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


def expected(period_days: list[dt.date], name: str) -> np.ndarray:
    stack = np.stack([values_of(d, name).astype(np.float64) for d in period_days])
    how = {"T2": stack.mean(axis=0), "T2_min": stack.min(axis=0), "T2_max": stack.max(axis=0),
           "PREC_ACC_NC": stack.sum(axis=0)}
    return how[name].astype(np.float32)


def test_a_month_is_each_fields_mean_total_minimum_or_maximum_of_its_days(tmp_path):
    february = days(dt.date(2021, 2, 1), dt.date(2021, 2, 28))
    for day in [dt.date(2021, 1, 30), dt.date(2021, 1, 31), *february, dt.date(2021, 3, 1)]:
        write_day(tmp_path, day)
    written = run(tmp_path, dt.date(2021, 1, 30), dt.date(2021, 3, 1))
    month = tmp_path / "unprocessed" / "monthly" / "conus404_monthly_202102.nc"
    assert written == [month], "January and March are partial, 2021 and water year 2021 too: not written"
    with xr.open_dataset(month) as ds:
        for name in FIELDS:
            np.testing.assert_allclose(ds[name].values[0], expected(february, name), rtol=1e-6, err_msg=name)
        # a mean of daily means is the month's mean, and so on: the daily cell_methods over the month's bounds
        assert ds["T2"].attrs["cell_methods"] == "time: mean"
        assert ds["PREC_ACC_NC"].attrs["cell_methods"] == "time: sum"
        assert ds["T2_min"].attrs["cell_methods"] == "time: minimum"
        assert ds["T2_min"].attrs["conus404_rollup_rule"] == "the minimum of the period's daily values"
        assert ds["PREC_ACC_NC"].attrs["units"] == "mm"
        assert ds["time"].values[0] == np.datetime64("2021-02-01")
        assert list(ds["time_bnds"].values[0]) == [np.datetime64("2021-02-01"), np.datetime64("2021-03-01")]
        assert ds.attrs["conus404_days"] == 28 and ds.attrs["conus404_partial"] == "no"
        assert ds["lat"].shape == (NY, NX) and "crs" in ds
    from tests.conftest import cf_findings as findings  # CF: nothing of high or medium priority

    found = findings(month, tmp_path)
    assert found["high_priorities"] == [] and found["medium_priorities"] == [], found


def test_days_with_cell_corners_give_a_rollup_with_the_same_corners(tmp_path):
    for day in days(dt.date(2021, 2, 1), dt.date(2021, 2, 28)):
        write_day(tmp_path, day, corners=True)
    [month] = run(tmp_path, dt.date(2021, 2, 1), dt.date(2021, 2, 28), kinds="monthly")
    with xr.open_dataset(month) as rolled, xr.open_dataset(daily_file.daily_path(tmp_path, dt.date(2021, 2, 1))) as day:
        for name in ("lat_bnds", "lon_bnds"):
            np.testing.assert_array_equal(rolled[name].values, day[name].values)
        assert rolled["lat"].attrs["bounds"] == "lat_bnds"


def test_a_partial_period_needs_allow_partial_and_says_how_many_days_it_holds(tmp_path):
    for day in days(dt.date(2021, 3, 29), dt.date(2021, 4, 2)):
        write_day(tmp_path, day)
    assert run(tmp_path, dt.date(2021, 3, 29), dt.date(2021, 4, 2), kinds="monthly") == []
    written = run(tmp_path, dt.date(2021, 3, 29), dt.date(2021, 4, 2), kinds="monthly,annual", partial=True)
    names = sorted(p.name for p in written)
    assert names == ["conus404_annual_2021.nc", "conus404_monthly_202103.nc", "conus404_monthly_202104.nc"]
    with xr.open_dataset(tmp_path / "unprocessed" / "monthly" / "conus404_monthly_202104.nc") as april:
        assert april.attrs["conus404_days"] == 2 and april.attrs["conus404_days_in_period"] == 30
        assert april.attrs["conus404_partial"] == "yes"
        np.testing.assert_allclose(april["PREC_ACC_NC"].values[0], expected(days(dt.date(2021, 4, 1), dt.date(2021, 4, 2)),
                                                                            "PREC_ACC_NC"), rtol=1e-6)


def test_water_years_run_from_october_to_september(tmp_path):
    for day in days(dt.date(2020, 9, 28), dt.date(2020, 10, 3)):
        write_day(tmp_path, day)
    run(tmp_path, dt.date(2020, 9, 28), dt.date(2020, 10, 3), kinds="water-year", partial=True)
    folder = tmp_path / "unprocessed" / "water_year"
    assert sorted(p.name for p in folder.glob("*.nc")) == ["conus404_wateryear_2020.nc", "conus404_wateryear_2021.nc"]
    with xr.open_dataset(folder / "conus404_wateryear_2021.nc") as wy:
        assert wy.attrs["conus404_days"] == 3 and wy.attrs["conus404_days_in_period"] == 365
        assert wy["time"].values[0] == np.datetime64("2020-10-01")
        np.testing.assert_allclose(wy["T2"].values[0], expected(days(dt.date(2020, 10, 1), dt.date(2020, 10, 3)), "T2"),
                                   rtol=1e-6)
    assert rollups.period_of("water-year", dt.date(2021, 9, 30)).label == "2021"
    assert rollups.period_of("water-year", dt.date(2021, 10, 1)).label == "2022"


def test_a_period_is_redone_only_when_one_of_its_days_changed(tmp_path):
    february = days(dt.date(2021, 2, 1), dt.date(2021, 2, 28))
    for day in february:
        write_day(tmp_path, day)
    month = tmp_path / "unprocessed" / "monthly" / "conus404_monthly_202102.nc"
    assert run(tmp_path, february[0], february[-1], kinds="monthly") == [month]
    made = month.stat().st_mtime_ns
    assert run(tmp_path, february[0], february[-1], kinds="monthly") == [] and month.stat().st_mtime_ns == made
    write_day(tmp_path, dt.date(2021, 2, 10), shift=5.0)  # the day was redone with other data
    assert run(tmp_path, february[0], february[-1], kinds="monthly") == [month]
    with xr.open_dataset(month) as ds:
        stack = np.stack([values_of(d, "T2", 5.0 if d == dt.date(2021, 2, 10) else 0.0).astype(np.float64) for d in february])
        np.testing.assert_allclose(ds["T2"].values[0], stack.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("value", ["weekly", "monthly,seasonal", "Monthly"])
def test_an_unknown_rollup_is_refused_naming_the_choices(value):
    with pytest.raises(ConfigurationError, match=r"unknown roll-up .*; use monthly, annual, water-year"):
        output_values.parse_rollups(value, "--rollup")


ROLLUP_SPEC = StoreSpec.for_days("2021-01-30", 31, ny=4, nx=5, variables=("T2", "PREC_ACC_NC"))
stack = conftest.emulator_serving(ROLLUP_SPEC)


@pytest.mark.emulator
@pytest.mark.slow  # a 31-day run (60 s with its store); the quick suite's runs roll up partial months
def test_a_run_over_two_months_writes_the_whole_month_from_the_stores_hours(stack, tmp_path):
    """Through the emulator: February (whole) is written, against numpy over the store's hourly
    values; January (2 days) only with --allow-partial. (Ten days per worker process: 30 processes
    would prove nothing more about roll-ups.)"""
    first, last = dt.date(2021, 1, 30), dt.date(2021, 2, 28)
    result = conftest.run_driver(stack, tmp_path, [first, last], "T2,PREC_ACC_NC", "--rollup", "monthly",
                                 "--statistics", "T2:max", "--days-per-worker", "10")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "data" / "unprocessed" / "monthly"
    assert sorted(p.name for p in folder.glob("*.nc")) == ["conus404_monthly_202102.nc"]
    store = build_dataset(ROLLUP_SPEC)
    t2 = store["T2"].values.astype(np.float64)
    prec = store["PREC_ACC_NC"].values.astype(np.float64)
    offset = 2 * 24  # 1 February in the store's hours
    daily_t2 = np.stack([t2[offset + 24 * d:offset + 24 * d + 24].mean(axis=0) for d in range(28)]).astype(np.float32)
    daily_max = np.stack([t2[offset + 24 * d:offset + 24 * d + 24].max(axis=0) for d in range(28)]).astype(np.float32)
    daily_prec = np.stack([prec[offset + 24 * d + 1:offset + 24 * d + 25].sum(axis=0) for d in range(28)]).astype(np.float32)
    with xr.open_dataset(folder / "conus404_monthly_202102.nc") as month:
        np.testing.assert_allclose(month["T2"].values[0], daily_t2.astype(np.float64).mean(axis=0), rtol=2e-6)
        np.testing.assert_allclose(month["T2_max"].values[0], daily_max.max(axis=0), rtol=1e-7)
        np.testing.assert_allclose(month["PREC_ACC_NC"].values[0], daily_prec.astype(np.float64).sum(axis=0), rtol=2e-6)
        assert month.attrs["conus404_days"] == 28
    from tests.conftest import cf_findings as findings  # CF of an emulated run's outputs: a daily file and the roll-up

    for path in (folder / "conus404_monthly_202102.nc", daily_file.daily_path(tmp_path / "data", dt.date(2021, 2, 1))):
        found = findings(path, tmp_path)
        assert found["high_priorities"] == [] and found["medium_priorities"] == [], (path.name, found)
    again = conftest.run_driver(stack, tmp_path, [first, last], "T2,PREC_ACC_NC", "--rollup", "monthly", "--allow-partial",
                                "--statistics", "T2:max")
    assert again.returncode == 0, again.stderr[-3000:]
    with xr.open_dataset(folder / "conus404_monthly_202101.nc") as january:
        assert january.attrs["conus404_days"] == 2 and january.attrs["conus404_partial"] == "yes"
