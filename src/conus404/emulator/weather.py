"""Synthetic but physically plausible hourly CONUS404 fields.

Every value is a pure function of (seed, variable, absolute hour, grid), so the same hour comes
out identical whatever store layout or chunking it is written with. Running totals (since-start
and bucket radiation) are the only state: they add hourly increments from the store's first hour.

The fields exercise every aggregation class of the real store:
  instantaneous   T2 (diurnal), Q2 and TD2 from it (fog patches above T2), PSFC in Pa, winds,
                  radiation; skin, ground and sea temperatures (SST 0 over land), PBL height, snow,
                  LAI; staggered 3-D winds U and V
  prior 60 min    PREC_ACC_NC (sparse, >= 0), SNOW_ACC_NC, ACRAINLSM, ACSNOWLSM, ACECAN (negative with dew)
  since start     ACSNOM (never decreases)
  bucket          ACSWDNB/ACLWDNB with I_ACSWDNB/I_ACLWDNB reset counters, moved every 6 hours
With ``quirks`` (the default) they also do what the real model's fields do and tidy ones don't
(:mod:`conus404.emulator.model_quirks`): supersaturated fog, tiny negatives, quantised values.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from conus404.core.grid import grid_latlon, latlon_from_xy, projection_xy
from conus404.emulator import model_quirks

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
    quirks: bool = True  # the real model's untidiness (model_quirks); False: tidy fields
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


def _air_dew_point(ctx: GridContext, hour: int, temperature: np.ndarray) -> np.ndarray:
    """The dew point of unsaturated air (at most T2), before any fog."""
    drier_when_hot = 0.3 * np.clip(temperature - 290.0, 0.0, None)
    depression = 4.0 + drier_when_hot + ctx.waves("TD2", hour, amplitude=3.0) + ctx.noise("TD2", hour, 0.3)
    return temperature - np.clip(depression, 0.0, None)


def psfc(ctx: GridContext, hour: int) -> np.ndarray:
    return 101_325.0 * np.exp(-ctx.terrain_m / 8_400.0) + ctx.waves("PSFC", hour, amplitude=700.0)


def q2(ctx: GridContext, hour: int) -> np.ndarray:
    """Water vapour mixing ratio of the air's dew point (Bolton); with quirks, fog patches are
    supersaturated and a few cells tiny negative."""
    temperature = t2(ctx, hour)
    dew_point = _air_dew_point(ctx, hour, temperature)
    if ctx.quirks:
        dew_point = model_quirks.supersaturated_dew_point(ctx, temperature, dew_point, hour)
    mixing_ratio = model_quirks.mixing_ratio_from_dewpoint(dew_point, psfc(ctx, hour))
    if ctx.quirks:
        mixing_ratio = model_quirks.tiny_negatives(ctx, "Q2", hour, mixing_ratio, model_quirks.Q2_NEGATIVE_SHARE,
                                                   1e-6, 5e-5)
    return mixing_ratio


def td2(ctx: GridContext, hour: int) -> np.ndarray:
    """TD2 as WRF's post-processing makes it: from Q2 and PSFC alone."""
    return model_quirks.dewpoint_from_mixing_ratio(q2(ctx, hour), psfc(ctx, hour))


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
    """Snow in the hour; WRF clamps it at 0 only below freezing, so warm cells can be tiny negative."""
    snow = prec_acc_nc(ctx, hour) * _frozen_fraction(ctx, hour)
    if not ctx.quirks:
        return snow
    return model_quirks.tiny_negatives(ctx, "SNOW_ACC_NC", hour, snow, model_quirks.SNOW_NEGATIVE_SHARE, 1e-6, 1e-3,
                                       where=(t2(ctx, hour) >= 273.15) & (snow == 0))


def acrainlsm(ctx: GridContext, hour: int) -> np.ndarray:
    """Rain into the land model; unclamped upstream: tiny negative rates where it is dry."""
    rain = prec_acc_nc(ctx, hour) * (1.0 - _frozen_fraction(ctx, hour))
    if not ctx.quirks:
        return rain
    return model_quirks.tiny_negatives(ctx, "ACRAINLSM", hour, rain, model_quirks.RAIN_NEGATIVE_SHARE, 1e-30, 1e-20,
                                       where=rain == 0)


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


def water(ctx: GridContext) -> np.ndarray:
    """A rough sea mask: the Pacific west of the coast, the Gulf of Mexico, the Atlantic east of it."""
    lat, lon = ctx.latlon
    pacific = lon < -124.5 + 0.5 * np.clip(40.0 - lat, 0.0, None)
    gulf = (lat < 29.0) & (lon > -97.0) & (lon < -82.0)
    atlantic = lon > -75.0 - 0.5 * np.clip(40.0 - lat, 0.0, None) + 1.4 * np.clip(lat - 40.0, 0.0, None)
    return pacific | gulf | atlantic


def _desert(ctx: GridContext) -> np.ndarray:
    """0.2..1: how dry and bare the surface is, highest in the desert south-west."""
    lat, lon = ctx.latlon
    return 0.2 + 0.8 * np.exp(-(((lon + 113.0) / 7.0) ** 2) - (((lat - 33.0) / 6.0) ** 2))


def sst(ctx: GridContext, hour: int) -> np.ndarray:
    """Sea-surface temperature over water, 0 over land (WPS's fill where the forcing has no sea)."""
    lat, _ = ctx.latlon
    sea = 300.0 - 0.55 * np.clip(lat - 18.0, 0.0, None) + ctx.waves("SST", hour // 24, amplitude=0.8)
    return np.where(water(ctx), sea, 0.0)


def sstsk(ctx: GridContext, hour: int) -> np.ndarray:
    """Skin SST: warmer by day; 0 over land (computed only where XLAND >= 1.5)."""
    return np.where(water(ctx), sst(ctx, hour) + 0.6 * np.clip(coszen(ctx, hour), 0.0, None), 0.0)


def tsk(ctx: GridContext, hour: int) -> np.ndarray:
    """Skin temperature: the sea's over water; over land far above the air on a sunny desert afternoon."""
    sun = np.clip(coszen(ctx, hour), 0.0, None) ** 1.2
    land = t2(ctx, hour) + 52.0 * sun * _desert(ctx) - 2.5 * (sun == 0)
    return np.where(water(ctx), sstsk(ctx, hour), land)


def tg(ctx: GridContext, hour: int) -> np.ndarray:
    air = t2(ctx, hour)
    return air + 0.6 * (tsk(ctx, hour) - air)


def tv(ctx: GridContext, hour: int) -> np.ndarray:
    air = t2(ctx, hour)
    return air + 0.2 * (tsk(ctx, hour) - air)


def trad(ctx: GridContext, hour: int) -> np.ndarray:
    return tsk(ctx, hour) - 0.4


def pblh(ctx: GridContext, hour: int) -> np.ndarray:
    """Shallow at night and over the sea; up to ~5.6 km over the afternoon desert."""
    sun = np.clip(coszen(ctx, hour), 0.0, None)
    land = 40.0 + 5600.0 * sun * _desert(ctx) ** 1.5 + 30.0 * np.abs(ctx.waves("PBLH", hour))
    return np.where(water(ctx), 450.0, land)


def snow(ctx: GridContext, hour: int) -> np.ndarray:
    """Snow water (kg m-2) on high and northern land, held at Noah-MP's 2,000 mm cap on the highest."""
    lat, _ = ctx.latlon
    depth = 1.6 * (ctx.terrain_m - 1400.0) + 40.0 * (lat - 44.0) + 5.0 * ctx.waves("SNOW", hour // 24)
    return np.where(water(ctx), 0.0, np.clip(depth, 0.0, 2000.0))


def snowh(ctx: GridContext, hour: int) -> np.ndarray:
    return snow(ctx, hour) / 250.0  # a settled pack of 250 kg m-3


def lai(ctx: GridContext, hour: int) -> np.ndarray:
    """Leaf area index: dense forests in the east, sparse in the desert, none over water."""
    _, lon = ctx.latlon
    forest = np.clip((lon + 100.0) / 18.0, 0.0, 1.0)
    leaves = 0.3 + 5.6 * forest * (1.2 - _desert(ctx)) + 0.3 * ctx.waves("LAI", hour // 24)
    return np.where(water(ctx), 0.0, np.clip(leaves, 0.0, None))


def acecan(ctx: GridContext, hour: int) -> np.ndarray:
    """Net canopy evaporation in the hour (mm): positive by day, negative with dew at night."""
    sun = np.clip(coszen(ctx, hour), 0.0, None)
    leaves = lai(ctx, hour)
    return leaves * (0.03 * sun - 0.004 * (sun == 0) * (1.0 + 0.5 * ctx.waves("DEW", hour)))


def _staggered(ctx: GridContext, mass: np.ndarray, axis: int) -> np.ndarray:
    """A mass-point field moved onto the staggered grid along ``axis`` (averages inside, edges copied)."""
    lead = np.take(mass, [0], axis=axis)
    tail = np.take(mass, [-1], axis=axis)
    inside = 0.5 * (np.take(mass, range(0, mass.shape[axis] - 1), axis=axis)
                    + np.take(mass, range(1, mass.shape[axis]), axis=axis))
    return np.concatenate([lead, inside, tail], axis=axis)


def u_staggered(ctx: GridContext, hour: int) -> np.ndarray:
    """U on ``ctx.levels`` levels at the west_east_stag points, stronger aloft."""
    surface = _staggered(ctx, u10(ctx, hour), axis=1)
    return surface[None] * (1.0 + 0.35 * np.arange(ctx.levels))[:, None, None]


def v_staggered(ctx: GridContext, hour: int) -> np.ndarray:
    surface = _staggered(ctx, v10(ctx, hour), axis=0)
    return surface[None] * (1.0 + 0.35 * np.arange(ctx.levels))[:, None, None]


def staggered_latlon(ny: int, nx: int, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """lat/lon of the U (``axis`` "x": ny x nx+1) or V ("y": ny+1 x nx) points, half a cell from the mass points."""
    x, y = projection_xy(ny, nx)
    if axis == "x":
        step = x[1] - x[0] if nx > 1 else 0.0
        x = np.concatenate([x - step / 2, x[-1:] + step / 2])
    else:
        step = y[1] - y[0] if ny > 1 else 0.0
        y = np.concatenate([y - step / 2, y[-1:] + step / 2])
    xx, yy = np.meshgrid(x, y)
    return latlon_from_xy(xx, yy)


INSTANT_FIELDS: dict[str, Callable[[GridContext, int], np.ndarray]] = {
    "T2": t2, "TD2": td2, "Q2": q2, "PSFC": psfc, "U10": u10, "V10": v10,
    "SWDOWN": swdown, "GLW": glw, "COSZEN": coszen, "RAINNCV": rainncv, "TK": tk,
    "TSK": tsk, "TG": tg, "TV": tv, "TRAD": trad, "SST": sst, "SSTSK": sstsk, "PBLH": pblh,
    "SNOW": snow, "SNOWH": snowh, "LAI": lai, "U": u_staggered, "V": v_staggered,
}
PRIOR_HOUR_FIELDS: dict[str, Callable[[GridContext, int], np.ndarray]] = {
    "PREC_ACC_NC": prec_acc_nc, "SNOW_ACC_NC": snow_acc_nc,
    "ACRAINLSM": acrainlsm, "ACSNOWLSM": snow_acc_nc, "ACECAN": acecan,
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
