"""Open the CONUS404 store: find it in the STAC catalogue, sign it, open it with xarray.

This is the production code path, unchanged under the emulator:
    pystac-client -> STAC API -> planetary_computer.sign_inplace -> SAS token endpoint
    -> adlfs (Azure Blob over HTTPS) -> zarr -> xarray.open_zarr
Only URLs differ (``SourceAccess.stac_url``, ``SourceAccess.sas_url`` and the asset's own storage options).
"""

from __future__ import annotations

import datetime as dt
import sys
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from conus404.config.parts import SourceAccess
from conus404.core.endpoints import HYTEST_OSN, HYTEST_OSN_URL, osn_endpoint
from conus404.core.exceptions import AuthenticationError, CatalogError, SourceLayoutError

# HyTEST renamed WRF's dimensions; the pipeline works in WRF's names whatever the source.
DIM_ALIASES = {"y": "south_north", "x": "west_east"}

SECRET_OPTION_KEYS = frozenset({"credential", "sas_token", "account_key", "connection_string", "client_secret"})


@dataclass(frozen=True)
class SignedAsset:
    """A Zarr asset ready to open. ``storage_options`` may hold a SAS token: never log it."""

    href: str
    storage_options: dict[str, Any] = field(repr=False)
    open_kwargs: dict[str, Any] = field(default_factory=dict)
    expiry: dt.datetime | None = None  # when the SAS token stops working (None: no token)

    def redacted_options(self) -> dict[str, Any]:
        """Storage options safe to log: secrets replaced by a marker."""
        return {k: ("<redacted>" if k in SECRET_OPTION_KEYS else v) for k, v in self.storage_options.items()}

    def seconds_left(self, now: dt.datetime | None = None) -> float | None:
        if self.expiry is None:
            return None
        return (self.expiry - (now or dt.datetime.now(dt.UTC))).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """For handing to a worker on its standard input (holds the token: never log it)."""
        expiry = self.expiry.isoformat() if self.expiry else None
        return {"href": self.href, "storage_options": self.storage_options, "open_kwargs": self.open_kwargs, "expiry": expiry}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignedAsset:
        expiry = dt.datetime.fromisoformat(data["expiry"]) if data.get("expiry") else None
        return cls(data["href"], dict(data.get("storage_options") or {}), dict(data.get("open_kwargs") or {}), expiry)

    @property
    def public_href(self) -> str:
        """The href without any query string (where a signed https href carries its token)."""
        return self.href.split("?", 1)[0]


def use_sas_endpoint(sas_url: str) -> None:
    """Point the planetary-computer SDK at ``sas_url`` (its settings are cached once per process)."""
    from planetary_computer import sas
    from planetary_computer.settings import Settings as SdkSettings

    sdk = SdkSettings.get()
    if sdk.sas_url != sas_url:
        sdk.sas_url = sas_url
        sas.TOKEN_CACHE.clear()  # tokens from another endpoint are not for this one


def sign_collection_asset(
    stac_url: str, collection_id: str, asset_key: str, sas_url: str, retry=None
) -> SignedAsset:
    """Read the collection from the STAC API, sign it with the PC SDK, and return the asset.

    Catalogue and token requests both follow ``retry`` (a RetrySettings; defaults if None).
    """
    import planetary_computer
    import pystac_client
    from pystac_client.exceptions import APIError

    from conus404.config.retry_policy import RetrySettings

    retry = retry or RetrySettings()
    use_sas_endpoint(sas_url)
    try:
        catalog = pystac_client.Client.open(stac_url, stac_io=stac_io(retry), timeout=60)
        collection = catalog.get_collection(collection_id)
    except APIError as exc:
        status = getattr(exc, "status_code", None)
        raise CatalogError(f"the STAC API refused collection {collection_id!r} ({exc})", stac_url, status) from None
    except Exception as exc:  # connection refused, DNS, bad JSON: all mean "catalogue unreadable"
        raise CatalogError(f"cannot read the STAC catalogue ({type(exc).__name__}: {exc})", stac_url) from None
    asset = collection.assets.get(asset_key)
    if asset is None:
        raise CatalogError(
            f"collection {collection_id!r} has no asset {asset_key!r} (it has {', '.join(collection.assets)})",
            stac_url,
        )
    options = dict(asset.extra_fields.get("xarray:storage_options", {}))
    account, container = options.get("account_name"), urlparse(asset.href).netloc
    if account and container:  # the token, its throttling waited out; sign_inplace then uses it from the SDK's cache
        from conus404.sources.token_service import fetch_token

        fetch_token(account, container, retry)
    planetary_computer.sign_inplace(collection)
    asset = collection.assets[asset_key]
    options = dict(asset.extra_fields.get("xarray:storage_options", {}))
    open_kwargs = dict(asset.extra_fields.get("xarray:open_kwargs", {}))
    return SignedAsset(asset.href, options, open_kwargs, _token_expiry(asset.href, options))


def stac_io(retry):
    """pystac-client's HTTP, retrying 429 / 5xx / resets with backoff that honours Retry-After."""
    from pystac_client.stac_api_io import StacApiIO

    return StacApiIO(max_retries=retry.urllib3_retry(), timeout=60)


def refresh_token_cache() -> None:
    """Forget cached SAS tokens so the next signing asks the token service again."""
    from planetary_computer import sas

    sas.TOKEN_CACHE.clear()


RENEWAL_MARGIN_MAX_S = 600.0


def renewal_margin_s(asset: SignedAsset | None) -> float:
    """Sign again once fewer seconds than this are left of ``asset``'s token: half its life when
    signed, at most RENEWAL_MARGIN_MAX_S (also when there is no asset yet or its end is unknown)."""
    left = asset.seconds_left() if asset is not None else None
    return RENEWAL_MARGIN_MAX_S if left is None else min(RENEWAL_MARGIN_MAX_S, max(left, 0.0) / 2)


def _token_expiry(href: str, options: dict[str, Any]) -> dt.datetime | None:
    """The expiry of the token the SDK just put into ``options`` (it is in the SDK's cache)."""
    from planetary_computer import sas
    from planetary_computer.settings import Settings as SdkSettings

    account, container = options.get("account_name"), urlparse(href).netloc
    token = sas.TOKEN_CACHE.get(f"{SdkSettings.get().sas_url}/{account}/{container}")
    return token.expiry if token is not None and options.get("credential") == token.token else None


def storage_options(asset: SignedAsset, retry=None) -> dict[str, Any]:
    """The asset's storage options, with ``retry`` (a :class:`~conus404.sources.storage_retry.RetrySettings`;
    default settings if None) for Azure Blob instead of the Azure SDK's slow default policy."""
    options = dict(asset.storage_options)
    if urlparse(asset.href).scheme in ("az", "abfs", "abfss"):
        from conus404.sources import storage_retry

        storage_retry.register()
        options.update((retry or storage_retry.RetrySettings()).storage_options())
    return options


def open_dataset(asset: SignedAsset, retry=None, chunk_cache_dir=None, record_metadata: bool = False, **kwargs: Any):
    """``xr.open_zarr`` on the asset; refusals and empty stores become clear errors, not empty data.

    Azure Blob reads use ``retry`` (:func:`storage_options`). With ``chunk_cache_dir``,
    chunks that several days read go through the run's shared disk cache (:mod:`conus404.sources.chunk_cache`),
    and the store's metadata is replayed from what the run's check recorded (``record_metadata``).
    """
    import xarray as xr
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from zarr.storage import FsspecStore, LocalStore

    from conus404.sources.lost_chunks import LostChunkGuard

    open_kwargs = {**asset.open_kwargs, **kwargs}
    options = storage_options(asset, retry)
    cache = None
    try:
        if "://" in asset.href:
            store = FsspecStore.from_url(asset.href, storage_options=options or None, read_only=True)
        else:  # a local copy
            store = LocalStore(asset.href, read_only=True)
        if chunk_cache_dir is not None:  # a local copy's multi-hour chunks still gain from being decoded once per run
            from conus404.sources.chunk_cache_store import SharedChunkCache

            store = cache = SharedChunkCache(store, chunk_cache_dir, identity=asset.public_href,
                                             record=record_metadata, replay=not record_metadata)
        ds = xr.open_zarr(LostChunkGuard(store), **open_kwargs)  # a chunk the store lacks is refused, never filled
    except (ClientAuthenticationError, HttpResponseError) as exc:
        status = getattr(exc, "status_code", None)
        if status in (401, 403) or isinstance(exc, ClientAuthenticationError):
            code = getattr(exc, "error_code", None)
            raise AuthenticationError(asset.href, status, str(getattr(code, "value", code) or "")) from None
        raise
    if not ds.data_vars:
        raise SourceLayoutError(f"{asset.href} opened but lists no variables; is it a CONUS404 Zarr store?")
    if cache is not None and "time" in ds.indexes:
        from conus404.sources.cached_hours import remember_cache

        cache.set_time_axis(ds.indexes["time"])
        remember_cache(ds, cache)
    if "://" not in asset.href:  # a local copy: its chunk files can be decoded straight into a day's arrays
        from conus404.sources.local_hours import remember_local_store

        remember_local_store(ds, asset.href)
    return ds


def open_source(access: SourceAccess, data_dir: Path, signed: SignedAsset | None = None,
                record_metadata: bool = False):
    """Open the configured source for reading. Returns (dataset, provenance attributes).

    The Planetary Computer is signed here unless the driver already handed over ``signed``;
    any other source is a Zarr URL or path opened with ``access.storage_options``. Chunks several
    days read go through ``data_dir``'s chunk cache. The run's check of the source opens it with
    ``record_metadata`` for its day workers to replay.
    """
    if access.uses_planetary_computer:
        asset = signed or sign_collection_asset(access.stac_url, access.collection, access.asset, access.sas_url,
                                                access.retry)
        description = {"source": access.description, "source_stac_url": access.stac_url,
                       "source_href": asset.public_href}
    else:
        asset = unsigned_asset(access)
        description = {"source": access.description, "source_href": asset.public_href}
    cache_dir = None
    if access.chunk_cache:
        from conus404.sources.chunk_cache import cache_root

        cache_dir = cache_root(data_dir)
    ds = open_dataset(asset, access.retry, cache_dir, record_metadata, chunks=None)  # no dask: zarr fetches exactly the chunks a read needs
    return normalise(ds), description


def unsigned_asset(access: SourceAccess) -> SignedAsset:
    """The asset of a source that needs no signing: HyTEST's store on the OSN, or a Zarr URL or path."""
    if access.source == HYTEST_OSN:
        options = {"anon": True, "client_kwargs": {"endpoint_url": osn_endpoint()}, **dict(access.storage_options)}
        return SignedAsset(HYTEST_OSN_URL, options, {})
    return SignedAsset(access.source, dict(access.storage_options), {})


def normalise(ds):
    """Rename HyTEST's y/x to WRF's south_north/west_east and check the CONUS404 layout."""
    ds = ds.rename_dims({k: v for k, v in DIM_ALIASES.items() if k in ds.dims})
    ds = ds.drop_vars([name for name in ("x", "y", "crs") if name in ds.variables])
    problems = []
    if "time" not in ds.indexes:
        problems.append("no time coordinate")
    for name in ("lat", "lon"):
        if name not in ds.variables or ds[name].dims != ("south_north", "west_east"):
            problems.append(f"no 2-D {name} on (south_north, west_east)")
    if problems:
        raise SourceLayoutError(f"not a CONUS404 layout: {'; '.join(problems)}")
    return ds


def release_storage_clients() -> None:
    """Close every adlfs client now, while the event loops they need are still running.

    adlfs closes its Azure clients from weakref finalizers at interpreter exit, which can run after
    zarr has closed its event loop and then print "RuntimeError: Loop is not running" into every
    log. Entry scripts call this before they return, so the clients close cleanly and nothing runs
    at exit.
    """
    adlfs = sys.modules.get("adlfs")
    if adlfs is None:
        return
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        target = finalizer.peek()
        if target is not None and isinstance(target[0], adlfs.AzureBlobFileSystem):
            try:
                finalizer()
            except Exception:  # a client that cannot close cleanly at exit is harmless
                pass
