"""What a day's file holds and records, known from the settings before the source is opened:
its field names and its region. Used to skip finished days, to check existing files and to
make the end-of-run outputs, so it stays light (no xarray, pandas or zarr)."""

from __future__ import annotations

from conus404 import series, series_weights, subset
from conus404.derived import DERIVED
from conus404.settings import Settings
from conus404.variables import VariableClass, builtin_classes, default_statistic


def output_names(settings: Settings) -> list[str]:
    """The fields a day's file holds, predictable before the source is opened (for skipping)."""
    names = []
    for var in settings.variables:
        var_class = builtin_classes().get(var, VariableClass.INSTANTANEOUS)
        default = DERIVED[var].default_statistic if var in DERIVED else default_statistic(var_class)
        names.append(var)
        names += [f"{var}_{s}" for s in settings.statistics.get(var, ()) if s != default]
    return names


def bbox_text(settings: Settings) -> str | None:
    """What a day's file records of the region asked for (its conus404_bbox): the box; with polygons
    or points and no box, the cells covering them ("cells south_north J0:J1, west_east I0:I1");
    None = the whole domain."""
    if settings.bbox is not None:
        return str(settings.bbox)
    if series.wanted(settings):
        window = series_weights.series_window(settings)
        return f"{subset.SERIES_CELLS}{window if window is not None else '(weights not prepared yet)'}"
    return None
