"""Quick looks: a PNG map of one field of a daily file, and a run's overview (the mean over the
file's cells of every field, day by day). Matplotlib draws off-screen (Agg); files are written
through a temporary sibling like every other file the project writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from conus404.core.atomic import temporary_sibling
from conus404.core.exceptions import ConfigurationError

MAP_SIZE_IN, OVERVIEW_WIDTH_IN, DPI = (9.0, 6.0), 9.0, 100
# Amounts start at zero on a white-to-blue scale; temperatures diverge; anything else is viridis.
AMOUNT_UNITS = {"mm", "kg m-2", "J m-2", "m"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render_map(path: Path, variable: str | None = None, out: Path | None = None) -> Path:
    """Draw ``variable`` (default: T2 if there, else the file's first) of the daily file ``path`` on its lat/lon; returns the PNG."""
    import xarray as xr

    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except (OSError, ValueError) as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        raise ConfigurationError(f"cannot read {path} as a daily file ({type(exc).__name__}: {first_line})") from None
    with ds:
        names = ds.attrs.get("conus404_variables", "").split() or [n for n in ds.data_vars if "lat" in ds[n].coords]
        if not names or "lat" not in ds.variables:
            raise ConfigurationError(f"{path} is not a daily file of this pipeline (no fields on lat/lon)")
        name = variable or ("T2" if "T2" in names else names[0])
        if name not in names:
            raise ConfigurationError(f"{path} has no field {name!r}; it has {', '.join(names)}")
        field = ds[name]
        values = np.asarray(field.values[0], dtype=np.float64)
        lat, lon = np.asarray(ds["lat"].values), np.asarray(ds["lon"].values)
        units = str(field.attrs.get("units", ""))
        label = colour_bar_label(str(field.attrs.get("long_name", name)), units)
        day = ds.attrs.get("conus404_day", "")
        boundary = ds.attrs.get("conus404_day_boundary", "UTC")  # e.g. UTC-06:00: the day is local, not UTC
        title = f"{name}, {day} {boundary} ({field.attrs.get('cell_methods', '')})"
        box = ds.attrs.get("conus404_bbox")
    if not out:  # a published daily file's picture goes to its data folder's pictures/, any other beside it
        from conus404.config.data_folder import data_folder_of, pictures_dir

        folder = data_folder_of(Path(path))
        out = (pictures_dir(folder) if folder else Path(path).parent) / f"{Path(path).stem}_{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
    out = Path(out)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=MAP_SIZE_IN, dpi=DPI)
    try:
        vmin, vmax, cmap = colour_scale(values, units, name)
        mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(values), shading="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        fig.colorbar(mesh, ax=ax, label=label, shrink=0.85)
        ax.set_xlim(float(np.nanmin(lon)), float(np.nanmax(lon)))
        ax.set_ylim(float(np.nanmin(lat)), float(np.nanmax(lat)))
        ax.set_xlabel("longitude (degrees east)")
        ax.set_ylabel("latitude (degrees north)")
        ax.set_aspect(1.0 / np.cos(np.radians(float(np.nanmean(lat)))))  # degrees of equal length at mid-latitude
        ax.set_title(title + (f"\nbox {box}" if box else ""))
        fig.conus404_title = title  # also in the PNG's own Title
        _save(fig, out)
    finally:
        plt.close(fig)
    return out


LABEL_LINE_CHARS = 42  # the colour bar is about as tall as this many characters of its label font


def colour_bar_label(long_name: str, units: str) -> str:
    """The colour bar's label, broken into lines that fit beside the map (a long_name such as
    ACSWDNB's would otherwise run off the figure)."""
    import textwrap

    text = f"{long_name} ({units})" if units else long_name
    return "\n".join(textwrap.wrap(text, LABEL_LINE_CHARS)) or text


def colour_scale(values: np.ndarray, units: str, name: str) -> tuple[float, float, str]:
    """Limits from the 2nd and 98th percentiles (one hot cell does not wash out the map) and a colour map."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0, "viridis"
    low, high = (float(v) for v in np.percentile(finite, [2, 98]))
    if units in AMOUNT_UNITS and low >= 0:
        return 0.0, max(high, 1e-12), "Blues"
    if units == "K" or name.startswith(("T2", "TD2")):
        return low, max(high, low + 1e-6), "RdYlBu_r"
    return low, max(high, low + 1e-6), "viridis"


def domain_means(paths: Iterable[Path]) -> tuple[dict[str, list[tuple[dt.date, float]]], dict[str, str]]:
    """For each field, (day, mean over the file's cells ignoring missing ones) of every readable daily
    file; and each field's units."""
    import xarray as xr

    series: dict[str, list[tuple[dt.date, float]]] = {}
    units: dict[str, str] = {}
    for path in sorted(paths):
        try:
            with xr.open_dataset(path) as ds:
                day = dt.date.fromisoformat(ds.attrs["conus404_day"])
                for name in ds.attrs.get("conus404_variables", "").split():
                    series.setdefault(name, []).append((day, float(np.nanmean(ds[name].values))))
                    units.setdefault(name, str(ds[name].attrs.get("units", "")))
        except (OSError, ValueError, KeyError):
            continue  # a file that cannot be read has no point on the overview
    return series, units


def render_overview(paths: Iterable[Path], out: Path, title: str) -> Path | None:
    """One small line plot per field of its daily mean over the cells; None if there is no file."""
    series, units = domain_means(paths)
    if not series:
        return None
    plt = _pyplot()
    from matplotlib.dates import AutoDateLocator, DateFormatter

    names = sorted(series)
    fig, axes = plt.subplots(len(names), 1, figsize=(OVERVIEW_WIDTH_IN, 1.6 * len(names) + 1.0), dpi=DPI,
                             sharex=True, squeeze=False)
    try:
        for ax, name in zip(axes[:, 0], names, strict=True):
            days, means = zip(*series[name], strict=True)
            ax.plot(days, means, marker="o", markersize=3)
            ax.set_ylabel(f"{name}\n({units[name]})" if units[name] else name, rotation=0, ha="right", va="center")
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(AutoDateLocator(minticks=2, maxticks=8))
            ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
        axes[0, 0].set_title(title)
        fig.conus404_title = title
        axes[-1, 0].set_xlabel("UTC day")
        fig.autofmt_xdate()
        fig.tight_layout()
        _save(fig, out)
    finally:
        plt.close(fig)
    return out


def _save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with temporary_sibling(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Title": getattr(fig, "conus404_title", out.stem)})
