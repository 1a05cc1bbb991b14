"""What the launch template prepares: the day's imports (the remote-storage stack only for a run
that touches remote storage), a frozen garbage collector, and glibc's allocator kept from handing
chunk buffers back to the kernel (unit tests)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from conus404.config.settings import HYTEST_OSN, PLANETARY_COMPUTER, assemble
from conus404.launch import launch_template
from conus404.launch.executors import WorkerLaunch, run_worker_process
from conus404.launch.template_warmup import HIDDEN_FROM_DAYS, MALLOC_TUNING, REMOTE

SRC = Path(__file__).resolve().parents[1] / "src"
pytestmark = pytest.mark.skipif(not launch_template.supported(), reason="needs fork and pidfds (Linux 5.3+)")

REPORT = """
import gc, importlib.util, json, os, sys
print(json.dumps({"modules": sorted(m for m in sys.modules if sys.modules[m] is not None),
                  "frozen": gc.get_freeze_count(), "template": os.getppid(),
                  "dask_found": importlib.util.find_spec("dask") is not None}))
"""


@pytest.fixture(autouse=True)
def _own_template():
    launch_template.close_shared_template()
    yield
    launch_template.close_shared_template()


def report(tmp: Path, name: str, remote: bool) -> dict:
    script = tmp / f"{name}.py"
    script.write_text(REPORT)
    ended = run_worker_process(WorkerLaunch([sys.executable, str(script)], None, tmp / f"{name}.log", 60,
                                            f"attempt {name}", tmp, None, prewarmed=True, remote=remote))
    assert ended.returncode == 0, (tmp / f"{name}.log").read_text()
    return json.loads(ended.stdout.strip().splitlines()[-1])


def test_a_local_run_forks_without_the_remote_stack_and_a_remote_one_with_it(tmp_path):
    local = report(tmp_path, "local", remote=False)
    assert {"xarray", "zarr", "netCDF4", "conus404.day.worker"} <= set(local["modules"])
    assert not set(REMOTE) & set(local["modules"]), "a local run's template imported the remote stack"
    assert local["frozen"] > 10_000, "the template's objects were not frozen before the fork"

    assert not local["dask_found"] and not any(m.split(".")[0] in HIDDEN_FROM_DAYS for m in local["modules"]), (
        "a forked day sees dask, which xarray would then import")

    remote = report(tmp_path, "remote", remote=True)
    assert remote["template"] == local["template"], "the same template serves both"
    assert set(REMOTE) <= set(remote["modules"]), "the remote stack was not imported before the fork"
    assert remote["frozen"] > local["frozen"], "what the remote imports made was not frozen too"


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_template_starts_with_the_allocator_tuned_unless_the_user_set_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    pid = report(tmp_path, "env", remote=False)["template"]
    env = environment_of(pid)
    assert env["MALLOC_ARENA_MAX"] == "4", "the user's own value must win"
    for name in set(MALLOC_TUNING) - {"MALLOC_ARENA_MAX"}:
        assert env[name] == MALLOC_TUNING[name]


@pytest.mark.parametrize("source, output_url, remote", [
    (PLANETARY_COMPUTER, None, True),
    (HYTEST_OSN, None, True),
    ("s3://bucket/conus404.zarr", None, True),
    ("/data/conus404.zarr", None, False),
    ("/data/conus404.zarr", "s3://bucket/daily", True),
])
def test_which_runs_touch_remote_storage(source, output_url, remote):
    settings = assemble(start_date=dt.date(2021, 1, 1), end_date=dt.date(2021, 1, 1), variables=("T2",), source=source,
                        output_url=output_url)
    assert settings.touches_remote_storage is remote


def test_a_forked_day_publishes_the_file_a_cold_one_does(tmp_path):
    """Dask hidden from the template changes nothing in a day's file (xarray without dask)."""
    code = (
        "import sys, datetime as dt, numpy as np\n"
        "from pathlib import Path\n"
        "from conus404.outputs.daily_file import DailyField, build_dataset, publish\n"
        "from conus404.core.grid import grid_latlon\n"
        "lat, lon = grid_latlon(6, 7)\n"
        "f = DailyField('T2', np.linspace(270, 290, 42, dtype=np.float32).reshape(6, 7), {'units': 'K', 'cell_methods': 'time: mean'})\n"
        "publish(build_dataset(dt.date(2021, 1, 1), lat, lon, [f], {'source': 'test'}), Path(sys.argv[1]))\n"
    )
    script = tmp_path / "day.py"
    script.write_text(code)
    files = {}
    for prewarmed in (True, False):
        out = tmp_path / f"{prewarmed}" / "day.nc"
        ended = run_worker_process(WorkerLaunch([sys.executable, str(script), str(out)], None, tmp_path / f"{prewarmed}.log",
                                                60, "attempt", tmp_path, {"PYTHONPATH": str(SRC)},
                                                prewarmed=prewarmed, remote=False))
        assert ended.returncode == 0, (tmp_path / f"{prewarmed}.log").read_text()
        files[prewarmed] = out
    import netCDF4

    with netCDF4.Dataset(files[True]) as forked, netCDF4.Dataset(files[False]) as cold:
        assert forked.getncattr("conus404_data_sha256") == cold.getncattr("conus404_data_sha256")
        assert sorted(forked.variables) == sorted(cold.variables)
        for name in forked.variables:
            assert forked[name].ncattrs() == cold[name].ncattrs(), name
