"""Publishing and verification of daily files."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conus404.core.grid import grid_latlon
from conus404.outputs import daily_file

DAY = dt.date(2021, 1, 1)


def _dataset(values=None):
    lat, lon = grid_latlon(4, 5)
    field = daily_file.DailyField("T2", np.full((4, 5), 280.0, np.float32) if values is None else values,
                                  {"units": "K", "cell_methods": "time: mean"})
    return daily_file.build_dataset(DAY, lat, lon, [field], {"source": "test"})


def test_published_file_verifies_and_nothing_else_is_left(tmp_path):
    path = daily_file.daily_path(tmp_path, DAY)
    daily_file.publish(_dataset(), path)
    assert daily_file.verify(path, DAY, ["T2"]) is None
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o044, "published files are readable by others as usual"


def test_verify_names_what_is_wrong(tmp_path):
    path = daily_file.daily_path(tmp_path, DAY)
    daily_file.publish(_dataset(), path)
    assert "not a daily file of this pipeline for 2021-01-02" in daily_file.verify(path, dt.date(2021, 1, 2))
    assert "holds T2, not Q2" in daily_file.verify(path, DAY, ["T2", "Q2"])
    assert daily_file.verify(path, DAY, []) is None, "a file holding more than asked is done"
    assert daily_file.fields_in(path) == ["T2"]
    path.write_bytes(path.read_bytes()[:300])
    assert "cannot be read" in daily_file.verify(path, DAY)
    foreign = tmp_path / "foreign.nc"
    import xarray as xr

    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(foreign)
    assert "not a daily file of this pipeline" in daily_file.verify(foreign, DAY)


def test_the_checksum_catches_changed_values(tmp_path):
    import netCDF4

    path = daily_file.daily_path(tmp_path, DAY)
    daily_file.publish(_dataset(), path)
    with netCDF4.Dataset(path, "a") as nc:
        nc["T2"][0, 1, 1] = 999.0
    assert "do not match the checksum" in daily_file.verify(path, DAY)


def test_nan_cells_survive_the_round_trip(tmp_path):
    values = np.full((4, 5), 280.0, np.float32)
    values[0, 0] = np.nan
    path = daily_file.daily_path(tmp_path, DAY)
    daily_file.publish(_dataset(values), path)
    assert daily_file.verify(path, DAY) is None


def test_failed_publish_leaves_nothing(tmp_path, monkeypatch):
    path = daily_file.daily_path(tmp_path, DAY)
    monkeypatch.setattr(daily_file, "verify", lambda *a, **k: "simulated bad read-back")
    with pytest.raises(OSError, match="simulated bad read-back"):
        daily_file.publish(_dataset(), path)
    assert list(path.parent.iterdir()) == []


def test_stale_temporaries_of_a_day_are_removed(tmp_path):
    d = daily_file.daily_dir(tmp_path)
    d.mkdir(parents=True)
    stale = d / ".tmp-conus404_daily_20210101.nc.abc123"
    other = d / ".tmp-conus404_daily_20210102.nc.xyz"
    stale.write_bytes(b"half")
    other.write_bytes(b"half")
    assert daily_file.remove_stale_temporaries(d, DAY) == [stale]
    assert other.exists()


def _netcdf_layout(path):
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        return ({n: (v.dimensions, v.dtype.str, v.filters(), v.chunking(), {a: str(v.getncattr(a)) for a in v.ncattrs()},
                     np.asarray(v[:]).tobytes()) for n, v in nc.variables.items()},
                {a: str(nc.getncattr(a)) for a in nc.ncattrs()}, {d: len(nc.dimensions[d]) for d in nc.dimensions})


@pytest.mark.parametrize("level", [0, 1])
def test_written_file_is_what_to_netcdf_writes(tmp_path, level):
    ds = _dataset(np.arange(20, dtype=np.float32).reshape(4, 5))
    encoding = daily_file._encoding(ds, level)
    ds.to_netcdf(tmp_path / "reference.nc", format="NETCDF4", engine="netcdf4", encoding=encoding)
    daily_file.write_netcdf4(ds, tmp_path / "ours.nc", encoding)
    assert _netcdf_layout(tmp_path / "ours.nc") == _netcdf_layout(tmp_path / "reference.nc")


def test_publishing_does_not_import_distributed(tmp_path):
    """The launch template leaves ``distributed`` out (0.1-0.3 s of every run's start): a day must not need it."""
    code = ("import sys, datetime as dt, numpy as np\n"
            "from conus404.outputs import daily_file\nfrom conus404.core.grid import grid_latlon\n"
            "lat, lon = grid_latlon(4, 5)\n"
            "f = daily_file.DailyField('T2', np.full((4, 5), 280.0, np.float32), {'units': 'K'})\n"
            "ds = daily_file.build_dataset(dt.date(2021, 1, 1), lat, lon, [f], {'source': 'test'})\n"
            f"path = daily_file.daily_path({str(tmp_path)!r}, dt.date(2021, 1, 1))\n"
            "daily_file.publish(ds, path)\n"
            "print(daily_file.verify(path, dt.date(2021, 1, 1), ['T2']), 'distributed' in sys.modules)\n")
    src = Path(daily_file.__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(src)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "False"]
