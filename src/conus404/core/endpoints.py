"""The stores the pipeline knows by name, their endpoints, and the environment variables that point
the pipeline elsewhere (the emulator sets them; a worker on a Dask cluster is handed them)."""

from __future__ import annotations

PLANETARY_COMPUTER = "planetary-computer"
HYTEST_OSN = "hytest-osn"  # USGS HyTEST's copy on the Open Storage Network (anonymous S3)
KNOWN_SOURCES = (PLANETARY_COMPUTER, HYTEST_OSN)
DEFAULT_STAC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
DEFAULT_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
HYTEST_OSN_URL = "s3://hytest/conus404/conus404_hourly.zarr"
OSN_ENDPOINT = "https://usgs.osn.mghpcc.org/"

STAC_URL_ENV = "CONUS404_STAC_URL"
SAS_URL_ENV = "PC_SDK_SAS_URL"  # the planetary-computer SDK reads the same variable
OSN_ENDPOINT_ENV = "CONUS404_OSN_ENDPOINT"  # the emulator's S3 server instead of the OSN pod
# fsspec options for a SOURCE URL as a JSON object (overrides STORAGE_OPTIONS): the place for
# credentials, as the environment, unlike a command line, is not visible to other users.
STORAGE_OPTIONS_ENV = "CONUS404_STORAGE_OPTIONS"
OUTPUT_STORAGE_OPTIONS_ENV = "CONUS404_OUTPUT_STORAGE_OPTIONS"  # the same, for OUTPUT_URL
# Where-to-read settings a worker process takes from its environment: handed on with every worker,
# since on a Dask cluster the worker's environment is not the driver's.
WORKER_ENVIRONMENT = (STAC_URL_ENV, SAS_URL_ENV, OSN_ENDPOINT_ENV, STORAGE_OPTIONS_ENV, OUTPUT_STORAGE_OPTIONS_ENV)


def osn_endpoint() -> str:
    """The Open Storage Network endpoint HyTEST's store is read from (the emulator's when it is set)."""
    import os

    return os.environ.get(OSN_ENDPOINT_ENV) or OSN_ENDPOINT


def is_remote(source: str) -> bool:
    """Whether a source (a known name, a URL or a path) is read over the network."""
    return source in KNOWN_SOURCES or "://" in str(source)
