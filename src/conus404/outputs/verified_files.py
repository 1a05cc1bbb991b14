"""A record of every daily file at the moment it was verified, so that a rerun skips it by a stat.

Verifying a daily file means decoding all its fields and comparing their checksum: tens of
milliseconds for a full-grid file, hours over the whole record. Each time a file is verified
(by the worker that published it, or by a rerun's full check) one JSON line is appended to
``unprocessed/daily/.verified.jsonl``: its name, size, modification time and inode, and what it
holds (fields, box, data checksum). A later run takes a file as done without decoding it only
when all of these still match, i.e. the file has not been written, replaced or moved since it
was verified; anything else gets the full check. (Like make's or rsync's quick check, this does
not notice a change that keeps size and nanosecond mtime; ``--force`` redoes days regardless.)

Lines are appended with one ``write`` on a file opened ``O_APPEND``, so concurrent workers do
not interleave them on a local disk; a line that cannot be read is ignored (its file then gets
the full check), and a lost record costs one full check, never a wrong skip.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from conus404.core import subset

log = logging.getLogger("conus404.verified_files")
RECORDS_NAME = ".verified.jsonl"


def records_path(daily_dir: Path) -> Path:
    return Path(daily_dir) / RECORDS_NAME


def _identity(path: Path) -> dict[str, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def remember(path: Path, fields: Iterable[str], bbox: str | None, sha256: str | None = None,
             units: dict[str, str] | None = None) -> None:
    """Record that ``path``, as it is on disk now, verified with these fields, box and checksum.
    A record that cannot be written costs a full check next time, so failures only log."""
    identity = _identity(path)
    if identity is None:
        return
    line = json.dumps({"name": Path(path).name, **identity, "fields": sorted(set(fields)), "bbox": bbox,
                       "sha256": sha256, "units": dict(units or {})}, sort_keys=True) + "\n"
    try:
        fd = os.open(records_path(Path(path).parent), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("cannot record %s as verified (%s): the next run checks it in full", Path(path).name, exc)


class VerifiedFiles:
    """The records of one daily folder, read once (the newest line of each file wins)."""

    def __init__(self, daily_dir: Path) -> None:
        self.daily_dir = Path(daily_dir)
        self.records: dict[str, dict] = {}
        self.lines = 0
        try:
            with open(records_path(self.daily_dir), encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    self.lines += 1
                    try:
                        record = json.loads(line)
                        self.records[str(record["name"])] = record
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn or foreign line: that file gets the full check
        except OSError:
            pass

    def _unchanged_record(self, path: Path) -> dict | None:
        """The record of ``path`` if it is still the very file that was verified, else None."""
        record = self.records.get(Path(path).name)
        if record is None:
            return None
        identity = _identity(path)
        if identity is None or any(record.get(key) != value for key, value in identity.items()):
            return None
        return record

    def unchanged(self, path: Path, fields: Iterable[str], bbox: str | None, units: dict[str, str] | None = None) -> bool:
        """Whether ``path`` is the very file recorded as verified, holding these fields (or more) for this
        box, each in the units asked for (--units: the variables converted, and only those)."""
        record = self._unchanged_record(path)
        fields = set(fields)
        if record is None or not fields <= set(record.get("fields") or []) or not subset.covers(record.get("bbox"), bbox):
            return False
        recorded = record.get("units") or {}
        return all(recorded.get(name) == (units or {}).get(name) for name in fields)

    def recorded_fields(self, path: Path) -> list[str] | None:
        """The fields ``path`` was verified with, while it is unchanged since (else None)."""
        record = self._unchanged_record(path)
        return None if record is None else list(record.get("fields") or [])

    def compact(self) -> None:
        """Rewrite the records with one line per file still present, when reruns have piled up
        more than twice that many (call it before any worker of the run appends)."""
        from conus404.core.atomic import atomic_write_text

        present = {name: r for name, r in self.records.items() if (self.daily_dir / name).exists()}
        if self.lines <= max(2 * len(present), 100):
            return
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for _, r in sorted(present.items()))
        try:
            atomic_write_text(records_path(self.daily_dir), text)
        except OSError as exc:
            log.warning("cannot compact %s: %s", records_path(self.daily_dir), exc)
            return
        self.records, self.lines = present, len(present)
