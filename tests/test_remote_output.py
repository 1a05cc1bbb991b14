"""OUTPUT_URL: daily files published to an fsspec URL (moto's S3 server here), from a Dask run, as
a cluster without a shared filesystem would; reruns skip by the commit records; a file whose upload
failed is uploaded by the next attempt without being made again; bad URLs are usage errors."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from conus404.core.failures import failure_class
from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import StoreSpec, write_store
from conus404.outputs import daily_file
from conus404.outputs.remote_output import RemoteOutput
from tests import conftest

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
DAYS = ["2021-01-01", "2021-01-02", "2021-01-03", "2021-01-04"]
VARIABLES = "T2,PREC_ACC_NC"
OUTPUT = "s3://results/conus404/daily"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with conftest.running_emulator(tmp_path_factory.mktemp("emulator"),
                                   StoreSpec.for_days(DAYS[0], 4, ny=12, nx=14, variables=("T2", "PREC_ACC_NC"))) as stack:
        stack.output_options = stack.add_bucket("results")
        yield stack


def pipeline(tmp: Path, stack: EmulatorStack, *flags: str) -> subprocess.CompletedProcess:
    env = {"CONUS404_OUTPUT_STORAGE_OPTIONS": json.dumps(stack.output_options)}
    return conftest.run_pipeline(tmp, stack, DAYS, VARIABLES, "--foreground", *flags, env=env)


@pytest.fixture(scope="module")
def local_run(stack, tmp_path_factory) -> Path:
    """The reference the runs to S3 are compared with: a subprocess run writing daily files and a
    Zarr store to local folders."""
    tmp = tmp_path_factory.mktemp("local")
    reference = pipeline(tmp, stack, "--zarr", str(tmp / "local.zarr"), "--zarr-chunks", "2,8,8")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    return tmp


def test_a_dask_run_publishes_to_s3_and_a_rerun_skips_by_the_records(stack, local_run, tmp_path):
    result = pipeline(tmp_path / "remote", stack, "--executor", "dask", "--output-url", OUTPUT)
    assert result.returncode == 0, result.stdout + result.stderr
    fs = stack.s3.filesystem()
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls("results/conus404/daily", detail=False))
    assert names == sorted([f"conus404_daily_{d.replace('-', '')}.nc" for d in DAYS]
                           + [f"conus404_daily_{d.replace('-', '')}.nc.json" for d in DAYS]), "no temporaries left"
    assert not list(daily_file.daily_dir(tmp_path / "remote" / "data").glob("*.nc")), "local copies removed once committed"
    for day in map(dt.date.fromisoformat, DAYS):
        name = daily_file.daily_path(Path("."), day).name
        fs.get(f"results/conus404/daily/{name}", str(tmp_path / name))
        record = json.loads(fs.cat(f"results/conus404/daily/{name}.json"))
        with xr.open_dataset(tmp_path / name) as got, \
                xr.open_dataset(daily_file.daily_path(local_run / "data", day)) as want:
            assert got.attrs["conus404_data_sha256"] == want.attrs["conus404_data_sha256"] == record["data_sha256"]
            xr.testing.assert_identical(got["T2"], want["T2"])
        assert record["size"] == (tmp_path / name).stat().st_size and record["day"] == day.isoformat()
    stamps = {p["name"]: p["LastModified"] for p in fs.ls("results/conus404/daily", detail=True)}

    again = pipeline(tmp_path / "remote", stack, "--output-url", OUTPUT)
    assert again.returncode == 0, again.stderr
    assert "already valid        4" in (tmp_path / "remote" / "logs" / "driver_main_run.log").read_text()
    fs.invalidate_cache()
    assert {p["name"]: p["LastModified"] for p in fs.ls("results/conus404/daily", detail=True)} == stamps
    status = pipeline(tmp_path / "remote", stack, "--status", "--output-url", OUTPUT)
    assert "done 4, failed 0, pending 0" in status.stdout


def test_a_day_whose_upload_failed_is_uploaded_by_the_next_attempt(tmp_path):
    """An upload that failed leaves the verified file under DATA_DIR; the retry uploads it, unchanged."""
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7, variables=("T2",)), str(store))
    target = f"file://{tmp_path / 'out'}"
    worker = [sys.executable, str(ROOT / "src" / "single_download.py"), "2021-01-01", "--source", str(store),
              "--variables", "T2", "--statistics", "", "--data-dir", str(tmp_path / "data"), "--qc-dir", str(tmp_path / "qc")]
    first = subprocess.run(worker, capture_output=True, text=True, timeout=120)  # as if the upload had failed
    assert first.returncode == 0, first.stderr
    local = daily_file.daily_path(tmp_path / "data", dt.date(2021, 1, 1))
    content = local.read_bytes()
    second = subprocess.run([*worker, "--output-url", target], capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["status"] == "published" and result["message"] == "uploaded the verified file left by an earlier attempt"
    assert (tmp_path / "out" / local.name).read_bytes() == content and not local.exists()
    remote = RemoteOutput(target)
    assert remote.published(dt.date(2021, 1, 1), ["T2"], None)
    assert not remote.published(dt.date(2021, 1, 1), ["T2", "T2_max"], None), "another request is not this one"
    (tmp_path / "out" / local.name).write_bytes(content[:-10])  # a truncated object does not count
    assert not remote.published(dt.date(2021, 1, 1), ["T2"], None)
    (tmp_path / "out" / local.name).write_bytes(content)

    # another request for the day (T2 with its maximum) moves the first one aside, never over it
    third = subprocess.run([*worker[:6], "T2:max", *worker[7:], "--output-url", target], capture_output=True,
                           text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert remote.published(dt.date(2021, 1, 1), ["T2", "T2_max"], None)
    kept = sorted(p.name for p in (tmp_path / "out" / "quarantine").iterdir())
    assert [k.rsplit(".", 1)[0] for k in kept] == [local.name, local.name + ".json"]
    assert (tmp_path / "out" / "quarantine" / kept[0]).read_bytes() == content
    from conus404.core.exceptions import OutputUploadError

    assert failure_class(OutputUploadError("uploading x failed", target)) == "transient"


@pytest.mark.parametrize(("url", "message"), [
    ("s3://no-such-bucket/daily", "cannot write to the output URL s3://no-such-bucket/daily"),
    ("results/daily", "is not a URL such as s3://bucket/conus404/daily"),
    ("nosuchfs://x/y", "no filesystem for nosuchfs://"),
])
def test_an_unusable_output_url_is_a_usage_error(stack, tmp_path, url, message):
    result = pipeline(tmp_path, stack, "--output-url", url)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "data" / "logs").exists()


def test_a_run_writing_its_zarr_store_to_s3_gives_the_local_runs_store(stack, local_run, tmp_path):
    """--zarr at an fsspec URL (moto's S3 server): the same store as a run writing it to a local
    folder. (The driver writes the store, whatever runs the days: the Dask executor's own publishing
    to S3 is the test above.)"""
    remote = pipeline(tmp_path / "remote", stack, "--zarr", "s3://results/stores/conus404.zarr", "--zarr-chunks", "2,8,8")
    assert remote.returncode == 0, remote.stdout + remote.stderr
    fs = stack.s3.filesystem()
    with xr.open_zarr(str(local_run / "local.zarr"), consolidated=True) as want, \
            xr.open_zarr(fs.get_mapper("results/stores/conus404.zarr"), consolidated=True) as got:
        assert got.sizes["time"] == len(DAYS) and int(got["conus404_day_written"].sum()) == len(DAYS)
        made_when = ("history", "date_created")  # the stores were made at different times
        got_, want_ = got.load(), want.load()
        for ds in (got_, want_):
            ds.attrs = {k: v for k, v in ds.attrs.items() if k not in made_when}
        xr.testing.assert_identical(got_, want_)
