"""Daily files published to an fsspec URL (``OUTPUT_URL``: ``s3://``, ``az://``, ``gs://``, ...).

For a cluster without a shared filesystem. The worker still builds, verifies and publishes each
day under ``DATA_DIR`` first; then it uploads the file under a temporary name, moves it to its final
name (an object appears whole or not at all), checks its size, and writes a small record beside it
(``conus404_daily_YYYYMMDD.nc.json``: day, fields, box, data checksum, size). The record is the
commit mark: a day counts as published remotely only if its record matches the request and the
file's size. Only then is the local copy removed. Ledgers, QC reports and logs stay local.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conus404.config.parts import Outputs
from conus404.core.atomic import TEMP_PREFIX
from conus404.core.exceptions import ConfigurationError, OutputUploadError
from conus404.outputs import daily_file
from conus404.outputs.day_output import DayOutput, MadeDay

log = logging.getLogger("conus404.worker")  # said in the day's log, as the day's other steps
RECORD_SUFFIX = ".json"


class RemoteOutput:
    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **dict(storage_options or {}))
        except Exception as exc:  # an unknown scheme, a missing backend, a host that does not answer (ftp://)
            raise ConfigurationError(f"OUTPUT_URL {url!r} cannot be used ({type(exc).__name__}: {exc})") from None
        self.root = self.root.rstrip("/")
        from fsspec.implementations.local import LocalFileSystem

        # Object stores have no folders; a local (shared) one must exist. Buckets are never created here.
        self._needs_folder = isinstance(self.fs, LocalFileSystem)

    @classmethod
    def of(cls, outputs: Outputs) -> RemoteOutput | None:
        return cls(outputs.output_url, outputs.output_storage_options) if outputs.output_url else None

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def url_of(self, day: dt.date) -> str:
        return f"{self.url}/{daily_file.daily_name(day)}"

    def check_writable(self) -> None:
        """Write and delete a probe object, or raise ConfigurationError naming the URL."""
        probe = self._path(f".write-probe-{uuid.uuid4().hex}")
        try:
            if self._needs_folder:
                self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"probe")
            self.fs.rm_file(probe)
        except Exception as exc:  # any backend's refusal means the same to the user
            raise ConfigurationError(f"cannot write to the output URL {self.url} ({type(exc).__name__}: {exc})") from None

    def record(self, day: dt.date) -> dict[str, Any] | None:
        """The day's commit record, or None if there is none (or it cannot be read)."""
        name = daily_file.daily_name(day)
        try:
            return json.loads(self.fs.cat_file(self._path(name + RECORD_SUFFIX)))
        except (FileNotFoundError, ValueError):
            return None

    def committed_names(self) -> set[str]:
        """Names of the daily files with a commit record (one listing, for --status)."""
        try:
            listed = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return set()
        except Exception as exc:  # the user asked for a status: say what blocks it in one line
            raise ConfigurationError(f"cannot list the output URL {self.url} ({type(exc).__name__}: {exc})") from None
        return {str(p).rsplit("/", 1)[-1].removesuffix(RECORD_SUFFIX) for p in listed if str(p).endswith(RECORD_SUFFIX)}

    def published(self, day: dt.date, names: Iterable[str], bbox: str | None) -> bool:
        """Whether the day is there as this request would make it: record and file size agree."""
        record = self.record(day)
        if record is None or record.get("day") != day.isoformat() or not _same_request(record, names, bbox):
            return False
        try:
            return self.fs.size(self._path(daily_file.daily_name(day))) == record.get("size")
        except FileNotFoundError:
            return False

    def publish(self, local: Path, day: dt.date, bbox: str | None) -> str:
        """Upload a published local daily file and commit it; returns its URL. Raises OutputUploadError."""
        import netCDF4

        name = local.name
        with netCDF4.Dataset(local) as nc:
            record = {"day": day.isoformat(), "variables": nc.getncattr("conus404_variables").split(), "bbox": bbox,
                      "data_sha256": nc.getncattr("conus404_data_sha256"), "size": local.stat().st_size}
        final = self._path(name)
        try:
            if self._needs_folder:
                self.fs.makedirs(self.root, exist_ok=True)
            self._set_aside_other_request(day, record)
            self._put_then_move(lambda tmp: self.fs.put_file(str(local), tmp), final)
            size = self.fs.size(final)
            if size != record["size"]:
                raise OutputUploadError(f"{self.url}/{name} has {size} bytes after the upload, not {record['size']}", self.url)
            body = json.dumps(record, sort_keys=True).encode()
            self._put_then_move(lambda tmp: self.fs.pipe_file(tmp, body), final + RECORD_SUFFIX)
        except OutputUploadError:
            raise
        except Exception as exc:  # network, permissions, throttling: the day is worth retrying
            raise OutputUploadError(f"uploading {name} failed ({type(exc).__name__}: {exc})", self.url) from None
        return f"{self.url}/{name}"

    def _set_aside_other_request(self, day: dt.date, record: dict[str, Any]) -> None:
        """An object made for another request (other fields or box) is moved to quarantine/, never
        overwritten, as a local file that does not verify is; the same request's object is replaced."""
        name = daily_file.daily_name(day)
        old = self.record(day)
        if not self.fs.exists(self._path(name)):
            return
        if old is not None and _same_request(old, record["variables"], record["bbox"]):
            return
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        for suffix in ("", RECORD_SUFFIX):
            if self.fs.exists(self._path(name + suffix)):
                if self._needs_folder:
                    self.fs.makedirs(self._path("quarantine"), exist_ok=True)
                self.fs.mv(self._path(name + suffix), self._path(f"quarantine/{name}{suffix}.{stamp}"))

    def _put_then_move(self, put, final: str) -> None:
        """Write under a temporary name, then move: no reader ever sees part of ``final``."""
        tmp = self._path(f"{TEMP_PREFIX}{final.rsplit('/', 1)[-1]}.{uuid.uuid4().hex}")
        put(tmp)
        try:
            self.fs.mv(tmp, final)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm_file(tmp)


class RemoteCopy(DayOutput):
    """The day's published daily file copied to OUTPUT_URL and committed there; then the local copy goes."""

    def __init__(self, remote: RemoteOutput, final: Path) -> None:
        self.remote, self.final = remote, final

    def deliver(self, made: MadeDay) -> str:
        step = time.monotonic()
        url = self.send(made.day, made.region)
        made.timings["upload"] = time.monotonic() - step
        return url

    def send(self, day: dt.date, region: str | None) -> str:
        """Upload the local daily file of ``day``, remove it here, and return its URL."""
        url = self.remote.publish(self.final, day, region)
        self.final.unlink()
        log.info("uploaded to %s", url)
        return url


def _same_request(record: Mapping[str, Any], names: Iterable[str], bbox: str | None) -> bool:
    """Whether a commit record is of a file with these fields over this box."""
    from conus404.core.subset import covers

    return sorted(record.get("variables", [])) == sorted(set(names)) and covers(record.get("bbox"), bbox)
