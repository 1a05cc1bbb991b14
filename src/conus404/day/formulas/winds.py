"""Earth-relative 10-m winds from WRF's grid-relative U10/V10, their direction, and the 2-m wind.

WRF writes U10/V10 along the grid's x and y axes. On a Lambert conformal grid the y axis turns away
from true north by the convergence angle alpha = n (lon - STAND_LON), n the cone constant (WRF's
``module_initialize_real`` COSALPHA/SINALPHA, and wrf-python's ``uvmet``):

  u_earth = u cos(alpha) + v sin(alpha)
  v_earth = v cos(alpha) - u sin(alpha)

The PC store has no COSALPHA/SINALPHA, so alpha is computed from the projection (``grid``).
Direction is meteorological (where the wind blows *from*, clockwise from north, in (0, 360];
0 for calm), as MetPy's ``wind_direction``. The 2-m wind follows FAO-56 eq. 47, the logarithmic
profile over short grass: u2 = uz 4.87 / ln(67.8 z - 5.42).
"""

from __future__ import annotations

import numpy as np

from conus404.core import grid

WRF_WIND_HEIGHT_M = 10.0


def convergence_angle(lon: np.ndarray) -> np.ndarray:
    """alpha (radians) at each cell: positive east of STAND_LON, where grid north leans west of true north."""
    cone = grid.cone_constant()
    offset = (np.asarray(lon, np.float64) - grid.STAND_LON + 180.0) % 360.0 - 180.0
    return np.radians(cone * offset)


def rotation(lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) of the convergence angle at each cell: computed once, used for every hour."""
    alpha = convergence_angle(lon)
    return np.cos(alpha), np.sin(alpha)


def earth_relative(u: np.ndarray, v: np.ndarray, lon: np.ndarray | None = None,
                   turn: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(eastward, northward) components of grid-relative (u, v), rotated by ``turn`` (from :func:`rotation`)
    or by the angle at ``lon``; either broadcasts over leading time axes."""
    cos, sin = turn if turn is not None else rotation(lon)
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    return u * cos + v * sin, v * cos - u * sin


def direction_from(eastward: np.ndarray, northward: np.ndarray) -> np.ndarray:
    """Meteorological direction in degrees (0 = calm, 90 = from the east, 360 = from the north)."""
    east = np.asarray(eastward, np.float64)
    north = np.asarray(northward, np.float64)
    degrees = (90.0 - np.degrees(np.arctan2(-north, -east))) % 360.0
    degrees = np.where(degrees <= 0.0, degrees + 360.0, degrees)
    return np.where((east == 0.0) & (north == 0.0), 0.0, degrees)


def wind_at_2m(speed: np.ndarray, height_m: float = WRF_WIND_HEIGHT_M) -> np.ndarray:
    """FAO-56 eq. 47: wind speed at 2 m above short grass from the speed at ``height_m``."""
    return np.asarray(speed, np.float64) * 4.87 / np.log(67.8 * height_m - 5.42)
