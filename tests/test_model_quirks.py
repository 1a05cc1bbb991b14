"""The real model's untidiness in the emulator, against formulas written out here from their sources."""

from __future__ import annotations

import numpy as np

from conus404.emulator import model_quirks
from conus404.emulator.synthetic_store import StoreSpec, build_dataset
from conus404.emulator.weather import GridContext


def _dcomputetd(q2: np.ndarray, psfc_pa: np.ndarray) -> np.ndarray:
    """wrf-python's wrf_user.f90 DCOMPUTETD, transcribed: pressure in hPa, the answer in degC."""
    qv = np.maximum(q2.astype(np.float64), 0.0)
    tdc = np.maximum(qv * (psfc_pa / 100.0) / (0.622 + qv), 0.001)
    return (243.5 * np.log(tdc) - 440.8) / (19.48 - np.log(tdc))


def test_dew_point_is_wrfs_post_processing_of_q2_and_psfc():
    rng = np.random.default_rng(3)
    q2 = rng.uniform(-1e-4, 0.03, 500)
    psfc = rng.uniform(6e4, 1.04e5, 500)
    np.testing.assert_allclose(model_quirks.dewpoint_from_mixing_ratio(q2, psfc), _dcomputetd(q2, psfc) + 273.15)
    assert np.isclose(model_quirks.dewpoint_from_mixing_ratio(np.array([-1e-5]), np.array([9e4]))[0], 192.70, atol=0.01)


def test_the_mixing_ratio_of_a_dew_point_comes_back_as_that_dew_point():
    td = np.linspace(230.0, 300.0, 50)
    psfc = np.full(50, 95_000.0)
    back = model_quirks.dewpoint_from_mixing_ratio(model_quirks.mixing_ratio_from_dewpoint(td, psfc), psfc)
    np.testing.assert_allclose(back, td, atol=1e-3)


def test_fog_patches_last_the_day_so_daily_means_are_supersaturated_in_a_few_cells():
    ds = build_dataset(StoreSpec.for_days("2021-01-01", 1, ny=24, nx=32, variables=("T2", "TD2", "Q2", "PSFC")))
    excess = ds["TD2"].values[:24].astype(float).mean(axis=0) - ds["T2"].values[:24].astype(float).mean(axis=0)
    foggy = excess > 0.01
    assert 0 < foggy.sum() < 0.2 * foggy.size
    assert 0.5 < excess.max() <= model_quirks.FOG_EXCESS_K
    # relative humidity above 100 % where it is foggy (Bolton's es of T2, e of the stored Q2 and PSFC)
    t_c = ds["T2"].values.astype(float) - 273.15
    es = 611.2 * np.exp(17.67 * t_c / (t_c + 243.5))
    q2, p = ds["Q2"].values.astype(float), ds["PSFC"].values.astype(float)
    rh = 100 * p * q2 / (0.622 + q2) / es
    assert 100 < rh.max() < 130


def test_without_quirks_the_fields_are_tidy():
    ds = build_dataset(StoreSpec.for_days("2021-01-01", 1, ny=12, nx=16, quirks=False,
                                          variables=("T2", "TD2", "Q2", "SNOW_ACC_NC", "ACRAINLSM", "SWDOWN")))
    assert (ds["TD2"].values <= ds["T2"].values + 1e-3).all()
    assert (ds["Q2"].values >= 0).all() and (ds["SNOW_ACC_NC"].values >= 0).all() and (ds["ACRAINLSM"].values >= 0).all()


def test_quantisation_keeps_the_asked_significant_digits_and_zeros():
    values = np.array([0.0, 1234.5678, 0.00123456, -98.76543, 1361.0], np.float32)
    for digits in (3, 5):
        out = model_quirks.quantised(values, digits)
        assert out[0] == 0.0
        relative = np.abs(out[1:] - values[1:]) / np.abs(values[1:])
        assert (relative <= 0.5 * 10.0 ** (1 - digits)).all()  # half a unit in the last kept digit, at most
        assert not np.array_equal(out, values)
    mantissa = model_quirks.quantised(values, 5).view(np.uint32) & 0x7FFFFF
    kept = int(np.ceil(5 * np.log2(10))) + 1
    assert (mantissa & ((1 << (23 - kept)) - 1) == 0).all()  # the dropped bits are zero


def test_the_pc_store_quantises_exactly_the_variables_the_listing_marks():
    ds = build_dataset(StoreSpec.for_days("2021-07-01", 1, ny=10, nx=12, variables=("SWDOWN", "T2")))
    assert ds["SWDOWN"].attrs["number_of_significant_digits"] == "5" and "number_of_significant_digits" not in ds["T2"].attrs
    tidy = build_dataset(StoreSpec.for_days("2021-07-01", 1, ny=10, nx=12, variables=("SWDOWN", "T2"), quirks=False))
    np.testing.assert_array_equal(ds["T2"].values, tidy["T2"].values)
    np.testing.assert_array_equal(ds["SWDOWN"].values, model_quirks.quantised(tidy["SWDOWN"].values, 5))
    assert not np.array_equal(ds["SWDOWN"].values, tidy["SWDOWN"].values)


def test_tiny_negatives_are_placed_only_where_asked():
    ctx = GridContext(20, 30, seed=1)
    values = np.ones((20, 30))
    where = np.zeros((20, 30), bool)
    where[:, :10] = True
    out = model_quirks.tiny_negatives(ctx, "X", 7, values, 0.5, 1e-6, 1e-5, where=where)
    assert (out[:, 10:] == 1).all() and ((out[:, :10] == 1) | ((out[:, :10] <= -1e-6) & (out[:, :10] >= -1e-5))).all()
    assert (out < 0).sum() > 20


def test_buckets_move_only_at_six_hourly_xtime():
    assert [h for h in range(86_376, 86_376 + 13) if model_quirks.bucket_resets_at(h)] == [86_376, 86_382, 86_388]
