"""Where the test suite's CPU goes: by kind of process and by test file, from one run of it.

    .venv/bin/python benchmarks/suite_cost.py            # the quick suite, as ./run_tests.sh runs it
    .venv/bin/python benchmarks/suite_cost.py --all      # any ./run_tests.sh arguments pass through

Every Python process the suite starts records, as it exits, its own CPU time and its command line
(a ``sitecustomize`` module put first on ``PYTHONPATH``: the pipeline's launcher, driver, launch
template and the days forked from it, the prefetcher, the retry pass, the emulator's servers, the
pytest workers). A pytest plugin records each test's CPU: its worker's own and that of the processes
the worker reaped meanwhile (the pipeline runs a test started; an emulator's Azurite is reaped when
its module's stack stops). Processes that are not Python (Azurite's node, bash) count only there.

The suite's time is bounded below by its CPU time over the machine's cores: this says which part of
the product or of the tests to make cheaper, or which tests cost the most. The run's own wall and CPU
times are its, slightly raised by the recording.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SITECUSTOMIZE = '''
import atexit, os, sys, resource, time
_started, _pid = time.time(), os.getpid()
def _conus404_suite_cost():
    own = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["CONUS404_SUITE_COST_DIR"] + "/processes.jsonl", "a") as out:
        out.write(__import__("json").dumps({"cpu": own.ru_utime + own.ru_stime, "wall": time.time() - _started,
                                            "forked": os.getpid() != _pid, "pid": os.getpid(), "ppid": os.getppid(),
                                            "argv": sys.argv}) + "\\n")
atexit.register(_conus404_suite_cost)
'''

PLUGIN = '''
import json, os, resource, pytest
def _cpu():
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = _cpu()
    yield
    with open(os.environ["CONUS404_SUITE_COST_DIR"] + "/tests.jsonl", "a") as out:
        out.write(json.dumps({"test": item.nodeid, "cpu": _cpu() - before}) + "\\n")
'''


def kind(process: dict, parents: dict[int, dict]) -> str:
    """What a recorded process was, from its command line (and its parent's)."""
    argv, forked = process["argv"], process["forked"]
    line = " ".join(argv)
    for needle, name in (("single_download.py", "day process"), ("conus404.run.launcher", "launcher (run_pipeline.sh)"),
                         ("launcher.py", "launcher (run_pipeline.sh)"), ("driver.py", "driver"),
                         ("retry_failed.py", "retry pass"), ("conus404.emulator", "emulator servers"),
                         ("moto", "emulator servers"), ("server.py", "emulator servers"),
                         ("emulator/__main__.py", "emulator servers")):
        if needle in line:
            return f"{name}{' (forked)' if forked and name == 'day process' else ''}"
    if argv and argv[0] == "-c":
        rest = " ".join(argv[1:]).strip()
        if not rest and len(line) > 2:
            return "launch template"  # its argv is padded, for the days forked from it to show theirs
        if forked and rest.startswith("--"):
            return "request check (forked from the template)"
        parent = parents.get(process["ppid"], {}).get("argv", [])
        if any("driver.py" in part for part in parent):
            return "prefetcher"
        return "python -c (the pytest workers, helpers)"
    return Path(argv[0]).name if argv else "?"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="conus404-suite-cost-") as tmp:
        Path(tmp, "sitecustomize.py").write_text(SITECUSTOMIZE)
        Path(tmp, "conus404_suite_cost_plugin.py").write_text(PLUGIN)
        env = {**os.environ, "CONUS404_SUITE_COST_DIR": tmp,
               "PYTHONPATH": os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")]))}
        started = time.time()
        done = subprocess.run([str(ROOT / "run_tests.sh"), "-p", "conus404_suite_cost_plugin", *sys.argv[1:]],
                              env=env, check=False)
        wall = time.time() - started
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        processes = [json.loads(line) for line in Path(tmp, "processes.jsonl").read_text().splitlines()]
        tests = [json.loads(line) for line in Path(tmp, "tests.jsonl").read_text().splitlines()]
    total = used.ru_utime + used.ru_stime
    print(f"\nsuite: exit {done.returncode}, {wall:.0f} s wall, {total:.0f} CPU-s ({total / wall:.2f} cores on average, "
          f"{os.cpu_count()} here)")
    by_kind: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    parents = {process["pid"]: process for process in processes}
    for process in processes:
        entry = by_kind[kind(process, parents)]
        entry[0] += 1
        entry[1] += process["cpu"]
    recorded = sum(cpu for _, cpu in by_kind.values())
    print(f"\nCPU by kind of Python process ({recorded:.0f} CPU-s; the rest, {total - recorded:.0f}, is not Python):")
    for name, (count, cpu) in sorted(by_kind.items(), key=lambda item: -item[1][1]):
        print(f"  {cpu:7.1f} CPU-s  {count:5d} processes  {cpu / count:5.2f} each  {name}")
    by_file: dict[str, float] = collections.Counter()
    for test in tests:
        by_file[test["test"].split("::")[0]] += test["cpu"]
    print("\nCPU by test file (the worker's own and what it reaped during the file's tests), the 20 costliest:")
    for name, cpu in by_file.most_common(20):
        print(f"  {cpu:7.1f} CPU-s  {name}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
