"""Throughput of the pipeline beside the raw-fetch limit, a seed-style baseline and a notebook loop.

    .venv/bin/python benchmarks/throughput.py                   # full grid, 4 days, both layouts
    .venv/bin/python benchmarks/throughput.py --days 10 --latency-ms 20 --out benchmarks/results
    .venv/bin/python benchmarks/throughput.py --smoke           # small grid, 2 days (the test suite's run)

One run, one machine, the same emulated stores (Azurite over HTTPS behind a counting proxy, the
local STAC + SAS service) for every contender:

  limit     two processes fetch and decompress exactly the chunk keys the days need, once each
  pipeline  src/driver.py with --max-processes 2 (the real scripts, one worker per day)
  pipeline-batched  the same with --days-per-worker N (each worker runs up to N days in turn)
  seed      the seed design: one process per day (2 at once) that opens the catalogue, signs,
            opens the store, .load()s the day whole and writes it
  notebook  one process: open once, loop over the days, mean/sum, to_netcdf
  pipeline-local, notebook-local  the same two on a copy of the store on local disk (an HPC
            user's own copy): no network, so fixed per-day costs show undiluted

Bytes and requests are counted by the proxy; "needed" is the compressed size of the distinct
chunks the days' hour windows touch (plus lat/lon and .zmetadata), from the blob listing.
Prints a markdown table and writes it with the raw figures (JSON) to --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
CONTENDERS = ROOT / "benchmarks" / "contenders"
ORDER = ("limit", "pipeline", "pipeline-batched", "seed", "notebook", "pipeline-local", "notebook-local")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--days", type=int, default=4, help="days to run (default 4)")
    parser.add_argument("--first-day", default="2021-01-01", help="first UTC day (default 2021-01-01)")
    parser.add_argument("--grid", default="1015x1367", help="NYxNX of the synthetic stores (default: the full grid)")
    parser.add_argument("--variables", default="T2,TD2,PREC_ACC_NC,ACSWDNB", help="variables to aggregate")
    parser.add_argument("--layouts", default="pc,hytest", help="store layouts: pc (1-hour chunks), hytest (144-hour)")
    parser.add_argument("--contenders", default=",".join(ORDER), help=f"which to run (default {','.join(ORDER)})")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every storage request")
    parser.add_argument("--bandwidth-mbps", type=float, default=0.0,
                        help="model a network link of this many megabits per second shared by all requests (0: loopback)")
    parser.add_argument("--days-per-worker", type=int, default=4, help="for pipeline-batched (default 4)")
    parser.add_argument("--launch", default="prewarmed", choices=("prewarmed", "cold"),
                        help="how the pipeline starts its worker processes (LAUNCH; default prewarmed)")
    parser.add_argument("--pipeline-args", default="", metavar="FLAGS",
                        help="more src/driver.py flags for the pipeline contenders, given with '=': --pipeline-args=--no-chunk-cache")
    parser.add_argument("--store-cache", type=Path, metavar="DIR",
                        help="keep the generated stores here and reuse them in later runs (they take minutes to make)")
    parser.add_argument("--out", type=Path,
                        help="write throughput.md and throughput.json here, and each pipeline run's logs")
    parser.add_argument("--smoke", action="store_true", help="60x80 grid, 2 days: checks the harness, not speed")
    args = parser.parse_args(argv)
    if args.smoke:
        args.grid, args.days = "60x80", 2
    try:
        args.ny, args.nx = (int(v) for v in args.grid.lower().split("x"))
        args.first = dt.date.fromisoformat(args.first_day)
    except ValueError:
        parser.error(f"--grid {args.grid!r} must be NYxNX and --first-day {args.first_day!r} YYYY-MM-DD")
    if args.days < 1:
        parser.error(f"--days {args.days} must be at least 1")
    args.layout_list = [v.strip() for v in args.layouts.split(",") if v.strip()]
    args.contender_list = [v.strip() for v in args.contenders.split(",") if v.strip()]
    bad = [v for v in args.layout_list if v not in ("pc", "hytest")] + [v for v in args.contender_list if v not in ORDER]
    if bad:
        parser.error(f"unknown layout or contender: {', '.join(bad)}")
    return args


# ---- what the days need ---------------------------------------------------------------------

def store_variables(variables: list[str], layout: str) -> tuple[str, ...]:
    """What the synthetic store must hold: the variables, their bucket counters (PC), WSPD10's inputs."""
    from conus404.day.derived import DERIVED
    from conus404.emulator.synthetic_store import supported_variables

    names: list[str] = []
    for name in variables:
        names += list(DERIVED[name].inputs) if name in DERIVED else [name]
        if layout == "pc" and f"I_{name}" in supported_variables("pc"):
            names.append(f"I_{name}")
    return tuple(dict.fromkeys(names))


def needed_keys(zmeta: dict, blobs: dict[str, int], first_hour: int, days: list[dt.date], variables: list[str]) -> set[str]:
    """Distinct chunk keys that the days' hour windows touch, plus lat/lon and .zmetadata."""
    import pandas as pd

    from conus404.core.day_windows import hour_window
    from conus404.core.variables import VariableClass, classify
    from conus404.day.derived import DERIVED

    meta = zmeta["metadata"]
    keys = {".zmetadata"} | {k for k in blobs if k.split("/")[0] in ("lat", "lon") and not k.split("/")[-1].startswith(".")}
    for day in days:
        for name in variables:
            if name in DERIVED:
                var_class, inputs = VariableClass.INSTANTANEOUS, DERIVED[name].inputs
            else:
                var_class = classify(name, meta.get(f"{name}/.zattrs", {}))
                inputs = (name, f"I_{name}") if var_class == VariableClass.BUCKET else (name,)
            for array in inputs:
                time_chunk = meta[f"{array}/.zarray"]["chunks"][0]
                hours = hour_window(var_class, day).hours
                chunk_ids = {(int((t - pd.Timestamp("1970-01-01")) / pd.Timedelta(hours=1)) - first_hour) // time_chunk
                             for t in hours}
                keys |= {k for k in blobs if k.startswith(f"{array}/") and not k.split("/")[-1].startswith(".")
                         and int(k.split("/")[-1].split(".")[0]) in chunk_ids}
    return keys


# ---- the contenders ---------------------------------------------------------------------------

def run_limit(ctx: dict, keys: set[str]) -> dict:
    """Two processes, each fetching and decompressing half of the needed chunks."""
    meta = ctx["zmeta"]["metadata"]
    codecs = {k.split("/")[0]: {"compressor": meta[f"{k.split('/')[0]}/.zarray"]["compressor"],
                               "filters": meta[f"{k.split('/')[0]}/.zarray"]["filters"]}
              for k in keys if k != ".zmetadata"}
    by_size = sorted(keys, key=lambda k: ctx["blobs"][k], reverse=True)
    halves = [by_size[0::2], by_size[1::2]]
    procs = []
    try:
        for half in halves:
            proc = subprocess.Popen([sys.executable, str(CONTENDERS / "raw_fetch.py"), "8"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True, env=ctx["env"])
            proc.stdin.write(json.dumps({"asset": ctx["asset"], "keys": half, "codecs": codecs}) + "\n")
            proc.stdin.flush()
            procs.append(proc)
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("a raw-fetch process failed to start")
        ctx["proxy"].counts.clear()
        started = time.monotonic()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [json.loads(proc.communicate(timeout=3600)[0].strip().splitlines()[-1]) for proc in procs]
        wall = time.monotonic() - started
    finally:
        for proc in procs:  # interrupted: stop them by PID, leave nothing behind
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"wall_s": wall, "overhead_s": 0.0, "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


def run_pipeline(ctx: dict, work: Path, days_per_worker: int = 1, local: bool = False) -> dict:
    days, args = ctx["days"], ctx["args"]
    name = f"pipeline-{days_per_worker}{'-local' if local else ''}"
    logs = work / f"{name}-logs"
    argv = [sys.executable, str(ROOT / "src" / "driver.py"), "--start", days[0].isoformat(), "--end", days[-1].isoformat(),
            "--max-processes", "2", "--days-per-worker", str(days_per_worker), "--variables", args.variables,
            "--statistics", "", "--data-dir", str(work / name), "--log-dir", str(logs), "--progress-interval", "5",
            "--launch", args.launch, *args.pipeline_args.split(),
            *(["--source", str(ctx["local_store"])] if local else [])]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=ctx["env"], timeout=7200)
    wall = time.monotonic() - started
    results = [json.loads(line) for line in (logs / "day_results.jsonl").read_text().splitlines()] if (
        logs / "day_results.jsonl").exists() else []
    published = [r for r in results if r["status"] == "published"]
    if proc.returncode != 0 or len(published) != len(days):
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"the pipeline did not publish every day (exit {proc.returncode}):\n{tail}")
    fixed = ("startup", "open", "verify")  # not reading, aggregating or compressing
    overhead = sum(sum(r["timings"].get(k, 0) for k in fixed) for r in published) / len(published)
    phases = {k: round(sum(r["timings"].get(k, 0) for r in published) / len(published), 2)
              for k in ("startup", "open", "read", "aggregate", "write", "verify")}
    if args.out:  # the run's logs outlive the temporary folder, to read its timeline afterwards
        shutil.copytree(logs, args.out / f"{work.name}-{name}-logs", dirs_exist_ok=True)
    said = re.search(r"prefetcher: (\d+) chunk\(s\), (\d+) MB fetched ahead", (logs / "driver_main_run.log").read_text())
    return {"wall_s": wall, "overhead_s": overhead, "peak_rss_mb": max(r["peak_rss_mb"] for r in published),
            "phases_s": phases, "prefetched_chunks": int(said.group(1)) if said else 0}


def run_seed(ctx: dict, work: Path) -> dict:
    def one(day: dt.date) -> dict:
        argv = [sys.executable, str(CONTENDERS / "seed_style_day.py"), day.isoformat(), ctx["args"].variables, str(work / "seed")]
        proc = subprocess.run(argv, capture_output=True, text=True, env=ctx["env"], timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"the seed-style worker failed on {day}:\n{proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # the seed's MAX_CONCURRENT_PROCESSES = 2
        results = list(pool.map(one, ctx["days"]))
    wall = time.monotonic() - started
    overhead = sum(r["timings"]["startup"] + r["timings"]["open"] for r in results) / len(results)
    return {"wall_s": wall, "overhead_s": overhead, "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


def run_notebook(ctx: dict, work: Path, local: bool = False) -> dict:
    days = ctx["days"]
    argv = [sys.executable, str(CONTENDERS / "notebook_loop.py"), days[0].isoformat(), str(len(days)),
            ctx["args"].variables, str(work / ("notebook-local" if local else "notebook")),
            *([str(ctx["local_store"])] if local else [])]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=ctx["env"], timeout=7200)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"the notebook loop failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "overhead_s": (result["startup"] + result["open"]) / len(days), "peak_rss_mb": result["peak_rss_mb"]}


# ---- the run ----------------------------------------------------------------------------------

def measure_layout(stack, layout: str, args, work: Path, progress) -> list[dict]:
    from conus404.config.settings import assemble
    from conus404.emulator.synthetic_store import StoreSpec
    from conus404.sources.source import sign_collection_asset

    variables = [v.strip() for v in args.variables.split(",") if v.strip()]
    days = [args.first + dt.timedelta(days=i) for i in range(args.days)]
    spec = StoreSpec.for_days(args.first.isoformat(), args.days, ny=args.ny, nx=args.nx, layout=layout,
                              variables=store_variables(variables, layout))
    progress(f"{layout}: writing a {args.ny}x{args.nx} store of {spec.hours} hours ({', '.join(spec.variables)})")
    store_path = f"conus404-{layout}.zarr"
    local = (args.store_cache or work) / f"{layout}-{args.ny}x{args.nx}-{args.days}d-{'_'.join(spec.variables)}.zarr"
    stack.add_store(spec, store_path=store_path, local_copy=local)
    container = stack.blob_service().get_container_client("noaa")
    blobs = {b.name[len(store_path) + 1:]: b.size for b in container.list_blobs(name_starts_with=store_path + "/")}
    zmeta = json.loads(container.download_blob(f"{store_path}/.zmetadata").readall())
    keys = needed_keys(zmeta, blobs, spec.first_hour, days, variables)
    needed_bytes = sum(blobs[k] for k in keys)
    env = {**os.environ, **stack.client_env(), "PYTHONPATH": str(ROOT / "src")}
    defaults = assemble(start_date=days[0], end_date=days[-1], variables=tuple(variables))
    asset = sign_collection_asset(env["CONUS404_STAC_URL"], "conus404", "zarr-abfs", env["PC_SDK_SAS_URL"])
    ctx = {"args": args, "days": days, "env": env, "proxy": stack.proxy, "zmeta": zmeta, "blobs": blobs,
           "asset": asset.to_json(), "settings": defaults, "local_store": local}
    rows = []
    for name in args.contender_list:
        os.sync()  # the previous step's writes are not flushed during the next contender's run
        progress(f"{layout}: running {name} over {len(days)} day(s)")
        stack.proxy.counts.clear()
        if name == "limit":
            row = run_limit(ctx, keys)
        else:
            run = {"pipeline": run_pipeline, "seed": run_seed, "notebook": run_notebook,
                   "pipeline-batched": lambda c, w: run_pipeline(c, w, args.days_per_worker),
                   "pipeline-local": lambda c, w: run_pipeline(c, w, local=True),
                   "notebook-local": lambda c, w: run_notebook(c, w, local=True)}[name]
            row = run(ctx, work / layout)
        row.update({
            "layout": layout, "contender": name, "days": len(days),
            "requests": stack.proxy.counts["forwarded"], "bytes_fetched": stack.proxy.counts["bytes"],
            "bytes_needed": needed_bytes,
        })
        progress(f"{layout}: {name} took {row['wall_s']:.1f} s")
        rows.append(row)
    return rows


def table(rows: list[dict], args) -> str:
    lines = [f"Grid {args.ny}x{args.nx}, {args.days} day(s), variables {args.variables}, "
             f"added latency {args.latency_ms:g} ms per request, "
             f"{f'a shared {args.bandwidth_mbps:g} Mbit/s link' if args.bandwidth_mbps else 'loopback bandwidth'}, "
             f"{args.launch} launch, " + (f"pipeline flags {args.pipeline_args!r}, " if args.pipeline_args else "") +
             "2 processes where the design has several.", "",
             "| layout | contender | days/min | s/day | × limit | fixed overhead s/day | fetched ÷ needed | requests/day | peak RSS MB/worker |",
             "|---|---|---|---|---|---|---|---|---|"]
    for layout in dict.fromkeys(r["layout"] for r in rows):
        group = [r for r in rows if r["layout"] == layout]
        limit = next((r for r in group if r["contender"] == "limit"), None)
        for r in group:
            per_min = r["days"] / r["wall_s"] * 60
            local = r["contender"].endswith("-local")  # no network: the limit and the proxy's counts do not apply
            fetched = "–" if local else f"{r['bytes_fetched'] / r['bytes_needed']:.2f}"
            requests = "–" if local else f"{r['requests'] / r['days']:.0f}"
            versus = f"{per_min / (limit['days'] / limit['wall_s'] * 60):.2f}" if limit and not local else "–"
            lines.append(
                f"| {layout} | {r['contender']} | {per_min:.1f} | {r['wall_s'] / r['days']:.2f} | {versus} | "
                f"{r['overhead_s']:.2f} | {fetched} | {requests} | "
                f"{r['peak_rss_mb']:.0f} |")
    phases = [r for r in rows if r.get("phases_s")]
    if phases:
        lines += ["", "Pipeline worker time per day, mean (s):", ""] + [
            f"- {r['layout']} {r['contender']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["phases_s"].items())
            for r in phases]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from conus404.emulator.fault_proxy import FaultRule
    from conus404.emulator.stack import EmulatorStack

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmpdir:
        work = Path(tmpdir)
        with EmulatorStack(work / "emulator") as stack:
            latency = [FaultRule(".", delay_s=args.latency_ms / 1000)] if args.latency_ms > 0 else []
            proxy = stack.inject_faults(latency)  # the proxy counts requests and bytes for every contender
            proxy.bandwidth_bytes_per_s = args.bandwidth_mbps * 1e6 / 8 or None
            for layout in args.layout_list:
                rows += measure_layout(stack, layout, args, work, progress)
    report = table(rows, args)
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "throughput.md").write_text(report)
        settings = {k: v for k, v in vars(args).items() if k not in ("first", "out", "layout_list", "contender_list")}
        (args.out / "throughput.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
