"""The driver's command line and the run options beside the settings: the flags of how days are run
(timeouts, progress, memory, logs), their checks, and the log the driver and its forked check write."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from conus404.config import settings as settings_mod
from conus404.config.settings import PROJECT_ROOT
from conus404.core.exceptions import ConfigurationError


@dataclass
class RunOptions:
    """How the scheduler runs days (beyond what ``Settings`` says about the data)."""

    log_dir: Path = PROJECT_ROOT / "logs"
    force: bool = False
    day_timeout_s: float = 3600.0
    min_available_mb: float = 1024.0
    progress_interval_s: float = 60.0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how the days are run")
    group.add_argument("--day-timeout", type=float, metavar="SECONDS", help="stop a day's worker after this long (default 3600)")
    group.add_argument("--progress-interval", type=float, metavar="SECONDS", help="seconds between progress lines (default 60)")
    group.add_argument("--min-available-mb", type=float, metavar="MB", help="hold back new workers below this free memory (default 1024)")
    group.add_argument("--log-dir", type=Path, metavar="DIR", help="where logs go (default logs/)")


def run_options(args: argparse.Namespace, force: bool = False) -> RunOptions:
    for name in ("day_timeout", "progress_interval"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise ConfigurationError(f"--{name.replace('_', '-')} {value:g} must be a positive number of seconds")
    if getattr(args, "min_available_mb", None) is not None and args.min_available_mb < 0:
        raise ConfigurationError(f"--min-available-mb {args.min_available_mb:g} cannot be negative")
    options = RunOptions(force=force)
    if getattr(args, "log_dir", None):
        options.log_dir = settings_mod.from_command_line(args.log_dir)
    if getattr(args, "day_timeout", None):
        options.day_timeout_s = args.day_timeout
    if getattr(args, "progress_interval", None):
        options.progress_interval_s = args.progress_interval
    if getattr(args, "min_available_mb", None) is not None:
        options.min_available_mb = args.min_available_mb
    return options


def setup_logging(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(path), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    for noisy in ("azure", "urllib3", "aiohttp", "fsspec", "adlfs", "pystac_client", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = settings_mod.ArgumentParser(
        prog="driver.py",
        description="Run one single_download.py worker per UTC day of the range, at most "
        "MAX_CONCURRENT_PROCESSES at once; record failures in data/failed_jobs.json.",
        epilog="Exit codes: 0 every day published or already valid, 1 some day failed (see "
        "data/failed_jobs.json), 2 usage or configuration error (nothing was downloaded).",
    )
    settings_mod.add_arguments(parser)
    parser.add_argument("--force", action="store_true", help="redo days whose files already verify")
    parser.add_argument("--replace-different", action="store_true",
                        help="redo the range's daily files that lack asked fields (they move to quarantine/)")
    parser.add_argument("--verdict-fd", type=int, metavar="FD",
                        help="write the check of the request (one JSON line: warnings, or why it is refused) to this "
                        "open file descriptor; run_pipeline.sh waits for it")
    add_run_arguments(parser)
    return parser
