"""What a new user tripped on (issue 36), one test per item, on a local copy of a store (no network):
errors in the right order, a truthful --status, tracebacks, logs per data folder, progress on the
terminal, temporaries after a stop, suggestions, attributes, roll-ups of extremes, water units, the
smaller things, and lost hours filled on request. The one-line refusals are in test_bad_input.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conus404.emulator.synthetic_store import Defect, StoreSpec, write_store
from conus404.outputs import daily_file
from tests import conftest

ROOT = Path(__file__).resolve().parents[1]
DAYS = [dt.date(2021, 1, 1), dt.date(2021, 1, 2), dt.date(2021, 1, 3)]
VARIABLES = ("T2", "TD2", "Q2", "PSFC", "V10", "PREC_ACC_NC", "ACSNOM")  # no U10: U10E cannot be made


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stores") / "hourly.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 3, ny=12, nx=14, variables=VARIABLES), str(path))
    return path


def run(tmp: Path, store: Path, variables: str, *flags: str, days=DAYS, timeout: float = 300):
    return conftest.run_pipeline(tmp, None, days, variables, "--source", str(store), *flags, timeout=timeout)


def one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def test_1_the_requests_own_mistake_is_named_before_the_files_already_there(store, tmp_path):
    assert run(tmp_path, store, "T2,PREC_ACC_NC", "--foreground").returncode == 0
    for variables, extra, said in [
        ("t2,PREC_ACC_NC", (), "'t2' is not a variable of the source (did you mean T2"),
        ("PRECIP", (), "'PRECIP' is not a variable of the source"),
        ("PREC_ACC_NC:min", (), "PREC_ACC_NC is prior_hour: statistic min is not defined"),
        ("T2,PREC_ACC_NC", ("--statistics", "T2:min;Q2:max"), "--statistics names Q2, not among the variables"),
    ]:
        line = one_line(run(tmp_path, store, variables, *extra))
        assert said in line and "lack asked fields" not in line, line
    # and the files' own difference is still said when the request itself is right
    assert "lack asked fields" in one_line(run(tmp_path, store, "T2,TD2"))


def test_2_status_tells_the_last_run_of_the_data_folder_not_the_configs_range(store, tmp_path):
    assert run(tmp_path, store, "T2,PREC_ACC_NC", "--foreground", days=DAYS[:2]).returncode == 0
    argv = [str(ROOT / "run_pipeline.sh"), "--status", "--data-dir", str(tmp_path / "data"), "--log-dir", str(tmp_path / "logs")]
    status = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    lines = status.stdout.splitlines()
    assert status.returncode == 0 and lines[0].startswith(f"run: the last run of {tmp_path / 'data'}: started "), lines
    assert "exit 0, every day published or already valid" in lines[0]
    assert lines[1].startswith("variables T2,PREC_ACC_NC; flags ") and f"--source {store}" in lines[1]
    assert lines[2] == f"range 2021-01-01..2021-01-02 (2 days) in {tmp_path / 'data'}: done 2, failed 0, pending 0"
    assert lines[3].startswith("last progress: ") and "done 2/2" in lines[3]
    wider = subprocess.run([*argv, "--start", "2021-01-01", "--end", "2021-01-03"], capture_output=True, text=True, timeout=120)
    assert wider.stdout.splitlines()[0] == "run: the request given with --status (on top of the last run's settings)"
    assert "done 2, failed 0, pending 1" in wider.stdout and "not verified" not in wider.stdout  # the run's variables


def test_3_a_world_of_countries_is_refused_by_name_or_skipped_with_skip_off_grid(store, tmp_path):
    world = tmp_path / "countries.geojson"

    def square(name, lon0, lat0, size):
        return {"type": "Feature", "properties": {"name": name}, "geometry": {"type": "Polygon", "coordinates": [
            [[lon0, lat0], [lon0 + size, lat0], [lon0 + size, lat0 + size], [lon0, lat0 + size], [lon0, lat0]]]}}

    features = [square("Colorado", -108, 38, 2), square("France", 0, 43, 6), square("Japan", 135, 33, 5),
                {"type": "Feature", "properties": {"name": "Antarctica"}, "geometry": {"type": "Polygon", "coordinates": [
                    [[-180, -90], [180, -90], [180, -65], [-180, -65], [-180, -90]]]}}]
    world.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    line = one_line(run(tmp_path / "a", store, "T2", "--polygons", str(world), "--polygon-id", "name"))
    assert "feature Antarctica cannot be projected" in line and "--skip-off-grid" in line
    done = run(tmp_path / "b", store, "T2", "--polygons", str(world), "--polygon-id", "name", "--skip-off-grid",
               "--series-only", "--foreground")
    assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / "b" / "logs" / "driver_main_run.log").read_text() + (tmp_path / "b" / "logs" / "pipeline_console.log").read_text()
    assert "reach a pole and are left out: Antarctica" in log
    assert re.search(r"2 polygon\(s\) of countries.geojson lie wholly outside the source's grid and are left out: "
                     r"(France, Japan|Japan, France)", log), log
    with xr.open_dataset(tmp_path / "b" / "data" / "polygons" / "countries.nc") as table:
        assert list(table["polygon"].values) == ["Colorado"]
        assert np.isfinite(table["T2"].values).all()


def test_4_qc_reports_and_day_logs_belong_to_their_data_folder(store, tmp_path):
    for folder in ("one", "two"):  # one log folder for both, as with the default logs/
        result = conftest.run_pipeline(tmp_path, None, DAYS[:1], "T2" if folder == "one" else "PREC_ACC_NC",
                                       "--source", str(store), "--data-dir", str(tmp_path / folder), "--foreground")
        assert result.returncode == 0, result.stderr
    one = json.loads((tmp_path / "one" / "qc" / "qc_20210101.json").read_text())
    two = json.loads((tmp_path / "two" / "qc" / "qc_20210101.json").read_text())
    assert list(one["variables"]) == ["T2"] and list(two["variables"]) == ["PREC_ACC_NC"]
    for folder in ("one", "two"):
        log = (tmp_path / folder / "logs" / "download_20210101.log").read_text()
        assert log.count("attempt for 2021-01-01") == 1
    assert not (tmp_path / "logs" / "qc").exists() and not (tmp_path / "logs" / "subprocesses").exists()


def test_6_a_foreground_run_shows_each_day_and_its_progress_as_it_goes(store, tmp_path):
    result = run(tmp_path, store, "T2", "--foreground")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    days = [k for k, line in enumerate(out) if re.match(r"2021-01-0[123] published in \d+\.\d s$", line)]
    assert len(days) == 3 and max(days) < next(k for k, line in enumerate(out) if line.startswith("summary:"))
    assert any(line.startswith("progress: done 3/3") for line in out)


def test_6_on_a_terminal_the_progress_is_a_live_bar(store, tmp_path):
    import pty
    import select

    master, slave = pty.openpty()
    argv = [str(ROOT / "run_pipeline.sh"), "--foreground", "--start", "2021-01-01", "--end", "2021-01-03", "--variables",
            "T2", "--statistics", "", "--source", str(store), "--data-dir", str(tmp_path / "data"), "--log-dir",
            str(tmp_path / "logs")]
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    shown = b""
    while select.select([master], [], [], 60)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        shown += data
    assert proc.wait(timeout=120) == 0
    os.close(master)
    text = shown.decode(errors="replace")
    assert re.search(r"100%\|[^|]*\| 3/3 days", text), text  # tqdm's bar, redrawn in place ('\r')
    assert "\r" in text


def test_7_a_stopped_run_leaves_no_temporary_in_its_data_folder(store, tmp_path):
    # what writers stopped mid-write leave: temporaries beside a daily file, a QC report, a ledger
    left = [tmp_path / "data" / "unprocessed" / "daily" / ".tmp-conus404_daily_20210103.nc.x1",
            tmp_path / "data" / "qc" / ".tmp-qc_20210103.json.x2", tmp_path / "data" / ".tmp-failed_jobs.json.x3"]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    argv = [str(ROOT / "run_pipeline.sh"), "--foreground", "--start", "2021-01-01", "--end", "2021-01-03", "--variables",
            "T2", "--statistics", "", "--source", str(store), "--data-dir", str(tmp_path / "data"), "--log-dir",
            str(tmp_path / "logs"), "--max-processes", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "data" / "logs").is_dir() and proc.poll() is None:
            assert time.monotonic() < deadline, "no day started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C, as soon as a day runs (or once the run is over)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode in (0, 130)
    assert not [p for p in (tmp_path / "data").rglob(".tmp-*")], "no temporary is left once the run has ended"



def test_7_ctrl_c_while_the_run_is_checked_or_starting_stops_it_in_one_line(store, tmp_path):
    """Ctrl-C as soon as the run's group exists (its check still going, or its first days starting),
    before the foreground wait has taken the signals over: no traceback, the group stopped, exit 130."""
    logs = tmp_path / "logs"
    argv = [str(ROOT / "run_pipeline.sh"), "--foreground", "--start", "2021-01-01", "--end", "2021-01-03", "--variables",
            "T2", "--statistics", "", "--source", str(store), "--data-dir", str(tmp_path / "data"), "--log-dir", str(logs)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (logs / "pipeline.pid").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.01)
        group = int((logs / "pipeline.pid").read_text())
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err
    if proc.returncode == 130:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("run_pipeline.sh: the run was interrupted (Ctrl-C) and stopped"), err
    assert not conftest.group_alive(group), "the run's group outlived the Ctrl-C"
    assert not [p for p in (tmp_path / "data").rglob(".tmp-*")]

def test_8_suggestions_are_only_what_the_source_can_make(store, tmp_path):
    line = one_line(run(tmp_path, store, "U10"))
    assert "'U10' is not a variable of the source" in line
    assert "U10E" not in line and "V10E" not in line  # they need U10, which this source lacks
    assert "V10" in line


def test_9_attributes_say_which_statistic_which_units_which_source_and_which_day(store, tmp_path):
    result = run(tmp_path, store, "T2:mean,min,max,ACSNOM", "--units", "T2:Celsius,ACSNOM:mm", "--foreground",
                 "--day-boundary=-06:00", "--points", str(_gauges(tmp_path)), days=DAYS[1:2])
    assert result.returncode == 0, result.stdout + result.stderr
    path = daily_file.daily_path(tmp_path / "data", DAYS[1])
    with netCDF4.Dataset(path) as nc:
        assert nc["T2_max"].long_name.startswith("daily maximum") and nc["T2_min"].long_name.startswith("daily minimum")
        assert nc["T2"].units_metadata == "temperature: on_scale" and nc["T2"].units == "Celsius"
    with netCDF4.Dataset(tmp_path / "data" / "points" / "gauges.nc") as table:
        assert table.source == f"CONUS404 hourly WRF reanalysis: a local copy at {store}"
    picture = subprocess.run([sys.executable, str(ROOT / "src" / "quick_look.py"), str(path)], capture_output=True,
                             text=True, timeout=120)
    assert picture.returncode == 0, picture.stderr
    drawn = Path(picture.stdout.strip())
    assert drawn == tmp_path / "data" / "pictures" / "conus404_daily_20210102_T2.png"
    from PIL import Image

    with Image.open(drawn) as image:  # the title names the day's boundary, not UTC
        assert image.text["Title"].startswith("T2, 2021-01-02 UTC-06:00 (time: mean)"), image.text


def _gauges(tmp: Path) -> Path:
    path = tmp / "gauges.csv"
    path.write_text("id,lon,lat\ng1,-105.0,40.0\n")
    return path


def test_10_rollups_give_the_mean_daily_extremes_and_water_comes_in_mm(store, tmp_path):
    result = run(tmp_path, store, "T2:mean,min,max,ACSNOM", "--rollup", "monthly", "--allow-partial",
                 "--units", "ACSNOM:mm", "--foreground")
    assert result.returncode == 0, result.stdout + result.stderr
    hourly = xr.open_zarr(store).load()
    with netCDF4.Dataset(tmp_path / "data" / "unprocessed" / "monthly" / "conus404_monthly_202101.nc") as month:
        for stat, reduce in (("min", np.min), ("max", np.max)):
            daily = np.stack([reduce(hourly["T2"].sel(time=slice(f"{d}T00", f"{d}T23")).values, axis=0) for d in DAYS])
            np.testing.assert_allclose(month[f"T2_{stat}_mean"][0], daily.astype(np.float32).mean(axis=0), rtol=1e-6)
            np.testing.assert_allclose(month[f"T2_{stat}"][0], reduce(daily, axis=0), rtol=1e-6)
            word = {"min": "minimum", "max": "maximum"}[stat]
            assert month[f"T2_{stat}_mean"].cell_methods == f"time: {word} within days time: mean over days"
    with netCDF4.Dataset(daily_file.daily_path(tmp_path / "data", DAYS[0])) as nc:
        melt = hourly["ACSNOM"].sel(time="2021-01-02T00").values.astype(np.float64) - \
            hourly["ACSNOM"].sel(time="2021-01-01T00").values
        np.testing.assert_allclose(nc["ACSNOM"][0], melt.astype(np.float32), rtol=1e-6)  # 1 kg m-2 = 1 mm
        assert nc["ACSNOM"].units == "mm" and "1 kg m-2 = 1 mm" in nc["ACSNOM"].conus404_units_conversion
        assert "standard_name" not in nc["ACSNOM"].ncattrs()


def test_11_the_smaller_things(store, tmp_path):
    help_text = subprocess.run([str(ROOT / "kill_all.sh"), "--help"], capture_output=True, text=True).stdout
    assert "set -euo" not in help_text
    usage = subprocess.run([str(ROOT / "run_pipeline.sh"), "--help"], capture_output=True, text=True).stdout
    assert "where data/ lives" not in usage and "the data folder" in usage
    assert run(tmp_path, store, "T2", "--foreground", days=DAYS[:1]).returncode == 0
    path = daily_file.daily_path(tmp_path / "data", DAYS[0])
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        drawn = subprocess.run([sys.executable, str(ROOT / "src" / "quick_look.py"), str(path), "--out",
                                str(locked / "map.png")], capture_output=True, text=True, timeout=120)
    finally:
        locked.chmod(0o700)
    if os.geteuid() != 0:  # root writes anywhere
        lines = [line for line in drawn.stderr.splitlines() if line.strip()]
        assert drawn.returncode == 2 and len(lines) == 1 and "cannot write the image to" in lines[0], drawn.stderr
    readonly = tmp_path / "missing" / "deeper" / "map.png"  # no such folder: the same one line whoever runs it
    (tmp_path / "missing").write_text("a file where a folder is needed")
    drawn = subprocess.run([sys.executable, str(ROOT / "src" / "quick_look.py"), str(path), "--out", str(readonly)],
                           capture_output=True, text=True, timeout=120)
    assert drawn.returncode == 2 and "cannot write the image" in drawn.stderr and "Traceback" not in drawn.stderr


def test_11_a_misspelt_config_key_is_named_and_config_values_say_where_they_come_from(tmp_path):
    config = tmp_path / "config.py"
    config.write_text((ROOT / "src" / "config.py").read_text().replace("VARIABLE_AGG_MAP = {", "VARIABLE_AGG_MAPP = {"))
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]); from conus404.config import settings\n"
             "try:\n    settings.load()\nexcept settings.ConfigurationError as exc:\n    print(exc)")
    said = subprocess.run([sys.executable, "-c", probe, str(tmp_path), str(ROOT / "src")], capture_output=True,
                          text=True, timeout=60).stdout
    assert f"{config}: VARIABLE_AGG_MAPP is not a setting (did you mean VARIABLE_AGG_MAP?)" in said, said


def test_12_lost_hours_of_an_instantaneous_variable_are_filled_only_when_asked(tmp_path):
    lost = tmp_path / "lost.zarr"
    spec = StoreSpec.for_days("2021-01-01", 1, ny=8, nx=9, variables=("T2", "PREC_ACC_NC"),
                              defects=(Defect("lost_chunk", "2021-01-01T05", "T2"), Defect("lost_chunk", "2021-01-01T06", "T2")))
    write_store(spec, str(lost))
    refused = run(tmp_path / "a", lost, "T2", "--foreground", days=DAYS[:1])
    assert refused.returncode == 1  # by default a lost hour refuses the day
    filled = run(tmp_path / "b", lost, "T2", "--foreground", "--fill-missing-hours", "2", days=DAYS[:1])
    assert filled.returncode == 0, filled.stdout + filled.stderr
    from conus404.emulator.synthetic_store import build_dataset

    whole = build_dataset(spec)["T2"].values.astype(np.float64)  # the hours before the store lost two of them
    hours = whole[:24].copy()
    hours[5] = hours[4] + (hours[7] - hours[4]) / 3  # linear in time between 04Z and 07Z, written out here
    hours[6] = hours[4] + 2 * (hours[7] - hours[4]) / 3
    with netCDF4.Dataset(daily_file.daily_path(tmp_path / "b" / "data", DAYS[0])) as nc:
        np.testing.assert_allclose(nc["T2"][0], hours.astype(np.float32).astype(np.float64).mean(axis=0), rtol=1e-5)
        assert nc["T2"].conus404_filled_hours == "T2: 2021-01-01T05Z, 2021-01-01T06Z"
    qc = json.loads((tmp_path / "b" / "data" / "qc" / "qc_20210101.json").read_text())
    assert qc["filled_hours"] == {"T2": ["2021-01-01T05Z", "2021-01-01T06Z"]}
    too_few = run(tmp_path / "c", lost, "T2", "--foreground", "--fill-missing-hours", "1", days=DAYS[:1])
    assert too_few.returncode == 1  # two lost, one allowed: refused
    sums = tmp_path / "sums.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=8, nx=9, variables=("PREC_ACC_NC",),
                                   defects=(Defect("lost_chunk", "2021-01-01T05", "PREC_ACC_NC"),)), str(sums))
    never = run(tmp_path / "d", sums, "PREC_ACC_NC", "--foreground", "--fill-missing-hours", "3", days=DAYS[:1])
    assert never.returncode == 1  # a sum's lost hour is never made up
    assert "PREC_ACC_NC at 2021-01-01T05Z" in (tmp_path / "d" / "data" / "ultimate_failures.json").read_text()
