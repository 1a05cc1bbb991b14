"""The day worker end to end (src/single_download.py as a process), checked against numpy.

Expected values are computed here, independently, from the synthetic store's hourly data:
instantaneous = mean of 00..23Z, prior-hour = sum of 01Z..00Z(+1), since-start = difference of
the two 00Z totals, bucket = the same of AC + I_AC x 1e9.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conus404.emulator.synthetic_store import Defect, StoreSpec, build_dataset, write_store
from tests import conftest

SRC = Path(__file__).resolve().parents[1] / "src"
ALL_CLASSES = "T2,TD2,Q2,PSFC,U10,V10,WSPD10,PREC_ACC_NC,SNOW_ACC_NC,ACSNOM,ACSWDNB"


def run_worker(day: str, tmp: Path, *flags: str, env: dict | None = None, stdin: str | None = None):
    """Run single_download.py; returns (exit code, final JSON line, stderr)."""
    argv = [sys.executable, str(SRC / "single_download.py"), day, "--data-dir", str(tmp / "data"),
            "--qc-dir", str(tmp / "qc"), *flags]
    code, out, err = conftest.run_prewarmed(argv, {**os.environ, **(env or {})}, stdin=stdin)  # the pipeline's launch
    lines = out.strip().splitlines()
    result = json.loads(lines[-1]) if lines else None
    return code, result, err


def daily(tmp: Path, day: str) -> Path:
    return tmp / "data" / "unprocessed" / "daily" / f"conus404_daily_{day.replace('-', '')}.nc"


def expected_daily(hourly: xr.Dataset, day: str) -> dict[str, np.ndarray]:
    """The aggregation rules, written out directly on the hourly dataset."""
    d0 = np.datetime64(f"{day}T00")
    instant = hourly.sel(time=slice(d0, d0 + np.timedelta64(23, "h")))
    prior = hourly.sel(time=slice(d0 + np.timedelta64(1, "h"), d0 + np.timedelta64(24, "h")))
    assert instant.sizes["time"] == 24 and prior.sizes["time"] == 24
    ends = hourly.sel(time=[d0, d0 + np.timedelta64(24, "h")]).astype("float64")
    out = {}
    for name in ("T2", "TD2", "Q2", "PSFC", "U10", "V10"):
        if name in hourly:
            out[name] = instant[name].astype("float64").mean("time").values
    if "U10" in hourly:
        out["WSPD10"] = np.sqrt(instant["U10"].astype("float64") ** 2 + instant["V10"].astype("float64") ** 2).mean("time").values
    for name in ("PREC_ACC_NC", "SNOW_ACC_NC"):
        if name in hourly:
            out[name] = prior[name].astype("float64").sum("time").values
    if "ACSNOM" in hourly:
        out["ACSNOM"] = (ends["ACSNOM"][1] - ends["ACSNOM"][0]).values
    if "I_ACSWDNB" in hourly:
        total = ends["ACSWDNB"] + ends["I_ACSWDNB"] * 1.0e9
        out["ACSWDNB"] = (total[1] - total[0]).values
    elif "ACSWDNB" in hourly:  # HyTEST: already a since-start total
        out["ACSWDNB"] = (ends["ACSWDNB"][1] - ends["ACSWDNB"][0]).values
    if "T2" in hourly:
        out["T2_min"] = instant["T2"].min("time").values
        out["T2_max"] = instant["T2"].max("time").values
    return out


def assert_matches(path: Path, expected: dict[str, np.ndarray]) -> xr.Dataset:
    ds = xr.open_dataset(path)
    for name, values in expected.items():
        got = ds[name].values[0].astype(np.float64)
        scale = max(float(np.abs(values).max()), 1.0)
        np.testing.assert_allclose(got, values, rtol=2e-6, atol=scale * 2e-7, err_msg=name)
    return ds


@pytest.mark.emulator
def test_planetary_computer_day_through_the_emulator_matches_numpy(emulator, tmp_path):
    spec = emulator.stores["conus404"]
    hourly = build_dataset(spec)
    day = "2021-01-01"
    # the day must contain a bucket reset somewhere, or the I_AC correction is untested
    counts = hourly["I_ACSWDNB"].sel(time=[f"{day}T00", "2021-01-02T00"]).values
    assert (counts[1] > counts[0]).any()

    code, result, err = run_worker(day, tmp_path, "--variables", ALL_CLASSES, "--statistics", "T2:min,max",
                                   env=emulator.client_env())
    assert code == 0, err
    assert result["status"] == "published" and result["error_class"] is None
    ds = assert_matches(daily(tmp_path, day), expected_daily(hourly, day))
    # the seed's window (00..23Z) would have given a different precipitation total
    wrong = hourly["PREC_ACC_NC"].sel(time=slice(f"{day}T00", f"{day}T23")).sum("time").values
    assert not np.allclose(ds["PREC_ACC_NC"].values[0], wrong)
    # no secret reached the output, the log or the result line
    token_marker = "sig="
    assert token_marker not in json.dumps(dict(ds.attrs)) and token_marker not in err
    assert token_marker not in json.dumps(result)


def test_hytest_layout_gives_the_same_daily_fields(tmp_path):
    names = ("T2", "TD2", "PREC_ACC_NC", "ACSNOM", "ACSWDNB")
    spec = StoreSpec.for_days("2021-03-01", 2, ny=20, nx=24, variables=names, layout="hytest", space_chunk=8)
    store = tmp_path / "hytest.zarr"
    write_store(spec, str(store))
    code, result, err = run_worker("2021-03-02", tmp_path, "--source", str(store), "--variables", ",".join(names),
                                   "--statistics", "T2:min,max")
    assert code == 0, err
    hourly = xr.open_zarr(store).rename({"y": "south_north", "x": "west_east"}).load()
    ds = assert_matches(daily(tmp_path, "2021-03-02"), expected_daily(hourly, "2021-03-02"))
    assert ds["ACSWDNB"].attrs["conus404_class"] == "since_start"  # from HyTEST's integration_length
    assert ds["T2"].dims == ("time", "south_north", "west_east")


def test_output_is_cf_with_bounds_cell_methods_units_and_crs(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=10, nx=12), str(store))
    code, _, err = run_worker("2021-01-01", tmp_path, "--source", str(store), "--cell-corners",
                              "--variables", "T2,PREC_ACC_NC,ACSWDNB", "--statistics", "T2:min,max")
    assert code == 0, err
    ds = xr.open_dataset(daily(tmp_path, "2021-01-01"))
    assert ds.attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    assert ds["lat_bnds"].shape == (10, 12, 4) and ds["x"].dims == ("west_east",)
    from tests.conftest import cf_findings as findings  # the IOOS checker on the worker's own file

    found = findings(daily(tmp_path, "2021-01-01"), tmp_path)
    assert found["high_priorities"] == [], found
    assert found["medium_priorities"] == [], found
    assert ds["time"].values[0] == np.datetime64("2021-01-01T00:00", "ns")
    assert ds["time"].attrs["bounds"] == "time_bnds"
    np.testing.assert_array_equal(ds["time_bnds"].values[0], np.array(["2021-01-01", "2021-01-02"], dtype="datetime64[ns]"))
    assert ds["T2"].attrs["cell_methods"] == "time: mean" and ds["T2"].attrs["units"] == "K"
    assert ds["T2_max"].attrs["cell_methods"] == "time: maximum"
    assert ds["PREC_ACC_NC"].attrs["cell_methods"] == "time: sum" and ds["PREC_ACC_NC"].attrs["units"] == "mm"
    assert ds["PREC_ACC_NC"].attrs["conus404_hour_window"].startswith("2021-01-01T01:00Z..2021-01-02T00:00Z")
    assert ds["ACSWDNB"].attrs["units"] == "J m-2"
    assert ds["ACSWDNB"].attrs["long_name"] == "daily total (over the UTC day) of downwelling shortwave radiation flux at bottom"
    assert ds["PREC_ACC_NC"].attrs["long_name"] == "daily total (over the UTC day) of grid scale precipitation"
    assert ds["T2"].dtype == np.float32 and ds["T2"].encoding["zlib"]
    assert ds["lat"].dims == ("south_north", "west_east")
    assert ds["T2"].attrs["grid_mapping"] == "crs"
    assert ds["crs"].attrs["grid_mapping_name"] == "lambert_conformal_conic"
    assert ds.attrs["source_href"] == str(store) and ds.attrs["conus404_tool_version"]


@pytest.mark.parametrize(
    ("defect", "variables", "message"),
    [
        (Defect("missing_hour", "2021-01-01T07"), "T2", "lacks hourly record(s) 2021-01-01T07Z"),
        (Defect("negative", "2021-01-01T05"), "PREC_ACC_NC", "PREC_ACC_NC at 2021-01-01T05Z has -1.5 mm"),
        (Defect("nan", "2021-01-01T09", "T2", 0.3), "T2", "% missing (NaN), above the 1.0% allowed"),
    ],
)
def test_planted_defects_fail_permanently_and_publish_nothing(tmp_path, defect, variables, message):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=10, nx=12, variables=("T2", "PREC_ACC_NC"), defects=(defect,)), str(store))
    code, result, err = run_worker("2021-01-01", tmp_path, "--source", str(store), "--variables", variables)
    assert code == 4, err
    assert result["status"] == "failed" and result["error_class"] == "permanent"
    assert message in result["message"]
    assert not daily(tmp_path, "2021-01-01").exists()
    assert list(daily(tmp_path, "2021-01-01").parent.glob("*")) == []
    if defect.kind != "missing_hour":
        qc = json.loads((tmp_path / "qc" / "qc_20210101.json").read_text())
        assert qc["status"] == "failed" and message in qc["failures"][0]


def test_a_store_ending_at_23z_fails_accumulations_but_not_instantaneous(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec(start="2022-09-30T00", hours=24, ny=8, nx=9, variables=("T2", "PREC_ACC_NC")), str(store))
    code, result, _ = run_worker("2022-09-30", tmp_path, "--source", str(store), "--variables", "PREC_ACC_NC")
    assert code == 4 and result["error_class"] == "permanent"
    assert "ends at 2022-09-30T23Z" in result["message"] and "2022-10-01T00Z" in result["message"]
    assert not daily(tmp_path, "2022-09-30").exists()
    code, result, err = run_worker("2022-09-30", tmp_path, "--source", str(store), "--variables", "T2", "--statistics", "")
    assert code == 0, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--variables", "T3"), "'T3' is not a variable of the source (did you mean TK, T2?)"),
        (("--variables", "TK"), "set ALLOW_3D"),
        (("--variables", "I_ACSWDNB"), "ask for ACSWDNB instead"),
        (("--variables", "PREC_ACC_NC", "--statistics", "PREC_ACC_NC:min"), "statistic min is not defined"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_message(tmp_path, flags, message):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7, variables=("T2", "PREC_ACC_NC", "TK", "ACSWDNB", "I_ACSWDNB")), str(store))
    code, result, err = run_worker("2021-01-01", tmp_path, "--source", str(store), "--statistics", "", *flags)
    assert code == 2 and result["error_class"] == "usage"
    assert message in result["message"]
    assert "Traceback" not in err


def test_a_bad_date_is_one_line_and_exit_2(tmp_path):
    code, result, err = run_worker("2021-02-30", tmp_path)
    assert code == 2 and "'2021-02-30' is not a date" in result["message"]
    assert "Traceback" not in err


def test_allowing_3d_keeps_the_levels(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7, variables=("TK",), levels=3), str(store))
    code, _, err = run_worker("2021-01-01", tmp_path, "--source", str(store), "--variables", "TK", "--allow-3d")
    assert code == 0, err
    ds = xr.open_dataset(daily(tmp_path, "2021-01-01"))
    hourly = xr.open_zarr(store).sel(time=slice("2021-01-01T00", "2021-01-01T23"))
    np.testing.assert_allclose(ds["TK"].values[0], hourly["TK"].astype("float64").mean("time").values, rtol=1e-6)
    assert ds["TK"].dims == ("time", "bottom_top", "south_north", "west_east")


def test_verified_days_are_skipped_forced_days_redone_and_bad_files_kept_aside(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=8, nx=9), str(store))
    args = ("--source", str(store), "--variables", "T2,PREC_ACC_NC")
    assert run_worker("2021-01-01", tmp_path, *args)[0] == 0
    path = daily(tmp_path, "2021-01-01")
    first = path.stat().st_mtime_ns
    code, result, _ = run_worker("2021-01-01", tmp_path, *args)
    assert code == 0 and result["status"] == "skipped" and path.stat().st_mtime_ns == first
    code, result, _ = run_worker("2021-01-01", tmp_path, *args, "--force")
    assert code == 0 and result["status"] == "published" and path.stat().st_mtime_ns != first
    # a truncated file under the final name is not trusted: it is moved aside and the day redone
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, result, err = run_worker("2021-01-01", tmp_path, *args)
    assert code == 0 and result["status"] == "published", err
    [kept] = list((path.parent / "quarantine").iterdir())
    assert kept.read_bytes() == data[: len(data) // 2]
    # a file holding more than asked is done; one lacking an asked field is redone (the driver
    # refuses such a run up front unless --replace-different: test_bad_input.py)
    code, result, _ = run_worker("2021-01-01", tmp_path, "--source", str(store), "--variables", "T2")
    assert result["status"] == "skipped"
    code, result, _ = run_worker("2021-01-01", tmp_path, "--source", str(store), "--variables", "T2,TD2")
    assert result["status"] == "published" and len(list((path.parent / "quarantine").iterdir())) == 2


def test_killing_the_worker_while_it_writes_leaves_no_file_under_the_final_name(tmp_path):
    store = tmp_path / "s.zarr"
    names = ("T2", "TD2", "Q2", "PSFC", "U10", "V10", "PREC_ACC_NC", "ACSNOM")
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=400, nx=500, variables=names), str(store))
    final = daily(tmp_path, "2021-01-01")
    killed_mid_write = 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, str(SRC / "single_download.py"), "2021-01-01", "--source", str(store), "--force",
             "--data-dir", str(tmp_path / "data"), "--qc-dir", str(tmp_path / "qc"), "--variables", ",".join(names)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            while proc.poll() is None:
                temps = list(final.parent.glob(".tmp-*")) if final.parent.exists() else []
                if temps and not final.exists():
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed_mid_write += 1
                    assert not final.exists(), "a killed writer left a file under the final name"
                    break
                time.sleep(0.002)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        final.unlink(missing_ok=True)
        if killed_mid_write >= 2:
            break
    assert killed_mid_write >= 1, "never caught the worker mid-write"
    assert list(final.parent.glob(".tmp-*")), "the killed writer's temporary is still there"
    # the rerun cleans the stale temporary and publishes a verified file
    code, result, err = run_worker("2021-01-01", tmp_path, "--source", str(store), "--variables", ",".join(names))
    assert code == 0 and result["status"] == "published", err
    assert list(final.parent.glob(".tmp-*")) == []


def test_keep_hourly_keeps_exactly_the_records_used_on_one_cf_time_axis(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7), str(store))
    code, _, err = run_worker("2021-01-01", tmp_path, "--source", str(store), "--variables", "T2,PREC_ACC_NC,ACSWDNB,RH2",
                              "--keep-hourly")
    assert code == 0, err
    path = tmp_path / "data" / "unprocessed" / "24hours" / "conus404_hourly_20210101.nc"
    hourly = xr.open_dataset(path)
    source = xr.open_zarr(store)
    stamps = np.arange(np.datetime64("2021-01-01T00"), np.datetime64("2021-01-02T01"), np.timedelta64(1, "h"))
    np.testing.assert_array_equal(hourly["time"].values, stamps.astype("datetime64[ns]"))
    np.testing.assert_array_equal(hourly["time_bnds"].values[:, 1] - hourly["time_bnds"].values[:, 0],
                                  np.full(25, np.timedelta64(1, "h")).astype("timedelta64[ns]"))
    # each variable holds exactly its records; the other stamps are missing
    np.testing.assert_array_equal(hourly["T2"].values[:24], source["T2"].sel(time=slice("2021-01-01T00", "2021-01-01T23")).values)
    assert np.isnan(hourly["T2"].values[24]).all()
    np.testing.assert_array_equal(hourly["PREC_ACC_NC"].values[1:],
                                  source["PREC_ACC_NC"].sel(time=slice("2021-01-01T01", "2021-01-02T00")).values)
    assert np.isnan(hourly["PREC_ACC_NC"].values[0]).all()
    held = ~np.isnan(hourly["I_ACSWDNB"].values).all(axis=(1, 2))
    assert list(np.flatnonzero(held)) == [0, 24]
    np.testing.assert_array_equal(hourly["Q2"].values[:24], source["Q2"].sel(time=slice("2021-01-01T00", "2021-01-01T23")).values)
    assert hourly["T2"].attrs["cell_methods"] == "time: point" and hourly["PREC_ACC_NC"].attrs["cell_methods"] == "time: sum"
    assert hourly["PREC_ACC_NC"].attrs["standard_name"] == "lwe_thickness_of_precipitation_amount"
    assert hourly["Q2"].attrs["units"] == source["Q2"].attrs["units"]  # a derived variable's inputs keep their attributes
    assert hourly.attrs["Conventions"] == "CF-1.8, ACDD-1.3" and "x" in hourly.coords
    from tests.conftest import cf_findings as findings

    found = findings(path, tmp_path)
    assert found["high_priorities"] == [] and found["medium_priorities"] == [], found


def test_a_contradicting_seed_hint_is_warned_about_and_the_class_wins():
    import datetime as dt

    from conus404.config.settings import Request
    from conus404.day.plan import plan_variables

    ds = build_dataset(StoreSpec.for_days("2021-01-01", 1, ny=4, nx=5, variables=("T2", "PREC_ACC_NC")))
    request = Request(dt.date(2021, 1, 1), dt.date(2021, 1, 1), ("T2", "PREC_ACC_NC"),
                      aggregation_hints={"T2": True, "PREC_ACC_NC": True})
    plans, warnings = plan_variables(ds, request)
    assert [p.statistics[0] for p in plans] == ["mean", "sum"]
    assert len(warnings) == 1 and warnings[0].startswith("PREC_ACC_NC: VARIABLE_AGG_MAP asks for a mean")


def test_a_static_field_is_refused_as_such_and_listed_as_static():
    import datetime as dt

    from conus404.config.settings import Request
    from conus404.core.exceptions import ConfigurationError
    from conus404.day.plan import plan_variables
    from conus404.day.variable_listing import describe_variables

    ds = build_dataset(StoreSpec.for_days("2021-01-01", 1, ny=4, nx=5, variables=("T2",)))
    ds["HGT"] = (("south_north", "west_east"), np.zeros((4, 5), np.float32), {"units": "m", "description": "Terrain Height"})
    with pytest.raises(ConfigurationError, match="HGT has no time axis: it is a static field"):
        plan_variables(ds, Request(dt.date(2021, 1, 1), dt.date(2021, 1, 1), ("HGT",)))
    [row] = [r for r in describe_variables(ds) if r.matches("terrain")]
    assert (row.name, row.var_class, row.units, row.has_levels) == ("HGT", "static", "m", False)


@pytest.mark.emulator
def test_a_signed_asset_on_stdin_is_used_without_signing_again(emulator, tmp_path, fresh_sdk):
    from conus404.sources import source

    service = emulator.service
    asset = source.sign_collection_asset(service.stac_url, "conus404", "zarr-abfs", service.sas_url)
    before = dict(service.requests)
    env = {**emulator.client_env(), "CONUS404_STAC_URL": "http://127.0.0.1:9/nothing-here"}
    code, result, err = run_worker("2021-01-02", tmp_path, "--variables", "T2,PREC_ACC_NC", "--signed-asset-stdin",
                                   env=env, stdin=json.dumps(asset.to_json()))
    assert code == 0 and result["status"] == "published", err
    assert dict(service.requests) == before, "the worker neither read the catalogue nor asked for a token"
    assert asset.storage_options["credential"] not in err


def test_garbage_on_stdin_is_a_usage_error(tmp_path):
    code, result, err = run_worker("2021-01-01", tmp_path, "--signed-asset-stdin", stdin="not json")
    assert code == 2 and "standard input is not a signed asset" in result["message"]


@pytest.mark.emulator
def test_a_token_refused_mid_day_is_renewed_and_the_day_completes(emulator, tmp_path, fresh_sdk):
    from conus404.emulator.fault_proxy import FaultRule
    from conus404.sources import source

    service = emulator.service
    proxy = emulator.inject_faults([FaultRule(r"/PREC_ACC_NC/30\.0\.0$", status=403, times=1)])
    try:
        asset = source.sign_collection_asset(service.stac_url, "conus404", "zarr-abfs", service.sas_url)
        before = service.requests["token"]
        code, result, err = run_worker("2021-01-02", tmp_path, "--variables", "T2,PREC_ACC_NC", "--signed-asset-stdin",
                                       env=emulator.client_env(), stdin=json.dumps(asset.to_json()))
    finally:
        emulator.inject_faults([])
    assert code == 0 and result["status"] == "published", err
    assert proxy.counts["injected"] >= 1
    assert service.requests["token"] == before + 1, "the worker signed again once"
    assert "signing again and re-reading" in err
    hourly = build_dataset(emulator.stores["conus404"])
    assert_matches(daily(tmp_path, "2021-01-02"), {k: v for k, v in expected_daily(hourly, "2021-01-02").items() if k in ("T2", "PREC_ACC_NC")})


@pytest.mark.emulator
def test_a_worker_handed_an_expired_token_signs_again(emulator, tmp_path, fresh_sdk):
    import datetime as dt

    from conus404.sources import source

    service = emulator.service
    service.token_lifetime = dt.timedelta(seconds=2)
    try:
        asset = source.sign_collection_asset(service.stac_url, "conus404", "zarr-abfs", service.sas_url)
    finally:
        service.token_lifetime = dt.timedelta(hours=1)
    time.sleep(3.5)  # the token the driver would hand over has expired (Azurite checks it)
    before = service.requests["token"]
    code, result, err = run_worker("2021-01-01", tmp_path, "--variables", "T2,ACSWDNB", "--signed-asset-stdin",
                                   env=emulator.client_env(), stdin=json.dumps(asset.to_json()))
    assert code == 0 and result["status"] == "published", err
    assert "refused the token the worker was given: signing again" in err
    assert service.requests["token"] == before + 1


def test_several_days_in_one_process_match_the_rules_and_fail_independently(tmp_path):
    """Days run in turn by one worker: each gets its own line, values and failure; a defect in one
    day does not touch the others."""
    store = tmp_path / "s.zarr"
    spec = StoreSpec.for_days("2021-01-01", 3, ny=10, nx=12, variables=("T2", "PREC_ACC_NC"),
                              defects=(Defect("negative", "2021-01-02T05"),))
    write_store(spec, str(store))
    argv = [sys.executable, str(SRC / "single_download.py"), "2021-01-01", "2021-01-02", "2021-01-03",
            "--source", str(store), "--variables", "T2,PREC_ACC_NC", "--statistics", "",
            "--data-dir", str(tmp_path / "data"), "--qc-dir", str(tmp_path / "qc")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["date"] for r in results] == ["2021-01-01", "2021-01-02", "2021-01-03"]
    assert [r["status"] for r in results] == ["published", "failed", "published"]
    assert results[1]["error_class"] == "permanent" and "-1.5 mm" in results[1]["message"]
    assert proc.returncode == 4  # the first failed day's code
    assert "startup" in results[0]["timings"] and "startup" not in results[2]["timings"]
    hourly = build_dataset(spec)
    for day in ("2021-01-01", "2021-01-03"):
        expected = expected_daily(hourly, day)
        assert_matches(daily(tmp_path, day), {k: v for k, v in expected.items() if k in ("T2", "PREC_ACC_NC")})
    assert not daily(tmp_path, "2021-01-02").exists()


def test_a_usage_error_fails_every_requested_day_once(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 2, ny=6, nx=7, variables=("T2",)), str(store))
    argv = [sys.executable, str(SRC / "single_download.py"), "2021-01-01", "2021-01-02", "--source", str(store),
            "--variables", "T3", "--statistics", "", "--data-dir", str(tmp_path / "data"), "--qc-dir", str(tmp_path / "qc")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 2
    assert [(r["date"], r["error_class"]) for r in results] == [("2021-01-01", "usage"), ("2021-01-02", "usage")]
    assert proc.stderr.count("'T3' is not a variable") == 1 and "Traceback" not in proc.stderr


def test_inline_statistics_give_named_fields_with_values_and_cell_methods_from_numpy(tmp_path):
    """--variables T2:mean,min,max,PREC_ACC_NC:sum,max: one naming rule (the class's own statistic keeps
    the name, others get _STAT), each field against numpy on the hourly records of its window."""
    store = tmp_path / "s.zarr"
    spec = StoreSpec.for_days("2021-01-01", 1, ny=10, nx=12, variables=("T2", "PREC_ACC_NC"))
    write_store(spec, str(store))
    code, _, err = run_worker("2021-01-01", tmp_path, "--source", str(store), "--statistics", "",
                              "--variables", "T2:mean,min,max,PREC_ACC_NC:sum,max")
    assert code == 0, err
    hourly = xr.open_zarr(store).load()
    instant = hourly.sel(time=slice("2021-01-01T00", "2021-01-01T23"))["T2"].values.astype(np.float64)
    prior = hourly.sel(time=slice("2021-01-01T01", "2021-01-02T00"))["PREC_ACC_NC"].values.astype(np.float64)
    assert instant.shape[0] == prior.shape[0] == 24
    expected = {
        "T2": (instant.mean(axis=0), "time: mean"),
        "T2_min": (instant.min(axis=0), "time: minimum"),
        "T2_max": (instant.max(axis=0), "time: maximum"),
        "PREC_ACC_NC": (prior.sum(axis=0), "time: sum"),
        "PREC_ACC_NC_max": (prior.max(axis=0), "time: maximum"),
    }
    ds = xr.open_dataset(daily(tmp_path, "2021-01-01"))
    assert sorted(ds.attrs["conus404_variables"].split()) == sorted(expected)
    for name, (values, method) in expected.items():
        np.testing.assert_allclose(ds[name].values[0], values, rtol=1e-6, atol=1e-6, err_msg=name)
        assert ds[name].attrs["cell_methods"] == method, name
    assert ds["T2_min"].attrs["standard_name"] == "air_temperature"
    assert "T2_mean" not in ds and "PREC_ACC_NC_sum" not in ds


DERIVED_NAMES = "RH2,SH2,VPD2,U10E,V10E,WDIR10,WSPD2,ETO,ETR"


def test_derived_variables_are_computed_hourly_then_reduced(tmp_path):
    """Each derived field against the formulas written out in tests/references.py, applied to the
    store's hourly records here; the earth-relative rotation from pyproj's meridian convergence."""
    from pyproj import Proj

    from conus404.core import grid
    from tests import references

    store = tmp_path / "s.zarr"
    day = "2021-07-01"
    write_store(StoreSpec.for_days(day, 1, ny=6, nx=8, variables=("T2", "Q2", "PSFC", "SWDOWN", "U10", "V10")),
                str(store))
    code, result, err = run_worker(day, tmp_path, "--source", str(store), "--variables", DERIVED_NAMES,
                                   "--statistics", "RH2:min,max")
    assert code == 0, err
    hourly = xr.open_zarr(store).load().isel(time=slice(0, 24)).astype("float64")  # 00..23Z
    t, w, p = hourly["T2"].values, hourly["Q2"].values, hourly["PSFC"].values
    e = references.vapour_pressure(p, w)
    es = references.saturation_vapour_pressure(t)
    lat, lon = hourly["lat"].values, hourly["lon"].values
    gamma = np.radians(Proj(grid.crs_attributes()["proj4"]).get_factors(lon, lat).meridian_convergence)
    u, v = hourly["U10"].values, hourly["V10"].values
    east, north = u * np.cos(gamma) + v * np.sin(gamma), v * np.cos(gamma) - u * np.sin(gamma)
    mean_east, mean_north = east.mean(0), north.mean(0)
    speed = np.hypot(u, v)
    expected = {
        "RH2": (100 * e / es).mean(0), "RH2_min": (100 * e / es).min(0), "RH2_max": (100 * e / es).max(0),
        "SH2": (w / (1 + w)).mean(0), "VPD2": ((es - e) / 1000).mean(0),
        "U10E": mean_east, "V10E": mean_north,
        "WDIR10": np.degrees(np.arctan2(-mean_east, -mean_north)) % 360,
        "WSPD2": (speed * 4.87 / np.log(67.8 * 10 - 5.42)).mean(0),
    }
    hours = [pd.Timestamp(x) for x in hourly["time"].values]
    elevation = 293 / 0.0065 * (1 - (p.mean(0) / 1000 / 101.3) ** (1 / 5.26))  # ASCE eq. 3, solved for z
    u2 = speed * 4.87 / np.log(67.8 * 10 - 5.42)
    for name, surface in (("ETO", "short"), ("ETR", "tall")):
        ea = references.vapour_pressure(p, np.maximum(w, 0))  # as WRF's post-processing, not below zero
        expected[name] = np.array([[references.asce_day(surface, hours, t[:, j, i] - 273.15, ea[:, j, i] / 1000,
                                                        hourly["SWDOWN"].values[:, j, i] * 0.0036, u2[:, j, i],
                                                        elevation[j, i], lat[j, i], lon[j, i]).sum()
                                    for i in range(t.shape[2])] for j in range(t.shape[1])])
    ds = xr.open_dataset(daily(tmp_path, day))
    for name, values in expected.items():
        atol = {"ETO": 0.01, "ETR": 0.01, "WDIR10": 1e-3}.get(name, 0.0)
        np.testing.assert_allclose(ds[name].values[0], values, rtol=2e-5, atol=atol, err_msg=name)
    assert ds["RH2"].attrs["units"] == "%" and ds["RH2"].attrs["standard_name"] == "relative_humidity"
    assert ds["ETO"].attrs["cell_methods"] == "time: sum" and "ASCE" in ds["ETO"].attrs["conus404_formula"]
    assert ds["U10E"].attrs["standard_name"] == "eastward_wind" and ds["ETO"].attrs["conus404_class"] == "derived"
    assert float(ds["ETO"].max()) > 2.0  # a July day: real evaporative demand, not zeros


def test_a_derived_variable_without_its_inputs_or_with_a_foreign_statistic_is_refused(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-07-01", 1, ny=4, nx=5, variables=("T2", "U10", "V10")), str(store))
    code, result, err = run_worker("2021-07-01", tmp_path, "--source", str(store), "--variables", "ETO")
    assert code == 2 and "ETO needs Q2, PSFC, SWDOWN, which the source lacks" in result["message"]
    code, result, err = run_worker("2021-07-01", tmp_path, "--source", str(store), "--variables", "WDIR10",
                                   "--statistics", "WDIR10:max")
    assert code == 2 and "WDIR10 is derived: statistic max is not defined for it (use mean)" in result["message"]


def test_units_convert_the_fields_and_a_rerun_in_other_units_redoes_the_day(tmp_path):
    store = tmp_path / "s.zarr"
    day = "2021-01-01"
    write_store(StoreSpec.for_days(day, 1, ny=5, nx=6, variables=("T2", "PREC_ACC_NC")), str(store))
    flags = ("--source", str(store), "--variables", "T2,PREC_ACC_NC", "--statistics", "T2:max")
    code, result, err = run_worker(day, tmp_path, *flags, "--units", "T2:degC,PREC_ACC_NC:in")
    assert code == 0, err
    hourly = xr.open_zarr(store).load()
    expected = expected_daily(hourly, day)
    with xr.open_dataset(daily(tmp_path, day)) as ds:
        np.testing.assert_allclose(ds["T2"].values[0], expected["T2"] - 273.15, atol=2e-4)
        np.testing.assert_allclose(ds["T2_max"].values[0], expected["T2_max"] - 273.15, atol=2e-4)
        np.testing.assert_allclose(ds["PREC_ACC_NC"].values[0], expected["PREC_ACC_NC"] / 25.4, rtol=2e-6, atol=1e-7)
        assert ds["T2"].attrs["units"] == "degC" and ds["T2"].attrs["conus404_source_units"] == "K"
        assert ds["T2"].attrs["standard_name"] == "air_temperature"
        assert ds["T2"].attrs["units_metadata"] == "temperature: on_scale"
        assert ds["PREC_ACC_NC"].attrs["units"] == "in"
        assert ds["PREC_ACC_NC"].attrs["standard_name"] == "lwe_thickness_of_precipitation_amount"
    # the same request again is skipped; without --units the day is made again in the source's units
    code, result, err = run_worker(day, tmp_path, *flags, "--units", "T2:degC,PREC_ACC_NC:in")
    assert code == 0 and result["status"] == "skipped", err
    code, result, err = run_worker(day, tmp_path, *flags)
    assert code == 0 and result["status"] == "published", err
    with xr.open_dataset(daily(tmp_path, day)) as ds:
        assert ds["T2"].attrs["units"] == "K"
        np.testing.assert_allclose(ds["T2"].values[0], expected["T2"], rtol=2e-6)


def test_neighbouring_days_read_in_different_orders_but_write_the_request_order(tmp_path):
    """Days started together read their variables in rotated orders (so they do not queue for the
    same shared chunks); each file still lists the fields in the request's order."""
    store = tmp_path / "s.zarr"
    variables = ("T2", "TD2", "PREC_ACC_NC", "Q2")
    spec = StoreSpec.for_days("2021-01-01", 2, ny=8, nx=9, variables=variables)
    write_store(spec, str(store))
    hourly = build_dataset(spec)
    for day in ("2021-01-01", "2021-01-02"):
        code, result, err = run_worker(day, tmp_path, "--source", str(store), "--variables", ",".join(variables),
                                       "--statistics", "")
        assert code == 0, err
        ds = assert_matches(daily(tmp_path, day), {k: v for k, v in expected_daily(hourly, day).items() if k in variables})
        assert [name for name in ds.data_vars if name in variables] == list(variables), day


def test_reading_lat_lon_counts_as_reading_not_as_opening(tmp_path):
    """The first days of a run fetch lat/lon: seconds of reading, reported as such (the 'open'
    phase is the fixed cost the benchmark sums). A store that takes 0.2 s per chunk get."""
    import asyncio

    from zarr.storage import LocalStore, WrapperStore

    from conus404.day.worker import open_and_read_grid

    class SlowStore(WrapperStore):
        def _with_store(self, store):
            return type(self)(store)

        async def get(self, key, prototype, byte_range=None):
            if key.split("/")[0] in ("lat", "lon") and not key.split("/")[-1].startswith("."):
                await asyncio.sleep(0.2)
            return await self._store.get(key, prototype, byte_range)

    store = tmp_path / "s.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7, variables=("T2",)), str(store))
    timings: dict[str, float] = {}
    ds, _, lat, lon = open_and_read_grid(
        lambda fresh: (xr.open_zarr(SlowStore(LocalStore(str(store), read_only=True)), chunks=None), {}), timings)
    np.testing.assert_array_equal(lat, xr.open_zarr(store)["lat"].values)
    assert timings["read"] >= 0.4  # two slow chunk gets, at least


@pytest.mark.parametrize("flags, zlib, level", [((), True, 1), (("--compression-level", "0"), False, 0),
                                                (("--compression-level", "4"), True, 4)])
def test_the_compression_level_sets_the_daily_fields_zlib_and_keeps_their_values(tmp_path, flags, zlib, level):
    import netCDF4

    store = tmp_path / "s.zarr"
    spec = StoreSpec.for_days("2021-01-01", 1, ny=8, nx=9, variables=("T2", "PREC_ACC_NC"))
    write_store(spec, str(store))
    code, result, err = run_worker("2021-01-01", tmp_path, "--source", str(store), "--variables", "T2,PREC_ACC_NC",
                                   "--statistics", "", *flags)
    assert code == 0 and result["status"] == "published", err
    expected = {k: v for k, v in expected_daily(build_dataset(spec), "2021-01-01").items() if k in ("T2", "PREC_ACC_NC")}
    assert_matches(daily(tmp_path, "2021-01-01"), expected).close()
    with netCDF4.Dataset(daily(tmp_path, "2021-01-01")) as nc:
        for name in expected:
            filters = nc[name].filters()
            assert filters["zlib"] is zlib and filters["complevel"] == level, (name, filters)
