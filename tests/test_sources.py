"""Sources give the same daily files: the Planetary Computer layout through Azurite and HyTEST's
copy on the Open Storage Network (``--source hytest-osn``) through moto's S3 server, read
anonymously as on the real OSN pod; the same store as any Zarr URL with storage options, or as a
local path. Each source's own time axis bounds the range."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import xarray as xr

from conus404.config.settings import HYTEST_OSN_URL, OSN_ENDPOINT_ENV, STORAGE_OPTIONS_ENV
from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import StoreSpec, write_store
from conus404.outputs import daily_file
from tests import conftest

pytestmark = pytest.mark.emulator
DAYS = [dt.date(2021, 1, 1), dt.date(2021, 1, 2)]
OSN_SPEC = StoreSpec.for_days("2021-01-01", 2, layout="hytest", space_chunk=8,
                              variables=("T2", "PREC_ACC_NC", "ACSWDNB"), ny=16, nx=20)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tls_files):
    stack = EmulatorStack(tmp_path_factory.mktemp("emulator"), tls=tls_files, store_cache=conftest.STORE_CACHE).start()
    try:
        grid = {"ny": 16, "nx": 20}
        stack.add_store(StoreSpec.for_days("2021-01-01", 2, variables=("T2", "PREC_ACC_NC", "ACSWDNB", "I_ACSWDNB"), **grid))
        stack.add_osn_store(OSN_SPEC)
        yield stack
    finally:
        stack.stop()


def test_planetary_computer_and_osn_give_the_same_daily_data(stack, tmp_path):
    for source in ("planetary-computer", "hytest-osn"):
        proc = conftest.run_driver(stack, tmp_path / source, DAYS, "T2,PREC_ACC_NC,ACSWDNB", "--source", source)
        assert proc.returncode == 0, proc.stderr[-3000:]
    hytest = xr.open_zarr(HYTEST_OSN_URL, storage_options={
        "anon": True, "client_kwargs": {"endpoint_url": stack.client_env()[OSN_ENDPOINT_ENV]}})
    for day in DAYS:
        pc = xr.open_dataset(daily_file.daily_path(tmp_path / "planetary-computer" / "data", day))
        osn = xr.open_dataset(daily_file.daily_path(tmp_path / "hytest-osn" / "data", day))
        assert osn.attrs["source_href"] == HYTEST_OSN_URL
        for name in ("T2", "PREC_ACC_NC"):
            np.testing.assert_array_equal(pc[name].values, osn[name].values, err_msg=name)
        # Radiation: PC's bucket value + I_AC x 1e9 (exact in float64) against HyTEST's float32
        # since-start total, whose last bit is large (~1e4 J m-2 at 1e11): equal within two of them.
        totals = hytest["ACSWDNB"].sel(time=[np.datetime64(f"{day}T00"), np.datetime64(f"{day + dt.timedelta(days=1)}T00")])
        tolerance = 2 * float(np.spacing(np.float32(np.abs(totals.values).max())))
        np.testing.assert_allclose(pc["ACSWDNB"].values, osn["ACSWDNB"].values, rtol=0, atol=tolerance)
        np.testing.assert_array_equal(pc["lat"].values, osn["lat"].values)


@pytest.fixture(scope="module")
def local_copy(tmp_path_factory):
    """An HPC user's own copy on local disk: the OSN store's spec, written to a path."""
    path = tmp_path_factory.mktemp("local-copy") / "conus404_hourly.zarr"
    write_store(OSN_SPEC, str(path))
    return path


def test_any_zarr_url_with_storage_options_and_a_local_path_give_the_osn_files(stack, local_copy, tmp_path):
    endpoint = stack.client_env()[OSN_ENDPOINT_ENV]
    options = json.dumps({"anon": True, "client_kwargs": {"endpoint_url": endpoint}})
    runs = {
        "hytest-osn": ((), None),
        "url": (("--source", HYTEST_OSN_URL), {STORAGE_OPTIONS_ENV: options, OSN_ENDPOINT_ENV: "https://127.0.0.1:9/"}),
        "local": (("--source", str(local_copy)), None),
    }
    for name, (flags, env) in runs.items():
        flags = flags or ("--source", name)
        proc = conftest.run_driver(stack, tmp_path / name, DAYS, "T2,PREC_ACC_NC,ACSWDNB", *flags, env=env)
        assert proc.returncode == 0, (name, proc.stderr[-3000:])
    for day in DAYS:
        osn = xr.open_dataset(daily_file.daily_path(tmp_path / "hytest-osn" / "data", day))
        for name in ("url", "local"):
            other = xr.open_dataset(daily_file.daily_path(tmp_path / name / "data", day))
            assert other.attrs["conus404_data_sha256"] == osn.attrs["conus404_data_sha256"], (name, day)
            for variable in ("T2", "PREC_ACC_NC", "ACSWDNB", "lat", "lon"):
                xr.testing.assert_identical(osn[variable], other[variable])
        assert xr.open_dataset(daily_file.daily_path(tmp_path / "local" / "data", day)).attrs["source_href"] == str(local_copy)


def test_a_range_past_the_osn_record_is_refused_with_that_record(stack, tmp_path):
    days = [DAYS[0], DAYS[0] + dt.timedelta(days=5)]
    proc = conftest.run_driver(stack, tmp_path, days, "T2", "--source", "hytest-osn")
    assert proc.returncode == 2, proc.stderr[-3000:]
    # the OSN store here holds 2021-01-01T00Z..2021-01-03T00Z, the PC one 2 days too: its own axis decides
    assert "outside the source's record 2021-01-01T00Z..2021-01-03T00Z" in proc.stderr
    assert not (tmp_path / "data" / "logs").exists()
