"""Command line of the local Planetary Computer emulator.

    python -m conus404.emulator serve [--days 2] [--grid 40x56] [--env-file F]   # Ctrl+C stops it
    python -m conus404.emulator generate PATH [--days 2] [--layout hytest]      # a local store

Run from ``src/`` (or with ``src`` on PYTHONPATH); ``./run_pipeline.sh --demo`` does this for you.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import tempfile
import threading
from pathlib import Path

from conus404.core import grid
from conus404.core.atomic import atomic_write_text
from conus404.emulator.store_layouts import TIME_ENCODINGS
from conus404.emulator.synthetic_store import DEFAULT_VARIABLES, StoreSpec, supported_variables


def _grid(value: str) -> tuple[int, int]:
    if value == "full":
        return grid.FULL_NY, grid.FULL_NX
    try:
        ny, nx = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid {value!r} is not NYxNX (e.g. 40x56) or 'full'") from None
    if not (2 <= ny <= grid.FULL_NY and 2 <= nx <= grid.FULL_NX):
        raise argparse.ArgumentTypeError(f"grid {value!r} must be between 2x2 and {grid.FULL_NY}x{grid.FULL_NX}")
    return ny, nx


def _day(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date YYYY-MM-DD") from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return number


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=_day, default="2021-01-01", help="first UTC day (default 2021-01-01)")
    parser.add_argument("--days", type=_positive, default=2, help="whole days in the store (default 2)")
    parser.add_argument("--grid", type=_grid, default=(40, 56), help="NYxNX or 'full' (1015x1367); default 40x56")
    parser.add_argument("--layout", choices=("pc", "hytest"), default="pc", help="store layout (default pc)")
    parser.add_argument("--variables", default=",".join(DEFAULT_VARIABLES), help="comma-separated variables")
    parser.add_argument("--seed", type=int, default=404, help="random seed (default 404)")
    parser.add_argument("--tidy", action="store_true",
                        help="fields without the real model's quirks (no fog, tiny negatives or quantisation)")
    parser.add_argument("--fill-value", choices=("nan", "null"), default="nan",
                        help="the arrays' fill value (null: zarr reads a missing chunk as 0); default nan")
    parser.add_argument("--time-encoding", choices=sorted(TIME_ENCODINGS),
                        help="how time is stored (default: the layout's own, int64 hours for pc, WRF's float32 "
                        "minutes for hytest)")
    parser.add_argument("--no-closing-record", action="store_true",
                        help="end at 23Z of the last day, as the Planetary Computer's record does")


def _spec(args: argparse.Namespace) -> StoreSpec:
    names = tuple(v.strip() for v in args.variables.split(",") if v.strip())
    unknown = [v for v in names if v not in supported_variables(args.layout)]
    if unknown:
        raise ValueError(
            f"the emulator cannot make {', '.join(unknown)} for the {args.layout} layout; "
            f"choose from {', '.join(supported_variables(args.layout))}"
        )
    ny, nx = args.grid
    return StoreSpec.for_days(args.start, args.days, closing_record=not args.no_closing_record, ny=ny, nx=nx,
                              variables=names, layout=args.layout, seed=args.seed, quirks=not args.tidy,
                              fill_value=args.fill_value, time_encoding=args.time_encoding)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conus404.emulator", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start Azurite + STAC/SAS with a sample store until Ctrl+C or SIGTERM")
    _spec_arguments(serve)
    serve.add_argument("--workdir", type=Path, help="where Azurite keeps its data (default: a temp dir, removed)")
    serve.add_argument("--token-lifetime", type=_positive, default=3600, help="SAS token lifetime, seconds")
    serve.add_argument("--env-file", type=Path, help="also write the client settings here as shell exports")
    generate = sub.add_parser("generate", help="write a synthetic store to a local path")
    generate.add_argument("path", type=Path, help="where to write the .zarr store (must not exist)")
    _spec_arguments(generate)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from conus404.emulator.stack import EmulatorStack, emulator_env_lines

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    spec = _spec(args)
    with tempfile.TemporaryDirectory(prefix="conus404-emulator-") as tmp:
        workdir = args.workdir or Path(tmp)
        with EmulatorStack(workdir, token_lifetime=dt.timedelta(seconds=args.token_lifetime)) as stack:
            print(f"emulator: writing a {spec.layout} store, {args.days} day(s) from {args.start}, "
                  f"grid {spec.ny}x{spec.nx}, {len(spec.variables)} variables ...", flush=True)
            stack.add_store(spec)
            exports = emulator_env_lines(stack.client_env())
            if args.env_file:
                atomic_write_text(args.env_file, exports)
            print("emulator: ready. A client needs these settings:\n" + exports, end="", flush=True)
            print("emulator: Ctrl+C (or SIGTERM) stops it.", flush=True)
            stop.wait()
            print("emulator: stopping", flush=True)
    if args.env_file:
        args.env_file.unlink(missing_ok=True)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from conus404.emulator.synthetic_store import write_store

    if args.path.exists():
        print(f"error: {args.path} already exists; choose a new path", file=sys.stderr)
        return 2
    spec = _spec(args)
    write_store(spec, str(args.path), progress=lambda msg: print(f"generate: {msg}", flush=True))
    print(f"generate: wrote {args.path} ({spec.time_span()[0]} .. {spec.time_span()[1]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _serve(args) if args.command == "serve" else _generate(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
