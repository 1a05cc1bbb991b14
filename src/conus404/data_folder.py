"""Where a data folder keeps what is about its days, besides the daily files themselves.

Everything about a data folder's days lives in it, so that two data folders never share or overwrite
it, whatever log folder their runs use: the failure ledgers (``failed_jobs.json``,
``ultimate_failures.json``), the verification records (``unprocessed/daily/.verified.jsonl``), each
day's QC report (``qc/qc_YYYYMMDD.json``) and each day's worker log (``logs/download_YYYYMMDD.log``,
one section per attempt), to which the ledgers' ``log`` entries point. The log folder (``logs/``)
keeps what is about runs: the driver's and the retry pass's logs, the console, ``day_results.jsonl``.
"""

from __future__ import annotations

from pathlib import Path


def qc_dir(data_dir: Path) -> Path:
    """The days' QC reports."""
    return Path(data_dir) / "qc"


def day_log_dir(data_dir: Path) -> Path:
    """The days' worker logs."""
    return Path(data_dir) / "logs"
