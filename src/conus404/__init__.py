"""CONUS404 daily pipeline: the library behind src/driver.py, single_download.py and retry_failed.py."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def source_commit() -> str:
    """The git commit of this checkout (read from .git without starting git), or 'unknown'."""
    git = Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return "unknown"
