"""./run_pipeline.sh --list-variables against the emulator: every variable of the store with its
units and dimensions as the store states them (read here directly with xarray), its class and
daily value, 3-D variables marked, the filter, and suggestions for a misspelt name."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conus404.emulator.stack import EmulatorStack
from conus404.emulator.synthetic_store import StoreSpec, build_dataset
from tests import conftest

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
STORE_VARIABLES = ("T2", "PREC_ACC_NC", "ACSWDNB", "I_ACSWDNB", "TK", "U10", "V10", "ACLWDNB", "I_ACLWDNB", "Q2", "PSFC",
                   "SWDOWN")


stack = conftest.emulator_serving(StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7, variables=STORE_VARIABLES))


def list_variables(stack: EmulatorStack, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [str(ROOT / "run_pipeline.sh"), "--list-variables", *args, "--log-dir", str(tmp / "logs"),
            "--data-dir", str(tmp / "data")]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, **stack.client_env()})


def rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    header = lines[0]
    starts = [header.index(title) for title in ("NAME", "UNITS", "CLASS", "DAILY VALUE", "STATISTICS", "DIMENSIONS", "DESCRIPTION")]
    out = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        out[cells[0]] = cells
    return out


def test_the_listing_states_what_the_store_holds(stack, tmp_path):
    result = list_variables(stack, tmp_path)
    assert result.returncode == 0, result.stderr
    listed = rows(result.stdout)
    ds = build_dataset(stack.stores["conus404"])  # what the emulator serves, from its generator
    for name in ds.data_vars:
        key = f"{name} *" if name == "TK" else name
        assert key in listed, name
        assert listed[key][1] == str(ds[name].attrs.get("units", "")), name
        assert listed[key][5] == ",".join(ds[name].dims), name
    assert listed["T2"][2:5] == ["instantaneous", "mean", "mean,min,max"]
    assert listed["PREC_ACC_NC"][2:5] == ["prior_hour", "sum of 24 h", "sum,max"]
    assert listed["ACSWDNB"][2:4] == ["bucket", "difference"]
    assert listed["I_ACSWDNB"][2:4] == ["bucket_counter", "- (counter)"]
    assert listed["TK *"][2] == "instantaneous"
    assert listed["WSPD10"][2] == "derived"  # U10 and V10 are there
    assert listed["ETO"][2:5] == ["derived", "sum of 24 h", "sum"] and listed["ETO"][1] == "mm"
    assert listed["WDIR10"][2:5] == ["derived", "vector mean", "mean"]
    assert listed["RH2"][2:5] == ["derived", "mean", "mean,min,max"] and listed["RH2"][1] == "%"
    assert "needs ALLOW_3D" in result.stdout
    from conus404.day.derived import DERIVED  # each derived variable whose inputs the store has

    fed = [name for name, spec in DERIVED.items() if set(spec.inputs) <= set(ds.data_vars)]
    assert {"WSPD10", "RH2", "U10E", "ETO"} <= set(fed)
    total = len(ds.data_vars) + len(fed)
    assert len(listed) == total and f"{total} of {total} variables in planetary-computer" in result.stdout


def test_the_filter_matches_names_and_descriptions(stack, tmp_path):
    by_name = list_variables(stack, tmp_path, "acsw")
    assert by_name.returncode == 0 and sorted(rows(by_name.stdout)) == ["ACSWDNB", "I_ACSWDNB"]
    by_text = list_variables(stack, tmp_path, "longwave")
    assert by_text.returncode == 0 and "ACLWDNB" in rows(by_text.stdout) and "T2" not in rows(by_text.stdout)
    none = list_variables(stack, tmp_path, "no-such-thing")
    assert none.returncode == 1 and "0 of " in none.stdout and "match 'no-such-thing'" in none.stdout


def test_a_misspelt_variable_is_refused_before_any_download_with_the_closest_names(stack, tmp_path):
    argv = [str(ROOT / "run_pipeline.sh"), "--foreground", "--start", "2021-01-01", "--end", "2021-01-01",
            "--variables", "T2,ACSWDN", "--log-dir", str(tmp_path / "logs"), "--data-dir", str(tmp_path / "data")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                            env={**os.environ, **stack.client_env()})
    assert result.returncode == 2
    assert "'ACSWDN' is not a variable of the source (did you mean ACSWDNB" in result.stderr
    assert not (tmp_path / "data" / "logs").exists()


def test_staggered_winds_are_marked_as_not_made_and_levels_as_needing_allow_3d():
    from conus404.day.variable_listing import describe_variables, format_listing

    ds = build_dataset(StoreSpec.for_days("2021-01-01", 1, ny=6, nx=7, variables=("T2", "U", "V", "TK")))
    rows = {row.name: row for row in describe_variables(ds)}
    assert rows["U"].staggered and rows["V"].staggered and not rows["U"].has_levels
    assert rows["TK"].has_levels and not rows["TK"].staggered and not rows["T2"].staggered
    text = format_listing(list(rows.values()), len(rows), "", "a store")
    assert "U ~" in text and "TK *" in text and "~ on the staggered grid (cell faces): not made here" in text
