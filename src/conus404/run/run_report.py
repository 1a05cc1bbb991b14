"""What a foreground run shows on the terminal when it ends.

The driver saves its summary table and the retry pass its outcome in the log folder; the
launcher of a ``--foreground`` or ``--demo`` run prints the ones written since it started the
run. A background run's operator finds the same lines at the end of the logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from conus404.core.atomic import atomic_write_text

log = logging.getLogger("conus404.run_report")

DRIVER_SUMMARY = "run_summary.txt"
RETRY_SUMMARY = "retry_summary.txt"
SHOWN_FAILURES = 5  # on the terminal; the logs and ultimate_failures.json list every one


def save(log_dir: Path, name: str, lines: Iterable[str]) -> None:
    """Keep ``lines`` for the terminal; a report is a convenience and never fails the run."""
    try:
        atomic_write_text(Path(log_dir) / name, "".join(f"{line}\n" for line in lines))
    except OSError as exc:
        log.warning("cannot save the run's report %s: %s", Path(log_dir) / name, exc)


def failure_lines(failures: list[tuple[str, str, str]]) -> list[str]:
    """One indented line per (day, error class, reason), the first few only."""
    lines = [f"    {day}  {error_class:9s}  {message}" for day, error_class, message in failures[:SHOWN_FAILURES]]
    if len(failures) > SHOWN_FAILURES:
        lines.append(f"    ... and {len(failures) - SHOWN_FAILURES} more")
    return lines


def written_since(log_dir: Path, since: float) -> list[str]:
    """The driver's and the retry pass's reports written at or after ``since`` (time.time())."""
    lines: list[str] = []
    for name in (DRIVER_SUMMARY, RETRY_SUMMARY):
        path = Path(log_dir) / name
        try:
            if path.stat().st_mtime >= since:
                lines += path.read_text().splitlines()
        except OSError:
            continue
    return lines
