"""Write files so that readers see either the old content or the complete new one, never a part.

Every file the project writes goes through a temporary sibling in the same directory, is flushed
and fsynced, then renamed over the final name (rename is atomic within one filesystem).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"


@contextmanager
def temporary_sibling(final_path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; rename it over ``final_path`` on success.

    On any exception the temporary file is removed and ``final_path`` is left untouched.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{final_path.name}.", dir=final_path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual mode
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, final_path)
        fsync_dir(final_path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    with temporary_sibling(path) as tmp:
        tmp.write_text(text)
        os.chmod(tmp, mode)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
