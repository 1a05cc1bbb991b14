"""ASCE standardized reference evapotranspiration, in hourly steps, from CONUS404's fields.

The Penman-Monteith arithmetic is the ``refet`` package's (WSWUP, ``refet.Hourly``: ASCE-EWRI
2005, eqs. 1 and 45-66), short (grass, ETo: Cn 37, Cd 0.24 by day / 0.96 by night) or tall
(alfalfa, ETr: Cn 66, Cd 0.25 / 1.7) reference. Two things are ours:

- Night-time cloudiness: refet sets fcd = 1 when the sun is low (beta < 0.3 rad) and says so.
  ASCE-EWRI 2005 (p. 44) carries the fcd of the last hour with beta >= 0.3 through the night;
  so does :func:`hourly_reference_et`, over the hours it is given, in order (the hours before the
  first daytime hour take the last one's: a UTC day over the US begins in the local evening).
- Inputs: each hourly snapshot at t stands for the hour centred on t (t - 30 min .. t + 30 min).
  Rs = SWDOWN x 0.0036 (W m-2 to MJ m-2 h-1); ea from Q2 and PSFC (:mod:`conus404.humidity`);
  the wind speed at 10 m from U10/V10. The PC store has no terrain height, so the elevation in
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


def hourly_reference_et(
    surface: str, hours: Sequence[pd.Timestamp], tmean_c: np.ndarray, ea_kpa: np.ndarray, rs_mj: np.ndarray,
    wind_speed: np.ndarray, wind_height_m: float, elev_m: np.ndarray, lat: np.ndarray, lon: np.ndarray,
) -> np.ndarray:
    """Reference ET (mm) of each hour centred on ``hours``; the inputs' first axis is time, the rest
    broadcast with ``lat``/``lon`` (degrees). One hour at a time: memory stays near one field's."""
    from refet import Hourly, calcs

    if surface not in SURFACES:
        raise ValueError(f"surface {surface!r} is not one of {', '.join(SURFACES)}")
    lat_rad = np.radians(np.asarray(lat, np.float64))
    lon_rad = np.radians(np.asarray(lon, np.float64))

    def step(i: int) -> tuple[Hourly, np.ndarray]:
        doy, start = _hour_start(pd.Timestamp(hours[i]))
        hourly = Hourly(
            tmean=np.asarray(tmean_c[i], np.float64), ea=np.asarray(ea_kpa[i], np.float64),
            rs=np.asarray(rs_mj[i], np.float64), uz=np.asarray(wind_speed[i], np.float64), zw=wind_height_m,
            elev=np.asarray(elev_m, np.float64), lat=np.asarray(lat, np.float64), lon=np.asarray(lon, np.float64),
            doy=doy, time=start, method="asce",
        )
        return hourly, _solar_elevation(doy, start, lat_rad, lon_rad) >= LOW_SUN_RAD

    # First pass: each cell's last daytime cloudiness, for the nights before its first daytime hour.
    carried = None
    for i in range(len(hours)):
        hourly, daytime = step(i)
        carried = np.where(daytime, hourly.fcd, 1.0 if carried is None else carried)
    out = []
    for i in range(len(hours)):
        hourly, daytime = step(i)
        carried = np.where(daytime, hourly.fcd, carried)
        hourly.fcd = carried
        hourly.rnl = calcs.rnl_hourly(hourly.tmean, hourly.ea, hourly.fcd)
        hourly.rn = calcs.rn_hourly(hourly.rs, hourly.rnl)
        shape = np.broadcast_shapes(np.shape(tmean_c[i]), np.shape(lat))
        out.append((hourly.eto() if surface == "short" else hourly.etr()).astype(np.float32).reshape(shape))
    return np.stack(out)
