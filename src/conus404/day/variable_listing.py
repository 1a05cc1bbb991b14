"""Variable discovery: what a source holds, and what the pipeline makes of each variable.

Read from the opened store's own metadata (every source has it; the class falls back to the
published collection shipped with the package), so the listing is the truth about that source.
"""

from __future__ import annotations

from dataclasses import dataclass

from conus404.core.variables import VariableClass, classify, is_surface_field, staggered_dims
from conus404.day import aggregation
from conus404.day.derived import DERIVED

DAILY_VALUE = {
    VariableClass.INSTANTANEOUS: "mean",
    VariableClass.PRIOR_HOUR: "sum of 24 h",
    VariableClass.SINCE_START: "difference",
    VariableClass.BUCKET: "difference",
    VariableClass.BUCKET_COUNTER: "- (counter)",
}
DERIVED_DAILY = {"mean": "mean", "sum": "sum of 24 h", "vector_mean_direction": "vector mean"}


@dataclass(frozen=True)
class VariableInfo:
    name: str
    units: str
    var_class: str  # a VariableClass value, "derived" or "static"
    daily: str  # what one day becomes
    statistics: str  # what --statistics may ask for (the class's own first)
    dims: tuple[str, ...]
    description: str
    has_levels: bool  # 3-D: needs ALLOW_3D
    staggered: bool = False  # on the staggered grid (U, V): not made (the daily files hold the cells' centres)

    def matches(self, pattern: str) -> bool:
        text = pattern.lower()
        return not text or text in self.name.lower() or text in self.description.lower()


def describe_variables(ds) -> list[VariableInfo]:
    """Every data variable of ``ds``, and the derived ones it can feed, by name."""
    rows = []
    for name in sorted(ds.data_vars):
        var = ds[name]
        dims = tuple(var.dims)
        attrs = dict(var.attrs)
        description = str(attrs.get("description") or attrs.get("long_name") or "").strip()
        units = str(attrs.get("units", "")).strip()
        if "time" not in dims:
            rows.append(VariableInfo(name, units, "static", "- (no time axis)", "", dims, description, False))
            continue
        var_class = classify(name, attrs)
        statistics = "" if var_class == VariableClass.BUCKET_COUNTER else ",".join(
            dict.fromkeys((aggregation.default_statistic(var_class), *aggregation.allowed_statistics(var_class))))
        staggered = bool(staggered_dims(dims))
        rows.append(VariableInfo(name, units, var_class.value, DAILY_VALUE[var_class], statistics, dims,
                                 description, not is_surface_field(dims) and not staggered, staggered))
    for name, spec in DERIVED.items():
        if all(n in ds.data_vars for n in spec.inputs):
            dims = tuple(ds[spec.inputs[0]].dims)
            rows.append(VariableInfo(name, spec.units, "derived", DERIVED_DAILY[spec.daily], ",".join(spec.statistics),
                                     dims, f"{spec.long_name} (computed from {', '.join(spec.inputs)})", False))
    return sorted(rows, key=lambda r: r.name)


def format_listing(rows: list[VariableInfo], total: int, pattern: str, source: str) -> str:
    """A fixed-width table; 3-D variables marked with '*'."""
    header = ("NAME", "UNITS", "CLASS", "DAILY VALUE", "STATISTICS", "DIMENSIONS", "DESCRIPTION")
    table = [header] + [
        (f"{r.name}{' *' if r.has_levels else ''}{' ~' if r.staggered else ''}", r.units, r.var_class, r.daily, r.statistics, ",".join(r.dims),
         r.description)
        for r in rows
    ]
    widths = [max(len(row[k]) for row in table) for k in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
             for row in table]
    matched = f"{len(rows)} of {total} variables" + (f" match {pattern!r}" if pattern else "")
    lines += ["", f"{matched} in {source}."]
    if any(r.has_levels for r in rows):
        lines.append("* has vertical levels: ~GBs a day each; needs ALLOW_3D / --allow-3d.")
    if any(r.staggered for r in rows):
        lines.append("~ on the staggered grid (cell faces): not made here; U10, V10, U10E, V10E or WSPD10 are on the cells.")
    lines.append("Ask for them with --variables NAME,... and --statistics NAME:STAT,STAT (the first statistic "
                 "listed is the variable's own daily value).")
    return "\n".join(lines)
