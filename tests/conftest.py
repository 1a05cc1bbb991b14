"""Shared fixtures: a loopback-only network guard, TLS trust for the emulator, the emulator itself.

aiohttp builds its TLS context when it is imported, so the emulator's throw-away CA must be in
SSL_CERT_FILE before any test module imports adlfs: that is why it is made here, at import time.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from conus404.emulator.tls import make_tls_files

ROOT = Path(__file__).resolve().parents[1]
_TLS_DIR = Path(tempfile.mkdtemp(prefix="conus404-tests-tls-"))
TLS = make_tls_files(_TLS_DIR)
os.environ.update(TLS.client_env())
os.environ.pop("PC_SDK_SUBSCRIPTION_KEY", None)
# Never fall back to the real Planetary Computer, nor to ~/.planetarycomputer/settings.env.
os.environ["PC_SDK_SAS_URL"] = "http://127.0.0.1:9/unset-by-tests"
os.environ["CONUS404_STAC_URL"] = "http://127.0.0.1:9/unset-by-tests"


# -- nothing leaves the machine ---------------------------------------------------------------
class NonLoopbackConnection(AssertionError):
    pass


def _check_address(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost":
                return
            raise NonLoopbackConnection(f"a test tried to reach {host!r}: tests talk only to 127.0.0.1") from None
        if not ip.is_loopback:
            raise NonLoopbackConnection(f"a test tried to reach {host}: tests talk only to 127.0.0.1")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check_address(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# -- no process outlives the tests ------------------------------------------------------------
def live_children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                out.append((int(entry.name), cmd.strip()))
        except (OSError, ValueError):
            continue
    return out


def group_alive(pgid: int) -> bool:
    """True while any process of the group (a zombie leader included) exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                out.append((int(entry.name), cmd.strip()))
    return out


# The longest files first (measured with --durations), so that two xdist workers finish together.
# by measured time per file (./run_tests.sh --junitxml), longest first: three workers then finish together
SLOW_FIRST = ("test_pipeline", "test_untidy_stores", "test_new_user", "test_reliability", "test_worker", "test_benchmarks", "test_bad_input",
              "test_dask_executor", "test_series_run", "test_remote_output", "test_zarr_output", "test_rollups",
              "test_day_boundary", "test_quick_look", "test_sources", "test_days_per_worker",
              "test_emulator_stack", "test_bbox_run", "test_launch_template", "test_executors",
              "test_variable_listing", "test_pipeline_chunk_cache")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = Path(str(item.fspath)).stem
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: a file's own order is kept


FORKED = "forked from launch template pid"  # in a day log's attempt header when started the new way


def parent_command_line(pid: int) -> str:
    """The command line of ``pid``'s parent ('' once either is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        return Path(f"/proc/{ppid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from conus404.launch.launch_template import close_shared_template
    from conus404.sources.source import release_storage_clients

    release_storage_clients()  # close adlfs clients while their event loop still runs
    close_shared_template()  # the launch template of tests that started workers in this process
    leftovers = live_children(os.getpid())
    if leftovers:
        print("\nERROR: the tests left processes running:", *leftovers, sep="\n  ")
        session.exitstatus = 1
    shutil.rmtree(_TLS_DIR, ignore_errors=True)


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tls_files():
    return TLS


@contextmanager
def running_emulator(workdir: Path, spec=None):
    """An emulator stack (Azurite, STAC/SAS; moto on first use) serving ``spec`` as collection
    ``conus404``, stopped when the block ends."""
    from conus404.emulator.stack import EmulatorStack

    stack = EmulatorStack(workdir, tls=TLS).start()
    try:
        if spec is not None:
            stack.add_store(spec)
        yield stack
    finally:
        stack.stop()


def emulator_serving(spec, name: str = "emulator"):
    """A module-scoped fixture: one emulator serving ``spec`` for every test of the module."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory):
        with running_emulator(tmp_path_factory.mktemp(name), spec) as stack:
            yield stack

    return fixture


def reset_faults(stack) -> None:
    """Undo what a test did to a shared stack: no faults, hour-long tokens."""
    import datetime as dt

    if stack.proxy is not None:
        stack.inject_faults([])
    stack.service.token_lifetime = dt.timedelta(hours=1)
    stack.service.stac_unavailable_first = stack.service.token_throttle_first = 0
    stack.service.throttle_until, stack.service.throttle_statuses = 0.0, (429,)
    stack.service.throttle_retry_after_s, stack.service.throttle_retry_after_header = 1, True


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """A running emulator serving a small two-day PC-layout store as collection ``conus404``."""
    from conus404.emulator.synthetic_store import StoreSpec

    with running_emulator(tmp_path_factory.mktemp("emulator"), StoreSpec.for_days("2021-01-01", 2, ny=24, nx=32)) as stack:
        yield stack


@pytest.fixture
def fresh_sdk():
    """Forget the planetary-computer SDK's cached tokens (per-process state) around a test."""
    from planetary_computer import sas

    sas.TOKEN_CACHE.clear()
    yield
    sas.TOKEN_CACHE.clear()


def run_pipeline(tmp: Path, stack, days, variables: str, *flags: str, env: dict | None = None, timeout: float = 300,
                 statistics: str = "", retry_backoff: str = "0.5", progress_interval: str = "1"):
    """./run_pipeline.sh over ``days`` (first..last) against ``stack`` (None: no emulator), 2 processes,
    data and logs in ``tmp``; add ``--foreground`` to wait for the run."""
    import subprocess

    argv = [str(ROOT / "run_pipeline.sh"), "--start", str(days[0]), "--end", str(days[-1]), "--variables", variables,
            "--statistics", statistics, "--max-processes", "2", "--data-dir", str(tmp / "data"),
            "--log-dir", str(tmp / "logs"), "--progress-interval", progress_interval, "--retry-backoff", retry_backoff,
            *flags]
    full_env = {**os.environ, **(stack.client_env() if stack is not None else {}), **(env or {})}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)


def run_driver(stack, tmp, days, variables: str, *flags: str, timeout: float = 300, env: dict | None = None):
    """src/driver.py over ``days`` (first..last) against ``stack``, 2 processes, logs and data in ``tmp``."""
    import subprocess
    import sys

    argv = [sys.executable, str(ROOT / "src" / "driver.py"),
            "--start", days[0].isoformat(), "--end", days[-1].isoformat(), "--variables", variables,
            "--statistics", "", "--max-processes", "2", "--data-dir", str(tmp / "data"), "--log-dir", str(tmp / "logs"),
            "--progress-interval", "1", *flags]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **stack.client_env(), **(env or {})})


def run_prewarmed(argv: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 300):
    """Run ``python SCRIPT ARGS`` as the pipeline does by default: forked from a launch template that
    has done the imports (cwd src/, as the driver's workers). Returns (returncode, stdout, stderr)."""
    from conus404.launch.launch_template import shared_template

    # pytest names the running test in the environment: left in, every test would start its own
    # template (2-3 s of imports each), since a template serves one environment only
    env = {k: v for k, v in env.items() if k != "PYTEST_CURRENT_TEST"}
    template = shared_template(ROOT / "src", env)
    if template is None:  # no fork or pidfds here: a cold process, as the pipeline would start
        import subprocess

        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=stdin, cwd=ROOT / "src")
        return proc.returncode, proc.stdout, proc.stderr
    with tempfile.TemporaryFile() as err:
        child = template.popen(argv, stdin_text=stdin is not None, stderr_fd=err.fileno())
        if stdin is not None:
            child.stdin.write(stdin)
            child.stdin.close()
        out = child.stdout.read()
        child.stdout.close()
        code = child.wait(timeout)
        err.seek(0)
        return code, out, err.read().decode(errors="replace")


def cf_findings(path: Path, tmp_path: Path, test: str = "cf:1.8") -> dict[str, list[str]]:
    """The IOOS compliance checker's failed checks of ``path``, by priority (its report goes to ``tmp_path``)."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / "report.json"
    ComplianceChecker.run_checker(str(path), [test], 0, "normal", output_filename=str(report), output_format="json")
    result = json.loads(report.read_text())[test]
    failed: dict[str, list[str]] = {}
    for priority in ("high_priorities", "medium_priorities", "low_priorities"):
        failed[priority] = [f"{item['name']}: {'; '.join(item['msgs'])}" for item in result.get(priority, [])
                            if item["value"][0] < item["value"][1]]
    return failed
