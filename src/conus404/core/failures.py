"""Which failures are worth retrying, and the worker's exit codes.

transient  the network, throttling, a busy or failing server, an expired token: retry later
permanent  the data are missing or fail validation, or the source is not CONUS404: do not retry
disk_full  the data folder's disk is full: the run stops starting days; free space, then rerun
usage      the request itself is wrong (bad date, unknown or 3-D variable): fix it, then rerun
"""

from __future__ import annotations

import errno

from conus404.core.exceptions import (
    AuthenticationError,
    CatalogError,
    ConfigurationError,
    DataValidationError,
    MissingDataError,
    OutputUploadError,
    SourceLayoutError,
)

EXIT_DONE = 0  # published or already valid
EXIT_USAGE = 2
EXIT_TRANSIENT = 3
EXIT_PERMANENT = 4
EXIT_DISK_FULL = 5
EXIT_CODES = {"transient": EXIT_TRANSIENT, "permanent": EXIT_PERMANENT, "usage": EXIT_USAGE, "disk_full": EXIT_DISK_FULL}
DISK_FULL = "disk_full"
RETRYABLE_HTTP = {408, 429, 500, 502, 503, 504}


def failure_class(exc: BaseException, data_dir=None) -> str:
    """The class of a day's failure; with ``data_dir``, a write failure on a disk with almost no
    space left is a full disk (see :mod:`conus404.core.disk_space`)."""
    from conus404.core.disk_space import is_disk_full

    if is_disk_full(exc, data_dir):
        return DISK_FULL
    if isinstance(exc, ConfigurationError):
        return "usage"
    if isinstance(exc, MissingDataError | DataValidationError | SourceLayoutError):
        return "permanent"
    if isinstance(exc, AuthenticationError | OutputUploadError):
        return "transient"  # an expired token (a fresh signature fixes it), or an upload to OUTPUT_URL
    if isinstance(exc, CatalogError):
        throttled = exc.throttled or exc.status_code is None or exc.status_code in RETRYABLE_HTTP
        return "transient" if throttled else "permanent"
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int):
        return "transient" if status in RETRYABLE_HTTP or status == 403 else "permanent"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
        return "permanent"  # the disk, not the network: retrying will not help until someone acts
    if isinstance(exc, ConnectionError | TimeoutError):
        return "transient"
    if _is_network_library_error(exc):
        return "transient"
    return "permanent"


def _is_network_library_error(exc: BaseException) -> bool:
    try:
        import aiohttp
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
    except ImportError:  # pragma: no cover - both are dependencies
        return False
    return isinstance(exc, aiohttp.ClientError | ServiceRequestError | ServiceResponseError)
