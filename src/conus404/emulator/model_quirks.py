"""What the real model's fields do that tidy synthetic ones don't (docs/REAL_STORE.md has the sources).

  supersaturated 2-m air  T2 and Q2 are diagnosed apart (WRF module_surface_driver.F, Noah-MP Q2V/Q2B),
                          so fog and snow patches have TD2 above T2 and RH2 above 100 %
  TD2 from Q2 and PSFC    as WRF's post-processing computes it (wrf_user.f90 DCOMPUTETD): negative Q2
                          is taken as 0 and the vapour pressure floored at 0.001 hPa (TD2 >= 192.7 K)
  tiny negatives          Q2 ("Sometimes qv (from WRF) is negative": HyTEST conus404_maths.py),
                          SNOW_ACC_NC above freezing (clamped only below it: module_diag_misc.F),
                          ACRAINLSM (unclamped; -1e-30..-1e-20 rain rates: ESCOMP/CTSM#1178)
  quantised fields        the PC store's 44 variables with ``number_of_significant_digits`` (NCO)
  6-hourly bucket check   AC* radiation totals exceed 1e9 J m-2 for up to 6 h before the reset
                          (checked when MOD(NINT(XTIME), 360) == 0: module_diag_misc.F)
"""

from __future__ import annotations

import math

import numpy as np

FOG_EXCESS_K = 2.5  # TD2 above T2 at a fog patch's core: RH2 about 115-130 % (wrf-users: up to ~120 %)
FOG_PATCHES = 3
Q2_NEGATIVE_SHARE = 0.002  # share of cells per hour with a tiny negative Q2
SNOW_NEGATIVE_SHARE = 0.003
RAIN_NEGATIVE_SHARE = 0.003
BUCKET_CHECK_HOURS = 6
_XTIME_ORIGIN_HOUR = 86_376  # 1979-10-01T00Z in hours since 1970: where WRF's XTIME starts


def fog(ctx, hour: int) -> np.ndarray:
    """0..1: a few patches of supersaturated air that last the whole UTC day (densest at night)."""
    day = hour // 24
    rng = ctx.rng("FOG", day)
    ux, uy = ctx.unit_xy
    out = np.zeros((ctx.ny, ctx.nx))
    hour_of_day = hour % 24
    for _ in range(FOG_PATCHES):
        cx, cy = rng.uniform(0.15, 0.85, 2)
        radius = rng.uniform(0.08, 0.14)
        patch = np.exp(-(((ux - cx) / radius) ** 2))[None, :] * np.exp(-(((uy - cy) / radius) ** 2))[:, None]
        out = np.maximum(out, patch)
    night = 0.75 + 0.25 * math.cos(2 * math.pi * (hour_of_day - 10) / 24)  # ~10Z: night over the US
    return out * night


def supersaturated_dew_point(ctx, temperature: np.ndarray, dew_point: np.ndarray, hour: int) -> np.ndarray:
    """The dew point with fog patches where it rises above the air temperature by up to FOG_EXCESS_K."""
    weight = fog(ctx, hour)
    return dew_point * (1.0 - weight) + (temperature + FOG_EXCESS_K) * weight


def dewpoint_from_mixing_ratio(q2: np.ndarray, psfc_pa: np.ndarray) -> np.ndarray:
    """TD2 (K) as WRF's DCOMPUTETD: qv = max(q, 0), e = max(qv p / (0.622 + qv), 0.001 hPa), Bolton's inverse."""
    qv = np.maximum(q2, 0.0)
    e_hpa = np.maximum(qv * (psfc_pa / 100.0) / (0.622 + qv), 0.001)
    log_e = np.log(e_hpa)
    return (243.5 * log_e - 440.8) / (19.48 - log_e) + 273.15


def mixing_ratio_from_dewpoint(dew_point_k: np.ndarray, psfc_pa: np.ndarray) -> np.ndarray:
    """The inverse: Bolton's vapour pressure of the dew point, as a mixing ratio."""
    td_c = dew_point_k - 273.15
    e_hpa = 6.112 * np.exp(17.67 * td_c / (td_c + 243.5))
    return 0.622 * e_hpa / (psfc_pa / 100.0 - e_hpa)


def tiny_negatives(ctx, name: str, hour: int, values: np.ndarray, share: float, low: float, high: float,
                   where: np.ndarray | None = None) -> np.ndarray:
    """``values`` with a random ``share`` of cells (within ``where``) set to -U(low, high)."""
    rng = ctx.rng(f"negative:{name}", hour)
    picked = rng.random(values.shape) < share
    if where is not None:
        picked &= where
    if not picked.any():
        return values
    out = np.array(values, dtype=np.float64, copy=True)
    out[picked] = -rng.uniform(low, high, int(picked.sum()))
    return out


def quantised(values: np.ndarray, significant_digits: int) -> np.ndarray:
    """Mantissa bits rounded to keep ``significant_digits`` decimal digits, as NCO's quantisation does
    (bit rounding, round-half-even; zeros and signs kept). float32 in and out."""
    from numcodecs import BitRound

    keepbits = min(23, math.ceil(significant_digits * math.log2(10)) + 1)
    data = np.ascontiguousarray(values, dtype=np.float32)
    return np.frombuffer(BitRound(keepbits=keepbits).encode(data), dtype=np.float32).reshape(data.shape)


def bucket_resets_at(hour: int) -> bool:
    """WRF moves the totals into the I_AC counters only at 6-hourly XTIME."""
    return (hour - _XTIME_ORIGIN_HOUR) % BUCKET_CHECK_HOURS == 0
