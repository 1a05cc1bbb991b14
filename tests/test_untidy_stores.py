"""End to end against stores as untidy as the real ones: fog and tiny negatives published and flagged
(refused with --strict-qc), lost chunks refused by key whatever the fill value, a throttling token
service waited out, staggered winds refused before the run, the record's last day named and not run,
and --check-source on good and broken stores (docs/REAL_STORE.md)."""

from __future__ import annotations

import datetime as dt
import json
import re
import runpy
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conus404.emulator.synthetic_store import Defect, StoreSpec, write_store
from conus404.outputs import daily_file
from tests import conftest

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
DAYS = [dt.date(2021, 1, 1), dt.date(2021, 1, 2), dt.date(2021, 1, 3)]
SHIPPED = ",".join(runpy.run_path(str(ROOT / "src" / "config.py"))["VARIABLE_AGG_MAP"])
SPEC = StoreSpec.for_days("2021-01-01", 3, ny=16, nx=20)  # the emulator's default: the model's quirks on

shared_stack = conftest.emulator_serving(SPEC)


@pytest.fixture
def stack(shared_stack):
    yield shared_stack
    conftest.reset_faults(shared_stack)
    shared_stack.add_store(SPEC)  # what a test served instead is replaced


def _store_values(stack, name: str) -> xr.DataArray:
    """The served store as a user reads it: the Planetary Computer's own recipe (pystac-client, the SDK)."""
    import planetary_computer
    import pystac_client
    from planetary_computer import sas

    from conus404.sources.source import use_sas_endpoint

    use_sas_endpoint(stack.service.sas_url)
    sas.TOKEN_CACHE.clear()
    asset = pystac_client.Client.open(stack.service.stac_url).get_collection("conus404").assets["zarr-abfs"]
    asset = planetary_computer.sign(asset)
    ds = xr.open_zarr(asset.href, storage_options=asset.extra_fields["xarray:storage_options"], consolidated=True)
    return ds[name].load()


def test_fog_and_tiny_negatives_are_published_unchanged_flagged_and_refused_with_strict_qc(stack, tmp_path):
    result = conftest.run_pipeline(tmp_path, stack, DAYS, SHIPPED, "--foreground", "--rollup", "monthly", "--allow-partial")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"published\s+3\s+\(3 flagged by the QC, published unchanged", result.stdout), result.stdout
    with netCDF4.Dataset(tmp_path / "data" / "unprocessed" / "monthly" / "conus404_monthly_202101.nc") as month:
        assert "conus404_qc_flags" not in month["TD2"].ncattrs()  # one day's flags are not the month's
    t2, td2, q2, prec = (_store_values(stack, n) for n in ("T2", "TD2", "Q2", "PREC_ACC_NC"))
    for day in DAYS:
        hours = slice(day.isoformat(), f"{day.isoformat()}T23")  # 00Z..23Z
        amounts = slice(f"{day.isoformat()}T01", f"{(day + dt.timedelta(days=1)).isoformat()}T00")  # 01Z..00Z(+1)
        expected = {name: var.sel(time=hours).values.astype(np.float64).mean(axis=0) for name, var in
                    (("T2", t2), ("TD2", td2), ("Q2", q2))}
        expected["PREC_ACC_NC"] = prec.sel(time=amounts).values.astype(np.float64).sum(axis=0)
        path = daily_file.daily_path(tmp_path / "data", day)
        with netCDF4.Dataset(path) as nc:
            for name, values in expected.items():
                np.testing.assert_allclose(nc[name][0].filled(np.nan), values.astype(np.float32), rtol=1e-6, err_msg=name)
            assert nc.conus404_qc == "flagged"
            assert "TD2: daily mean TD2 above T2" in nc.conus404_qc_flags and "Q2:" in nc.conus404_qc_flags
            assert "supersaturated" in nc["TD2"].conus404_qc_flags and "tiny negatives" in nc["Q2"].conus404_qc_flags
            excess = (expected["TD2"] - expected["T2"])
            assert excess.max() > 0.5  # the store's fog, kept as it is
        qc = json.loads((tmp_path / "data" / "qc" / f"qc_{day:%Y%m%d}.json").read_text())
        assert qc["status"] == "flagged" and qc["failures"] == []
        fog = next(f for f in qc["flags"] if f["check"] == "dew_point_above_temperature")
        assert fog["cells"] == int((excess > 0.01).sum()) and np.isclose(fog["worst"], excess.max(), atol=1e-3)
        negative = next(f for f in qc["flags"] if f["variable"] == "Q2")
        assert negative["cells"] == int((q2.sel(time=hours).values < 0).sum())
    strict = conftest.run_pipeline(tmp_path / "strict", stack, DAYS, SHIPPED, "--foreground", "--strict-qc")
    assert strict.returncode == 1
    assert not list(daily_file.daily_dir(tmp_path / "strict" / "data").glob("*.nc"))
    failed = json.loads((tmp_path / "strict" / "data" / "ultimate_failures.json").read_text())
    assert sorted(failed) == [d.isoformat() for d in DAYS]
    assert all(e["error_class"] == "permanent" and "refused by --strict-qc" in e["message"] for e in failed.values())


@pytest.mark.parametrize("fill", ["null", "nan"])
def test_a_lost_chunk_refuses_its_day_naming_variable_and_hour_whatever_the_fill_value(stack, tmp_path, fill):
    spec = StoreSpec.for_days("2021-01-01", 3, ny=16, nx=20, fill_value=fill, variables=("T2", "PREC_ACC_NC"),
                              defects=(Defect("lost_chunk", "2021-01-02T05", "PREC_ACC_NC"),))
    stack.add_store(spec, store_path=f"lost-{fill}.zarr")
    result = conftest.run_pipeline(tmp_path, stack, DAYS, "T2,PREC_ACC_NC", "--foreground")
    assert result.returncode == 1, result.stdout + result.stderr
    made = sorted(p.name for p in daily_file.daily_dir(tmp_path / "data").glob("*.nc"))
    assert made == ["conus404_daily_20210101.nc", "conus404_daily_20210103.nc"]
    failed = json.loads((tmp_path / "data" / "ultimate_failures.json").read_text())
    assert list(failed) == ["2021-01-02"] and failed["2021-01-02"]["error_class"] == "permanent"
    assert "PREC_ACC_NC at 2021-01-02T05Z: the store lacks its chunk PREC_ACC_NC/29.0.0" in failed["2021-01-02"]["message"]


@pytest.mark.slow  # 30 s of waiting; test_reliability's mixed faults throttle the token service in the quick suite
def test_a_run_through_a_token_service_that_throttles_for_30_seconds_completes(stack, tmp_path):
    stack.service.throttle_for(30.0, statuses=(429, 404, 429, 503), retry_after_header=False, try_again_s=7)
    result = conftest.run_pipeline(tmp_path, stack, DAYS[:2], "T2,PREC_ACC_NC", "--foreground", timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list(daily_file.daily_dir(tmp_path / "data").glob("*.nc"))) == 2
    requests = stack.service.requests
    assert requests["token_throttled_429"] >= 1 and requests["token_throttled_404"] >= 1
    log = (tmp_path / "logs" / "driver_main_run.log").read_text() + (tmp_path / "logs" / "pipeline_console.log").read_text()
    assert "the SAS token service is throttling (HTTP 404)" in log or "the SAS token service is throttling (HTTP 429)" in log


def test_staggered_winds_are_refused_before_the_run_with_one_line(stack, tmp_path):
    stack.add_store(StoreSpec.for_days("2021-01-01", 1, ny=16, nx=20, variables=("T2", "U", "V")), store_path="winds.zarr")
    result = conftest.run_pipeline(tmp_path, stack, DAYS[:1], "T2,U", "--foreground", "--allow-3d")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "U lies on the staggered grid (west_east_stag 21)" in lines[0], result.stderr
    assert "U10E" in lines[0] and not (tmp_path / "data" / "failed_jobs.json").exists()
    hytest = tmp_path / "hytest.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 1, ny=8, nx=9, layout="hytest", variables=("T2", "V")), str(hytest))
    result = conftest.run_pipeline(tmp_path / "h", None, DAYS[:1], "V", "--foreground", "--allow-3d", "--source", str(hytest))
    assert result.returncode == 2 and "V lies on the staggered grid (y_stag 9)" in result.stderr


def test_the_whole_record_is_asked_for_and_the_day_past_its_end_is_named_and_not_run(stack, tmp_path):
    stack.add_store(StoreSpec.for_days("2021-01-01", 3, closing_record=False, ny=16, nx=20,
                                       variables=("T2", "PREC_ACC_NC")), store_path="ends-23z.zarr")
    result = conftest.run_pipeline(tmp_path, stack, DAYS, "T2,PREC_ACC_NC", "--foreground")
    assert result.returncode == 1, result.stdout + result.stderr
    warning = next(line for line in result.stdout.splitlines() if "cannot be made" in line)
    assert "1 of the range's 3 day(s) cannot be made from this source and will not be run (2021-01-03)" in warning
    assert "PREC_ACC_NC of 2021-01-03 needs 2021-01-04T00Z" in warning
    assert result.stdout.index(warning) < result.stdout.index("running 2021-01-01..2021-01-03")  # before the run
    made = sorted(p.name for p in daily_file.daily_dir(tmp_path / "data").glob("*.nc"))
    assert made == ["conus404_daily_20210101.nc", "conus404_daily_20210102.nc"]
    failed = json.loads((tmp_path / "data" / "ultimate_failures.json").read_text())
    assert list(failed) == ["2021-01-03"] and "(not run)" in failed["2021-01-03"]["message"]
    assert not (tmp_path / "data" / "logs" / "download_20210103.log").exists()


def _check_source(tmp_path, stack, *flags: str):
    return conftest.run_pipeline(tmp_path, stack, DAYS, SHIPPED, "--check-source", *flags, timeout=120)


def test_check_source_prints_its_table_and_passes_on_the_emulator(stack, tmp_path):
    result = _check_source(tmp_path, stack)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for what in ("catalogue", "signing", "metadata", "layout", "grid", "projection", "time encoding", "time steps",
                 "record", "range", *SHIPPED.split(","), *(f"{n} hour" for n in SHIPPED.split(","))):
        assert any(re.match(rf"(ok|warn)\s+{re.escape(what)}\s", line) for line in lines), (what, result.stdout)
    assert not any(line.startswith("fail") for line in lines)
    q2 = _store_values(stack, "Q2").sel(time="2021-01-01T00").values  # the hour it read, from the store itself
    outcome = "warn" if (q2 < 0).any() else "ok"  # tiny negatives are flagged, not refused
    assert re.search(rf"{outcome}\s+Q2 hour\s+2021-01-01T00Z: {q2.min():.6g}..{q2.max():.6g}", result.stdout), result.stdout
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("*.nc"))


def test_check_source_fails_naming_a_renamed_dimension_a_missing_variable_and_an_early_end(stack, tmp_path):
    renamed = tmp_path / "renamed.zarr"
    spec = StoreSpec.for_days("2021-01-01", 3, ny=8, nx=9, variables=("T2", "PREC_ACC_NC"))
    write_store(spec, str(tmp_path / "good.zarr"))
    xr.open_zarr(tmp_path / "good.zarr").rename_dims({"west_east": "columns"}).to_zarr(renamed, zarr_format=2,
                                                                                      consolidated=True)
    result = _check_source(tmp_path / "a", None, "--source", str(renamed), "--variables", "T2")
    assert result.returncode == 1
    assert re.search(r"fail\s+layout\s+not a CONUS404 layout: no 2-D lat on \(south_north, west_east\)", result.stdout)
    result = _check_source(tmp_path / "b", None, "--source", str(tmp_path / "good.zarr"), "--variables", "T2,Q2")
    assert result.returncode == 1
    assert re.search(r"fail\s+Q2\s+'Q2' is not a variable of the source", result.stdout), result.stdout
    assert re.search(r"ok\s+T2\s", result.stdout)
    served = stack.service.collections["conus404"]
    served.time_extent = (served.time_extent[0], "2021-01-10T00:00:00")  # the catalogue promises more than the store has
    result = _check_source(tmp_path / "c", stack, "--variables", "T2")
    assert result.returncode == 1
    assert re.search(r"fail\s+record\s+2021-01-01T00Z..2021-01-04T00Z: it ends before the catalogue's 2021-01-10T00Z",
                     result.stdout), result.stdout
    result = _check_source(tmp_path / "d", stack, "--variables", "T2", "--start", "2021-02-01", "--end", "2021-02-02")
    assert result.returncode == 1 and re.search(r"fail\s+range\s+the range 2021-02-01..2021-02-02 is outside", result.stdout)


def test_surface_fields_at_real_extremes_are_published_not_refused(tmp_path):
    """A July day of the fields whose bounds no earlier test value came near: a desert skin above the
    340 K once allowed, SST and SSTSK of 0 over land, snow at the 2,000 mm cap, a 5-km boundary layer,
    LAI above the tables' 4.7, canopy evaporation negative with dew."""
    from tests.test_worker import run_worker

    names = ("TSK", "TRAD", "SST", "SSTSK", "PBLH", "SNOW", "LAI", "ACECAN")
    spec = StoreSpec.for_days("2021-07-01", 1, ny=24, nx=32, variables=names)
    store = tmp_path / "july.zarr"
    write_store(spec, str(store))
    code, result, err = run_worker("2021-07-01", tmp_path, "--source", str(store), "--variables", ",".join(names),
                                   "--statistics", "TSK:max")
    assert code == 0 and result["status"] == "published", err
    hourly = xr.open_zarr(store).load()
    assert float(hourly["TSK"].max()) > 340.0 and float(hourly["SNOW"].max()) == 2000.0
    with netCDF4.Dataset(daily_file.daily_path(tmp_path / "data", dt.date(2021, 7, 1))) as nc:
        day = slice(0, 24)
        np.testing.assert_array_equal(nc["TSK_max"][0], hourly["TSK"].values[day].max(axis=0))
        sst = hourly["SST"].values[day].astype(np.float64).mean(axis=0).astype(np.float32)
        np.testing.assert_allclose(nc["SST"][0], sst, rtol=1e-6)
        assert (nc["SST"][0][sst == 0] == 0).all(), "land stays 0: WPS's fill, published as the store has it"
        acecan = hourly["ACECAN"].values[1:25].astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(nc["ACECAN"][0], acecan.astype(np.float32), rtol=1e-5, atol=1e-6)
        assert "conus404_qc_flags" not in nc["ACECAN"].ncattrs()
    assert (hourly["ACECAN"].values[1:25] < 0).any()  # net of dew: negative by definition, neither refused nor flagged
    qc = json.loads((tmp_path / "qc" / "qc_20210701.json").read_text())
    assert not [f for f in qc["flags"] if f["variable"] in ("ACECAN", "SST", "SSTSK", "TSK", "SNOW", "LAI", "PBLH")]


def test_check_source_reads_a_hytest_copy_with_its_xtime_axis_and_wrf_attributes(tmp_path):
    store = tmp_path / "hytest.zarr"
    write_store(StoreSpec.for_days("2021-01-01", 3, ny=20, nx=24, layout="hytest", variables=("T2", "TD2", "PREC_ACC_NC")),
                str(store))
    result = _check_source(tmp_path, None, "--source", str(store), "--variables", "T2,TD2,PREC_ACC_NC")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"ok\s+time encoding\s+float32 'minutes since 1979-10-01", out), out
    assert re.search(r"ok\s+projection\s+the store's attributes agree: TRUELAT1 30, TRUELAT2 50, STAND_LON -97.9, DX 4000", out)
    assert re.search(r"ok\s+T2\s+\(time, south_north, west_east\) float32, chunks 144 x 20 x 24, zstd, fill NaN", out)
    assert re.search(r"ok\s+PREC_ACC_NC hour\s+2021-01-01T01Z \(one 20 x 24 chunk of 144 hours", out), out
