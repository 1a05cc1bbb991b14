"""``--units`` (UNITS): daily fields in other units than the source's, e.g. ``T2:degC,PREC_ACC_NC:in``.

Conversions are cf-units' (UDUNITS-2, the units library of CF). A unit is refused when UDUNITS
does not know it, or when the variable's units cannot be converted to it (mm to K); then the
run stops before any day runs (exit 2). Values are checked in the source's units and
converted last; the field's ``units`` becomes the new one and ``conus404_source_units`` keeps
the old. A CF ``standard_name`` stays valid: its canonical units are convertible to the source's,
hence to any unit the source's converts to.

One conversion UDUNITS does not make is made here, and said: an amount of water as a mass per area
(kg m-2, as ACSNOM and SNOW are given) and as a depth (mm, in) are one and the same at liquid water's
1,000 kg m-3 (1 kg m-2 = 1 mm). The field then says so in ``conus404_units_conversion`` and drops its
CF ``standard_name``, which is defined for the mass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np

from conus404.config.output_values import udunits as _unit
from conus404.core.exceptions import ConfigurationError

WATER_DENSITY_KG_M3 = 1000.0
WATER_EQUIVALENT = ("kg m-2 of water taken as a depth of water at 1000 kg m-3 (1 kg m-2 = 1 mm); "
                    "standard_name dropped: it is defined for the mass")


def water_equivalent(source_units: str, target: str) -> bool:
    """Whether ``source_units`` -> ``target`` is a mass of water per area to a depth of it, or back."""
    source, wanted = _unit(source_units, source_units), _unit(target, target)
    mass, depth = _unit("kg m-2", "kg m-2"), _unit("m", "m")
    return (source.is_convertible(mass) and wanted.is_convertible(depth)) or (
        source.is_convertible(depth) and wanted.is_convertible(mass))


def check_convertible(name: str, source_units: str | None, target: str) -> None:
    """ConfigurationError unless ``name``'s values in ``source_units`` can be given in ``target``."""
    if not source_units:
        raise ConfigurationError(f"--units: {name} has no units in the source, so it cannot be converted to {target!r}")
    source = _unit(source_units, f"--units: {name}'s source units {source_units!r}")
    if not source.is_convertible(_unit(target, f"--units: {target!r}")) and not water_equivalent(source_units, target):
        raise ConfigurationError(f"--units: {name} is in {source_units!r}, which cannot be converted to {target!r}")


def convert(values: np.ndarray, source_units: str, target: str) -> np.ndarray:
    """``values`` in ``target`` (float32; NaN stays NaN); a water mass per area and a depth through
    liquid water's density."""
    from cf_units import Unit

    values = np.asarray(values, np.float64)
    source, wanted = Unit(source_units), Unit(target)
    if not source.is_convertible(wanted):  # water: kg m-2 <-> m (check_convertible allowed only that)
        if source.is_convertible(Unit("kg m-2")):
            values, source = source.convert(values, Unit("kg m-2")) / WATER_DENSITY_KG_M3, Unit("m")
        else:
            values, source = source.convert(values, Unit("m")) * WATER_DENSITY_KG_M3, Unit("kg m-2")
    return np.asarray(source.convert(values, wanted), np.float32)


def converted_fields(fields: Iterable, units: Mapping[str, str], field_names: Mapping[str, Iterable[str]]) -> list:
    """The day's fields with those of each variable in ``units`` converted. ``field_names`` maps a
    variable to its output fields (T2 -> T2, T2_max)."""
    wanted = {field: unit for name, unit in units.items() for field in field_names.get(name, ())}
    out = []
    for field in fields:
        target = wanted.get(field.name)
        source = field.attrs.get("units")
        if target is None or target == source:
            out.append(field)
            continue
        attrs = {**field.attrs, "units": target, "conus404_source_units": source}
        if water_equivalent(source, target):
            attrs["conus404_units_conversion"] = WATER_EQUIVALENT
            attrs.pop("standard_name", None)
        out.append(replace(field, values=convert(field.values, source, target), attrs=attrs))
    return out
