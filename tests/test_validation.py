"""Quality checks: what passes, what fails, and what the report says."""

from __future__ import annotations

import numpy as np

from conus404 import validation
from conus404.variables import VariableClass

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


def test_negative_amounts_and_dew_point_above_temperature_fail():
    report = _report()
    validation.check_daily(report, "PREC_ACC_NC", VariableClass.PRIOR_HOUR, np.array([[-0.5, 1.0]], np.float32), "PREC_ACC_NC")
    validation.check_daily(report, "ACSNOM", VariableClass.SINCE_START, np.array([[-3.0, 1.0]], np.float32), "ACSNOM", rounding=0.01)
    validation.check_dew_point(report, {"T2": np.array([[280.0]]), "TD2": np.array([[281.0]])})
    text = "\n".join(report.failures)
    assert "PREC_ACC_NC is negative" in text
    assert "ACSNOM falls by -3" in text
    assert "TD2 exceeds T2" in text


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
