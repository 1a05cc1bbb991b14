"""Moist-air quantities from WRF's 2-m fields: vapour pressure, specific and relative humidity and
the vapour-pressure deficit.

WRF's Q2 is a water-vapour *mixing ratio* w (kg of vapour per kg of dry air), not a specific
humidity. The formulas are MetPy's (``metpy.calc``, documented there with their sources):

  e   = p w / (epsilon + w)                  vapor_pressure; epsilon = Rd/Rv = 0.6219569
  es  = 6.112 hPa exp(17.67 t / (t + 243.5))  saturation_vapor_pressure as MetPy <= 1.5 (Bolton
                                               1980, eq. 10; t in degC)
  q   = w / (1 + w)                          specific_humidity_from_mixing_ratio
  RH  = 100 e / es  (%)                      relative_humidity_from_mixing_ratio (WMO: e / es)
  VPD = es - e                               (kPa)

All in float64, whatever the inputs; callers cast the daily values.
"""

from __future__ import annotations

import numpy as np

EPSILON = 0.6219569  # Rd / Rv (MetPy's mpconsts.epsilon)
KELVIN = 273.15


def vapour_pressure_pa(psfc_pa: np.ndarray, mixing_ratio: np.ndarray) -> np.ndarray:
    """Partial pressure of water vapour (Pa) of air at ``psfc_pa`` with mixing ratio ``mixing_ratio`` (kg/kg)."""
    w = np.asarray(mixing_ratio, np.float64)
    return np.asarray(psfc_pa, np.float64) * w / (EPSILON + w)


def saturation_vapour_pressure_pa(t_kelvin: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure over liquid water (Pa), Bolton (1980) eq. 10."""
    t = np.asarray(t_kelvin, np.float64) - KELVIN
    return 611.2 * np.exp(17.67 * t / (t + 243.5))


def specific_humidity(mixing_ratio: np.ndarray) -> np.ndarray:
    """kg of vapour per kg of moist air, from the mixing ratio."""
    w = np.asarray(mixing_ratio, np.float64)
    return w / (1.0 + w)


def relative_humidity_percent(t_kelvin: np.ndarray, mixing_ratio: np.ndarray, psfc_pa: np.ndarray) -> np.ndarray:
    """100 e / es. Not clipped: a value above 100 % says the model air was supersaturated."""
    return 100.0 * vapour_pressure_pa(psfc_pa, mixing_ratio) / saturation_vapour_pressure_pa(t_kelvin)


def vapour_pressure_deficit_kpa(t_kelvin: np.ndarray, mixing_ratio: np.ndarray, psfc_pa: np.ndarray) -> np.ndarray:
    """es - e in kPa (negative where the air is supersaturated)."""
    return (saturation_vapour_pressure_pa(t_kelvin) - vapour_pressure_pa(psfc_pa, mixing_ratio)) / 1000.0
