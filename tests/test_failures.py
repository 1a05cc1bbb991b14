"""Which failures are retried."""

from __future__ import annotations

import errno

import aiohttp
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from conus404.core import exceptions as ex
from conus404.core.failures import failure_class


def _http(status: int) -> HttpResponseError:
    err = HttpResponseError(message=f"status {status}")
    err.status_code = status
    return err


def test_classes():
    assert failure_class(ex.ConfigurationError("bad")) == "usage"
    assert failure_class(ex.MissingDataError("gone")) == "permanent"
    assert failure_class(ex.DataValidationError("bad")) == "permanent"
    assert failure_class(ex.SourceLayoutError("odd")) == "permanent"
    assert failure_class(ex.AuthenticationError("az://x", 403, "AuthenticationFailed")) == "transient"
    assert failure_class(ex.CatalogError("busy", "http://127.0.0.1", 429)) == "transient"
    assert failure_class(ex.CatalogError("unreachable", "http://127.0.0.1")) == "transient"
    assert failure_class(ex.CatalogError("no such collection", "http://127.0.0.1", 404)) == "permanent"
    assert failure_class(_http(503)) == "transient"
    assert failure_class(_http(429)) == "transient"
    assert failure_class(_http(404)) == "permanent"
    assert failure_class(ServiceRequestError("reset")) == "transient"
    assert failure_class(aiohttp.ClientPayloadError("truncated")) == "transient"
    assert failure_class(ConnectionResetError()) == "transient"
    assert failure_class(OSError(errno.ENOSPC, "No space left on device")) == "disk_full"
    assert failure_class(OSError(errno.EDQUOT, "Disk quota exceeded")) == "disk_full"
    assert failure_class(ValueError("a bug")) == "permanent"


def test_an_hdf_error_is_a_full_disk_only_when_the_data_folder_has_almost_no_space(tmp_path):
    hdf = RuntimeError("NetCDF: HDF error")
    assert failure_class(hdf, tmp_path) == "permanent", "plenty of space here: a real HDF fault"
    assert failure_class(hdf) == "permanent"
