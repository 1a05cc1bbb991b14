"""The whole local Planetary Computer: TLS material, Azurite, the STAC/SAS service and stores.

    with EmulatorStack(workdir) as stack:
        stack.add_store(StoreSpec.for_days("2021-01-01", 2))
        env = stack.client_env()   # CONUS404_STAC_URL, PC_SDK_SAS_URL, SSL_CERT_FILE, ...

A client process given ``client_env()`` runs the production code unchanged: pystac-client opens
the STAC URL, the planetary-computer SDK fetches a SAS token from the SAS URL, and adlfs reads the
store from Azurite over HTTPS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conus404.core.endpoints import SAS_URL_ENV, STAC_URL_ENV
from conus404.emulator.azurite import Azurite
from conus404.emulator.fault_proxy import FaultProxy, FaultRule
from conus404.emulator.s3_server import S3Server
from conus404.emulator.stac_service import ServedCollection, StacSasService, StorageAccount
from conus404.emulator.synthetic_store import StoreSpec, write_store
from conus404.emulator.tls import TlsFiles, make_tls_files


@dataclass
class EmulatorStack:
    workdir: Path
    token_lifetime: dt.timedelta = dt.timedelta(hours=1)
    tls: TlsFiles | None = None
    azurite: Azurite | None = None
    service: StacSasService | None = None
    proxy: FaultProxy | None = None
    s3: S3Server | None = None  # started by add_osn_store or add_bucket: HyTEST's OSN pod, output buckets
    stores: dict[str, StoreSpec] = field(default_factory=dict)
    # Generated stores kept on disk by their spec and reused, by this stack and any other given the
    # same folder (a test session's stacks share one): generating is half of serving a store.
    store_cache: Path | None = None
    _uploaded: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)  # (container, path) -> spec json

    def start(self) -> EmulatorStack:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.tls is None:
            self.tls = make_tls_files(self.workdir / "tls")
        try:
            self.azurite = Azurite(self.workdir, self.tls).start()
            self.service = StacSasService({}, token_lifetime=self.token_lifetime).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.service is not None:
            self.service.stop()
            self.service = None
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite = None

    def __enter__(self) -> EmulatorStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def account(self) -> StorageAccount:
        """The account as clients see it: through the fault proxy when there is one."""
        assert self.azurite is not None, "start() the stack first"
        host = self.azurite.account_host
        if self.proxy is not None:
            host = f"127.0.0.1:{self.proxy.port}/{self.azurite.account_name}"
        return StorageAccount(self.azurite.account_name, self.azurite.account_key, host)

    def inject_faults(self, rules: list[FaultRule], seed: int = 0) -> FaultProxy:
        """Put a fault proxy between clients and Azurite (or replace its rules); collections follow."""
        assert self.azurite is not None and self.tls is not None and self.service is not None
        if self.proxy is None:
            self.proxy = FaultProxy(self.tls, self.azurite.port, rules, seed).start()
        else:
            self.proxy.rules = rules
        for served in self.service.collections.values():
            served.account.host = self.account.host
        return self.proxy

    def blob_service(self):
        """An azure-storage-blob client with the account key (the operator's side, not a reader's)."""
        from azure.storage.blob import BlobServiceClient

        assert self.azurite is not None and self.tls is not None
        return BlobServiceClient(
            self.azurite.account_url,
            credential={"account_name": self.azurite.account_name, "account_key": self.azurite.account_key},
            connection_verify=str(self.tls.ca_bundle),
        )

    def add_store(
        self,
        spec: StoreSpec,
        collection_id: str = "conus404",
        container: str = "noaa",
        store_path: str = "conus404.zarr",
        progress=None,
        local_copy: Path | None = None,
    ) -> str:
        """Generate ``spec``, upload it to ``az://{container}/{store_path}`` and serve it as a collection.

        With ``local_copy``, the generated store is kept there and reused when it already holds
        this very spec (benchmarks regenerate nothing between runs); without it, ``store_cache`` gives
        the place. A spec this stack already serves at that place is neither written nor uploaded
        again. Returns the ``az://`` URL.
        """
        from conus404.emulator.synthetic_store import spec_json

        assert self.service is not None
        client = self.blob_service()
        existing = {c.name for c in client.list_containers()}
        if container not in existing:
            client.create_container(container)
        wanted = spec_json(spec)
        if self._uploaded.get((container, store_path)) != wanted:  # the same spec at the same place: served as it is
            if local_copy is None and self.store_cache is not None:
                local_copy = Path(self.store_cache) / hashlib.sha256(wanted.encode()).hexdigest()[:20]
            if local_copy is not None:
                _generate_once(spec, Path(local_copy), progress)
                upload_tree(client.get_container_client(container), Path(local_copy), store_path)
            else:
                with tempfile.TemporaryDirectory(dir=self.workdir, prefix="store-") as tmp:
                    local = Path(tmp) / "store.zarr"
                    write_store(spec, str(local), progress=progress)
                    upload_tree(client.get_container_client(container), local, store_path)
            self._uploaded[(container, store_path)] = wanted
        account = self.account
        account.containers = tuple(sorted(existing | {container}))
        for served in self.service.collections.values():
            served.account.containers = account.containers
        self.service.collections[collection_id] = ServedCollection(
            collection_id, account, container, store_path, spec.time_span(), (spec.ny, spec.nx)
        )
        self.stores[collection_id] = spec
        return f"az://{container}/{store_path}"

    def add_osn_store(self, spec: StoreSpec, progress=None) -> str:
        """Generate ``spec`` (HyTEST layout) and serve it where HyTEST keeps it on the OSN pod,
        ``s3://hytest/conus404/conus404_hourly.zarr``, from moto's S3 server."""
        from conus404.core.endpoints import HYTEST_OSN_URL

        fs = self._s3_server().filesystem()
        bucket, key = HYTEST_OSN_URL.removeprefix("s3://").split("/", 1)
        self.s3.create_bucket(bucket)
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="store-") as tmp:
            local = Path(tmp) / "store.zarr"
            write_store(spec, str(local), progress=progress)
            fs.put(str(local), f"{bucket}/{key}", recursive=True)
        self.stores["hytest-osn"] = spec
        return HYTEST_OSN_URL

    def add_bucket(self, name: str) -> dict:
        """An empty, writable bucket on moto's S3 server (for OUTPUT_URL); returns the storage options to write it."""
        from conus404.emulator.s3_server import UPLOAD_CREDENTIALS

        self._s3_server().create_bucket(name)
        return {**UPLOAD_CREDENTIALS, "client_kwargs": {"endpoint_url": self.s3.endpoint_url, "region_name": "us-east-1"}}

    def _s3_server(self) -> S3Server:
        """moto's S3 server, started on first use."""
        if self.s3 is None:
            assert self.tls is not None, "start() the stack first"
            self.s3 = S3Server(self.workdir / "s3", self.tls).start()
        return self.s3

    def client_env(self) -> dict[str, str]:
        """Environment for a client process: where the catalogue, tokens and OSN pod are, and whom to trust."""
        assert self.service is not None and self.tls is not None
        env = {STAC_URL_ENV: self.service.stac_url, SAS_URL_ENV: self.service.sas_url, **self.tls.client_env()}
        return {**env, **(self.s3.client_env() if self.s3 is not None else {})}


def _generate_once(spec: StoreSpec, local_copy: Path, progress=None) -> None:
    """``spec`` written at ``local_copy`` unless it already holds it; complete stores only under the
    name, so that processes sharing the folder never read one half written."""
    if _holds_spec(local_copy, spec):
        return
    if local_copy.exists():
        shutil.rmtree(local_copy)
    partial = local_copy.with_name(f"{local_copy.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    write_store(spec, str(partial), progress=progress)
    try:
        partial.rename(local_copy)
    except OSError:  # another process got there first with the same spec
        shutil.rmtree(partial, ignore_errors=True)
        if not _holds_spec(local_copy, spec):
            raise


def _holds_spec(path: Path, spec: StoreSpec) -> bool:
    """Whether ``path`` is a complete store written for exactly ``spec``."""
    from conus404.emulator.synthetic_store import SPEC_FILE, spec_json

    try:
        return (path / SPEC_FILE).read_text() == spec_json(spec)
    except OSError:
        return False


def upload_tree(container_client, local_root: Path, prefix: str, threads: int = 8) -> int:
    """Upload every file under ``local_root`` to ``prefix/<relative path>``; returns the file count."""
    files = [p for p in Path(local_root).rglob("*") if p.is_file()]

    def put(path: Path) -> None:
        name = f"{prefix}/{path.relative_to(local_root).as_posix()}"
        with open(path, "rb") as handle:
            container_client.upload_blob(name, handle, overwrite=True)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, files))
    return len(files)


def emulator_env_lines(env: dict[str, str]) -> str:
    """``export KEY='value'`` lines a shell can source."""
    return "".join(f"export {key}='{value}'\n" for key, value in sorted(env.items()))

