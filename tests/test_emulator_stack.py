"""Integration: the unchanged production path against the emulator (Azurite over HTTPS + STAC/SAS)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest
import xarray as xr
from azure.core.exceptions import HttpResponseError

from conus404.core.exceptions import AuthenticationError
from conus404.emulator.synthetic_store import build_dataset
from conus404.sources import source
from tests.conftest import processes_mentioning

pytestmark = pytest.mark.emulator
SRC = Path(__file__).resolve().parents[1] / "src"


def _signed_collection(stack):
    """The PC recipe verbatim: pystac-client with the SDK's sign_inplace modifier."""
    import planetary_computer
    import pystac_client

    source.use_sas_endpoint(stack.service.sas_url)
    catalog = pystac_client.Client.open(stack.service.stac_url, modifier=planetary_computer.sign_inplace)
    return catalog.get_collection("conus404")


def test_pc_recipe_reads_back_exactly_what_the_generator_wrote(emulator, fresh_sdk):
    asset = _signed_collection(emulator).assets["zarr-abfs"]
    options = asset.extra_fields["xarray:storage_options"]
    assert options["account_name"] == "azureopendatastorage"
    assert options["credential"], "the SDK put a SAS token into the storage options"

    ds = xr.open_zarr(asset.href, storage_options=options, **asset.extra_fields["xarray:open_kwargs"])

    expected = build_dataset(emulator.stores["conus404"])
    assert set(ds.data_vars) == set(expected.data_vars)
    assert ds.sizes == expected.sizes
    np.testing.assert_array_equal(ds["time"].values, expected["time"].values)
    np.testing.assert_array_equal(ds["lat"].values, expected["lat"].values)
    for name in expected.data_vars:
        np.testing.assert_array_equal(ds[name].values, expected[name].values, err_msg=name)
        assert ds[name].attrs == expected[name].attrs


def test_project_source_module_signs_once_and_reports_expiry(emulator, fresh_sdk):
    before = emulator.service.requests["token"]
    asset = source.sign_collection_asset(emulator.service.stac_url, "conus404", "zarr-abfs", emulator.service.sas_url)
    assert emulator.service.requests["token"] == before + 1
    assert 3500 < asset.seconds_left() <= 3600
    assert "credential" not in repr(asset) and asset.storage_options["credential"] not in repr(asset)
    assert asset.redacted_options()["credential"] == "<redacted>"
    ds = source.open_dataset(asset)
    assert float(ds["T2"].isel(time=0).mean()) > 200.0


def test_token_is_a_read_list_container_sas(emulator):
    with urllib.request.urlopen(f"{emulator.service.sas_url}/azureopendatastorage/noaa") as response:
        body = json.load(response)
    query = parse_qs(body["token"])
    assert query["sp"] == ["rl"] and query["sr"] == ["c"] and "sig" in query
    expiry = dt.datetime.fromisoformat(body["msft:expiry"].replace("Z", "+00:00"))
    assert abs((expiry - dt.datetime.now(dt.UTC)).total_seconds() - 3600) < 60


def _tampered(asset: source.SignedAsset, **changes) -> source.SignedAsset:
    options = {k: v for k, v in asset.storage_options.items() if k != "credential"}
    options.update(changes)
    return source.SignedAsset(asset.href, options, asset.open_kwargs)


def test_wrong_token_is_refused_by_azurite_as_403(emulator, fresh_sdk):
    asset = source.sign_collection_asset(emulator.service.stac_url, "conus404", "zarr-abfs", emulator.service.sas_url)
    token = asset.storage_options["credential"]
    forged = token.replace("sig=", "sig=AAAA", 1)
    # Straight through xarray + adlfs: Azurite's 403, not an empty dataset.
    with pytest.raises(HttpResponseError) as raw:
        xr.open_zarr(asset.href, storage_options={**asset.storage_options, "credential": forged}, consolidated=True)
    assert raw.value.status_code == 403
    # Through the project's opener: a named authentication error.
    with pytest.raises(AuthenticationError) as err:
        source.open_dataset(_tampered(asset, credential=forged))
    assert err.value.status_code == 403
    assert forged not in str(err.value) and token not in str(err.value)


def test_missing_token_is_refused_not_empty(emulator, fresh_sdk):
    asset = source.sign_collection_asset(emulator.service.stac_url, "conus404", "zarr-abfs", emulator.service.sas_url)
    with pytest.raises(AuthenticationError) as err:
        source.open_dataset(_tampered(asset, anon=True))
    assert err.value.status_code == 403


def test_expired_token_is_refused(emulator, fresh_sdk):
    service = emulator.service
    service.token_lifetime = dt.timedelta(seconds=2)
    try:
        asset = source.sign_collection_asset(service.stac_url, "conus404", "zarr-abfs", service.sas_url)
        assert asset.seconds_left() <= 2
        time.sleep(3.5)
        with pytest.raises(AuthenticationError):
            source.open_dataset(asset)
    finally:
        service.token_lifetime = dt.timedelta(hours=1)


def test_unknown_container_gets_no_token(emulator):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{emulator.service.sas_url}/azureopendatastorage/not-a-container")
    assert err.value.code == 404


def test_stack_stop_ends_azurite(tmp_path, tls_files):
    from conus404.emulator.stack import EmulatorStack

    stack = EmulatorStack(tmp_path, tls=tls_files).start()
    pid = stack.azurite.process.pid
    os.kill(pid, 0)  # alive
    stack.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_serve_prints_settings_and_stops_cleanly_on_ctrl_c(tmp_path):
    env_file = tmp_path / "emulator.env"
    workdir = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conus404.emulator", "serve", "--days", "1", "--grid", "8x10",
         "--workdir", str(workdir), "--env-file", str(env_file)],
        cwd=SRC, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not env_file.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the emulator did not become ready in 120 s"
            time.sleep(0.2)
        settings = dict(
            line.removeprefix("export ").replace("'", "").split("=", 1) for line in env_file.read_text().splitlines()
        )
        assert set(settings) == {"CONUS404_STAC_URL", "PC_SDK_SAS_URL", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"}
        with urllib.request.urlopen(settings["CONUS404_STAC_URL"]) as response:
            assert json.load(response)["type"] == "Catalog"
        assert processes_mentioning(str(workdir)), "Azurite runs with its data in the workdir"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C in a terminal sends
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    assert "CONUS404_STAC_URL" in out and "stopping" in out
    assert not env_file.exists(), "the settings file is removed when the emulator stops"
    assert processes_mentioning(str(workdir)) == [], "Azurite outlived the emulator"


def test_catalogue_and_token_faults_are_retried_with_backoff(emulator, fresh_sdk):
    service = emulator.service
    service.stac_unavailable_first = 2  # the landing page and the collection each meet a 503 first
    service.token_throttle_first = 2  # and the token request two 429s with Retry-After: 1
    before = dict(service.requests)
    started = time.monotonic()
    asset = source.sign_collection_asset(service.stac_url, "conus404", "zarr-abfs", service.sas_url)
    elapsed = time.monotonic() - started
    assert asset.storage_options["credential"]
    assert service.requests["stac_unavailable"] - before.get("stac_unavailable", 0) == 2
    assert service.requests["token_throttled"] - before.get("token_throttled", 0) == 2
    assert elapsed >= 2.0, "the two Retry-After: 1 answers were honoured"


def test_a_store_served_again_is_not_regenerated_and_another_spec_is(tmp_path, tls_files):
    """The test session's stacks keep generated stores by spec: serving one again neither writes nor
    uploads it, and a store of another spec at the same place is generated and replaces it."""
    from conus404.emulator.stack import EmulatorStack
    from conus404.emulator.synthetic_store import StoreSpec

    cache = tmp_path / "stores"
    first = StoreSpec.for_days("2021-01-01", 1, ny=4, nx=5, variables=("T2",))
    other = StoreSpec.for_days("2021-01-01", 1, ny=4, nx=5, variables=("T2",), fill_value="null")
    zarray = "conus404.zarr/T2/.zarray"
    with EmulatorStack(tmp_path / "work", tls=tls_files, store_cache=cache) as stack:
        stack.add_store(first)
        (generated,) = cache.iterdir()
        container = stack.blob_service().get_container_client("noaa")
        stamp = container.get_blob_client(zarray).get_blob_properties().last_modified
        time.sleep(1.1)  # blob times have one-second resolution
        stack.add_store(first)
        assert container.get_blob_client(zarray).get_blob_properties().last_modified == stamp
        assert list(cache.iterdir()) == [generated]
        stack.add_store(other)
        assert len(list(cache.iterdir())) == 2
        served = json.loads(container.download_blob(zarray).readall())["fill_value"]
        assert served != json.loads((generated / "T2" / ".zarray").read_text())["fill_value"]
    with EmulatorStack(tmp_path / "again", tls=tls_files, store_cache=cache) as stack:  # a later stack: only uploads
        before = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
        stack.add_store(first)
        assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == before
        container = stack.blob_service().get_container_client("noaa")
        assert container.download_blob(zarray).readall() == (generated / "T2" / ".zarray").read_bytes()
