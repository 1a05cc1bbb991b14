"""The CONUS404 WRF grid: a Lambert conformal conic projection on a 6,370 km sphere.

Constants are WRF's namelist values as published with the HyTEST store (TRUELAT1=30,
TRUELAT2=50, STAND_LON=-97.9, CEN_LAT=39.1000061, DX=DY=4000 m, 1367 x 1015 mass points centred
on the projection origin).
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6_370_000.0
TRUELAT1, TRUELAT2 = 30.0, 50.0
CEN_LAT = 39.100006103515625  # as stored (float32 of 39.1000061)
STAND_LON = -97.9000015258789
FULL_NY, FULL_NX = 1015, 1367
FULL_DX_M = 4000.0


def _cone_constants() -> tuple[float, float, float]:
    phi1, phi2, phi0 = np.radians([TRUELAT1, TRUELAT2, CEN_LAT])
    n = np.log(np.cos(phi1) / np.cos(phi2)) / np.log(
        np.tan(np.pi / 4 + phi2 / 2) / np.tan(np.pi / 4 + phi1 / 2)
    )
    f = np.cos(phi1) * np.tan(np.pi / 4 + phi1 / 2) ** n / n
    rho0 = EARTH_RADIUS_M * f / np.tan(np.pi / 4 + phi0 / 2) ** n
    return float(n), float(f), float(rho0)


def cone_constant() -> float:
    """n of the Lambert conformal cone (secant at TRUELAT1 and TRUELAT2)."""
    return _cone_constants()[0]


def projection_xy(ny: int = FULL_NY, nx: int = FULL_NX) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre projection coordinates (metres) of a grid covering the CONUS404 domain.

    A grid smaller than the real one covers the same domain with proportionally larger cells, so
    synthetic test stores keep a realistic latitude/longitude range.
    """
    dx = FULL_DX_M * (FULL_NX - 1) / max(nx - 1, 1)
    dy = FULL_DX_M * (FULL_NY - 1) / max(ny - 1, 1)
    x = (np.arange(nx) - (nx - 1) / 2.0) * dx
    y = (np.arange(ny) - (ny - 1) / 2.0) * dy
    return x, y


def latlon_from_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse Lambert conformal conic (spherical) for 2-D arrays of x, y in metres."""
    n, f, rho0 = _cone_constants()
    dy = rho0 - y
    rho = np.sign(n) * np.hypot(x, dy)
    theta = np.arctan2(x, dy)
    lat = np.degrees(2.0 * np.arctan((EARTH_RADIUS_M * f / rho) ** (1.0 / n)) - np.pi / 2)
    lon = STAND_LON + np.degrees(theta / n)
    return lat, lon


def xy_from_latlon(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward Lambert conformal conic (spherical): degrees to x, y in metres (inverse of latlon_from_xy)."""
    n, f, rho0 = _cone_constants()
    rho = EARTH_RADIUS_M * f / np.tan(np.pi / 4 + np.radians(lat) / 2) ** n
    theta = n * np.radians(((np.asarray(lon) - STAND_LON + 180.0) % 360.0) - 180.0)
    return rho * np.sin(theta), rho0 - rho * np.cos(theta)


def grid_latlon(ny: int = FULL_NY, nx: int = FULL_NX) -> tuple[np.ndarray, np.ndarray]:
    """2-D (south_north, west_east) latitude and longitude, row 0 at the southern edge."""
    x, y = projection_xy(ny, nx)
    xx, yy = np.meshgrid(x, y)
    return latlon_from_xy(xx, yy)


def crs_attributes() -> dict[str, object]:
    """CF grid-mapping attributes of the CONUS404 Lambert conformal grid."""
    return {
        "grid_mapping_name": "lambert_conformal_conic",
        "standard_parallel": [TRUELAT1, TRUELAT2],
        "latitude_of_projection_origin": CEN_LAT,
        "longitude_of_central_meridian": STAND_LON,
        "false_easting": 0.0,
        "false_northing": 0.0,
        "semi_major_axis": EARTH_RADIUS_M,
        "semi_minor_axis": EARTH_RADIUS_M,
        "earth_radius": EARTH_RADIUS_M,
        "proj4": (
            f"+proj=lcc +lat_1={TRUELAT1:g} +lat_2={TRUELAT2:g} +lat_0={CEN_LAT} "
            f"+lon_0={STAND_LON} +x_0=0 +y_0=0 +a={EARTH_RADIUS_M:.0f} +b={EARTH_RADIUS_M:.0f} +units=m +no_defs"
        ),
    }
