"""A small STAC API and SAS token service on loopback, shaped like the Planetary Computer's.

Paths mirror the real ones, so clients differ only in the host:
  GET /api/stac/v1                                landing page (pystac-client's entry point)
  GET /api/stac/v1/conformance, /collections      what pystac-client may ask for
  GET /api/stac/v1/collections/{id}               the real ``conus404`` collection document with
                                                  the ``zarr-abfs`` asset pointed at Azurite
  GET /api/sas/v1/token/{account}/{container}     {"msft:expiry", "token"}: a real container SAS
                                                  (read + list) that Azurite verifies
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from conus404.core.reference_metadata import collection_document

STAC_PREFIX = "/api/stac/v1"
SAS_PREFIX = "/api/sas/v1/token"
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/simple-collections",
]


@dataclass
class StorageAccount:
    """An emulated storage account the token service can sign for."""

    name: str
    key: str
    host: str  # account_host for adlfs, e.g. "127.0.0.1:10000/azureopendatastorage"
    containers: tuple[str, ...] = ("noaa",)


@dataclass
class ServedCollection:
    """A collection to serve: the real ``conus404`` document, re-pointed at the emulated store."""

    collection_id: str
    account: StorageAccount
    container: str
    store_path: str  # path of the Zarr store inside the container, e.g. "conus404.zarr"
    time_extent: tuple[str, str] | None = None  # ISO start/end of the emulated store
    grid_shape: tuple[int, int] | None = None  # (south_north, west_east)

    def document(self, base_url: str) -> dict[str, Any]:
        doc = collection_document()
        doc["id"] = self.collection_id
        collection_url = f"{base_url}{STAC_PREFIX}/collections/{self.collection_id}"
        doc["links"] = [
            link for link in doc.get("links", []) if link.get("rel") not in ("self", "root", "parent", "items")
        ] + [
            {"rel": "self", "href": collection_url, "type": "application/json"},
            {"rel": "root", "href": f"{base_url}{STAC_PREFIX}", "type": "application/json"},
            {"rel": "parent", "href": f"{base_url}{STAC_PREFIX}", "type": "application/json"},
        ]
        abfs = doc["assets"]["zarr-abfs"]
        abfs["href"] = f"az://{self.container}/{self.store_path}"
        abfs["xarray:storage_options"] = {"account_name": self.account.name, "account_host": self.account.host}
        doc["assets"]["zarr-https"]["href"] = f"https://{self.account.host}/{self.container}/{self.store_path}"
        doc["msft:storage_account"], doc["msft:container"] = self.account.name, self.container
        if self.time_extent:
            start, end = (t if t.endswith("Z") else t + "Z" for t in self.time_extent)
            doc["extent"]["temporal"]["interval"] = [[start, end]]
            doc["cube:dimensions"]["time"]["extent"] = [start, end]
        if self.grid_shape:
            ny, nx = self.grid_shape
            doc["cube:dimensions"]["south_north"]["extent"] = [0, ny - 1]
            doc["cube:dimensions"]["west_east"]["extent"] = [0, nx - 1]
        return doc


@dataclass
class StacSasService:
    """The HTTP service; ``start()`` runs it on a thread, ``stop()`` shuts it down."""

    collections: dict[str, ServedCollection]
    token_lifetime: dt.timedelta = dt.timedelta(hours=1)
    port: int = 0
    requests: Counter = field(default_factory=Counter)  # "stac" / "token" / ... -> count
    token_throttle_rate: float = 0.0  # share of token requests answered 429
    token_throttle_first: int = 0  # the next N token requests are answered 429 (deterministic)
    stac_unavailable_first: int = 0  # the next N STAC requests are answered 503 (deterministic)
    throttle_retry_after_s: int = 1  # the "Try again in N seconds" of a 429's body (and its Retry-After)
    throttle_retry_after_header: bool = True  # the real service's 429s were reported without it (PC #457)
    throttle_statuses: tuple[int, ...] = (429,)  # cycled through: the service also answered 404s and 503s under load
    throttle_until: float = 0.0  # time.monotonic() until which every token request is throttled
    throttle_seed: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stac_url(self) -> str:
        return f"{self.base_url}{STAC_PREFIX}"

    @property
    def sas_url(self) -> str:
        """What the planetary-computer SDK calls ``PC_SDK_SAS_URL``."""
        return f"{self.base_url}{SAS_PREFIX}"

    def start(self) -> StacSasService:
        service = self

        class Handler(_Handler):
            owner = service

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="stac-sas", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- responses -------------------------------------------------------------------------
    def landing_page(self) -> dict[str, Any]:
        links = [
            {"rel": "self", "href": self.stac_url, "type": "application/json"},
            {"rel": "root", "href": self.stac_url, "type": "application/json"},
            {"rel": "data", "href": f"{self.stac_url}/collections", "type": "application/json"},
            {"rel": "conformance", "href": f"{self.stac_url}/conformance", "type": "application/json"},
        ] + [
            {"rel": "child", "href": f"{self.stac_url}/collections/{cid}", "type": "application/json"}
            for cid in self.collections
        ]
        return {
            "type": "Catalog",
            "id": "conus404-emulator",
            "title": "Local Planetary Computer emulator",
            "description": "STAC API of the conus404 pipeline's offline emulator",
            "stac_version": "1.0.0",
            "conformsTo": CONFORMANCE,
            "links": links,
        }

    def take_stac_fault(self) -> bool:
        with self._lock:
            if self.stac_unavailable_first > 0:
                self.stac_unavailable_first -= 1
                return True
        return False

    def throttle_for(self, seconds: float, statuses: tuple[int, ...] = (429, 404, 503), retry_after_header: bool = False,
                     try_again_s: int = 5) -> None:
        """Throttle every token request for ``seconds`` from now, answering ``statuses`` in turn."""
        with self._lock:
            self.throttle_statuses, self.throttle_retry_after_header = tuple(statuses), retry_after_header
            self.throttle_retry_after_s = try_again_s
            self.throttle_until = time.monotonic() + seconds

    def throttled(self) -> int | None:
        """The status a token request is throttled with now, or None."""
        with self._lock:
            statuses = self.throttle_statuses
            if time.monotonic() < self.throttle_until or self.token_throttle_first > 0:
                self.token_throttle_first = max(0, self.token_throttle_first - 1)
                return statuses[self.requests["token_throttled"] % len(statuses)]
        if self.token_throttle_rate <= 0:
            return None
        if not hasattr(self, "_throttle_rng"):
            self._throttle_rng = random.Random(self.throttle_seed)
        with self._lock:
            return statuses[0] if self._throttle_rng.random() < self.token_throttle_rate else None

    def token(self, account_name: str, container: str) -> dict[str, str] | None:
        account = next(
            (c.account for c in self.collections.values() if c.account.name == account_name), None
        )
        if account is None or container not in account.containers:
            return None
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expiry = now + self.token_lifetime
        sas = generate_container_sas(
            account.name,
            container,
            account_key=account.key,
            permission=ContainerSasPermissions(read=True, list=True),
            start=now - dt.timedelta(minutes=5),  # tolerate clock skew, as PC back-dates its tokens
            expiry=expiry,
        )
        return {"msft:expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": sas}


class _Handler(BaseHTTPRequestHandler):
    owner: StacSasService
    server_version = "conus404-emulator/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean; the owner counts requests instead

    def _send_json(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_throttled(self, status: int) -> None:
        """As the Planetary Computer's token service throttles: a 429 whose body says how long to wait
        (microsoft/PlanetaryComputer#457, #415), or under load a 404 or a 503 (#431)."""
        owner = self.owner
        message = {429: f"Rate limit is exceeded. Try again in {owner.throttle_retry_after_s} seconds.",
                   404: "Resource not found", 503: "The service is temporarily unavailable."}.get(status, "Throttled.")
        body = json.dumps({"statusCode": status, "message": message}).encode()
        self.send_response(status)
        if status == 429 and owner.throttle_retry_after_header:
            self.send_header("Retry-After", str(owner.throttle_retry_after_s))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0].rstrip("/")
        owner = self.owner
        if path.startswith(SAS_PREFIX + "/"):
            owner.requests["token"] += 1
            status = owner.throttled()
            if status is not None:
                owner.requests["token_throttled"] += 1
                owner.requests[f"token_throttled_{status}"] += 1
                self._send_throttled(status)
                return
            parts = path[len(SAS_PREFIX) + 1 :].split("/")
            body = owner.token(*parts) if len(parts) == 2 else None
            if body is None:
                self._send_json(HTTPStatus.NOT_FOUND, {"detail": f"no such account/container: {'/'.join(parts)}"})
            else:
                self._send_json(HTTPStatus.OK, body)
            return
        owner.requests["stac"] += 1
        if owner.take_stac_fault():
            owner.requests["stac_unavailable"] += 1
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"code": "ServiceUnavailable", "description": "Try again"})
            return
        if path == STAC_PREFIX:
            self._send_json(HTTPStatus.OK, owner.landing_page())
        elif path == f"{STAC_PREFIX}/conformance":
            self._send_json(HTTPStatus.OK, {"conformsTo": CONFORMANCE})
        elif path == f"{STAC_PREFIX}/collections":
            docs = [c.document(owner.base_url) for c in owner.collections.values()]
            self._send_json(HTTPStatus.OK, {"collections": docs, "links": []})
        elif path.startswith(f"{STAC_PREFIX}/collections/"):
            cid = path.rsplit("/", 1)[1]
            collection = owner.collections.get(cid)
            if collection is None:
                self._send_json(HTTPStatus.NOT_FOUND, {"code": "NotFoundError", "description": f"No collection {cid}"})
            else:
                self._send_json(HTTPStatus.OK, collection.document(owner.base_url))
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"code": "NotFoundError", "description": f"No route {path}"})
