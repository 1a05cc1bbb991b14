"""The request's check (conus404/run/preflight.py): run in a child of the launch template, its verdict
sent on ``driver.py --verdict-fd``; the driver itself never loads the storage stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conus404.emulator.synthetic_store import StoreSpec, write_store

ROOT = Path(__file__).resolve().parents[1]
STORAGE_EXTENSIONS = ("numcodecs", "netCDF4", "_cffi_backend", "aiohttp")  # compiled parts of the stack


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("preflight") / "store.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 2, ny=6, nx=7, variables=("T2", "PREC_ACC_NC")), str(path))
    return path


def _driver(tmp: Path, store: Path, variables: str) -> tuple[subprocess.Popen, int]:
    read_end, write_end = os.pipe()
    argv = [sys.executable, str(ROOT / "src" / "driver.py"), "--start", "2021-01-01", "--end", "2021-01-02",
            "--variables", variables, "--statistics", "", "--source", str(store), "--max-processes", "2",
            "--data-dir", str(tmp / "data"), "--log-dir", str(tmp / "logs"), "--verdict-fd", str(write_end)]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    proc = subprocess.Popen(argv, pass_fds=(write_end,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT / "src")
    os.close(write_end)
    return proc, read_end


def _loaded_extensions(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in STORAGE_EXTENSIONS if f"/{name}" in maps}


def test_a_refused_request_is_one_verdict_line_and_exit_2(local_store, tmp_path):
    proc, read_end = _driver(tmp_path, local_store, "T2,FOO")
    with os.fdopen(read_end, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    assert proc.wait(timeout=120) == 2
    [line] = lines
    assert "'FOO' is not a variable of the source" in json.loads(line)["refused"]
    assert not (tmp_path / "data" / "logs").exists(), "no day was started"


def test_the_check_runs_in_a_forked_child_and_the_driver_never_loads_the_storage_stack(local_store, tmp_path):
    proc, read_end = _driver(tmp_path, local_store, "T2,PREC_ACC_NC")
    with os.fdopen(read_end, "rb") as pipe:
        verdict = json.loads(pipe.readline())
        loaded = _loaded_extensions(proc.pid)  # the driver, right after the check and before its days
        assert pipe.read() == b"", "one line, then the end of the pipe"
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert verdict == {"warnings": []}
    assert loaded == set(), f"the driver loaded {loaded}: the check did not run in the template's child"
    assert len(list((tmp_path / "data" / "unprocessed" / "daily").glob("*.nc"))) == 2
