"""Command line of ``src/quick_look.py``: maps of daily files' fields as PNG images."""

from __future__ import annotations

import sys
from pathlib import Path

from conus404.config import settings as settings_mod
from conus404.core.exceptions import ConfigurationError


def build_parser():
    parser = settings_mod.ArgumentParser(
        prog="quick_look.py",
        description="Draw a map of a field of each daily file given (on its own lat/lon, colour scale from the "
        "2nd to 98th percentile, units on the colour bar) and write it as a PNG beside the file, or to --out.",
        epilog="Exit codes: 0 every map written, 2 a file or field that cannot be drawn.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="daily NetCDF files (conus404_daily_*.nc)")
    parser.add_argument("--variable", metavar="NAME", help="the field to draw (default: the file's first, e.g. T2)")
    parser.add_argument("--out", type=Path, metavar="PNG", help="where the image goes (only with one FILE)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out and len(args.files) > 1:
        print("quick_look.py: --out takes one FILE; without it each map goes beside its file", file=sys.stderr)
        return 2
    from conus404.outputs.quick_look import render_map

    for path in args.files:
        if not path.is_file():
            print(f"quick_look.py: {path} is not a file", file=sys.stderr)
            return 2
        try:
            print(render_map(path, args.variable, args.out))
        except ConfigurationError as exc:
            print(f"quick_look.py: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # the image cannot be written there (read-only, no such folder, full)
            where = args.out or exc.filename or "its folder"
            print(f"quick_look.py: cannot write the image to {where}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 0
