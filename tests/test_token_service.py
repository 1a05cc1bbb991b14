"""SAS tokens through a throttling token service: 429 with a "try again in N seconds" body (with and
without Retry-After), 404s and 503s under load; waited out within the budget, transient after it."""

from __future__ import annotations

import time

import pytest

from conus404.config.retry_policy import RetrySettings
from conus404.core.exceptions import CatalogError
from conus404.core.failures import failure_class
from conus404.emulator.stac_service import ServedCollection, StacSasService, StorageAccount
from conus404.sources.source import use_sas_endpoint
from conus404.sources.token_service import fetch_token, requested_wait_s

ACCOUNT = StorageAccount("azureopendatastorage", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
                         "K1SZFPTOtr/KBHBeksoGMGw==", "127.0.0.1:1/azureopendatastorage")
FAST = RetrySettings(initial_backoff_s=0.05, max_backoff_s=0.2, throttle_budget_s=30.0)


@pytest.fixture
def service(fresh_sdk):
    served = StacSasService({"conus404": ServedCollection("conus404", ACCOUNT, "noaa", "conus404.zarr")}).start()
    use_sas_endpoint(served.sas_url)
    try:
        yield served
    finally:
        served.stop()


def _token_url(service) -> str:
    return f"{service.sas_url}/azureopendatastorage/noaa"


def test_the_wait_asked_for_is_read_from_retry_after_or_the_body():
    body = '{"statusCode": 429, "message": "Rate limit is exceeded. Try again in 23 seconds."}'
    assert requested_wait_s({}, body) == 23.0
    assert requested_wait_s({"Retry-After": "4"}, body) == 4.0
    assert requested_wait_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, body) == 23.0
    assert requested_wait_s({}, '{"statusCode": 404, "message": "Resource not found"}') is None


def test_a_throttle_of_429_bodies_404s_and_503s_is_waited_out(service):
    from planetary_computer import sas

    service.throttle_for(3.0, statuses=(429, 404, 503), retry_after_header=False, try_again_s=1)
    started = time.monotonic()
    fetch_token("azureopendatastorage", "noaa", FAST)
    assert time.monotonic() - started >= 3.0 - 0.05  # not before the service stopped throttling
    assert sas.TOKEN_CACHE[_token_url(service)].token
    for status in (429, 404, 503):
        assert service.requests[f"token_throttled_{status}"] >= 1, status


def test_the_body_s_try_again_is_honoured_without_a_retry_after_header(service):
    service.throttle_for(0.3, statuses=(429,), retry_after_header=False, try_again_s=2)
    started = time.monotonic()
    fetch_token("azureopendatastorage", "noaa", FAST)  # the backoff alone would try again after 0.05-0.2 s
    assert time.monotonic() - started >= 2.0
    assert service.requests["token_throttled"] == 1


def test_throttling_beyond_the_budget_is_a_transient_failure(service):
    service.throttle_for(60.0, statuses=(404,))
    with pytest.raises(CatalogError) as refused:
        fetch_token("azureopendatastorage", "noaa", RetrySettings(initial_backoff_s=0.05, max_backoff_s=0.1,
                                                                  throttle_budget_s=1.0))
    assert refused.value.status_code == 404 and refused.value.throttled
    assert failure_class(refused.value) == "transient"


def test_a_service_that_does_not_answer_is_tried_again_within_the_budget(service):
    service.stop()  # nothing listens on its port any more
    with pytest.raises(CatalogError) as gone:
        fetch_token("azureopendatastorage", "noaa", RetrySettings(initial_backoff_s=0.05, max_backoff_s=0.1,
                                                                  throttle_budget_s=0.5))
    assert gone.value.throttled and gone.value.status_code is None
    assert failure_class(gone.value) == "transient"
