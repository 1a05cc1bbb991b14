"""The driver over a store whose chunks span several days (HyTEST's layout), through Azurite:
with the shared chunk cache every chunk crosses the network once, the files are identical to a
run without it, and the cache is gone when the run ends."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
import xarray as xr

from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import StoreSpec
from conus404.outputs import daily_file
from tests import conftest

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(4)]
CHUNK_KEY = re.compile(r"/(T2|PREC_ACC_NC|ACSWDNB|lat|lon)/\d+(\.\d+)+$")


@pytest.fixture(scope="module")
def hytest_stack(tmp_path_factory, tls_files):
    stack = EmulatorStack(tmp_path_factory.mktemp("emulator"), tls=tls_files, store_cache=conftest.STORE_CACHE).start()
    try:
        # 48-hour chunks split in 2x2 tiles: each chunk serves two days, and day 2's accumulations
        # reach into the next chunk (its 00Z), as HyTEST's 144-hour chunks do every sixth day.
        spec = StoreSpec.for_days("2021-01-01", 4, ny=20, nx=24, layout="hytest", time_chunk=48, space_chunk=12,
                                  variables=("T2", "PREC_ACC_NC", "ACSWDNB"))
        stack.add_store(spec)
        stack.inject_faults([])  # the proxy counts every chunk request
        yield stack
    finally:
        stack.stop()


def run_driver(stack: EmulatorStack, tmp: Path, *flags: str) -> subprocess.CompletedProcess:
    return conftest.run_driver(stack, tmp, DAYS, "T2,PREC_ACC_NC,ACSWDNB", *flags)


def chunk_gets(stack: EmulatorStack) -> dict[str, int]:
    return {path: n for path, n in stack.proxy.paths.items() if CHUNK_KEY.search(path)}


def test_each_chunk_is_fetched_once_and_files_match_a_run_without_cache(hytest_stack, tmp_path):
    stack = hytest_stack
    stack.proxy.paths.clear()
    cached = run_driver(stack, tmp_path / "cached")
    assert cached.returncode == 0, cached.stderr[-3000:]
    with_cache = chunk_gets(stack)

    stack.proxy.paths.clear()
    plain = run_driver(stack, tmp_path / "plain", "--no-chunk-cache")
    assert plain.returncode == 0, plain.stderr[-3000:]
    without_cache = chunk_gets(stack)

    # 2 time chunks x 4 tiles x 3 variables, + 3 time chunks' worth where day 4's windows end at 00Z of day 5
    assert with_cache and max(with_cache.values()) == 1, {k: v for k, v in with_cache.items() if v > 1}
    assert set(with_cache) == set(without_cache)  # the same chunks, just not again and again
    assert sum(without_cache.values()) > 1.5 * sum(with_cache.values())
    for day in DAYS:
        a = xr.open_dataset(daily_file.daily_path(tmp_path / "cached" / "data", day))
        b = xr.open_dataset(daily_file.daily_path(tmp_path / "plain" / "data", day))
        for name in ("T2", "PREC_ACC_NC", "ACSWDNB"):
            xr.testing.assert_identical(a[name], b[name])
        assert a.attrs["conus404_data_sha256"] == b.attrs["conus404_data_sha256"]
    assert not (tmp_path / "cached" / "data" / ".chunk_cache").exists()
