"""The settings of a run, in parts: what to make, where from, how to run, how strict, what to write.

``Settings`` holds one of each part, and a module is handed only the part it needs (a series
module the :class:`Series` part and the :class:`Outputs` part, never the whole run). How each value
is read from config.py, the environment and the flags lives in :mod:`conus404.config.settings`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from conus404.config.output_values import DEFAULT_ZARR_CHUNKS
from conus404.core.endpoints import (
    DEFAULT_SAS_URL,
    DEFAULT_STAC_URL,
    HYTEST_OSN,
    PLANETARY_COMPUTER,
    is_remote,
    osn_endpoint,
)

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Request:
    """What to make: which days, variables and statistics, over which window, in which units."""

    start_date: dt.date
    end_date: dt.date
    variables: tuple[str, ...]
    aggregation_hints: Mapping[str, bool] = field(default_factory=dict)  # seed's True=mean/False=sum
    statistics: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # extra daily statistics
    allow_3d: bool = False
    bbox: Any = None  # conus404.core.subset.BBox: only the grid window covering it; None = the whole domain
    day_boundary: int = 0  # hours east of UTC at which days start (conus404.config.day_boundary); 0 = UTC days
    output_units: Mapping[str, str] = field(default_factory=dict)  # --units: {variable: unit} (conus404.day.output_units)

    @property
    def days(self) -> list[dt.date]:
        n = (self.end_date - self.start_date).days + 1
        return [self.start_date + dt.timedelta(days=i) for i in range(n)]


@dataclass(frozen=True)
class SourceAccess:
    """Where the hours come from and how they are fetched."""

    source: str = PLANETARY_COMPUTER  # a known source's name, a Zarr URL or a local path
    stac_url: str = DEFAULT_STAC_URL
    sas_url: str = DEFAULT_SAS_URL
    collection: str = "conus404"
    asset: str = "zarr-abfs"
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    retry: Any = None  # conus404.config.retry_policy.RetrySettings; None = its defaults
    chunk_cache: bool = True  # share chunks that several days read through a disk cache (conus404.sources.chunk_cache)

    @property
    def uses_planetary_computer(self) -> bool:
        return self.source == PLANETARY_COMPUTER

    @property
    def is_remote(self) -> bool:
        """Whether the source is read over the network (not a local copy of the store)."""
        return is_remote(self.source)

    @property
    def description(self) -> str:
        """The source in words, for the outputs' ``source`` attribute."""
        if self.uses_planetary_computer:
            return (f"CONUS404 hourly WRF reanalysis: Microsoft Planetary Computer STAC collection {self.collection!r}, "
                    f"asset {self.asset!r}")
        if self.source == HYTEST_OSN:
            return f"CONUS404 hourly WRF reanalysis: USGS HyTEST hourly store on the Open Storage Network ({osn_endpoint()})"
        where = "a local copy" if "://" not in self.source else "a Zarr store"
        return f"CONUS404 hourly WRF reanalysis: {where} at {self.source}"


@dataclass(frozen=True)
class Execution:
    """How the run goes: how many workers, where they run, how they start."""

    max_processes: int = 2
    days_per_worker: int = 1  # days one worker process runs in turn (imports and open paid once)
    executor: str = "subprocess"  # where worker processes run: "subprocess" (children) or "dask" (tasks)
    dask_scheduler: str | None = None  # the "dask" executor's scheduler address or file; None = a LocalCluster
    launch: str = "prewarmed"  # worker processes forked from a template that did the imports, or "cold"
    prefetch: bool = True  # a remote source's chunks fetched ahead of the day processes (conus404.run.prefetch)


@dataclass(frozen=True)
class Checks:
    """How strict the day's checks are (conus404.day.validation)."""

    max_nan_fraction: float = 0.01
    strict_qc: bool = False  # QC flags (possible in the model, unusual for a person) refuse the day
    fill_missing_hours: int = 0  # an instantaneous variable's lost hours filled in time, up to this many a day


@dataclass(frozen=True)
class Outputs:
    """What to write, and where: the data folder, the daily files' form, copies, roll-ups, one Zarr store."""

    data_dir: Path = PROJECT_ROOT / "data"
    keep_hourly: bool = False
    cell_corners: bool = False  # lat_bnds/lon_bnds in the daily files, for conservative regridding (conus404.outputs.cf)
    compression_level: int = 1  # zlib level of the daily files' fields: 0 (none) to 9 (conus404.outputs.daily_file)
    output_url: str | None = None  # also publish daily files here (an fsspec URL), see conus404.outputs.remote_output
    output_storage_options: Mapping[str, Any] = field(default_factory=dict)
    overview: bool = False  # the retry pass (a run's last step) draws DATA_DIR/pictures/overview_START_END.png
    rollups: tuple[str, ...] = ()  # "monthly", "annual", "water-year" files from the daily ones (conus404.outputs.rollups)
    allow_partial: bool = False  # write a roll-up period before all its days are done
    output_zarr: str | None = None  # one Zarr store of the range: a path or fsspec URL (conus404.outputs.zarr_output)
    zarr_chunks: tuple[int, int, int] = DEFAULT_ZARR_CHUNKS  # its chunks: days, south_north, west_east


@dataclass(frozen=True)
class Series:
    """Basin and gauge series: which polygons and points, and whether they are all that is kept."""

    polygons: Path | None = None  # basins: a vector file of polygons (conus404.outputs.series.polygons)
    polygon_id: str | None = None  # the polygons' id field
    points: Path | None = None  # gauges: a CSV id,lon,lat or a vector file of points (conus404.outputs.series.points)
    point_id: str | None = None  # the points' id field (vector files)
    series_only: bool = False  # keep the polygon/point series, not the gridded daily files
    skip_off_grid: bool = False  # leave out (with a warning) features wholly off the grid, not refuse the file

    @property
    def wanted(self) -> bool:
        return self.polygons is not None or self.points is not None


@dataclass(frozen=True)
class Settings:
    """One run's settings: a part per concern."""

    request: Request
    access: SourceAccess = field(default_factory=SourceAccess)
    execution: Execution = field(default_factory=Execution)
    checks: Checks = field(default_factory=Checks)
    outputs: Outputs = field(default_factory=Outputs)
    series: Series = field(default_factory=Series)

    @property
    def touches_remote_storage(self) -> bool:
        """Whether a run's processes read or write anything but local files."""
        return self.access.is_remote or bool(self.outputs.output_url)


PARTS = {"request": Request, "access": SourceAccess, "execution": Execution, "checks": Checks,
         "outputs": Outputs, "series": Series}
PART_OF_FIELD = {f.name: part for part, kind in PARTS.items() for f in fields(kind)}


def _by_part(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    by_part: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        if name not in PART_OF_FIELD:
            raise TypeError(f"{name!r} is not a field of any part of the settings")
        by_part.setdefault(PART_OF_FIELD[name], {})[name] = value
    return by_part


def assemble(**values: Any) -> Settings:
    """Settings from field values named plainly (``start_date=..., data_dir=...``), each put in its part."""
    by_part = _by_part(values)
    return Settings(**{part: PARTS[part](**by_part.get(part, {})) for part in PARTS
                       if part in by_part or part != "request"})


def changed(settings: Settings, **values: Any) -> Settings:
    """A copy of ``settings`` with the named fields changed, whichever parts they are in."""
    return replace(settings, **{part: replace(getattr(settings, part), **part_values)
                                for part, part_values in _by_part(values).items()})
