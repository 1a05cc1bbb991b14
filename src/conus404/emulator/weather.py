"""Synthetic but physically plausible hourly CONUS404 fields.

Every value is a pure function of (seed, variable, absolute hour, grid), so the same hour comes
out identical whatever store layout or chunking it is written with. Running totals (since-start
and bucket radiation) are the only state: they add hourly increments from the store's first hour.

The fields exercise every aggregation class of the real store:
  instantaneous   T2 (diurnal), TD2 <= T2, Q2 from TD2 and PSFC, PSFC in Pa, winds, radiation
  prior 60 min    PREC_ACC_NC (sparse, >= 0), SNOW_ACC_NC, ACRAINLSM, ACSNOWLSM
  since start     ACSNOM (never decreases)
  bucket          ACSWDNB/ACLWDNB below 1e9 J m-2 with I_ACSWDNB/I_ACLWDNB reset counters
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from conus404.grid import grid_latlon, projection_xy

BUCKET_J = 1.0e9  # WRF bucket_J: radiation totals reset every 1e9 J m-2
SECONDS_PER_HOUR = 3600.0


@dataclass
class GridContext:
    """The grid and the seed every field is drawn from."""

    ny: int
    nx: int
    seed: int
    levels: int = 4
    first_hour: int = 0  # absolute hour (since 1970) of the store's first record
    _cache: dict = field(default_factory=dict, repr=False)

    @cached_property
    def latlon(self) -> tuple[np.ndarray, np.ndarray]:
        return grid_latlon(self.ny, self.nx)

    @cached_property
    def unit_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres scaled to [0, 1] along each axis (for smooth patterns)."""
        x, y = projection_xy(self.ny, self.nx)
        return (x - x[0]) / max(np.ptp(x), 1.0), (y - y[0]) / max(np.ptp(y), 1.0)

    @cached_property
    def terrain_m(self) -> np.ndarray:
        """A smooth terrain: high plains rising into a Rocky-Mountain-like ridge."""
        lat, lon = self.latlon
        ridge = 2600.0 * np.exp(-(((lon + 108.0) / 6.0) ** 2)) * np.exp(-(((lat - 41.0) / 14.0) ** 2))
        plains = 900.0 * np.clip((lon + 80.0) / -25.0, 0.0, 1.0)
        return (ridge + plains).astype(np.float64)

    def rng(self, name: str, hour: int | None = None) -> np.random.Generator:
        """A generator keyed by a stable hash of the name (never Python's salted ``hash``)."""
        key = [self.seed, zlib.crc32(name.encode())]
        if hour is not None:
            key.append(hour)
        return np.random.default_rng(key)

    def waves(self, name: str, hour: int, modes: int = 5, amplitude: float = 1.0) -> np.ndarray:
        """A smooth travelling pattern with standard deviation about ``amplitude``."""
        rng = self.rng(name)
        ux, uy = self.unit_xy
        kx = rng.uniform(0.5, 3.0, modes) * 2 * np.pi
        ky = rng.uniform(0.5, 3.0, modes) * 2 * np.pi
        speed = rng.uniform(-0.35, 0.35, modes)  # radians per hour
        phase = rng.uniform(0, 2 * np.pi, modes)
        out = np.zeros((self.ny, self.nx))
        for i in range(modes):
            a = kx[i] * ux + phase[i] + speed[i] * hour
            b = ky[i] * uy
            # sin(a + b) as two outer products: cheap on the full 1015 x 1367 grid
            out += np.outer(np.cos(b), np.sin(a)) + np.outer(np.sin(b), np.cos(a))
        return out * (amplitude * np.sqrt(2.0 / modes))

    def noise(self, name: str, hour: int, scale: float) -> np.ndarray:
        return self.rng(name, hour).standard_normal((self.ny, self.nx)) * scale


def _utc(hour: int) -> tuple[float, float]:
    """(hour of day, day of year) of an absolute hour since 1970-01-01T00Z."""
    day = hour // 24
    return float(hour % 24), float((day + 0.0) % 365.2425)  # day 0 = 1 Jan 1970


def coszen(ctx: GridContext, hour: int) -> np.ndarray:
    lat, lon = ctx.latlon
    hod, doy = _utc(hour)
    decl = np.radians(23.44) * np.sin(2 * np.pi * (doy - 80.0) / 365.2425)
    hour_angle = np.radians(15.0 * (hod + lon / 15.0 - 12.0))
    phi = np.radians(lat)
    return np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)


def t2(ctx: GridContext, hour: int) -> np.ndarray:
    lat, lon = ctx.latlon
    hod, doy = _utc(hour)
    # annual means from ~300 K in the tropics to ~280 K at 55 N; seasons stronger poleward
    seasonal = -0.3 * np.clip(lat - 15.0, 2.0, None) * np.cos(2 * np.pi * (doy - 15.0) / 365.2425)
    local_hour = (hod + lon / 15.0) % 24.0
    diurnal = 6.0 * np.cos(2 * np.pi * (local_hour - 15.0) / 24.0)  # warmest mid-afternoon
    base = 300.0 - 0.55 * (lat - 18.0) - 0.0065 * ctx.terrain_m
    return base + seasonal + diurnal + ctx.waves("T2", hour, amplitude=3.0) + ctx.noise("T2", hour, 0.3)


def td2(ctx: GridContext, hour: int) -> np.ndarray:
    temperature = t2(ctx, hour)
    drier_when_hot = 0.3 * np.clip(temperature - 290.0, 0.0, None)
    depression = 4.0 + drier_when_hot + ctx.waves("TD2", hour, amplitude=3.0) + ctx.noise("TD2", hour, 0.3)
    return temperature - np.clip(depression, 0.0, None)  # saturated air at most: TD2 <= T2


def psfc(ctx: GridContext, hour: int) -> np.ndarray:
    return 101_325.0 * np.exp(-ctx.terrain_m / 8_400.0) + ctx.waves("PSFC", hour, amplitude=700.0)


def q2(ctx: GridContext, hour: int) -> np.ndarray:
    """Water vapour mixing ratio consistent with TD2 and PSFC (Bolton's vapour pressure)."""
    td_c = td2(ctx, hour) - 273.15
    vapour_pa = 611.2 * np.exp(17.67 * td_c / (td_c + 243.5))
    return 0.622 * vapour_pa / (psfc(ctx, hour) - vapour_pa)


def u10(ctx: GridContext, hour: int) -> np.ndarray:
    return 3.0 + ctx.waves("U10", hour, amplitude=5.0) + ctx.noise("U10", hour, 0.5)


def v10(ctx: GridContext, hour: int) -> np.ndarray:
    return ctx.waves("V10", hour, amplitude=5.0) + ctx.noise("V10", hour, 0.5)


def swdown(ctx: GridContext, hour: int) -> np.ndarray:
    cloud = np.clip(0.5 + ctx.waves("CLOUD", hour, amplitude=0.4), 0.0, 1.0)
    return np.clip(coszen(ctx, hour), 0.0, None) * 1050.0 * (1.0 - 0.7 * cloud)


def glw(ctx: GridContext, hour: int) -> np.ndarray:
    cloud = np.clip(0.5 + ctx.waves("CLOUD", hour, amplitude=0.4), 0.0, 1.0)
    return (0.7 + 0.25 * cloud) * 5.670374e-8 * t2(ctx, hour) ** 4


def prec_acc_nc(ctx: GridContext, hour: int) -> np.ndarray:
    """Precipitation (mm) in the hour ending at ``hour``: zero over most of the domain."""
    storm = ctx.waves("PRECIP", hour, amplitude=1.0) + ctx.noise("PRECIP", hour, 0.15)
    return np.clip(storm - 1.2, 0.0, None) * 4.0


def _frozen_fraction(ctx: GridContext, hour: int) -> np.ndarray:
    return np.clip((274.15 - t2(ctx, hour)) / 2.0, 0.0, 1.0)


def snow_acc_nc(ctx: GridContext, hour: int) -> np.ndarray:
    return prec_acc_nc(ctx, hour) * _frozen_fraction(ctx, hour)


def acrainlsm(ctx: GridContext, hour: int) -> np.ndarray:
    return prec_acc_nc(ctx, hour) * (1.0 - _frozen_fraction(ctx, hour))


def rainncv(ctx: GridContext, hour: int) -> np.ndarray:
    """Precipitation of one 20-s model step (mm): a per-step value, never a total."""
    return prec_acc_nc(ctx, hour) / 180.0


def snowmelt(ctx: GridContext, hour: int) -> np.ndarray:
    """Liquid water leaving the snowpack in the hour ending at ``hour`` (kg m-2)."""
    lat, _ = ctx.latlon
    snowy = np.clip((lat - 35.0) / 10.0, 0.0, 1.0)
    return np.clip(t2(ctx, hour) - 271.15, 0.0, None) * 0.08 * snowy


def tk(ctx: GridContext, hour: int) -> np.ndarray:
    """Air temperature on ``ctx.levels`` model levels, cooling 6.5 K km-1 with ~1.2 km per level."""
    lapse = 6.5 * 1.2 * np.arange(ctx.levels)[:, None, None]
    return t2(ctx, hour)[None, :, :] - 1.5 - lapse


INSTANT_FIELDS: dict[str, Callable[[GridContext, int], np.ndarray]] = {
    "T2": t2, "TD2": td2, "Q2": q2, "PSFC": psfc, "U10": u10, "V10": v10,
    "SWDOWN": swdown, "GLW": glw, "COSZEN": coszen, "RAINNCV": rainncv, "TK": tk,
}
PRIOR_HOUR_FIELDS: dict[str, Callable[[GridContext, int], np.ndarray]] = {
    "PREC_ACC_NC": prec_acc_nc, "SNOW_ACC_NC": snow_acc_nc,
    "ACRAINLSM": acrainlsm, "ACSNOWLSM": snow_acc_nc,
}
# Running totals: (hourly increment, initial-value function)
SINCE_START_INCREMENTS: dict[str, Callable[[GridContext, int], np.ndarray]] = {"ACSNOM": snowmelt}
BUCKET_FLUXES: dict[str, Callable[[GridContext, int], np.ndarray]] = {"ACSWDNB": swdown, "ACLWDNB": glw}


def running_total_start(ctx: GridContext, name: str, hours: int) -> np.ndarray:
    """The total at the store's first hour.

    Bucket totals start just below a multiple of 1e9 J m-2 so that most cells cross a reset
    within the store: the start is 1e9 minus a random share of a conservative estimate of the
    energy the store's span will add.
    """
    rng = ctx.rng(name + ":start")
    if name in BUCKET_FLUXES:
        resets_so_far = rng.integers(5, 400)
        expected_gain = max(hours, 1) * 120.0 * SECONDS_PER_HOUR  # >= ~120 W m-2 on average
        share = rng.uniform(0.05, 0.95, (ctx.ny, ctx.nx))
        return resets_so_far * BUCKET_J + BUCKET_J - share * expected_gain
    return rng.uniform(0.0, 400.0, (ctx.ny, ctx.nx))


def running_increment(ctx: GridContext, name: str, hour: int) -> np.ndarray:
    """Amount added during the hour ending at ``hour``."""
    if name in BUCKET_FLUXES:
        return BUCKET_FLUXES[name](ctx, hour) * SECONDS_PER_HOUR
    return SINCE_START_INCREMENTS[name](ctx, hour)


def bucket_parts(total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a radiation total into WRF's (AC value below 1e9, I_AC reset count)."""
    resets = np.floor(total / BUCKET_J)
    return total - resets * BUCKET_J, resets.astype(np.int32)
