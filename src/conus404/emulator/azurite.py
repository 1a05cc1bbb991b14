"""Azurite, Microsoft's Azure Blob emulator, on a loopback port over HTTPS.

It serves the same storage account and container names as the Planetary Computer
(``azureopendatastorage`` / ``noaa``), so the production code signs and reads exactly as it would
against Azure; only the host differs (``account_host``, path-style, as the Azure SDK does for
127.0.0.1).
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from conus404.core.processes import start_on_free_port, stop_process_group
from conus404.emulator.tls import TlsFiles

NODE_PACKAGE_DIR = Path(__file__).resolve().parent
AZURITE_BLOB = NODE_PACKAGE_DIR / "node_modules" / ".bin" / "azurite-blob"


class AzuriteNotInstalled(RuntimeError):
    """The emulator's node packages are missing: run ``npm ci`` in the emulator folder."""


@dataclass
class Azurite:
    """One Azurite blob service with a single storage account, started and stopped by PID."""

    workdir: Path
    tls: TlsFiles
    account_name: str = "azureopendatastorage"
    account_key: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(64)).decode())
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def account_host(self) -> str:
        """The ``account_host`` adlfs needs: path-style, as Azure SDKs use for loopback hosts."""
        return f"127.0.0.1:{self.port}/{self.account_name}"

    @property
    def account_url(self) -> str:
        return f"https://{self.account_host}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "azurite.log"

    def start(self, attempts: int = 3) -> Azurite:
        if not AZURITE_BLOB.exists():
            raise AzuriteNotInstalled(
                f"{AZURITE_BLOB} is missing; run `npm ci` in {NODE_PACKAGE_DIR} (./run_tests.sh does it)"
            )
        location = self.workdir / "azurite-data"
        location.mkdir(parents=True, exist_ok=True)
        env = _node_env(self.account_name, self.account_key)

        def argv(port: int) -> list[str]:
            return [
                str(AZURITE_BLOB),
                "--blobHost", "127.0.0.1",
                "--blobPort", str(port),
                "--location", str(location),
                "--cert", str(self.tls.server_cert),
                "--key", str(self.tls.server_key),
                "--skipApiVersionCheck",  # newer azure-storage-blob API versions than Azurite knows
                "--disableTelemetry",
                "--disableProductStyleUrl",  # account name always from the first path segment
                "--silent",
            ]

        self.process, self.port = start_on_free_port(argv, self.log_path, "Azurite", env=env, cwd=self.workdir,
                                                     attempts=attempts)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None

    def storage_options(self) -> dict[str, str]:
        """Options for writing with the account key (the generator's side, not the client's)."""
        return {
            "account_name": self.account_name,
            "account_key": self.account_key,
            "account_host": self.account_host,
        }


def _node_env(account_name: str, account_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    # Replaces the well-known devstoreaccount1 with the account the Planetary Computer uses.
    env["AZURITE_ACCOUNTS"] = f"{account_name}:{account_key}"
    return env
