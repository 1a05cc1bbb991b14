"""Quality checks: what passes, what fails, and what the report says."""

from __future__ import annotations

import numpy as np

from conus404.core.variables import VariableClass
from conus404.day import validation

STAMPS = [f"2021-01-01T{h:02d}Z" for h in range(24)]


def _report():
    return validation.QcReport("2021-01-01", max_nan_fraction=0.05)


def test_plausible_data_pass():
    report = _report()
    t2 = np.full((24, 3, 4), 280.0, np.float32)
    validation.check_units(report, "T2", "K")
    validation.check_hourly(report, "T2", t2, (3, 4), STAMPS)
    validation.check_daily(report, "T2", VariableClass.INSTANTANEOUS, t2[0], "T2")
    validation.check_dew_point(report, {"T2": t2[0], "TD2": t2[0] - 3})
    assert report.failures == []
    assert report.variables["T2"]["hourly_min"] == 280.0


def test_wrong_units_wrong_grid_nan_and_range_are_each_reported():
    report = _report()
    validation.check_units(report, "T2", "degC")
    validation.check_hourly(report, "PSFC", np.full((24, 3, 4), 1013.0, np.float32), (3, 4), STAMPS)  # hPa, not Pa
    validation.check_hourly(report, "Q2", np.zeros((24, 2, 2), np.float32), (3, 4), STAMPS)
    holes = np.full((24, 3, 4), 280.0, np.float32)
    holes[4, :2] = np.nan
    validation.check_hourly(report, "T2", holes, (3, 4), STAMPS)
    text = "\n".join(report.failures)
    assert "'degC', not 'K'" in text
    assert "PSFC at 2021-01-01T00Z has 1013" in text
    assert "Q2 has grid (2, 2), expected (3, 4)" in text
    assert "T2 at 2021-01-01T04Z is 66.7% missing" in text


def test_broken_amounts_totals_and_dew_points_are_refused():
    report = _report()
    validation.check_daily(report, "PREC_ACC_NC", VariableClass.PRIOR_HOUR, np.array([[-3.0, 1.0]], np.float32),
                           "PREC_ACC_NC", hours=24)  # beyond 24 hours x the 0.1 mm an hour's rounding may leave
    validation.check_daily(report, "ACSNOM", VariableClass.SINCE_START, np.array([[-3.0, 1.0]], np.float32), "ACSNOM", rounding=0.01)
    validation.check_dew_point(report, {"T2": np.array([[250.0]]), "TD2": np.array([[281.0]])})  # 31 K: no fog does that
    text = "\n".join(report.failures)
    assert "PREC_ACC_NC is negative (-3 mm)" in text
    assert "ACSNOM falls by -3" in text
    assert "TD2 exceeds T2 by up to 31" in text
    assert report.flags == []


def test_fog_and_tiny_negatives_are_flagged_with_where_and_how_much_and_published():
    """Supersaturated 2-m air and WRF's tiny negatives: flags (counted here independently), not failures."""
    lat, lon = np.meshgrid(np.linspace(30, 40, 4), np.linspace(-110, -100, 3), indexing="ij")
    report = validation.QcReport("2021-01-01", 0.05, grid=(lat, lon))
    t2 = np.full((4, 3), 270.0)
    td2 = t2 - 2.0
    td2[1, 2], td2[3, 0] = 271.5, 272.25  # two foggy cells, the worst at (3, 0)
    validation.check_dew_point(report, {"T2": t2, "TD2": td2})
    q2 = np.full((24, 4, 3), 0.004, np.float32)
    q2[5, 0, 1], q2[6, 2, 2], q2[6, 3, 1] = -2e-6, -4e-5, -1e-7
    validation.check_hourly(report, "Q2", q2, (4, 3), STAMPS)
    assert report.failures == []
    fog, negatives = report.flags
    assert fog["variable"] == "TD2" and fog["cells"] == int(((td2 - t2) > 0.01).sum()) == 2
    assert fog["worst"] == 2.25 and fog["where"] == {"south_north": 3, "west_east": 0, "lat": 40.0, "lon": -110.0}
    assert negatives["variable"] == "Q2" and negatives["cells"] == int((q2 < 0).sum()) == 3
    assert negatives["worst"] == np.float32(-4e-5) and negatives["where"]["time"] == "2021-01-01T06Z"
    assert (negatives["where"]["south_north"], negatives["where"]["west_east"]) == (2, 2)
    assert "2.25" in fog["message"] and "lat 40.0, lon -110.0" in fog["message"]


def test_strict_qc_turns_every_flag_into_a_refusal():
    report = validation.QcReport("2021-01-01", 0.05, strict=True)
    validation.check_dew_point(report, {"T2": np.array([[270.0]]), "TD2": np.array([[271.0]])})
    assert len(report.flags) == 1
    assert report.failures == [report.flags[0]["message"] + ": refused by --strict-qc"]


def test_beyond_the_tiny_negative_tolerance_is_refused():
    report = _report()
    q2 = np.full((24, 3, 4), 0.004, np.float32)
    q2[2, 1, 1] = -0.002  # 2 g/kg below zero: not rounding
    validation.check_hourly(report, "Q2", q2, (3, 4), STAMPS)
    assert report.failures and "Q2 at 2021-01-01T02Z has -0.002" in report.failures[0]


def test_sea_temperature_zero_over_land_is_not_a_value_but_a_cold_sea_is_broken():
    sst = np.zeros((24, 3, 4), np.float32)
    sst[:, :, 2:] = 285.0  # the sea; 0 over land, as WPS fills it
    report = _report()
    validation.check_hourly(report, "SST", sst, (3, 4), STAMPS)
    validation.check_daily(report, "SST", VariableClass.INSTANTANEOUS, sst[0], "SST")
    assert report.failures == [] and report.flags == []
    assert report.variables["SST"]["hourly_min"] == 285.0
    sst[3, 0, 3] = 100.0  # not 0, not a sea temperature
    broken = _report()
    validation.check_hourly(broken, "SST", sst, (3, 4), STAMPS)
    assert "SST at 2021-01-01T03Z has 100 K, outside the possible 150..400" in broken.failures[0]


def test_a_hot_desert_skin_is_kept_and_only_beyond_the_satellite_record_flagged():
    skin = np.full((24, 3, 4), 300.0, np.float32)
    skin[14, 1, 1] = 342.0  # above the 340 K the checks once allowed: a real desert afternoon
    report = _report()
    validation.check_hourly(report, "TSK", skin, (3, 4), STAMPS)
    assert report.failures == [] and report.flags == []
    skin[15, 2, 3] = 350.0  # above MODIS's 70.7 C record: possible, unusual
    validation.check_hourly(report, "TSK", skin, (3, 4), STAMPS)
    assert report.failures == [] and report.flags[0]["cells"] == 1 and report.flags[0]["worst"] == 350.0
    skin[16, 0, 0] = 365.0  # above any land surface measured (80.8 C)
    validation.check_hourly(report, "TSK", skin, (3, 4), STAMPS)
    assert "TSK at 2021-01-01T16Z has 365 K" in report.failures[0]


def test_rounding_of_large_running_totals_is_tolerated():
    report = _report()
    tiny = -float(np.spacing(np.float32(2.4e11)))
    validation.check_daily(report, "ACSWDNB", VariableClass.SINCE_START, np.array([[tiny, 1e7]], np.float32), "ACSWDNB",
                           rounding=2 * float(np.spacing(np.float32(2.4e11))))
    assert report.failures == []


def test_raise_if_failed_names_the_first_failure_and_counts_the_rest():
    report = _report()
    report.fail("first problem")
    report.fail("second problem")
    try:
        report.raise_if_failed()
    except validation.DataValidationError as exc:
        assert str(exc) == "first problem (and 1 more; see the QC report)"
    else:
        raise AssertionError("expected a DataValidationError")


def test_range_nan_share_and_infinities_per_record_match_a_direct_count():
    """The two-pass check against an element-by-element count over records with NaN, inf and extremes."""
    rng = np.random.default_rng(7)
    hourly = rng.uniform(250.0, 300.0, size=(24, 5, 6)).astype(np.float32)
    hourly[3].flat[:4] = np.nan  # 4 of 30 cells
    hourly[7].flat[5] = np.inf
    hourly[9].flat[2] = 355.0  # outside T2's plausible range
    report = _report()
    validation.check_hourly(report, "T2", hourly, (5, 6), STAMPS)
    finite = [[float(v) for v in record.flat if np.isfinite(v)] for record in hourly]
    shares = [sum(1 for v in record.flat if v != v) / record.size for record in hourly]
    entry = report.variables["T2"]
    assert entry["hourly_min"] == min(min(r) for r in finite)
    assert entry["hourly_max"] == max(max(r) for r in finite)
    assert entry["hourly_nan_fraction_max"] == max(shares)
    text = "\n".join(report.failures)
    assert "T2 at 2021-01-01T03Z is 13.3% missing" in text
    assert "T2 at 2021-01-01T07Z has infinite values" in text
    assert "T2 at 2021-01-01T09Z has 355" in text


def test_every_bounded_variable_s_units_are_the_real_stores_own():
    """A bound in other units than the store's would refuse every day of that variable."""
    from conus404.core.reference_metadata import hytest_store_variables, pc_store_variables
    from conus404.day import qc_bounds

    checked = 0
    for listing in (pc_store_variables(), hytest_store_variables()):
        for name, bounds in qc_bounds.HOURLY.items():
            if name in listing:
                assert listing[name].attrs.get("units") == bounds.units, name
                checked += 1
    assert checked > 30
