"""A no-op rerun: ./run_pipeline.sh --foreground over N finished days (nothing left to do).

    .venv/bin/python benchmarks/noop_rerun.py --days 1000 --grid 100x120

Makes a local store covering N days and the N verified daily files the pipeline would have made
(written through the pipeline's own publish), then times two reruns in one go: the first finds no
record of earlier verification (files from an older version, or copied here) and checks every
file in full; the second skips each by its record in ``.verified.jsonl``. Prints ms per day for
both, the whole command included (start-up of the launcher, driver and retry pass).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=1000, help="finished days to rerun over (default 1000)")
    parser.add_argument("--grid", default="100x120", help="NYxNX of the store and files (default 100x120)")
    parser.add_argument("--out", type=Path, help="also write noop_rerun.json here")
    args = parser.parse_args(argv)
    ny, nx = (int(v) for v in args.grid.lower().split("x"))

    import numpy as np
    import xarray as xr

    from conus404.emulator.synthetic_store import StoreSpec, write_store
    from conus404.outputs import daily_file

    first = dt.date(2001, 1, 1)
    days = [first + dt.timedelta(days=i) for i in range(args.days)]
    with tempfile.TemporaryDirectory(prefix="noop-rerun-") as tmp:
        tmp = Path(tmp)
        store = tmp / "store.zarr"
        write_store(StoreSpec.for_days(first.isoformat(), args.days, ny=ny, nx=nx, variables=("T2",), time_chunk=240),
                    str(store))
        lat, lon = (np.asarray(xr.open_zarr(store)[name].values) for name in ("lat", "lon"))
        rng = np.random.default_rng(0)
        for day in days:  # what a run over these days publishes (fields, checksum, attributes)
            field = daily_file.DailyField("T2", rng.normal(280, 5, (ny, nx)).astype(np.float32),
                                          {"units": "K", "cell_methods": "time: mean"})
            daily_file.publish(daily_file.build_dataset(day, lat, lon, [field], {"source": "Zarr store"}),
                               daily_file.daily_path(tmp / "data", day))
        argv = [str(ROOT / "run_pipeline.sh"), "--foreground", "--start", days[0].isoformat(), "--end",
                days[-1].isoformat(), "--variables", "T2", "--statistics", "", "--source", str(store),
                "--data-dir", str(tmp / "data"), "--log-dir", str(tmp / "logs"), "--retry-backoff", "0"]
        results = {}
        for name in ("first rerun (full checks)", "second rerun (records)"):
            started = time.monotonic()
            proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            seconds = time.monotonic() - started
            log = (tmp / "logs" / "driver_main_run.log").read_text()
            summary = log.split("summary:")[-1]
            if proc.returncode != 0 or f"already valid   {args.days:6d}" not in summary or "published            0" not in summary:
                raise SystemExit(f"the rerun did not skip every day (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            results[name] = {"seconds": round(seconds, 2), "ms_per_day": round(seconds / args.days * 1000, 2)}
    print(f"No-op rerun over {args.days} finished days ({ny}x{nx} files):")
    for name, figures in results.items():
        print(f"- {name}: {figures['seconds']} s, {figures['ms_per_day']} ms per day")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "noop_rerun.json").write_text(json.dumps({"days": args.days, "grid": args.grid, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
