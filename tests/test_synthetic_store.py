"""The synthetic store generator: real layout, physical invariants, determinism, planted defects."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from conus404.core.reference_metadata import collection_document
from conus404.emulator.synthetic_store import DEFAULT_VARIABLES, Defect, StoreSpec, build_dataset, write_store

SPEC = StoreSpec.for_days("2021-07-01", 2, ny=30, nx=42)


@pytest.fixture(scope="module")
def pc_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("stores") / "pc.zarr"
    write_store(SPEC, str(path))
    return path


@pytest.fixture(scope="module")
def ds(pc_store):
    return xr.open_zarr(pc_store, consolidated=True).load()


def test_layout_matches_the_planetary_computer_store(ds, pc_store):
    assert tuple(ds["T2"].dims) == ("time", "south_north", "west_east")
    assert ds["lat"].dims == ("south_north", "west_east") and ds["lat"].dtype == np.float32
    assert ds["I_ACSWDNB"].dtype == np.int32
    assert ds.sizes["time"] == 49
    zarray = json.loads((pc_store / "T2" / ".zarray").read_text())
    assert zarray["zarr_format"] == 2 and zarray["chunks"] == [1, 30, 42]
    # names, units and descriptions as the real collection's cube:variables publish them
    published = collection_document()["cube:variables"]
    for name in DEFAULT_VARIABLES:
        assert ds[name].attrs["units"] == published[name]["attrs"]["units"], name
        assert ds[name].attrs["description"] == published[name]["attrs"]["description"], name
        if "long_name" in published[name]["attrs"]:
            assert ds[name].attrs["long_name"] == published[name]["attrs"]["long_name"], name


def test_consolidated_metadata_lists_every_array(pc_store):
    meta = json.loads((pc_store / ".zmetadata").read_text())["metadata"]
    arrays = {key.split("/")[0] for key in meta if key.endswith("/.zarray")}
    on_disk = {p.name for p in pc_store.iterdir() if (p / ".zarray").exists()}
    assert arrays == on_disk == set(DEFAULT_VARIABLES) | {"time", "lat", "lon", "lat_u", "lon_u", "lat_v", "lon_v"}


def test_grid_covers_the_published_conus404_extent():
    from conus404.core.grid import grid_latlon

    lat, lon = grid_latlon()  # full 1015 x 1367 grid
    dims = collection_document()["cube:dimensions"]
    np.testing.assert_allclose([lat.min(), lat.max()], dims["lat"]["extent"], atol=2e-3)
    np.testing.assert_allclose([lon.min(), lon.max()], dims["lon"]["extent"], atol=2e-3)


def test_temperatures_are_plausible_and_dew_point_exceeds_temperature_only_in_fog(ds):
    """As WRF's 2-m diagnostics: supersaturated patches (TD2 above T2 by up to ~2.5 K) in a small share of cells."""
    t2, td2 = ds["T2"].values, ds["TD2"].values
    assert 200 < t2.min() and t2.max() < 330
    excess = td2.astype(float) - t2
    assert 0.5 < excess.max() <= 2.6
    assert 0.001 < (excess > 0).mean() < 0.15  # fog, not the whole domain
    assert (t2 - td2).max() > 3  # mostly unsaturated air


def test_t2_has_a_diurnal_cycle_warmest_in_the_local_afternoon(ds):
    # Columns near 100 W: local time = UTC - 6.7 h. Mean T2 at 21Z (~14 local) vs 11Z (~04 local).
    lon = ds["lon"].values
    column = np.abs(lon - (-100.0)) < 3.0
    hours = ds["time"].dt.hour.values
    afternoon = ds["T2"].values[hours == 21][:, column].mean()
    night = ds["T2"].values[hours == 11][:, column].mean()
    assert afternoon - night > 5.0


def test_moisture_and_pressure_are_physical(ds):
    q2, psfc, td2 = ds["Q2"].values, ds["PSFC"].values, ds["TD2"].values.astype(float)
    assert q2.max() < 0.04 and q2.min() >= -5e-5  # WRF's tiny negatives, in a few cells
    assert 0 < (q2 < 0).mean() < 0.01
    assert 5.0e4 < psfc.min() and psfc.max() < 1.1e5  # Pa
    # Q2 is the mixing ratio of the dew point's vapour pressure (Magnus-Tetens form, independent)
    e = 610.78 * np.exp(17.27 * (td2 - 273.15) / (td2 - 35.85))
    wet = q2 > 0
    np.testing.assert_allclose(q2[wet], (0.622 * e / (psfc - e))[wet], rtol=0.02)
    # where Q2 < 0, TD2 is WRF's floor: vapour pressure 0.001 hPa (wrf_user.f90 DCOMPUTETD)
    np.testing.assert_allclose(td2[~wet], 273.15 + 243.5 * np.log(0.001 / 6.112) / (17.67 - np.log(0.001 / 6.112)),
                               atol=1e-3)


def test_prior_hour_accumulations_are_sparse_and_only_tiny_negatives_where_wrf_leaves_them(ds):
    prec = ds["PREC_ACC_NC"].values
    assert (prec >= 0).all()  # clamped every step (module_diag_misc.F)
    assert 0.5 < (prec == 0).mean() < 0.99, "mostly dry, some rain"
    assert prec.max() > 1.0
    snow, rain, t2 = ds["SNOW_ACC_NC"].values, ds["ACRAINLSM"].values, ds["T2"].values
    assert (snow <= prec + 1e-6).all()
    assert (snow < 0).any() and (t2[snow < 0] >= 273.15).all() and snow.min() >= -1e-3  # clamped only below freezing
    assert (rain < 0).any() and rain.min() >= -1e-20  # unclamped: -1e-30..-1e-20 rates


def test_since_start_total_never_decreases(ds):
    acsnom = ds["ACSNOM"].values
    assert (np.diff(acsnom, axis=0) >= 0).all()
    assert (acsnom[-1] > acsnom[0]).any()


def test_bucket_radiation_crosses_a_reset_and_the_true_total_is_monotone(ds):
    ac, count = ds["ACSWDNB"].values.astype(np.float64), ds["I_ACSWDNB"].values
    steps = np.diff(count, axis=0)
    assert set(np.unique(steps)) <= {0, 1}
    assert steps.sum() > 0, "at least one cell resets its bucket"
    # WRF checks the buckets every 6 hours only (MOD(NINT(XTIME), 360) == 0): above 1e9 until then
    hours = ds["time"].dt.hour.values
    assert {int(h) for h in hours[1:][steps.any(axis=(1, 2))]} <= {0, 6, 12, 18}
    assert (0 <= ac).all() and ac.max() > 1.0e9 and ac.max() < 1.0e9 + 6 * 3600 * 1500
    reset = steps == 1
    assert (np.diff(ac, axis=0)[reset] < 0).all(), "AC drops where the counter steps"
    total = ac + count * 1.0e9
    assert (np.diff(total, axis=0) >= -128).all()  # float32 resolution of AC near 1e9 is 64 (128 above) J m-2
    # the daily gain is about the day's shortwave energy: SWDOWN x 3600 s summed over the day
    gain = total[24] - total[0]
    energy = ds["SWDOWN"].values[1:25].astype(np.float64).sum(axis=0) * 3600.0
    np.testing.assert_allclose(gain, energy, rtol=1e-4, atol=200)


def test_equal_specs_give_identical_stores_and_seeds_differ(tmp_path):
    small = StoreSpec(hours=6, ny=8, nx=10, variables=("T2", "PREC_ACC_NC", "ACSWDNB", "I_ACSWDNB"))
    write_store(small, str(tmp_path / "a.zarr"))
    write_store(small, str(tmp_path / "b.zarr"))
    a, b = xr.open_zarr(tmp_path / "a.zarr").load(), xr.open_zarr(tmp_path / "b.zarr").load()
    xr.testing.assert_identical(a, b)
    other = build_dataset(StoreSpec(hours=6, ny=8, nx=10, variables=("T2",), seed=5))
    assert not np.array_equal(other["T2"].values, a["T2"].values)


def test_hytest_layout_renames_dims_rechunks_and_keeps_the_same_values(tmp_path):
    names = ("T2", "PREC_ACC_NC", "ACSWDNB")
    pc = build_dataset(StoreSpec(hours=30, ny=20, nx=24, variables=names + ("I_ACSWDNB",)))
    spec = StoreSpec(hours=30, ny=20, nx=24, variables=names, layout="hytest", space_chunk=8)
    write_store(spec, str(tmp_path / "hytest.zarr"))
    hy = xr.open_zarr(tmp_path / "hytest.zarr")
    assert hy["T2"].dims == ("time", "y", "x")
    np.testing.assert_array_equal(hy["time"].values, pc["time"].values)  # from float32 minutes, as WRF's XTIME
    assert hy["T2"].encoding["chunks"] == (144, 8, 8)
    assert hy["crs"].attrs["grid_mapping_name"] == "lambert_conformal_conic"
    assert hy["T2"].attrs["grid_mapping"] == "crs"
    assert "I_ACSWDNB" not in hy
    np.testing.assert_array_equal(hy["T2"].values, pc["T2"].values)
    np.testing.assert_array_equal(hy["PREC_ACC_NC"].values, pc["PREC_ACC_NC"].values)
    # HyTEST stores radiation as the since-start total AC + I_AC x 1e9 (in float32)
    total = pc["ACSWDNB"].values.astype(np.float64) + pc["I_ACSWDNB"].values * 1.0e9
    np.testing.assert_allclose(hy["ACSWDNB"].values, total, rtol=1e-7)


def test_planted_defects_appear_exactly_where_asked():
    spec = StoreSpec(
        start="2021-01-01T00", hours=10, ny=12, nx=14, variables=("T2", "PREC_ACC_NC"),
        defects=(
            Defect("missing_hour", "2021-01-01T03"),
            Defect("nan", "2021-01-01T05", "T2", fraction=0.3),
            Defect("negative", "2021-01-01T07"),
        ),
    )
    ds = build_dataset(spec)
    hours = list(ds["time"].dt.hour.values)
    assert hours == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    nan_share = np.isnan(ds["T2"].values).mean(axis=(1, 2))
    assert 0.15 < nan_share[hours.index(5)] < 0.45
    assert nan_share[[i for i, h in enumerate(hours) if h != 5]].max() == 0
    negative = (ds["PREC_ACC_NC"].values < 0).sum(axis=(1, 2))
    assert negative[hours.index(7)] == 1 and negative.sum() == 1


def test_unknown_or_unsupported_variables_are_refused():
    with pytest.raises(ValueError, match="NOT_A_VAR"):
        build_dataset(StoreSpec(variables=("T2", "NOT_A_VAR")))
    with pytest.raises(ValueError, match="SWDOWN"):  # HyTEST's hourly store has no SWDOWN
        build_dataset(StoreSpec(variables=("SWDOWN",), layout="hytest"))


def test_three_d_variable_has_levels():
    ds = build_dataset(StoreSpec(hours=2, ny=6, nx=7, variables=("T2", "TK"), levels=5))
    assert ds["TK"].dims == ("time", "bottom_top", "south_north", "west_east")
    assert ds["TK"].shape == (2, 5, 6, 7)
    assert (np.diff(ds["TK"].values, axis=1) < 0).all(), "temperature falls with height"


def test_a_store_without_the_closing_record_ends_at_23z_like_the_planetary_computers():
    ds = build_dataset(StoreSpec.for_days("2022-09-29", 2, closing_record=False, ny=6, nx=7, variables=("T2",)))
    assert str(ds["time"].values[-1])[:13] == "2022-09-30T23"
