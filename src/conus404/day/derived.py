"""Variables the pipeline computes from the source's hourly fields before a day is aggregated.

Humidity and wind are not linear in their inputs, so each is computed for every hour of the day
(00Z..23Z, the instantaneous window) and then reduced: the mean of the hourly values, the sum of
hourly amounts (reference ET), or for WDIR10 the direction of the day's mean earth-relative
wind (a mean of angles means nothing). The formulas and their sources live in
:mod:`conus404.day.formulas.humidity`, :mod:`conus404.day.formulas.winds` and :mod:`conus404.day.formulas.reference_et`.

Names cannot clash with store variables (the PC store has no RH2, and W is its 3-D vertical wind).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

Records = dict[str, np.ndarray]


@dataclass(frozen=True)
class HourContext:
    """Where and when the day's records are: the cells' lat/lon (degrees) and the records' hours."""

    lat: np.ndarray
    lon: np.ndarray
    hours: Sequence  # pandas Timestamps, one per record

    @cached_property
    def wind_rotation(self) -> tuple[np.ndarray, np.ndarray]:
        """(cos, sin) of each cell's convergence angle, once for all the day's hours."""
        from conus404.day.formulas.winds import rotation

        return rotation(self.lon)


@dataclass(frozen=True)
class DerivedVariable:
    """A quantity computed hourly from source variables, then reduced to a daily value."""

    name: str
    inputs: tuple[str, ...]
    units: str
    long_name: str
    formula: str  # what it is computed from, with the source of the formula
    hourly: Callable[[Records, HourContext], np.ndarray]
    daily: str = "mean"  # "mean" | "sum" | "vector_mean_direction"
    statistics: tuple[str, ...] = ("mean", "min", "max")  # the default first

    @property
    def default_statistic(self) -> str:
        return self.statistics[0]

    def rule(self) -> str:
        """How a day's value is made, for the file's conus404_rule and --list-variables."""
        return {
            "mean": "the mean of the 24 hourly values 00Z..23Z of the day",
            "sum": "the sum of the 24 hourly amounts, each of the hour centred on 00Z..23Z of the day",
            "vector_mean_direction": "the direction of the day's mean earth-relative wind (00Z..23Z)",
        }[self.daily]


def _speed(r: Records) -> np.ndarray:
    return np.hypot(r["U10"].astype(np.float64), r["V10"].astype(np.float64))


def _rh(r: Records, ctx: HourContext) -> np.ndarray:
    from conus404.day.formulas.humidity import relative_humidity_percent

    return relative_humidity_percent(r["T2"], r["Q2"], r["PSFC"])


def _sh(r: Records, ctx: HourContext) -> np.ndarray:
    from conus404.day.formulas.humidity import specific_humidity

    return specific_humidity(r["Q2"])


def _vpd(r: Records, ctx: HourContext) -> np.ndarray:
    from conus404.day.formulas.humidity import vapour_pressure_deficit_kpa

    return vapour_pressure_deficit_kpa(r["T2"], r["Q2"], r["PSFC"])


def _earth_wind(component: int) -> Callable[[Records, HourContext], np.ndarray]:
    def compute(r: Records, ctx: HourContext) -> np.ndarray:
        from conus404.day.formulas.winds import earth_relative

        return earth_relative(r["U10"], r["V10"], turn=ctx.wind_rotation)[component]

    return compute


def _direction(r: Records, ctx: HourContext) -> np.ndarray:
    from conus404.day.formulas.winds import direction_from, earth_relative

    return direction_from(*earth_relative(r["U10"], r["V10"], turn=ctx.wind_rotation))


def _wspd2(r: Records, ctx: HourContext) -> np.ndarray:
    from conus404.day.formulas.winds import wind_at_2m

    return wind_at_2m(_speed(r))


class _PerHour:
    """Hour ``i`` of a derived input, computed when asked for: memory stays near one hour's field."""

    def __init__(self, compute: Callable[[int], np.ndarray]) -> None:
        self.compute = compute

    def __getitem__(self, i: int) -> np.ndarray:
        return self.compute(i)


def _reference_et(surface: str) -> Callable[[Records, HourContext], np.ndarray]:
    def compute(r: Records, ctx: HourContext) -> np.ndarray:
        from conus404.day.formulas.humidity import KELVIN, vapour_pressure_pa
        from conus404.day.formulas.reference_et import elevation_from_pressure, hourly_reference_et

        elevation = elevation_from_pressure(r["PSFC"].mean(axis=0, dtype=np.float64) / 1000.0)
        return hourly_reference_et(
            surface, ctx.hours,
            tmean_c=_PerHour(lambda i: r["T2"][i].astype(np.float64) - KELVIN),
            # WRF leaves Q2 slightly negative at times; ASCE's net long-wave takes sqrt(ea), so the vapour
            # pressure is that of max(Q2, 0), as WRF's own post-processing (DCOMPUTETD) and HyTEST's take it
            ea_kpa=_PerHour(lambda i: vapour_pressure_pa(r["PSFC"][i], np.maximum(r["Q2"][i], 0.0)) / 1000.0),
            rs_mj=_PerHour(lambda i: r["SWDOWN"][i].astype(np.float64) * 0.0036),  # W m-2 over an hour: MJ m-2
            wind_speed=_PerHour(lambda i: np.hypot(r["U10"][i].astype(np.float64), r["V10"][i].astype(np.float64))),
            wind_height_m=10.0, elev_m=elevation, lat=ctx.lat, lon=ctx.lon,
        )

    return compute


_HUMIDITY = ("T2", "Q2", "PSFC")
_ET_INPUTS = ("T2", "Q2", "PSFC", "SWDOWN", "U10", "V10")
_ET_FORMULA = ("ASCE standardized Penman-Monteith (ASCE-EWRI 2005), hourly, with the refet package; Rs = SWDOWN, "
               "ea from max(Q2, 0) and PSFC, wind at 10 m from U10/V10, elevation from the day's mean PSFC (ASCE eq. 3); "
               "night-time cloudiness carried from the last hour with solar elevation >= 0.3 rad")

DERIVED: dict[str, DerivedVariable] = {v.name: v for v in (
    DerivedVariable("WSPD10", ("U10", "V10"), "m s-1", "Wind speed at 10 meters",
                    "sqrt(U10^2 + V10^2) of each hour", lambda r, ctx: _speed(r)),
    DerivedVariable("RH2", _HUMIDITY, "%", "Relative humidity at 2 meters (over liquid water)",
                    "100 e / es; e = PSFC Q2 / (0.622 + Q2), es of T2 by Bolton (1980) (MetPy's formulas)", _rh),
    DerivedVariable("SH2", ("Q2",), "kg kg-1", "Specific humidity at 2 meters", "Q2 / (1 + Q2) (Q2 is a mixing ratio)",
                    _sh),
    DerivedVariable("VPD2", _HUMIDITY, "kPa", "Vapour pressure deficit at 2 meters",
                    "es(T2) - e, Bolton (1980) es, e from PSFC and Q2 (MetPy's formulas)", _vpd),
    DerivedVariable("U10E", ("U10", "V10"), "m s-1", "Eastward (earth-relative) wind at 10 meters",
                    "U10 cos(a) + V10 sin(a), a = n (lon - STAND_LON) of the Lambert conformal grid (WRF)",
                    _earth_wind(0)),
    DerivedVariable("V10E", ("U10", "V10"), "m s-1", "Northward (earth-relative) wind at 10 meters",
                    "V10 cos(a) - U10 sin(a), a = n (lon - STAND_LON) of the Lambert conformal grid (WRF)",
                    _earth_wind(1)),
    DerivedVariable("WDIR10", ("U10", "V10"), "degree", "Direction the 10-m wind blows from (0 = calm)",
                    "meteorological direction of the earth-relative U10E, V10E", _direction,
                    daily="vector_mean_direction", statistics=("mean",)),
    DerivedVariable("WSPD2", ("U10", "V10"), "m s-1", "Wind speed at 2 meters over short grass",
                    "WSPD10 x 4.87 / ln(67.8 x 10 - 5.42) (FAO-56 eq. 47)", _wspd2),
    DerivedVariable("ETO", _ET_INPUTS, "mm", "Short (grass) reference evapotranspiration",
                    _ET_FORMULA, _reference_et("short"), daily="sum", statistics=("sum",)),
    DerivedVariable("ETR", _ET_INPUTS, "mm", "Tall (alfalfa) reference evapotranspiration",
                    _ET_FORMULA, _reference_et("tall"), daily="sum", statistics=("sum",)),
)}


def hourly_values(spec: DerivedVariable, records: Records, ctx: HourContext) -> np.ndarray:
    """``spec`` for each record (first axis time), as float32, computed an hour at a time."""
    if spec.daily == "sum":  # reference ET steps through the hours itself (night-time cloudiness)
        return np.asarray(spec.hourly(records, ctx), np.float32)
    first = records[spec.inputs[0]]
    out = np.empty(first.shape, np.float32)
    for i in range(first.shape[0]):
        out[i] = spec.hourly({name: values[i] for name, values in records.items()}, ctx)
    return out


def daily_value(spec: DerivedVariable, hourly: np.ndarray, records: Records, ctx: HourContext) -> np.ndarray:
    """The day's value of ``spec`` from its hourly values (first axis time), as float32 (NaN propagates)."""
    if spec.daily == "mean":
        out = hourly.mean(axis=0, dtype=np.float64)
    elif spec.daily == "sum":
        out = hourly.sum(axis=0, dtype=np.float64)
    else:  # the mean wind vector's direction, summed an hour at a time
        from conus404.day.formulas.winds import direction_from, earth_relative

        east = north = 0.0
        for u, v in zip(records["U10"], records["V10"], strict=True):
            e, n = earth_relative(u, v, turn=ctx.wind_rotation)
            east, north = east + e, north + n
        out = direction_from(east, north)
    return np.asarray(out, np.float32)
