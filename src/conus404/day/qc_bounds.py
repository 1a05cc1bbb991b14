"""The bounds the checks hold each variable to, in the source's units, each with where it comes from.

Two bounds per variable, never confused (see :mod:`conus404.day.validation`):
  possible  outside it the value cannot come from the model: broken data or wrong units -> refused
  usual     outside it (but possible) the model can produce it, a person would not expect it -> flagged
A flagged day is published unchanged and says what was flagged; ``--strict-qc`` refuses it instead.

The model's own quirks set several "possible" bounds on purpose wider than the weather: WRF leaves
tiny negative humidities and amounts (``NEGATIVE_*`` below) and supersaturated 2-m air, and fills
sea-surface temperatures with 0 over land. docs/REAL_STORE.md lists the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bounds:
    units: str
    possible: tuple[float, float]  # outside: refused
    usual: tuple[float, float]  # outside (inside possible): flagged
    source: str  # where both numbers come from
    zero_is_absent: bool = False  # exact 0 marks a cell the field does not describe (SST over land)


# Tolerances for values WRF leaves slightly negative (flagged down to here, refused beyond).
NEGATIVE_Q2 = -1.0e-3  # kg kg-1: the size of a dry winter Q2; how negative CONUS404's Q2 gets is not published
NEGATIVE_AMOUNT_MM = -0.1  # mm per hour: below the 0.1 mm a rain gauge resolves (WMO-No. 8, part I, 6.2)

_AIR = ("possible: beyond Earth's recorded extremes, -89.2 C (Vostok 1983) and 56.7 C (Death Valley 1913), "
        "WMO Weather and Climate Extremes Archive; usual: North America's, -63.0 C (Snag, Yukon, 1947) and 56.7 C")
_SKIN = ("possible: satellite land-surface temperature records, 80.8 C (Lut and Sonoran deserts) and -110.9 C "
         "(Antarctica), Zhao et al. 2021, BAMS 102(9); usual: up to MODIS's 70.7 C (Mildrexler et al. 2011, "
         "BAMS 92(7)) and the air's North American low; Noah-MP clamps none of TSK/TG/TV/TRAD (module_sf_noahmplsm.F)")
_SEA = ("0 over land: WPS fills SST with 0 where the forcing has none (METGRID.TBL fill_missing=0; ERA5's land "
        "fill, wrf-model/WRF#1637) and SSTSK is computed only where XLAND >= 1.5 (module_sf_sstskin.F line 70); "
        "possible: real.exe's own 150..400 K (module_initialize_real.F); usual: the 250..350 K sst_update "
        "accepts (module_surface_driver.F)")
_AMOUNT = ("possible: down to the tiny negatives WRF leaves (SNOW_ACC_NC clamped only below freezing, "
           "module_diag_misc.F; ACRAINLSM unclamped; -1e-30..-1e-20 rain rates, ESCOMP/CTSM#1178) and up to 500 mm "
           "in an hour; usual: 0 up to the world's 1-hour record, 305 mm (Holt, Missouri, 1947; WMO archive)")

HOURLY: dict[str, Bounds] = {
    **{name: Bounds("K", (170.0, 340.0), (210.0, 330.0), _AIR) for name in ("T2",)},
    "TH2": Bounds("K", (170.0, 400.0), (210.0, 365.0),
                  "T2's bounds raised by (1000 hPa / PSFC)^0.286 for the highest terrain (about 1.15 at 600 hPa)"),
    "TD2": Bounds("K", (190.0, 340.0), (192.0, 309.0),
                  "WRF's post-processing floors the vapour pressure at 0.001 hPa, so TD2 >= 192.7 K (wrf_user.f90 "
                  "DCOMPUTETD); usual: up to the world's highest dew point, 35 C (Dhahran, 2003)"),
    **{name: Bounds("K", (160.0, 360.0), (210.0, 344.0), _SKIN) for name in ("TSK", "TG", "TV", "TRAD")},
    **{name: Bounds("K", (150.0, 400.0), (250.0, 350.0), _SEA, zero_is_absent=True) for name in ("SST", "SSTSK")},
    "Q2": Bounds("kg kg-1", (NEGATIVE_Q2, 0.06), (0.0, 0.037),
                 "possible: WRF 3.9.1.1 diagnoses Q2 as QSFC minus a flux term with no lower bound "
                 "(module_surface_driver.F; Noah-MP Q2V/Q2B), 'Sometimes qv (from WRF) is negative' (HyTEST "
                 "conus404_maths.py), down to NEGATIVE_Q2; usual: up to saturation at the 35 C dew-point record"),
    "PSFC": Bounds("Pa", (40_000.0, 110_000.0), (50_000.0, 108_600.0),
                   "usual: the highest sea-level pressure recorded, 1,086 hPa (Tosontsengel, 2001; WMO archive), and "
                   "about 500 hPa at the top of the domain's 4-km terrain; possible: 400..1,100 hPa"),
    **{name: Bounds("m s-1", (-110.0, 110.0), (-80.0, 80.0),
                    "possible: beyond the 113 m/s gust record (Barrow Island, 1996; WMO archive); usual: the strongest "
                    "sustained hurricane winds, about 95 m/s (Patricia, 2015), as components")
       for name in ("U10", "V10", "U10E", "V10E")},
    "WSPD10": Bounds("m s-1", (0.0, 160.0), (0.0, 100.0), "the wind components' bounds, as a speed"),
    "WSPD2": Bounds("m s-1", (0.0, 120.0), (0.0, 75.0), "WSPD10's bounds times FAO-56's 10 m -> 2 m factor (0.75)"),
    "SWDOWN": Bounds("W m-2", (0.0, 1500.0), (0.0, 1413.0),
                     "usual: the solar constant at perihelion, 1,361 W m-2 x 1.034 (Kopp and Lean 2011), which the "
                     "model's clear-sky flux cannot exceed; possible: with the NCO quantisation and a margin"),
    "GLW": Bounds("W m-2", (0.0, 900.0), (40.0, 650.0),
                  "usual: sigma T^4 of a 160 K to a 330 K sky; possible: of a 355 K one"),
    "COSZEN": Bounds("dimensionless", (-1.0, 1.0), (-1.0, 1.0), "a cosine"),
    "PBLH": Bounds("m", (0.0, 30_000.0), (0.0, 6_000.0),
                   "possible: YSU bounds the PBL height only by the model's top level (module_bl_ysu.F, hpbl), "
                   "below 21 km at WRF's default 50 hPa top; usual: desert convective boundary layers reach ~5-6 km"),
    "SNOW": Bounds("kg m-2", (NEGATIVE_AMOUNT_MM, 100_000.0), (0.0, 2_000.0),
                   "usual: Noah-MP caps snow water at 2,000 mm (module_sf_noahmplsm.F SNOWWATER; "
                   "module_sf_noahmpdrv.F 'cap SWE at 2000mm'); possible: a wrong unit (grams) is refused"),
    "SNOWH": Bounds("m", (0.0, 200.0), (0.0, 40.0), "SNOW's 2,000 mm cap at a fresh-snow density of 50 kg m-3"),
    "LAI": Bounds("m-2/m-2", (0.0, 20.0), (0.0, 10.0),
                  "usual: the 0..10 valid range of the MODIS LAI product (MOD15A2H user guide); Noah-MP's tables "
                  "reach 4.7 (MPTABLE.TBL), dynamic vegetation has no cap (module_sf_noahmplsm.F); possible: twice it"),
    **{name: Bounds("mm", (NEGATIVE_AMOUNT_MM, 500.0), (0.0, 305.0), _AMOUNT)
       for name in ("PREC_ACC_NC", "SNOW_ACC_NC", "GRAUPEL_ACC_NC", "ACRAINLSM", "ACSNOWLSM")},
    "RAINNCV": Bounds("mm", (NEGATIVE_AMOUNT_MM, 50.0), (0.0, 10.0), "a 20-s model step's share of PREC_ACC_NC's"),
    # derived (conus404.day.derived), each hour's value
    "RH2": Bounds("%", (-5.0, 400.0), (0.0, 130.0),
                  "usual: WRF users report 2-m RH up to about 120 % (wrf-users, 2012, message 002546): T2 and Q2 are "
                  "diagnosed apart (module_surface_driver.F); possible: Q2's negative tolerance and TD2 - T2 up to "
                  "MAX_DEW_POINT_EXCESS_K"),
    "SH2": Bounds("kg kg-1", (NEGATIVE_Q2, 0.06), (0.0, 0.037), "Q2's bounds (Q2 / (1 + Q2))"),
    "VPD2": Bounds("kPa", (-10.0, 15.0), (-1.0, 10.0),
                   "usual: saturation deficit at 56.7 C, and supersaturation as RH2's; possible: RH2's, in kPa"),
    "WDIR10": Bounds("degree", (0.0, 360.0), (0.0, 360.0), "a direction"),
    "ETO": Bounds("mm", (-1.0, 5.0), (-0.5, 3.0),
                  "per hour; dew makes night-time values slightly negative; ASCE-EWRI 2005's hourly values stay below ~1.5"),
    "ETR": Bounds("mm", (-1.0, 7.0), (-0.5, 4.0), "per hour, as ETO with the tall reference's larger resistance"),
}

# Daily values whose plausible range is not the hourly one (sums of hourly amounts).
DAILY: dict[str, Bounds] = {
    "ETO": Bounds("mm", (-5.0, 40.0), (-1.0, 20.0), "ASCE-EWRI 2005 daily reference ET stays below ~15 mm"),
    "ETR": Bounds("mm", (-5.0, 60.0), (-1.0, 25.0), "as ETO, tall reference"),
}
DAILY_AMOUNT_USUAL_MM = 1_825.0  # the world's 24-hour rainfall record (Foc-Foc, La Reunion, 1966; WMO archive)

# TD2 above T2 (supersaturated 2-m air): flagged, or refused beyond this. T2 and Q2 are diagnosed apart and
# Q2 comes from the surface's saturation humidity (module_surface_driver.F: Q2 = QSFC - flux term), so TD2
# follows the surface's temperature, not the air's; our bound is twice the 13 K water-air contrast of
# lake-effect snow (Holroyd 1971), as no CONUS404 figure is published.
MAX_DEW_POINT_EXCESS_K = 30.0
DEW_POINT_ROUNDING_K = 0.01  # below this TD2 above T2 is float rounding, not supersaturation

# Daily differences of running totals that cannot be negative (melt, radiation energy): beyond rounding, refused.
NON_NEGATIVE_TOTALS = {"ACSNOM"} | {
    f"AC{band}{d}{lvl}{c}" for band in ("SW", "LW") for d in ("DN", "UP") for lvl in ("B", "T") for c in ("", "C")
}
# ~1,736 W m-2 all day: above the solar constant (1,361 W m-2) and sigma T^4 of a 420 K surface
MAX_DAILY_RADIATION_J = 1.5e8


def hourly(name: str) -> Bounds | None:
    return HOURLY.get(name)


def daily(name: str) -> Bounds | None:
    return DAILY.get(name) or HOURLY.get(name)
