"""Derived variables (conus404.day.derived, humidity, winds, reference_et) against references written
here or published: MetPy-style moist-air formulas at fixed points, pyproj's meridian convergence and
projected north, FAO-56 worked examples, and an ASCE hourly Penman-Monteith written out below."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyproj import Proj, Transformer

from conus404.core import grid
from conus404.day import derived
from conus404.day.formulas import humidity, reference_et, winds
from tests import references
from tests.references import asce_day, etsz, ra_hourly


# -- humidity ---------------------------------------------------------------------------------
def test_saturation_vapour_pressure_is_boltons_and_agrees_with_asces_tetens_fit():
    t_c = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    es = humidity.saturation_vapour_pressure_pa(t_c + 273.15)
    assert es[0] == pytest.approx(611.2, abs=1e-9)  # Bolton's constant: es(0 degC) = 6.112 hPa
    tetens = 610.8 * np.exp(17.27 * t_c / (t_c + 237.3))  # ASCE-EWRI 2005 eq. 7, an independent fit
    np.testing.assert_allclose(es, tetens, rtol=3e-3)


@pytest.mark.parametrize("t_k, w, p_pa", [(293.15, 0.010, 100_000.0), (303.15, 0.018, 101_325.0),
                                          (260.0, 0.001, 70_000.0), (310.0, 0.004, 85_000.0)])
def test_humidity_at_fixed_points_against_metpy_style_formulas(t_k, w, p_pa):
    e = references.vapour_pressure(p_pa, w)
    es = float(references.saturation_vapour_pressure(t_k))
    assert humidity.relative_humidity_percent(t_k, w, p_pa) == pytest.approx(100 * e / es, rel=1e-6)
    assert humidity.vapour_pressure_deficit_kpa(t_k, w, p_pa) == pytest.approx((es - e) / 1000, rel=1e-6, abs=1e-9)
    assert humidity.specific_humidity(w) == pytest.approx(w / (1 + w), rel=1e-12)


def test_saturated_air_has_relative_humidity_100_and_no_deficit():
    t_k, p_pa = 288.15, 95_000.0
    es = humidity.saturation_vapour_pressure_pa(t_k)
    w_saturated = humidity.EPSILON * es / (p_pa - es)
    assert humidity.relative_humidity_percent(t_k, w_saturated, p_pa) == pytest.approx(100.0, rel=1e-9)
    assert humidity.vapour_pressure_deficit_kpa(t_k, w_saturated, p_pa) == pytest.approx(0.0, abs=1e-9)


# -- winds ------------------------------------------------------------------------------------
CELLS = [(40.0, -80.0), (40.0, -120.0), (25.0, -97.9), (48.0, -70.0), (33.0, -117.0), (47.5, -122.3)]


def test_convergence_angle_is_pyprojs_meridian_convergence():
    lcc = Proj(grid.crs_attributes()["proj4"])
    for lat, lon in CELLS:
        expected = lcc.get_factors(lon, lat).meridian_convergence
        assert math.degrees(float(winds.convergence_angle(lon))) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("lat, lon", CELLS)
def test_a_wind_along_true_north_and_east_comes_out_earth_relative(lat, lon):
    """The grid components of true north and east, found by projecting a step along each with pyproj."""
    to_xy = Transformer.from_crs("EPSG:4326", grid.crs_attributes()["proj4"], always_xy=True)
    x0, y0 = to_xy.transform(lon, lat)
    for step, expected in (((0.0, 1e-4), (0.0, 5.0)), ((1e-4, 0.0), (5.0, 0.0))):  # north, then east
        x1, y1 = to_xy.transform(lon + step[0], lat + step[1])
        dx, dy = x1 - x0, y1 - y0
        norm = math.hypot(dx, dy)
        u, v = 5.0 * dx / norm, 5.0 * dy / norm  # a 5 m/s wind along that direction, in grid components
        east, north = winds.earth_relative(np.array(u), np.array(v), np.array(lon))
        assert (float(east), float(north)) == pytest.approx(expected, abs=1e-4)


def test_direction_is_where_the_wind_blows_from():
    east = np.array([0.0, -3.0, 0.0, 3.0, 0.0, -1.0])
    north = np.array([-2.0, 0.0, 2.0, 0.0, 0.0, -1.0])
    np.testing.assert_allclose(winds.direction_from(east, north), [360.0, 90.0, 180.0, 270.0, 0.0, 45.0], atol=1e-9)


def test_two_metre_wind_follows_fao56_example_14():
    # FAO-56 Example 14: 3.2 m/s measured at 10 m is 2.4 m/s at 2 m (factor 0.748 of Table 2.9 / eq. 47)
    assert float(winds.wind_at_2m(3.2)) == pytest.approx(2.4, abs=0.05)  # to its printed precision
    assert float(winds.wind_at_2m(1.0)) == pytest.approx(0.748, abs=0.0005)


# -- reference ET: FAO-56 Example 19 (N'Diaye, Senegal, 1 October) ---------------------------
NDIAYE = {"lat": 16 + 13 / 60, "lon": -(16 + 15 / 60), "elev": 8.0}
# Local clock time there is 1 h behind UTC (the example's Lz = 15 deg W): 14:00-15:00 is 15-16 UTC.
AFTERNOON = pd.Timestamp("2021-10-01T15:30")
NIGHT = pd.Timestamp("2021-10-01T03:30")


def test_the_etsz_formula_here_reproduces_fao56_example_19():
    # The example's printed intermediates: 14-15 h and 02-03 h; FAO's hourly ETo uses Cd = 0.34 day and night.
    assert etsz(0.358, 1.749, 0.175, 0.0673, 38, 3.3, 6.625, 3.445, 37, 0.34) == pytest.approx(0.63, abs=0.005)
    assert etsz(0.220, -0.100, -0.050, 0.0673, 28, 1.9, 3.780, 3.402, 37, 0.34) == pytest.approx(0.0, abs=0.005)


def test_hourly_eto_of_fao56_example_19_by_the_asce_standardized_form():
    """The example's inputs through the pipeline's ETO; expected: eq. 1 with the printed intermediates
    and ASCE's Cd (0.24 by day, 0.96 by night). The night uses Rs/Rso = 0.8 from before sunset, as the
    example does: an hour at 16-17 h local with that ratio precedes it."""
    late = pd.Timestamp("2021-10-01T17:30")
    rso_late = ra_hourly(NDIAYE["lat"], NDIAYE["lon"], 274, 17.5) * (0.75 + 2e-5 * NDIAYE["elev"])
    hours = [AFTERNOON, late, NIGHT + pd.Timedelta(days=1)]
    out = reference_et.hourly_reference_et(
        "short", hours, tmean_c=np.array([38.0, 36.0, 28.0]), ea_kpa=np.array([3.445, 3.445, 3.402]),
        rs_mj=np.array([2.450, 0.8 * rso_late, 0.0]), wind_speed=np.array([3.3, 3.0, 1.9]), wind_height_m=2.0,
        elev_m=np.array(NDIAYE["elev"]), lat=np.array(NDIAYE["lat"]), lon=np.array(NDIAYE["lon"]),
    )
    assert float(out[0]) == pytest.approx(etsz(0.358, 1.749, 0.175, 0.0673, 38, 3.3, 6.625, 3.445, 37, 0.24), abs=0.005)
    assert float(out[2]) == pytest.approx(etsz(0.220, -0.100, -0.050, 0.0673, 28, 1.9, 3.780, 3.402, 37, 0.96), abs=0.005)
    assert ra_hourly(NDIAYE["lat"], NDIAYE["lon"], 274, 15.5) == pytest.approx(3.543, abs=0.001)  # the printed Ra


def test_elevation_from_pressure_inverts_asce_eq_3():
    for z in (0.0, 8.0, 1208.5, 3000.0):
        p = 101.3 * ((293 - 0.0065 * z) / 293) ** 5.26
        assert float(reference_et.elevation_from_pressure(p)) == pytest.approx(z, abs=1e-6)


@pytest.mark.parametrize("surface", ["short", "tall"])
def test_a_day_of_hourly_reference_et_matches_the_asce_steps_written_here(surface):
    """24 hours of a summer day in Colorado (00Z..23Z), with cloud late in the local afternoon."""
    hours = [pd.Timestamp("2021-07-01") + pd.Timedelta(hours=h) for h in range(24)]
    lat, lon, elev = 40.4, -104.7, 1430.0
    local = np.array([(h - 7) % 24 for h in range(24)])  # MST
    t_c = 22 + 9 * np.sin((local - 9) / 24 * 2 * np.pi)
    ea = np.full(24, 1.2) + 0.1 * np.cos(local / 24 * 2 * np.pi)
    rso = np.array([(0.75 + 2e-5 * elev) * ra_hourly(lat, lon, 182, h) for h in range(24)])
    cloud = np.where((local >= 15) & (local <= 18), 0.5, 0.95)
    rs = rso * cloud
    u2 = 1.5 + np.abs(np.sin(local / 6))
    got = reference_et.hourly_reference_et(surface, hours, t_c, ea, rs, u2, 2.0, np.array(elev), np.array(lat),
                                           np.array(lon))
    expected = asce_day(surface, hours, t_c, ea, rs, u2, elev, lat, lon)
    np.testing.assert_allclose(got, expected, atol=0.002)
    assert got.sum() == pytest.approx(expected.sum(), abs=0.01)
    assert got.sum() > 4.0  # a real summer day's reference ET, not a degenerate zero


# -- the catalogue ----------------------------------------------------------------------------
def test_every_derived_variable_names_its_inputs_units_and_formula():
    for name, spec in derived.DERIVED.items():
        assert spec.name == name and spec.inputs and spec.units and spec.formula
        assert spec.default_statistic in ("mean", "sum")


def test_daily_direction_is_the_mean_vector_not_the_mean_angle():
    # winds from 350 and 10 degrees average to from the north (360), not from the south (180)
    lon = np.array([[grid.STAND_LON]])  # no rotation on the central meridian
    speed = 4.0
    to_uv = [(-speed * math.sin(math.radians(d)), -speed * math.cos(math.radians(d))) for d in (350.0, 10.0)]
    records = {"U10": np.array([[[u]] for u, _ in to_uv], np.float32), "V10": np.array([[[v]] for _, v in to_uv], np.float32)}
    ctx = derived.HourContext(np.array([[40.0]]), lon, [pd.Timestamp("2021-01-01T00"), pd.Timestamp("2021-01-01T01")])
    spec = derived.DERIVED["WDIR10"]
    hourly = derived.hourly_values(spec, records, ctx)
    np.testing.assert_allclose(hourly[:, 0, 0], [350.0, 10.0], atol=1e-4)
    assert float(derived.daily_value(spec, hourly, records, ctx)[0, 0]) == pytest.approx(360.0, abs=1e-3)
