"""SAS tokens from the Planetary Computer's token service, with its throttling waited out.

The service throttles: 429 with a body such as ``{"statusCode": 429, "message": "Rate limit is exceeded.
Try again in 23 seconds."}`` and, as reported, no ``Retry-After`` (microsoft/PlanetaryComputer#457,
#415); under load also 404s that staff explained as throttling (#431), and 5xx. The SDK's own
``get_token`` retries 429/5xx a few times with its own backoff and gives up on a 404 at once, so the
token is fetched here, with the same request the SDK makes (its URL, its subscription-key header),
and put into the SDK's cache, from which ``planetary_computer.sign_inplace`` then signs.

Policy: a throttling answer is retried after the wait the service asks for (``Retry-After`` or the
body's "try again in N seconds", at most ``max_retry_after_s``), else after the policy's exponential
backoff, until ``throttle_budget_s`` has passed; then :class:`CatalogError` (transient: the day fails
for the retry pass, which tries again later). Any other answer fails at once.
"""

from __future__ import annotations

import logging
import re
import time

from conus404.core.exceptions import CatalogError

log = logging.getLogger("conus404.token_service")
THROTTLING = frozenset({404, 408, 429, 500, 502, 503, 504})
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


def requested_wait_s(headers, body: str) -> float | None:
    """The wait a throttling answer asks for: its Retry-After (seconds), or its body's "try again in N seconds"."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        if value is not None:
            return max(0.0, float(value))
    except ValueError:
        pass  # an HTTP date: the body or the backoff decides
    found = _TRY_AGAIN.search(body or "")
    return float(found.group(1)) if found else None


def fetch_token(account: str, container: str, retry) -> None:
    """Put a token for ``account``/``container`` into the SDK's cache (unless a fresh one is there),
    waiting out throttling as the module docstring says; ``retry`` is a RetrySettings."""
    import requests
    from planetary_computer import sas
    from planetary_computer.settings import Settings as SdkSettings

    sdk = SdkSettings.get()
    url = f"{sdk.sas_url}/{account}/{container}"
    cached = sas.TOKEN_CACHE.get(url)
    if cached is not None and cached.ttl() >= 60:  # the SDK's own rule for a usable token
        return
    headers = {"Ocp-Apim-Subscription-Key": sdk.subscription_key} if sdk.subscription_key else None
    started, retries = time.monotonic(), 0
    with requests.Session() as session:
        while True:
            status, wait, detail = None, None, ""
            try:
                response = session.get(url, headers=headers, timeout=60)
                status, detail = response.status_code, response.text[:200]
                if status == 200:
                    sas.TOKEN_CACHE[url] = sas.SASToken(**response.json())
                    return
                wait = requested_wait_s(response.headers, response.text)
            except requests.RequestException as exc:  # no answer at all: as throttling, with the backoff
                detail = f"{type(exc).__name__}: {exc}"
            except ValueError as exc:  # 200 without a token in it
                raise CatalogError(f"the SAS token service answered without a token ({exc})", url, status) from None
            if status is not None and status not in THROTTLING:
                raise CatalogError(f"the SAS token service refused a token ({detail.strip() or 'no detail'})", url, status)
            wait = min(wait, retry.max_retry_after_s) if wait is not None else retry.backoff_s(retries)
            waited = time.monotonic() - started
            if waited + wait > retry.throttle_budget_s:
                raise CatalogError(f"the SAS token service kept throttling (last: {detail.strip() or status}) "
                                   f"for {waited:.0f} s", url, status, throttled=True)
            retries += 1
            log.warning("the SAS token service is throttling (HTTP %s): trying again in %.1f s (%.0f s of %.0f s)",
                        status, wait, waited, retry.throttle_budget_s)
            time.sleep(wait)
