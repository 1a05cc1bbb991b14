"""The user's retry policy (config ``RETRY``), one setting for every remote request.

Applied to blob reads (:mod:`conus404.sources.storage_retry`, through the Azure SDK's retry policy), and to
catalogue and token requests (urllib3's ``Retry``, which pystac-client and the planetary-computer
SDK both use), and to SAS token requests (:mod:`conus404.sources.token_service`). Waits grow exponentially
from ``initial_backoff_s`` to ``max_backoff_s``, are jittered, and are never shorter than a server's
``Retry-After`` (or the token service's "Try again in N seconds"); throttling is waited out for up
to ``throttle_budget_s`` before a request fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 6  # retries after the first try
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 20.0
    jitter: float = 0.5  # share of each wait drawn at random (0: none, 1: full jitter)
    max_retry_after_s: float = 120.0  # a longer Retry-After is capped (and still retried)
    # Throttling (token service 429/404/503, blob 503 ServerBusy) is waited out this long, whatever
    # ``attempts`` says, before the request fails (and its day with it, as transient, for the retry pass).
    throttle_budget_s: float = 300.0

    def backoff_s(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0, 1, ...): exponential, capped, jittered."""
        import random

        ceiling = min(self.max_backoff_s, self.initial_backoff_s * 2 ** retry)
        return ceiling * (1.0 - self.jitter * random.random())

    def storage_options(self) -> dict[str, Any]:
        return {f"retry_{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RetrySettings:
        return cls(**{k.removeprefix("retry_"): v for k, v in options.items() if k.startswith("retry_")})

    def urllib3_retry(self):
        """The same policy for requests-based clients (STAC API, SAS token service)."""
        from urllib3.util.retry import Retry

        return Retry(
            total=self.attempts, connect=min(self.attempts, 2), backoff_factor=self.initial_backoff_s,
            backoff_max=self.max_backoff_s, backoff_jitter=self.jitter * self.initial_backoff_s,
            status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
            respect_retry_after_header=True, raise_on_status=False,
        )
