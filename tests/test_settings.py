"""Settings: config.py values, environment overrides, flag overrides, and clear refusals."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from conus404.config import settings
from conus404.config.parts import PART_OF_FIELD
from conus404.core.exceptions import ConfigurationError

CONFIG = {
    "START_DATE": "2021-01-01",
    "END_DATE": "2021-01-03",
    "VARIABLE_AGG_MAP": {"T2": True, "PREC_ACC_NC": False},
    "MAX_CONCURRENT_PROCESSES": 3,
    "DATA_DIR": "data",
}


def _flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_config_values_and_planetary_computer_defaults():
    s = settings.from_config(CONFIG, env={})
    assert s.request.start_date == dt.date(2021, 1, 1) and s.request.end_date == dt.date(2021, 1, 3)
    assert s.request.days == [dt.date(2021, 1, 1), dt.date(2021, 1, 2), dt.date(2021, 1, 3)]
    assert s.request.variables == ("T2", "PREC_ACC_NC")
    assert s.request.aggregation_hints == {"T2": True, "PREC_ACC_NC": False}
    assert s.execution.max_processes == 3
    assert s.outputs.data_dir == settings.PROJECT_ROOT / "data"
    assert s.access.uses_planetary_computer
    assert s.access.stac_url == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert s.access.sas_url == "https://planetarycomputer.microsoft.com/api/sas/v1/token"
    assert (s.access.collection, s.access.asset) == ("conus404", "zarr-abfs")


def test_the_shipped_config_file_loads():
    import config

    s = settings.from_config(config, env={})
    assert s.request.start_date <= s.request.end_date and s.request.variables


def test_environment_points_the_pipeline_at_another_stac_and_sas():
    env = {"CONUS404_STAC_URL": "http://127.0.0.1:1/api/stac/v1", "PC_SDK_SAS_URL": "http://127.0.0.1:1/api/sas/v1/token"}
    s = settings.from_config(CONFIG, env=env)
    assert (s.access.stac_url, s.access.sas_url) == (env["CONUS404_STAC_URL"], env["PC_SDK_SAS_URL"])


def test_flags_override_config(tmp_path):
    s = settings.apply_arguments(
        settings.from_config(CONFIG, env={}),
        _flags("--start", "2020-02-28", "--end", "2020-03-01", "--variables", "T2, Q2,T2",
               "--max-processes", "5", "--data-dir", str(tmp_path), "--source", "/some/store.zarr"),
    )
    assert s.request.days == [dt.date(2020, 2, 28), dt.date(2020, 2, 29), dt.date(2020, 3, 1)]
    assert s.request.variables == ("T2", "Q2")
    assert s.execution.max_processes == 5 and s.outputs.data_dir == tmp_path
    assert s.access.source == "/some/store.zarr" and not s.access.uses_planetary_computer


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--start", "2021-13-01"), "'2021-13-01' is not a date"),
        (("--end", "yesterday"), "'yesterday' is not a date"),
        (("--start", "2021-02-01", "--end", "2021-01-31"), "before the start date"),
        (("--max-processes", "0"), "out of range"),
        (("--max-processes", "two"), "'two' is not a whole number"),
        (("--variables", " , "), "is empty"),
        (("--variables", "T2,2BAD"), "'2BAD' is not a variable name"),
        (("--source", " "), "source is empty"),
    ],
)
def test_bad_values_are_refused_with_the_value_named(argv, message):
    with pytest.raises(ConfigurationError, match=message):
        settings.apply_arguments(settings.from_config(CONFIG, env={}), _flags(*argv))


def test_aggregation_hints_must_be_booleans():
    with pytest.raises(ConfigurationError, match="True .mean. or False .sum."):
        settings.from_config({**CONFIG, "VARIABLE_AGG_MAP": {"T2": "mean"}}, env={})


def test_the_retry_policy_comes_from_config_and_bad_values_are_refused():
    s = settings.from_config({**CONFIG, "RETRY": {"attempts": 2, "max_backoff_s": 5}}, env={})
    assert s.access.retry.attempts == 2 and s.access.retry.max_backoff_s == 5.0 and s.access.retry.initial_backoff_s == 0.1
    retry = s.access.retry.urllib3_retry()
    assert retry.total == 2 and retry.respect_retry_after_header and 429 in retry.status_forcelist
    with pytest.raises(ConfigurationError, match="unknown key"):
        settings.from_config({**CONFIG, "RETRY": {"tries": 3}}, env={})
    with pytest.raises(ConfigurationError, match="jitter is between 0 and 1"):
        settings.from_config({**CONFIG, "RETRY": {"jitter": 2}}, env={})


def test_executor_and_dask_scheduler_from_config_and_flags(tmp_path):
    s = settings.from_config(CONFIG, env={})
    assert (s.execution.executor, s.execution.dask_scheduler) == ("subprocess", None)
    s = settings.from_config({**CONFIG, "EXECUTOR": "Dask", "DASK_SCHEDULER_ADDRESS": "tcp://10.0.0.5:8786"}, env={})
    assert (s.execution.executor, s.execution.dask_scheduler) == ("dask", "tcp://10.0.0.5:8786")
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text("{}")
    s = settings.apply_arguments(s, _flags("--dask-scheduler", str(scheduler_file)))
    assert (s.execution.executor, s.execution.dask_scheduler) == ("dask", str(scheduler_file))
    assert settings.apply_arguments(s, _flags("--dask-scheduler", "")).execution.dask_scheduler is None
    with pytest.raises(ConfigurationError, match="--dask-scheduler goes with --executor dask"):  # not silently ignored
        settings.apply_arguments(s, _flags("--executor", "subprocess", "--dask-scheduler", str(scheduler_file)))


@pytest.mark.parametrize(("config", "message"), [
    ({"EXECUTOR": "threads"}, "EXECUTOR 'threads' is not an executor: use subprocess or dask"),
    ({"DASK_SCHEDULER_ADDRESS": "10.0.0.5:8786"}, "neither an address such as tcp://10.0.0.5:8786 nor an existing scheduler file"),
    ({"DASK_SCHEDULER_ADDRESS": "tcp://"}, "'tcp://' is not an address"),
])
def test_bad_executor_settings_are_refused(config, message):
    with pytest.raises(ConfigurationError, match=message):
        settings.from_config({**CONFIG, **config}, env={})


def test_storage_options_from_the_environment_replace_the_configs():
    config = {**CONFIG, "SOURCE": "s3://bucket/store.zarr", "STORAGE_OPTIONS": {"anon": True, "key": "x"}}
    assert settings.from_config(config, env={}).access.storage_options == {"anon": True, "key": "x"}
    env = {settings.STORAGE_OPTIONS_ENV: '{"anon": false, "client_kwargs": {"endpoint_url": "https://127.0.0.1:9"}}'}
    assert settings.from_config(config, env=env).access.storage_options == {
        "anon": False, "client_kwargs": {"endpoint_url": "https://127.0.0.1:9"}}
    with pytest.raises(ConfigurationError, match="STORAGE_OPTIONS must be a JSON object"):
        settings.from_config({**CONFIG, "STORAGE_OPTIONS": ["anon"]}, env={})


def test_inline_statistics_in_variables_from_flags_and_config():
    s = settings.apply_arguments(settings.from_config(CONFIG, env={}),
                                 _flags("--statistics", "", "--variables", "T2:mean,min,max,PREC_ACC_NC:sum,max,Q2"))
    assert s.request.variables == ("T2", "PREC_ACC_NC", "Q2")
    assert s.request.statistics == {"T2": ("mean", "min", "max"), "PREC_ACC_NC": ("sum", "max")}
    merged = settings.apply_arguments(settings.from_config(CONFIG, env={}),
                                      _flags("--statistics", "T2:max", "--variables", "T2:min"))
    assert merged.request.statistics == {"T2": ("max", "min")}
    s = settings.from_config({**CONFIG, "VARIABLES": ["T2:mean,min,max", "PREC_ACC_NC"], "EXTRA_STATISTICS": {}}, env={})
    assert s.request.variables == ("T2", "PREC_ACC_NC") and s.request.statistics == {"T2": ("mean", "min", "max")}
    with pytest.raises(ConfigurationError, match="--variables: unknown statistic 'median' for T2"):
        settings.apply_arguments(s, _flags("--variables", "T2:median"))


def test_worker_flags_reproduce_the_drivers_settings_over_any_config(tmp_path):
    """A worker reads config.py too; its flags must leave nothing to it (an emptied box stays empty)."""
    config = {**CONFIG, "BBOX": (-105, 39, -104, 40), "OUTPUT_URL": "s3://bucket/daily", "KEEP_HOURLY": False,
              "UNITS": {"T2": "degC"}, "COMPRESSION_LEVEL": 6}
    driver = settings.apply_arguments(settings.from_config(config, env={}),
                                      _flags("--bbox", "", "--output-url", "", "--variables", "T2:max,Q2",
                                             "--source", str(tmp_path / "store.zarr"), "--keep-hourly", "--cell-corners",
                                             "--units", "", "--compression-level", "0"))
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser, date_range=False)
    worker = settings.apply_arguments(settings.from_config(config, env={}),
                                      parser.parse_args(settings.worker_flags(driver)))
    for name in ("variables", "statistics", "source", "data_dir", "bbox", "output_url", "keep_hourly", "allow_3d", "chunk_cache",
                 "cell_corners", "output_units", "compression_level"):
        part = PART_OF_FIELD[name]
        assert getattr(getattr(worker, part), name) == getattr(getattr(driver, part), name), name
    assert driver.outputs.compression_level == 0 and settings.from_config(config, env={}).outputs.compression_level == 6
    assert driver.request.output_units == {}  # emptied on the command line: the worker must not take config's
    assert driver.outputs.cell_corners and not settings.from_config(config, env={}).outputs.cell_corners
    assert worker.request.bbox is None and worker.outputs.output_url is None


def test_command_line_paths_are_relative_to_the_users_folder_not_the_project(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CALLER_DIR_ENV, str(tmp_path))
    (tmp_path / "mine.zarr").mkdir()
    s = settings.apply_arguments(settings.from_config(CONFIG, env={}),
                                 _flags("--data-dir", "out/data", "--source", "mine.zarr"))
    assert s.outputs.data_dir == tmp_path / "out" / "data"
    assert s.access.source == str(tmp_path / "mine.zarr")
    assert settings.from_config(CONFIG, env={}).outputs.data_dir == settings.PROJECT_ROOT / "data", "config.py: the project's"
    kept = settings.apply_arguments(settings.from_config(CONFIG, env={}), _flags("--source", "s3://bucket/store.zarr"))
    assert kept.access.source == "s3://bucket/store.zarr"


@pytest.mark.parametrize(("argv", "message"), [
    (("--data-dir", ""), "--data-dir is empty"),
    (("--data-dir", "  "), "--data-dir is empty"),
    (("--source", "hytest-osm"), "--source 'hytest-osm' is neither a known source nor an existing path (did you mean hytest-osn?)"),
    (("--source", "planetary_computer"), "(did you mean planetary-computer?)"),
])
def test_an_empty_data_folder_or_a_misspelt_source_name_is_refused(tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv(settings.CALLER_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        settings.apply_arguments(settings.from_config(CONFIG, env={}), _flags(*argv))
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("START_DATE = '2021-01-01'\nVARIABLES = ['T2'\n", "line 2 cannot be loaded: SyntaxError"),
    ("import nonexistent_module_for_the_test\n", "cannot be loaded: ModuleNotFoundError: No module named"),
    ("open('/nonexistent/list.txt')\n", "config.py cannot be loaded: FileNotFoundError"),
])
def test_a_broken_config_py_is_one_configuration_error_naming_the_file(tmp_path, monkeypatch, text, message):
    (tmp_path / "config.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "config", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        settings.load()
    assert message in str(caught.value)
    assert str(tmp_path / "config.py") in str(caught.value), "the file that was loaded, not another"


@pytest.mark.parametrize("value", ["10", -1, "1.5", "", None])
def test_a_compression_level_outside_zlib_levels_is_refused(value):
    with pytest.raises(ConfigurationError, match="COMPRESSION_LEVEL .* must be a zlib level from 0"):
        settings.from_config({**CONFIG, "COMPRESSION_LEVEL": value}, env={})
    assert settings.from_config({**CONFIG, "COMPRESSION_LEVEL": 9}, env={}).outputs.compression_level == 9
