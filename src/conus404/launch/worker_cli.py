"""Command line of the day worker (``src/single_download.py``).

The last line on standard output is always one JSON object describing the outcome, for the
driver to record; logs go to standard error. Exit codes: 0 published or already valid,
2 usage error, 3 transient failure (worth retrying), 4 permanent failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from pathlib import Path

from conus404.config import data_folder, setting_values
from conus404.config import settings as settings_mod
from conus404.core.exceptions import ConfigurationError
from conus404.core.failures import EXIT_CODES, EXIT_DONE, failure_class
from conus404.core.processes import peak_rss_mb, process_age_s, release_free_memory

log = logging.getLogger("conus404.worker")


def build_parser() -> argparse.ArgumentParser:
    parser = settings_mod.ArgumentParser(
        prog="single_download.py",
        description="Download UTC days of CONUS404 one after the other, aggregate each to daily values, "
        "validate it and publish data/unprocessed/daily/conus404_daily_YYYYMMDD.nc atomically.",
        epilog="Exit codes: 0 every day published or already valid, 2 usage error, 3 transient failure (retry), "
        "4 permanent failure (the first failed day's). Standard output gets one JSON line per day, "
        "printed as the day finishes.",
    )
    parser.add_argument("dates", nargs="+", metavar="date", help="a UTC day, YYYY-MM-DD (several: run in turn)")
    parser.add_argument("--force", action="store_true", help="redo the day even if its file verifies")
    parser.add_argument("--qc-dir", type=Path, help="where the QC report goes (default DATA_DIR/qc)")
    parser.add_argument(
        "--signed-asset-stdin", action="store_true",
        help="read the already-signed asset as JSON from standard input (how the driver hands it over)",
    )
    settings_mod.add_arguments(parser, date_range=False)
    return parser


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("azure", "urllib3", "aiohttp", "fsspec", "adlfs", "pystac_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class OpenedOnce:
    """The source, opened on first use and kept for the next days; opened afresh when asked."""

    def __init__(self, open_fresh) -> None:
        self._open = open_fresh
        self._opened = None

    def __call__(self, fresh: bool):
        if fresh or self._opened is None:
            self._opened = self._open(fresh)
        return self._opened


def main(argv: list[str] | None = None) -> int:
    from conus404.launch.template_warmup import yield_cpu

    yield_cpu()  # a day's computing gives way to the run's I/O (the driver, the prefetcher, the check)
    configure_logging()
    args = build_parser().parse_args(argv)
    code = EXIT_DONE
    try:
        try:
            days = [setting_values.parse_date(text, "date") for text in args.dates]
            settings = settings_mod.load(args)
            signed = _read_signed_asset() if args.signed_asset_stdin else None
            from conus404.day import worker
            from conus404.sources import source
        except Exception as exc:  # the request itself is wrong: every day fails the same way
            for index, text in enumerate(args.dates):
                code = _report_failure(text, exc, time.monotonic(), quiet=index > 0)
            return code

        qc_dir = args.qc_dir or data_folder.qc_dir(settings.outputs.data_dir)

        def open_source(fresh: bool):
            if fresh:  # the token was refused: ask the token service, not the SDK's cache
                source.refresh_token_cache()
            return source.open_source(settings.access, settings.outputs.data_dir, None if fresh else signed)

        opened = OpenedOnce(open_source)
        startup = process_age_s()  # interpreter start + imports: the fixed cost of a worker
        for index, day in enumerate(days):
            if index:
                release_free_memory()
            started = time.monotonic()
            try:
                result = worker.run_day(day, settings, opened, qc_dir, args.force)
            except Exception as exc:  # every failure becomes one recorded line, never a bare traceback
                day_code = _report_failure(day.isoformat(), exc, started, data_dir=settings.outputs.data_dir)
                code = code or day_code
                if day_code == EXIT_CODES["usage"]:  # the same request fails every later day too
                    for later in days[index + 1:]:
                        _report_failure(later.isoformat(), exc, time.monotonic(), quiet=True)
                    break
                continue
            if index == 0 and startup is not None:
                result.timings = {"startup": round(startup, 3), **result.timings}
            _print_result(result, started)
        return code
    finally:
        if "conus404.sources.source" in sys.modules:
            sys.modules["conus404.sources.source"].release_storage_clients()


def _report_failure(day_text: str, exc: Exception, started: float, quiet: bool = False, data_dir=None) -> int:
    kind = failure_class(exc, data_dir)
    if not quiet:
        if kind == "permanent" and not _is_expected(exc):
            log.error("unexpected failure:\n%s", traceback.format_exc())
        log.error("%s: %s failure: %s", day_text, kind, exc)
    from conus404.day.worker import DayResult

    _print_result(DayResult(day_text, "failed", error_class=kind, message=f"{type(exc).__name__}: {exc}"), started)
    return EXIT_CODES[kind]


def _print_result(result, started: float) -> None:
    result.seconds = round(time.monotonic() - started, 3)
    result.peak_rss_mb = round(peak_rss_mb(), 1)
    print(json.dumps(result.as_dict(), sort_keys=True), flush=True)


def _read_signed_asset():
    from conus404.sources.source import SignedAsset

    try:
        return SignedAsset.from_json(json.load(sys.stdin))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"--signed-asset-stdin: standard input is not a signed asset ({exc})") from None


def _is_expected(exc: BaseException) -> bool:
    from conus404.core import exceptions

    return isinstance(exc, exceptions.Conus404Error)
