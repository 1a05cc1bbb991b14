"""--units (conus404.day.output_units): conversions against values worked out here, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from conus404.config import output_values
from conus404.core.exceptions import ConfigurationError
from conus404.day import output_units
from conus404.outputs import daily_file


def test_a_spec_is_parsed_and_formatted_back():
    units = output_values.parse_units("T2:degC, PREC_ACC_NC:in")
    assert units == {"T2": "degC", "PREC_ACC_NC": "in"}
    assert output_values.parse_units(output_values.format_units(units)) == units
    assert output_values.parse_units("") == {} and output_values.parse_units({"T2": "degF"}) == {"T2": "degF"}


@pytest.mark.parametrize(("spec", "message"), [
    ("T2", "'T2' is not VARIABLE:UNIT"),
    ("T2:", "is not VARIABLE:UNIT"),
    ("T2:parsecs_of_joy", "'parsecs_of_joy' (for T2) is not a unit UDUNITS knows"),
])
def test_malformed_specs_are_refused_in_one_line(spec, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        output_values.parse_units(spec, "--units")


def test_values_convert_as_worked_out_by_hand():
    np.testing.assert_allclose(output_units.convert(np.array([273.15, 300.0]), "K", "degC"), [0.0, 26.85], atol=1e-4)
    np.testing.assert_allclose(output_units.convert(np.array([25.4, 0.0]), "mm", "in"), [1.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(output_units.convert(np.array([0.012]), "kg kg-1", "g kg-1"), [12.0], rtol=1e-6)
    np.testing.assert_allclose(output_units.convert(np.array([1.0e6]), "J m-2", "MJ m-2"), [1.0], rtol=1e-6)
    np.testing.assert_allclose(output_units.convert(np.array([300.0]), "K", "degF"), [80.33], atol=1e-2)
    assert np.isnan(output_units.convert(np.array([np.nan]), "K", "degC")).all()


def test_incompatible_units_are_refused_with_both_named():
    with pytest.raises(ConfigurationError, match="PREC_ACC_NC is in 'mm', which cannot be converted to 'K'"):
        output_units.check_convertible("PREC_ACC_NC", "mm", "K")
    with pytest.raises(ConfigurationError, match="ACSNOM is in 'kg m-2', which cannot be converted to 'K'"):
        output_units.check_convertible("ACSNOM", "kg m-2", "K")
    output_units.check_convertible("ACSNOM", "kg m-2", "in")  # water: a mass per area is a depth at 1000 kg m-3
    np.testing.assert_allclose(output_units.convert(np.array([25.4]), "kg m-2", "in"), [1.0])
    np.testing.assert_allclose(output_units.convert(np.array([0.5]), "in", "kg m-2"), [12.7])
    with pytest.raises(ConfigurationError, match="has no units in the source"):
        output_units.check_convertible("X", None, "m")
    output_units.check_convertible("T2", "K", "degC")  # no error


def test_only_the_asked_for_variables_fields_convert_and_say_so():
    fields = [daily_file.DailyField("T2", np.array([[280.0]], np.float32), {"units": "K"}),
              daily_file.DailyField("T2_max", np.array([[290.0]], np.float32), {"units": "K"}),
              daily_file.DailyField("PSFC", np.array([[1.0e5]], np.float32), {"units": "Pa"})]
    out = output_units.converted_fields(fields, {"T2": "degC"}, {"T2": ["T2", "T2_max"], "PSFC": ["PSFC"]})
    assert [f.attrs["units"] for f in out] == ["degC", "degC", "Pa"]
    np.testing.assert_allclose([float(f.values[0, 0]) for f in out], [6.85, 16.85, 1.0e5], atol=1e-4)
    assert out[0].attrs["conus404_source_units"] == "K" and "conus404_source_units" not in out[2].attrs
    assert fields[0].attrs["units"] == "K"  # the input fields are not changed
