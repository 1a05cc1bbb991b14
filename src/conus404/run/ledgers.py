"""The failure ledgers: ``data/failed_jobs.json`` (the driver's) and ``ultimate_failures.json``.

Both are JSON objects keyed by date (``YYYY-MM-DD``), as in the original pipeline, written
atomically. A ledger that cannot be read is moved aside (never deleted) and started afresh.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conus404.core.atomic import atomic_write_json

log = logging.getLogger("conus404.ledgers")


@dataclass
class FailureEntry:
    variables: list[str]
    error_class: str  # "transient" | "permanent" | "usage"
    message: str
    exit_code: int | None
    attempts: int
    log: str
    last_attempt: str  # ISO UTC

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FailureEntry:
        fields = {k: data.get(k) for k in cls.__dataclass_fields__}
        fields["attempts"] = int(fields.get("attempts") or 0)
        fields["variables"] = list(fields.get("variables") or [])
        return cls(**fields)


class Ledger:
    """A JSON file of {date: FailureEntry}; every change is saved atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, FailureEntry] = {}
        self.recovered_from: Path | None = None
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_text())
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object keyed by date")
            entries = {}
            for day, entry in raw.items():
                dt.date.fromisoformat(day)
                entries[day] = FailureEntry.from_dict(entry)
            self.entries = entries
        except (ValueError, TypeError, AttributeError) as exc:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
            os.replace(self.path, aside)
            self.recovered_from = aside
            log.warning("%s could not be read (%s); kept it as %s and started a new one", self.path, exc, aside)

    def record(self, day: str, entry: FailureEntry) -> None:
        previous = self.entries.get(day)
        if previous is not None and entry.attempts <= previous.attempts:
            entry.attempts = previous.attempts + 1
        self.entries[day] = entry
        self.save()

    def clear(self, day: str) -> None:
        if self.entries.pop(day, None) is not None:
            self.save()

    def save(self) -> None:
        atomic_write_json(self.path, {day: asdict(e) for day, e in sorted(self.entries.items())})


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
