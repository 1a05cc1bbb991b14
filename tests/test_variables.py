"""Variable classes read from metadata, the built-in table, and the seed's hints."""

from __future__ import annotations

from collections import Counter

from conus404.core.reference_metadata import hytest_store_variables
from conus404.core.variables import (
    VariableClass,
    builtin_classes,
    classify,
    contradicts_hint,
    is_surface_field,
    suggest,
)


def test_the_published_collection_splits_into_the_documented_classes():
    classes = builtin_classes()
    counts = Counter(classes.values())
    # conus404.md section 2a: 56 prior-60-minute, 5 since-start, 16 bucket, 16 counters
    assert counts[VariableClass.PRIOR_HOUR] == 56
    assert counts[VariableClass.SINCE_START] == 5
    assert counts[VariableClass.BUCKET] == 16
    assert counts[VariableClass.BUCKET_COUNTER] == 16
    assert {n for n, c in classes.items() if c == VariableClass.SINCE_START} == {"ACSNOM", "QRFS", "QSLAT", "QSPRINGS", "RECH"}
    for name in ("T2", "TD2", "Q2", "PSFC", "U10", "V10", "SWDOWN", "RAINNCV", "SNOW"):
        assert classes[name] == VariableClass.INSTANTANEOUS, name
    for name in ("PREC_ACC_NC", "ACRAINLSM", "ACSNOWLSM", "ACETLSM", "ACLHFLSM"):
        assert classes[name] == VariableClass.PRIOR_HOUR, name
    assert classes["ACSWDNB"] == VariableClass.BUCKET and classes["I_ACSWDNB"] == VariableClass.BUCKET_COUNTER


def test_hytest_integration_length_decides():
    hytest = hytest_store_variables()
    assert classify("PREC_ACC_NC", hytest["PREC_ACC_NC"].attrs) == VariableClass.PRIOR_HOUR
    # HyTEST recomputed the radiation buckets as totals since 1979-10-01
    assert classify("ACSWDNB", hytest["ACSWDNB"].attrs) == VariableClass.SINCE_START
    assert classify("T2", hytest["T2"].attrs) == VariableClass.INSTANTANEOUS


def test_a_store_without_attributes_falls_back_to_the_builtin_table():
    assert classify("PREC_ACC_NC", {}) == VariableClass.PRIOR_HOUR
    assert classify("ACSNOM", {"units": "kg m-2"}) == VariableClass.SINCE_START
    assert classify("ACLWUPB", {}) == VariableClass.BUCKET


def test_hints_that_contradict_the_class_are_reported():
    assert contradicts_hint(VariableClass.INSTANTANEOUS, True) is None
    assert contradicts_hint(VariableClass.PRIOR_HOUR, False) is None
    assert "asks for a sum" in contradicts_hint(VariableClass.INSTANTANEOUS, False)
    assert "asks for a mean" in contradicts_hint(VariableClass.PRIOR_HOUR, True)
    assert "running total" in contradicts_hint(VariableClass.SINCE_START, False)


def test_surface_fields_and_suggestions():
    assert is_surface_field(("time", "south_north", "west_east"))
    assert is_surface_field(("time", "y", "x"))
    assert not is_surface_field(("time", "bottom_top", "south_north", "west_east"))
    assert not is_surface_field(("time", "south_north", "west_east_stag"))
    assert "PREC_ACC_NC" in suggest("PREC_ACC", {"PREC_ACC_NC", "T2"})
    assert "PREC_ACC_NC" in suggest("prec_acc_nc", {"PREC_ACC_NC", "T2"})
    assert suggest("ZZZZZZ", {"T2"}) == ""
