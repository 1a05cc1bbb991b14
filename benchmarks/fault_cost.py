"""How much time injected storage faults cost one day's worker (the retry policy at work).

    .venv/bin/python benchmarks/fault_cost.py [--grid 200x300] [--rate 0.05] [--repeats 3]

Starts the emulator (with its fault proxy), writes a one-day store, and times the real worker
(src/single_download.py) against it: clean, then with ``--rate`` of chunk requests answered 503
ServerBusy. Prints a markdown table and the ratio. Both runs in one invocation, same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CHUNK_PATH = r"\.zarr/[A-Z0-9_]+/\d+\.\d+\.\d+$"  # data chunks only, not metadata


def run_day(tmp: Path, env: dict[str, str], variables: str) -> tuple[float, dict]:
    argv = [sys.executable, str(ROOT / "src" / "single_download.py"), "2021-01-01", "--force",
            "--variables", variables, "--statistics", "", "--data-dir", str(tmp / "data"), "--qc-dir", str(tmp / "qc")]
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=1800)
    seconds = time.monotonic() - t0
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["status"] != "published":
        raise SystemExit(f"the day did not publish: {result['message']}")
    return seconds, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="200x300")
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variables", default="T2,TD2,PREC_ACC_NC,ACSWDNB")
    args = parser.parse_args()
    ny, nx = (int(v) for v in args.grid.split("x"))

    from conus404.emulator.tls import make_tls_files

    with tempfile.TemporaryDirectory(prefix="fault-cost-") as tmpdir:
        tmp = Path(tmpdir)
        tls = make_tls_files(tmp / "tls")
        from conus404.emulator.fault_proxy import FaultRule
        from conus404.emulator.stack import EmulatorStack
        from conus404.emulator.synthetic_store import StoreSpec

        with EmulatorStack(tmp / "emu", tls=tls) as stack:
            stack.add_store(StoreSpec.for_days("2021-01-01", 1, ny=ny, nx=nx))
            proxy = stack.inject_faults([])
            env = stack.client_env()
            rows = []
            for label, rules in [("clean", []), (f"{args.rate:.0%} of chunk reads answered 503", [FaultRule(CHUNK_PATH, status=503, probability=args.rate)])]:
                proxy.rules = rules
                times = []
                for _ in range(args.repeats):
                    before = proxy.counts["injected"]
                    seconds, _ = run_day(tmp, env, args.variables)
                    times.append(seconds)
                rows.append((label, statistics.median(times), proxy.counts["injected"] - before))
    clean = rows[0][1]
    print(f"| run ({ny}x{nx}, {args.variables}) | median seconds per day | faults injected (last run) | ratio to clean |")
    print("|---|---|---|---|")
    for label, seconds, injected in rows:
        print(f"| {label} | {seconds:.2f} | {injected} | {seconds / clean:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
