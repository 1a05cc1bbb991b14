"""The STAC + SAS service alone (no Azurite): documents pystac-client accepts, real SAS tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error
import urllib.request
from urllib.parse import parse_qs

import pystac_client
import pytest

from conus404.core.reference_metadata import collection_document
from conus404.emulator.stac_service import ServedCollection, StacSasService, StorageAccount

ACCOUNT = StorageAccount("azureopendatastorage", base64.b64encode(b"k" * 64).decode(), "127.0.0.1:1/azureopendatastorage")


@pytest.fixture
def service():
    served = ServedCollection("conus404", ACCOUNT, "noaa", "conus404.zarr", ("2021-01-01T00:00:00", "2021-01-03T00:00:00"), (24, 32))
    svc = StacSasService({"conus404": served}, token_lifetime=dt.timedelta(minutes=45)).start()
    yield svc
    svc.stop()


def _get(url: str):
    with urllib.request.urlopen(url) as response:
        return json.load(response)


def test_pystac_client_opens_the_catalogue_and_collection(service):
    client = pystac_client.Client.open(service.stac_url)
    collection = client.get_collection("conus404")
    asset = collection.assets["zarr-abfs"]
    assert asset.href == "az://noaa/conus404.zarr"
    assert asset.extra_fields["xarray:storage_options"] == {
        "account_name": "azureopendatastorage", "account_host": ACCOUNT.host,
    }
    assert asset.extra_fields["xarray:open_kwargs"] == {"consolidated": True}
    assert collection.extent.temporal.intervals[0][0] == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)


def test_collection_keeps_the_real_variable_metadata(service):
    served = _get(f"{service.stac_url}/collections/conus404")
    real = collection_document()
    assert served["cube:variables"] == real["cube:variables"]
    assert served["cube:dimensions"]["west_east"]["extent"] == [0, 31]
    assert served["assets"]["zarr-abfs"]["xarray:storage_options"]["account_host"] == ACCOUNT.host
    assert "xarray:storage_options" in real["assets"]["zarr-abfs"]
    assert "account_host" not in real["assets"]["zarr-abfs"]["xarray:storage_options"]


def test_token_has_pc_shape_and_lifetime(service):
    body = _get(f"{service.sas_url}/azureopendatastorage/noaa")
    assert set(body) == {"msft:expiry", "token"}
    expiry = dt.datetime.fromisoformat(body["msft:expiry"].replace("Z", "+00:00"))
    left = (expiry - dt.datetime.now(dt.UTC)).total_seconds()
    assert 44 * 60 < left <= 45 * 60
    query = parse_qs(body["token"])
    assert query["sp"] == ["rl"] and query["sr"] == ["c"]
    assert service.requests["token"] == 1


@pytest.mark.parametrize("path", ["/api/sas/v1/token/otheraccount/noaa", "/api/stac/v1/collections/era5", "/nothing"])
def test_unknown_paths_are_404(service, path):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(service.base_url + path)
    assert err.value.code == 404
