"""What each CONUS404 variable is, and therefore how a day of it is aggregated.

Classes (see docs/outputs.md, "Aggregation rules"):
  instantaneous  value at the timestamp                     -> mean of 00Z..23Z of D
  prior_hour     amount in the 60 minutes ending at t        -> sum of 01Z of D .. 00Z of D+1
  since_start    running total since model start             -> v(00Z D+1) - v(00Z D)
  bucket         radiation total below 1e9 J m-2, with an    -> same difference of AC + I_AC x 1e9
                 I_AC reset counter
  bucket_counter the I_AC counter itself                    -> not a quantity; ask for its AC variable

The class is read from the variable's own metadata (HyTEST's ``integration_length``, PC's
``long_name``), falling back to the same reading of the published collection shipped with the
package, so a store without attributes is still aggregated correctly.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from conus404.core.reference_metadata import collection_document

BUCKET_J = 1.0e9  # WRF bucket_J: radiation totals reset every 1e9 J m-2
STATISTICS = ("mean", "sum", "min", "max")  # the daily statistics a field can ask for
SPATIAL_DIMS = {("south_north", "west_east"), ("y", "x")}
# Staggered horizontal dimensions (U and V live on the cell faces): WRF's names and HyTEST's.
HORIZONTAL_STAGGER = ("west_east_stag", "south_north_stag", "x_stag", "y_stag")


class VariableClass(enum.StrEnum):
    INSTANTANEOUS = "instantaneous"
    PRIOR_HOUR = "prior_hour"
    SINCE_START = "since_start"
    BUCKET = "bucket"
    BUCKET_COUNTER = "bucket_counter"


def classify_attributes(name: str, attrs: Mapping[str, Any]) -> VariableClass:
    """The class that a variable's metadata states."""
    integration = str(attrs.get("integration_length", "")).lower()
    text = f"{attrs.get('long_name', '')} {attrs.get('description', '')}".lower()
    if "prior 60 minutes" in integration or "prior 60 minutes" in text:
        return VariableClass.PRIOR_HOUR
    if integration.startswith("accumulated since"):
        return VariableClass.SINCE_START  # HyTEST folds bucket resets into since-start totals
    if name.startswith("I_AC") or text.startswith("bucket for"):
        return VariableClass.BUCKET_COUNTER
    if "since last bucket" in text:
        return VariableClass.BUCKET
    if "since model" in text:
        return VariableClass.SINCE_START
    return VariableClass.INSTANTANEOUS


def default_statistic(var_class: VariableClass) -> str:
    """The statistic a class's daily value represents (difference of totals = amount = sum)."""
    return "mean" if var_class == VariableClass.INSTANTANEOUS else "sum"


@lru_cache(maxsize=1)
def builtin_classes() -> dict[str, VariableClass]:
    """Class of every variable of the published PC collection, from its shipped metadata."""
    cube = collection_document()["cube:variables"]
    return {
        name: classify_attributes(name, entry.get("attrs", {}))
        for name, entry in cube.items()
        if entry.get("type") == "data"
    }


def classify(name: str, attrs: Mapping[str, Any]) -> VariableClass:
    """Class from the variable's attributes, or the built-in table when they say nothing."""
    if any(attrs.get(key) for key in ("integration_length", "long_name", "description")):
        return classify_attributes(name, attrs)
    return builtin_classes().get(name, VariableClass.INSTANTANEOUS)


def counter_name(bucket_variable: str) -> str:
    return f"I_{bucket_variable}"


def contradicts_hint(var_class: VariableClass, mean_hint: bool) -> str | None:
    """A warning when the seed's VARIABLE_AGG_MAP hint (True = mean, False = sum) disagrees."""
    rule = aggregation_rule(var_class)
    if var_class == VariableClass.INSTANTANEOUS and not mean_hint:
        return f"VARIABLE_AGG_MAP asks for a sum, but it is instantaneous: using {rule}"
    if var_class == VariableClass.PRIOR_HOUR and mean_hint:
        return f"VARIABLE_AGG_MAP asks for a mean, but it is accumulated over the prior 60 minutes: using {rule}"
    if var_class in (VariableClass.SINCE_START, VariableClass.BUCKET):
        return f"VARIABLE_AGG_MAP asks for a {'mean' if mean_hint else 'sum'}, but it is a running total: using {rule}"
    return None


def aggregation_rule(var_class: VariableClass) -> str:
    return {
        VariableClass.INSTANTANEOUS: "the mean of the 24 hourly values 00Z..23Z of the day",
        VariableClass.PRIOR_HOUR: "the sum of the 24 hourly amounts stamped 01Z of the day .. 00Z of the next day",
        VariableClass.SINCE_START: "the difference of the running total, v(00Z next day) - v(00Z of the day)",
        VariableClass.BUCKET: "the difference of AC + I_AC x 1e9 J m-2 between 00Z of the next day and 00Z of the day",
        VariableClass.BUCKET_COUNTER: "none (a bucket reset counter)",
    }[var_class]


def suggest(name: str, known: list[str] | set[str]) -> str:
    """' (did you mean X, Y?)' for a misspelt name, or ''."""
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    close += [k for k in sorted(known) if k.lower() == name.lower() and k not in close]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def is_surface_field(dims: tuple[str, ...]) -> bool:
    """True for (time, y, x) fields; False for variables with levels or staggered grids."""
    return len(dims) == 3 and dims[0] == "time" and tuple(dims[1:]) in SPATIAL_DIMS


def staggered_dims(dims: tuple[str, ...]) -> list[str]:
    """The horizontally staggered dimensions of a variable (U on west_east_stag, V on south_north_stag)."""
    return [d for d in dims if d in HORIZONTAL_STAGGER]
