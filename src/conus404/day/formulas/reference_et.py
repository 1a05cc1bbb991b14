"""ASCE standardized reference evapotranspiration, in hourly steps, from CONUS404's fields.

The Penman-Monteith arithmetic is the ``refet`` package's (WSWUP, ``refet.Hourly``: ASCE-EWRI
2005, eqs. 1 and 45-66), short (grass, ETo: Cn 37, Cd 0.24 by day / 0.96 by night) or tall
(alfalfa, ETr: Cn 66, Cd 0.25 / 1.7) reference. Two things are ours:

- Night-time cloudiness: refet sets fcd = 1 when the sun is low (beta < 0.3 rad) and says so.
  ASCE-EWRI 2005 (p. 44) carries the fcd of the last hour with beta >= 0.3 through the night;
  so does :func:`hourly_reference_et`, over the hours it is given, in order (the hours before the
  first daytime hour take the last one's: a UTC day over the US begins in the local evening).
  A cell without any daytime hour keeps refet's fcd = 1.
- Cost: on the full grid about 0.5 s per hour (most of it refet's solar geometry), some 15 s a day.
- Inputs: each hourly snapshot at t stands for the hour centred on t (t - 30 min .. t + 30 min).
  Rs = SWDOWN x 0.0036 (W m-2 to MJ m-2 h-1); ea from max(Q2, 0) and PSFC (:mod:`conus404.day.formulas.humidity`;
  WRF leaves Q2 slightly negative at times); the wind speed at 10 m from U10/V10. The PC store has no
  terrain height, so the elevation in
  ASCE's pressure formula (eq. 3) is the one that gives the day's mean PSFC:
  z = 293 / 0.0065 (1 - (P / 101.3) ** (1 / 5.26)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LOW_SUN_RAD = 0.3  # ASCE-EWRI 2005: below this solar elevation the measured Rs/Rso is not used
SURFACES = ("short", "tall")


def elevation_from_pressure(pressure_kpa: np.ndarray) -> np.ndarray:
    """ASCE-EWRI 2005 eq. 3 solved for z (m): the elevation whose standard pressure is ``pressure_kpa``."""
    return 293.0 / 0.0065 * (1.0 - (np.asarray(pressure_kpa, np.float64) / 101.3) ** (1.0 / 5.26))


def _solar_elevation(doy: int, start_hour: float, lat_rad: np.ndarray, lon_rad: np.ndarray) -> np.ndarray:
    """beta at the start of the hour, as refet's fcd_hourly computes it (ASCE-EWRI 2005 eq. 62)."""
    from refet import calcs

    delta = calcs.declination(doy)
    omega = calcs.solar_hour_angle(calcs.solar_time_rad(lon_rad, start_hour, calcs.seasonal_correction(doy)))
    return np.arcsin(np.sin(lat_rad) * np.sin(delta) + np.cos(lat_rad) * np.cos(delta) * np.cos(omega))


def _hour_start(hour: pd.Timestamp) -> tuple[int, float]:
    """Day of year and UTC start hour of the hour centred on ``hour``."""
    return hour.day_of_year, hour.hour + hour.minute / 60.0 - 0.5


# ASCE-EWRI 2005 Table 1 (hourly): numerator and denominator constants, soil heat flux ratio G/Rn,
# by day (Rn >= 0) and night (Rn < 0); the same values refet.Hourly.eto()/etr() use.
CONSTANTS = {"short": {"cn": 37.0, "cd": (0.24, 0.96), "g": (0.1, 0.5)},
             "tall": {"cn": 66.0, "cd": (0.25, 1.7), "g": (0.04, 0.2)}}


def hourly_reference_et(
    surface: str, hours: Sequence[pd.Timestamp], tmean_c, ea_kpa, rs_mj, wind_speed, wind_height_m: float,
    elev_m: np.ndarray, lat: np.ndarray, lon: np.ndarray,
) -> np.ndarray:
    """Reference ET (mm) of each hour centred on ``hours``. ``tmean_c``, ``ea_kpa``, ``rs_mj`` and
    ``wind_speed`` give hour ``i`` as ``x[i]`` (arrays with time first, or anything indexable); the
    fields broadcast with ``lat``/``lon`` (degrees). One hour at a time: memory stays near one field's.

    refet.calcs' functions step by step, as ``refet.Hourly`` chains them, without its per-call
    copies and with the night-time cloudiness carried (see the module's docstring).
    """
    from refet import calcs

    if surface not in SURFACES:
        raise ValueError(f"surface {surface!r} is not one of {', '.join(SURFACES)}")
    constants = CONSTANTS[surface]
    lat_rad = np.radians(np.asarray(lat, np.float64))
    lon_rad = np.radians(np.asarray(lon, np.float64))
    elev = np.asarray(elev_m, np.float64)
    psy = 0.000665 * calcs.air_pressure(elev, "asce")  # eq. 35, from the elevation's standard pressure

    def cloudiness(i: int, rs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fcd, daytime) of hour i: eq. 45 where beta >= 0.3 rad (refet gives 1 elsewhere)."""
        doy, start = _hour_start(pd.Timestamp(hours[i]))
        rso = calcs.rso_simple(calcs.ra_hourly(lat_rad, lon_rad, doy, start + 0.5, "asce"), elev)  # eqs. 47-53
        fcd = calcs.fcd_hourly(rs, rso, doy, start, lat_rad, lon_rad, "asce")
        return fcd, _solar_elevation(doy, start, lat_rad, lon_rad) >= LOW_SUN_RAD

    def rs_of(i: int) -> np.ndarray:
        return np.asarray(rs_mj[i], np.float64)

    # Each cell's last daytime cloudiness, for the nights before its first daytime hour: from the
    # last hour backwards, until every cell has had one (over the US a UTC day ends in daylight,
    # so this takes a few hours, not the day's 24).
    carried, found = None, None
    for i in reversed(range(len(hours))):
        fcd, daytime = cloudiness(i, rs_of(i))
        if carried is None:
            carried, found = np.where(daytime, fcd, 1.0), daytime.copy()
        else:
            take = daytime & ~found
            carried, found = np.where(take, fcd, carried), found | daytime
        if found.all():
            break
    out = []
    for i in range(len(hours)):
        t = np.asarray(tmean_c[i], np.float64)
        ea = np.asarray(ea_kpa[i], np.float64)
        rs = rs_of(i)
        fcd, daytime = cloudiness(i, rs)
        carried = np.where(daytime, fcd, carried)
        rn = calcs.rn_hourly(rs, calcs.rnl_hourly(t, ea, carried))  # eqs. 43-44
        night = rn < 0
        cd = np.where(night, constants["cd"][1], constants["cd"][0])
        g = rn * np.where(night, constants["g"][1], constants["g"][0])  # eqs. 65-66
        u2 = calcs.wind_height_adjust(np.asarray(wind_speed[i], np.float64), wind_height_m)  # eq. 33
        et = calcs.etsz(rn=rn, g=g, tmean=t, u2=u2, vpd=calcs.sat_vapor_pressure(t) - ea,
                        es_slope=calcs.es_slope(t, "asce"), psy=psy, cn=constants["cn"], cd=cd)
        shape = np.broadcast_shapes(t.shape, np.shape(lat))  # refet's functions return at least 1-D
        out.append(np.broadcast_to(np.reshape(et, shape) if np.size(et) == int(np.prod(shape)) else et, shape)
                   .astype(np.float32))
    return np.stack(out)
