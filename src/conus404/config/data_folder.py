"""Where a data folder keeps what is about its days, besides the daily files themselves.

Everything about a data folder's days lives in it, so that two data folders never share or overwrite
it, whatever log folder their runs use: the failure ledgers (``failed_jobs.json``,
``ultimate_failures.json``), the verification records (``unprocessed/daily/.verified.jsonl``), each
day's QC report (``qc/qc_YYYYMMDD.json``) and each day's worker log (``logs/download_YYYYMMDD.log``,
one section per attempt), to which the ledgers' ``log`` entries point. The log folder (``logs/``)
keeps what is about runs: the driver's and the retry pass's logs, the console, ``day_results.jsonl``.
Pictures (the run's overview, quick looks of daily files) go to ``pictures/``.
"""

from __future__ import annotations

from pathlib import Path


def qc_dir(data_dir: Path) -> Path:
    """The days' QC reports."""
    return Path(data_dir) / "qc"


def day_log_dir(data_dir: Path) -> Path:
    """The days' worker logs."""
    return Path(data_dir) / "logs"


def pictures_dir(data_dir: Path) -> Path:
    """The run's overview and the quick looks of its daily files: kept with the data, not with the logs
    (archive_logs.sh moves logs away) nor among the daily files (clean_data.sh deletes those)."""
    return Path(data_dir) / "pictures"


def data_folder_of(daily_file_path: Path) -> Path | None:
    """The data folder a daily file was published in (``DATA_DIR/unprocessed/daily/NAME.nc``), or None."""
    path = Path(daily_file_path).resolve()
    if path.parent.name == "daily" and path.parent.parent.name == "unprocessed":
        return path.parents[2]
    return None


def remove_temporaries(data_dir: Path) -> list[Path]:
    """Delete the temporaries (``.tmp-*``, :mod:`conus404.core.atomic`) that writers stopped mid-write left
    anywhere in the data folder (daily files, hourly files, series parts, roll-ups, ledgers, QC reports).
    Only once no writer of the data folder runs: at a run's end, and after a run was stopped. The chunk
    cache is the run's own (deleted wholly at its end) and is not walked."""
    import os

    from conus404.core.atomic import TEMP_PREFIX

    removed = []
    for folder, subfolders, files in os.walk(data_dir):
        subfolders[:] = [name for name in subfolders if name != ".chunk_cache"]
        for name in files:
            if name.startswith(TEMP_PREFIX):
                path = Path(folder) / name
                try:
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
    return removed
