"""A full disk: recognised as such, checked before a run, and said in one line.

HDF5 under netCDF4 reports a full disk as "NetCDF: HDF error" (no errno), and a temporary that
cannot grow can surface as PermissionError; so besides ENOSPC and EDQUOT, a write failure while
the data folder has almost no space left is taken as a full disk.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

LOW_SPACE_BYTES = 64 * 2**20  # below this, a failed write is taken as the disk being full
COMPRESSED_SHARE = 0.7  # float32 fields with zlib 1 + shuffle: 0.52-0.63 of their raw size (synthetic full-grid fields)
FILE_OVERHEAD_BYTES = 64 * 2**10


def free_bytes(folder: Path) -> int | None:
    """Free space for the folder (or its nearest existing parent); None if it cannot be known."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_disk_full(exc: BaseException, data_dir: Path | None = None) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if data_dir is not None and isinstance(exc, OSError | RuntimeError):  # HDF errors are RuntimeError
        free = free_bytes(data_dir)
        return free is not None and free < LOW_SPACE_BYTES
    return False


def describe(data_dir: Path) -> str:
    free = free_bytes(data_dir)
    return f"the disk of the data folder {data_dir} is full" + (f" ({size_text(free)} free)" if free is not None else "")


def estimate_bytes(days: int, fields: int, cells: int) -> int:
    """About what the daily files of a request take (lat/lon are stored raw in each file)."""
    per_file = fields * cells * 4 * COMPRESSED_SHARE + 2 * cells * 4 + FILE_OVERHEAD_BYTES
    return int(days * per_file)


def size_text(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


def space_warning(data_dir: Path, days: int, fields: int, cells: int) -> str | None:
    """A warning when the request will not fit on the data folder's disk, else None."""
    need, free = estimate_bytes(days, fields, cells), free_bytes(data_dir)
    if free is None or free >= need:
        return None
    return (f"the daily files of this request need about {size_text(need)}; the disk of the data folder "
            f"{data_dir} has {size_text(free)} free: the run will stop when it is full (rerun to resume)")
