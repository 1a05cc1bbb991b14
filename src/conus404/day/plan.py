"""A day's plan, made before any hour is read: which source variables each requested variable needs
and by which rule it becomes daily fields (``plan_variables``), the fields a day's file holds
(``output_names``) and the region it records (``region_text``).

``output_names`` and ``region_text`` are known from the settings alone: the run uses them to skip
finished days, to check existing files and to make its end-of-run outputs, so they stay light (no
xarray, pandas or zarr).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from conus404.config.parts import Request, Settings
from conus404.core import subset
from conus404.core.exceptions import ConfigurationError
from conus404.core.variables import (
    VariableClass,
    builtin_classes,
    classify,
    contradicts_hint,
    counter_name,
    default_statistic,
    is_surface_field,
    staggered_dims,
    suggest,
)
from conus404.day import aggregation, output_units
from conus404.day.derived import DERIVED
from conus404.outputs.series import weights as series_weights


@dataclass(frozen=True)
class VariablePlan:
    """How one requested variable becomes daily fields."""

    name: str
    var_class: VariableClass
    inputs: tuple[str, ...]  # source variables read (U10, V10 for WSPD10; AC + I_AC for buckets)
    statistics: tuple[str, ...]  # the class's own first, then extras
    attrs: dict[str, Any]
    level_dim: str | None = None  # for variables with levels (only with ALLOW_3D)


def plan_variables(ds, request: Request) -> tuple[list[VariablePlan], list[str]]:
    """Classify each requested variable; refuse unknown, 3-D and counter variables (usage errors)."""
    plans, warnings = [], []
    unknown = [v for v in request.variables if v not in ds.data_vars and v not in DERIVED]
    if unknown:
        makeable = set(ds.data_vars) | {name for name, spec in DERIVED.items() if set(spec.inputs) <= set(ds.data_vars)}
        raise ConfigurationError(  # suggested: only what this source can give (a derived one needs its inputs)
            "; ".join(f"{v!r} is not a variable of the source{suggest(v, makeable)}" for v in unknown)
        )
    for name in request.variables:
        if name in DERIVED:
            spec = DERIVED[name]
            missing = [v for v in spec.inputs if v not in ds.data_vars]
            if missing:
                raise ConfigurationError(f"{name} needs {', '.join(missing)}, which the source lacks")
            attrs = {"units": spec.units, "long_name": spec.long_name, "conus404_formula": spec.formula}
            var_class, inputs, level_dim = VariableClass.INSTANTANEOUS, spec.inputs, None  # hours 00Z..23Z
        else:
            var = ds[name]
            attrs = dict(var.attrs)
            if "time" not in var.dims:
                raise ConfigurationError(f"{name} has no time axis: it is a static field, not one with daily values")
            staggered = staggered_dims(tuple(var.dims))
            if staggered:  # refused before the run, with or without ALLOW_3D: not a failed day per day
                raise ConfigurationError(
                    f"{name} lies on the staggered grid ({', '.join(f'{d} {var.sizes[d]}' for d in staggered)}), not "
                    "the cells' centres the daily files hold: ask for U10, V10 (grid-relative), U10E, V10E "
                    "(earth-relative) or WSPD10 instead"
                )
            if not is_surface_field(tuple(var.dims)) and not request.allow_3d:
                raise ConfigurationError(
                    f"{name} has dimensions {tuple(var.dims)}: one day of it is ~{_day_gib(var):.1f} GiB; "
                    "set ALLOW_3D (or --allow-3d) to download variables with levels"
                )
            var_class = classify(name, attrs)
            if var_class == VariableClass.BUCKET_COUNTER:
                raise ConfigurationError(f"{name} is a bucket reset counter, not a quantity: ask for {name[2:]} instead")
            inputs = (name,)
            level_dim = next((d for d in var.dims if d not in ("time", "south_north", "west_east")), None)
            if var_class == VariableClass.BUCKET:
                counter = counter_name(name)
                if counter not in ds.data_vars:
                    raise ConfigurationError(f"{name} resets every 1e9 J m-2 but the source has no {counter} to undo it")
                inputs = (name, counter)
        extras = request.statistics.get(name, ())
        allowed = DERIVED[name].statistics if name in DERIVED else aggregation.allowed_statistics(var_class)
        bad = [s for s in extras if s not in allowed]
        if bad:
            kind = "derived" if name in DERIVED else var_class.value
            raise ConfigurationError(
                f"{name} is {kind}: statistic {', '.join(bad)} is not defined for it (use {', '.join(allowed)})"
            )
        default = DERIVED[name].default_statistic if name in DERIVED else aggregation.default_statistic(var_class)
        statistics = (default, *[s for s in extras if s != default])
        if name in request.aggregation_hints:
            warning = contradicts_hint(var_class, request.aggregation_hints[name])
            if warning:
                warnings.append(f"{name}: {warning}")
        if name in request.output_units:
            output_units.check_convertible(name, attrs.get("units"), request.output_units[name])
        plans.append(VariablePlan(name, var_class, inputs, statistics, attrs, level_dim))
    return plans, warnings


def field_names(plan: VariablePlan) -> list[str]:
    """The daily fields a plan makes: its own name for the class's statistic, NAME_stat for extras."""
    return [plan.name, *(f"{plan.name}_{s}" for s in plan.statistics[1:])]


def _day_gib(var) -> float:
    per_record = int(np.prod([var.sizes[d] for d in var.dims if d != "time"]))
    return per_record * var.dtype.itemsize * 24 / 2**30


def output_names(request: Request) -> list[str]:
    """The fields a day's file holds, predictable before the source is opened (for skipping)."""
    names = []
    for var in request.variables:
        var_class = builtin_classes().get(var, VariableClass.INSTANTANEOUS)
        default = DERIVED[var].default_statistic if var in DERIVED else default_statistic(var_class)
        names.append(var)
        names += [f"{var}_{s}" for s in request.statistics.get(var, ()) if s != default]
    return names


def region_text(settings: Settings) -> str | None:
    """What a day's file records of the region asked for (its conus404_bbox): the box; with polygons
    or points and no box, the cells covering them ("cells south_north J0:J1, west_east I0:I1"), from
    the weights cached in the data folder; None = the whole domain."""
    if settings.request.bbox is not None:
        return str(settings.request.bbox)
    if settings.series.wanted:
        window = series_weights.series_window(settings.series, settings.outputs.data_dir)
        return f"{subset.SERIES_CELLS}{window if window is not None else '(weights not prepared yet)'}"
    return None
