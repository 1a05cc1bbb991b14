"""The retry policy for blob reads: the Azure SDK's own retry machinery, with our timing.

The SDK's default (3 retries, first wait 12-18 s, base 3) turned 5 % of 503 answers into a
50-fold slower day, each wait blocking a reader. This keeps the SDK's policy (what it retries,
how it counts) and changes the waits: exponential from ``initial_backoff_s`` up to ``max_backoff_s``,
jittered, and never shorter than the server's ``Retry-After``; and throttling (503 ServerBusy,
"Egress is over the account limit": microsoft/PlanetaryComputer#191) is retried for up to
``throttle_budget_s``, not only ``attempts`` times.

adlfs passes no retry settings to the Azure client, so :class:`RetryingBlobFileSystem` (registered
for ``az://`` / ``abfs://``) builds its client with this policy. Its settings travel as ordinary,
JSON-serialisable storage options (``retry_attempts``, ...), so zarr can rebuild it anywhere.
"""

from __future__ import annotations

import time
from typing import Any

from adlfs import AzureBlobFileSystem
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient
from azure.storage.blob.aio import ExponentialRetry

from conus404.config.retry_policy import RetrySettings

THROTTLING = frozenset({503})  # blob storage throttles with 503 ServerBusy ("Egress is over the account limit")


class PacedRetry(ExponentialRetry):
    """The SDK's async exponential retry with bounded, jittered waits that honour Retry-After."""

    def __init__(self, settings: RetrySettings) -> None:
        super().__init__(
            initial_backoff=settings.initial_backoff_s, increment_base=2, retry_total=settings.attempts,
            random_jitter_range=0, retry_to_secondary=False,
        )
        self.settings = settings

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        s = self.settings
        wait = s.backoff_s(settings["count"])
        retry_after = _retry_after(settings)
        return max(wait, min(retry_after, s.max_retry_after_s)) if retry_after is not None else wait

    def increment(self, settings: dict[str, Any], request, response=None, error=None) -> bool:
        """The SDK's count, except that a throttling answer (503 ServerBusy, 500 InternalError, 429) is
        retried until ``throttle_budget_s`` has passed since the first one, however many retries that takes."""
        status = getattr(response, "status_code", None)
        if status in THROTTLING:
            first = settings.setdefault("conus404_throttled_since", time.monotonic())
            if time.monotonic() - first < self.settings.throttle_budget_s:
                for count in ("total", "status"):
                    if settings.get(count) is not None:
                        settings[count] = max(settings[count], 1)  # one more, again and again, within the budget
        return super().increment(settings, request, response, error)


def _retry_after(settings: dict[str, Any]) -> float | None:
    history = settings.get("history") or []
    response = getattr(history[-1], "http_response", None) if history else None
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date form; the exponential wait applies


class RetryingBlobFileSystem(AzureBlobFileSystem):
    """adlfs' filesystem whose Azure client uses :class:`PacedRetry`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        retry = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith("retry_")}
        self.retry_settings = RetrySettings.from_options(retry)
        super().__init__(*args, **kwargs)

    def do_connect(self) -> None:
        super().do_connect()
        if getattr(self, "connection_string", None) is not None:
            return  # not a path this project uses; keep adlfs' client as it is
        credential = next((c for c in (self.credential, self.account_key) if c is not None), None)
        url = self.account_url
        if credential is None and self.sas_token is not None:
            url += self.sas_token if self.sas_token.startswith("?") else f"?{self.sas_token}"
        self.service_client = AsyncBlobServiceClient(
            account_url=url, credential=credential, retry_policy=PacedRetry(self.retry_settings)
        )


def register() -> None:
    """Make ``az://`` and ``abfs://`` URLs use :class:`RetryingBlobFileSystem` in this process."""
    import fsspec

    for protocol in ("az", "abfs", "abfss"):
        fsspec.register_implementation(protocol, RetryingBlobFileSystem, clobber=True)
