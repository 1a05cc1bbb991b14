"""Errors that carry what the user needs to act: the URL, the status code, the offending value.

None of them ever holds a SAS token or subscription key.
"""

from __future__ import annotations


class Conus404Error(Exception):
    """Base class of the pipeline's own errors."""


class ConfigurationError(Conus404Error):
    """A setting or flag is invalid; the message names it and the accepted values (exit code 2)."""


class CatalogError(Conus404Error):
    """The STAC catalogue or the token service could not be read."""

    def __init__(self, message: str, url: str, status_code: int | None = None, throttled: bool = False) -> None:
        self.url = url
        self.status_code = status_code
        self.throttled = throttled  # the service kept throttling through the whole wait: transient
        status = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{message}{status}: {url}")


class AuthenticationError(Conus404Error):
    """Blob storage refused the credential (HTTP 403): the SAS token is missing, wrong or expired."""

    def __init__(self, url: str, status_code: int | None, error_code: str | None) -> None:
        self.url = url
        self.status_code = status_code
        self.error_code = error_code
        super().__init__(
            f"storage refused the credential for {url} (HTTP {status_code}, {error_code or 'no error code'}); "
            "re-sign the asset: the SAS token is missing, wrong or expired"
        )


class SourceLayoutError(Conus404Error):
    """The store opened but is not a CONUS404 store (no variables, wrong dimensions, ...)."""


class MissingDataError(Conus404Error):
    """The source lacks records the day needs (a missing hour, or the store ends too early).

    Permanent: retrying cannot make the data appear.
    """


class LostChunkError(MissingDataError):
    """A data chunk the store lacks (its key is absent), which zarr would read as the fill value (0 where
    that is null). Permanent. ``positions`` are the time positions it holds, when the reader knows them."""

    def __init__(self, key: str, positions: range | None = None) -> None:
        self.key = key
        self.positions = positions
        super().__init__(f"the store lacks chunk {key}: a lost chunk, not data")


class DataValidationError(Conus404Error):
    """The day's data failed a quality check; nothing was published. Permanent."""


class OutputUploadError(Conus404Error):
    """A published daily file could not be copied to ``OUTPUT_URL``; it stays under DATA_DIR. Transient."""

    def __init__(self, message: str, url: str) -> None:
        self.url = url
        super().__init__(f"{message}; the file stays under DATA_DIR and the day will be retried")


class ChunkFetchError(Conus404Error):
    """Storage kept refusing a chunk (HTTP ``status_code``) through every retry of the run's prefetcher,
    which fetched it for the day with the same retry policy. Transient for retryable statuses."""

    def __init__(self, key: str, status_code: int, message: str) -> None:
        self.key = key
        self.status_code = status_code
        super().__init__(f"storage answered HTTP {status_code} for chunk {key} through every retry: {message}")
