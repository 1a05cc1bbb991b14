"""moto's S3 server on a loopback port: the emulator's stand-in for HyTEST's Open Storage Network pod.

The OSN pod serves ``s3://hytest/conus404/conus404_hourly.zarr`` anonymously over HTTPS; here
moto serves the same bucket and key layout over HTTPS on 127.0.0.1 with the emulator's CA
(clients trust it through ``AWS_CA_BUNDLE``) and clients reach it by setting
``CONUS404_OSN_ENDPOINT`` (the production endpoint otherwise). Started and stopped by its
process group, like Azurite.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conus404.core.endpoints import OSN_ENDPOINT_ENV
from conus404.core.processes import start_on_free_port, stop_process_group
from conus404.emulator.tls import TlsFiles

# moto accepts any credentials; the uploader (the operator's side) signs, readers go anonymously.
UPLOAD_CREDENTIALS = {"key": "emulator", "secret": "emulator"}


@dataclass
class S3Server:
    workdir: Path
    tls: TlsFiles
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> S3Server:
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        def argv(port: int) -> list[str]:
            return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port),
                    "--ssl-cert", str(self.tls.server_cert), "--ssl-key", str(self.tls.server_key)]

        self.process, self.port = start_on_free_port(argv, Path(self.workdir) / "moto.log", "moto's S3 server",
                                                     cwd=Path(self.workdir), attempts=attempts, timeout=60)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None

    def filesystem(self):
        """An s3fs filesystem with write access (for uploading stores)."""
        import s3fs

        return s3fs.S3FileSystem(**UPLOAD_CREDENTIALS, client_kwargs={"endpoint_url": self.endpoint_url,
                                                                       "region_name": "us-east-1",
                                                                       "verify": str(self.tls.ca_bundle)},
                                 s3_additional_kwargs={"ACL": "public-read"})  # moto checks object ACLs for anonymous GETs

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1", verify=str(self.tls.ca_bundle),
                              aws_access_key_id=UPLOAD_CREDENTIALS["key"],
                              aws_secret_access_key=UPLOAD_CREDENTIALS["secret"])
        if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=name)

    def client_env(self) -> dict[str, str]:
        return {OSN_ENDPOINT_ENV: self.endpoint_url}
