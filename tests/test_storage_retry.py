"""The blob retry policy's waits: bounded, jittered, and never shorter than Retry-After."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conus404.config.retry_policy import RetrySettings
from conus404.sources.storage_retry import PacedRetry, RetryingBlobFileSystem


def _settings(count: int, retry_after: str | None = None) -> dict:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return {"count": count, "history": [SimpleNamespace(http_response=SimpleNamespace(headers=headers))]}


def test_waits_grow_exponentially_up_to_the_maximum_with_jitter():
    policy = PacedRetry(RetrySettings(initial_backoff_s=0.1, max_backoff_s=1.0, jitter=0.5))
    for count, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)]:
        waits = [policy.get_backoff_time(_settings(count)) for _ in range(200)]
        assert ceiling * 0.5 - 1e-9 <= min(waits) and max(waits) <= ceiling + 1e-9
        assert max(waits) - min(waits) > ceiling * 0.2, "jittered"


def test_retry_after_is_honoured_and_capped():
    policy = PacedRetry(RetrySettings(initial_backoff_s=0.1, max_backoff_s=1.0, max_retry_after_s=30.0))
    assert policy.get_backoff_time(_settings(0, "7")) == 7.0
    assert policy.get_backoff_time(_settings(0, "3600")) == 30.0
    assert policy.get_backoff_time(_settings(0, "Wed, 21 Oct 2015 07:28:00 GMT")) <= 0.1


def test_the_filesystem_carries_its_policy_in_json_serialisable_options():
    options = RetrySettings(attempts=3).storage_options()
    fs = RetryingBlobFileSystem(account_name="acct", anon=True, skip_instance_cache=True, **options)
    assert fs.retry_settings.attempts == 3
    assert isinstance(fs.service_client._pipeline._impl_policies, list)  # built by the SDK
    assert any(isinstance(p, PacedRetry) for p in fs.service_client._pipeline._impl_policies)
    rebuilt = RetryingBlobFileSystem.from_json(fs.to_json())
    assert rebuilt.retry_settings == fs.retry_settings


def test_blob_throttling_is_waited_out_within_the_budget_however_many_retries_it_takes(emulator, fresh_sdk):
    """503 ServerBusy ("Egress is over the account limit") for 4 s, against a policy of 1 retry."""
    from conus404.emulator.fault_proxy import FaultRule
    from conus404.sources import source
    from tests.conftest import reset_faults

    service = emulator.service
    try:
        proxy = emulator.inject_faults([FaultRule(r"/conus404\.zarr/T2/0\.", status=503, for_seconds=4.0)])
        asset = source.sign_collection_asset(service.stac_url, "conus404", "zarr-abfs", service.sas_url)
        patient = RetrySettings(attempts=1, initial_backoff_s=0.2, max_backoff_s=0.5, throttle_budget_s=60.0)
        ds = source.open_dataset(asset, patient, chunks=None)
        assert ds["T2"].isel(time=0).values.shape == (24, 32)
        assert proxy.counts["injected"] >= 4, "more answers than the one retry the count allows"
        emulator.inject_faults([FaultRule(r"/conus404\.zarr/T2/1\.", status=503, for_seconds=4.0)])
        hurried = RetrySettings(attempts=1, initial_backoff_s=0.2, max_backoff_s=0.5, throttle_budget_s=0.0)
        ds = source.open_dataset(asset, hurried, chunks=None)
        with pytest.raises(Exception, match="ServerBusy|503|Egress"):
            ds["T2"].isel(time=1).load()
    finally:
        reset_faults(emulator)
