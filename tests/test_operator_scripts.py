"""The operator's shell scripts, each run in a scratch copy of the project."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conus404.core.processes import start_process_group, stop_process_group
from tests.conftest import group_alive

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["run_pipeline.sh", "run_tests.sh", "kill_all.sh", "clean_data.sh", "archive_logs.sh"]


@pytest.fixture
def project(tmp_path):
    """A scratch project folder with the operator scripts and the shell helpers they source."""
    for name in ["kill_all.sh", "clean_data.sh", "archive_logs.sh"]:
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "src").mkdir()
    shutil.copy2(ROOT / "src" / "run_state.sh", tmp_path / "src" / "run_state.sh")
    shutil.copy2(ROOT / "src" / "config.py", tmp_path / "src" / "config.py")
    for d in ["logs", "archive", "data/unprocessed/daily"]:
        (tmp_path / d).mkdir(parents=True)
    return tmp_path


def _run(project: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(project / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_help_and_refuses_unknown_options(script):
    ok = subprocess.run([str(ROOT / script), "--help"], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and script.split(".")[0] in ok.stdout
    if script != "run_tests.sh":  # run_tests.sh hands other arguments to pytest
        bad = subprocess.run([str(ROOT / script), "--frobnicate"], capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2
        assert bad.stderr.strip().count("\n") == 0 and "--frobnicate" in bad.stderr


def test_scripts_are_executable_in_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(["git", "ls-files", "-s", *SCRIPTS, ".ci/run"], cwd=ROOT, capture_output=True, text=True, check=True)
    modes = {line.split()[3]: line.split()[0] for line in listing.stdout.splitlines()}
    assert modes == {name: "100755" for name in [*SCRIPTS, ".ci/run"]}


def test_kept_folders_exist_in_git():
    for folder in ["data", "logs", "archive"]:
        assert (ROOT / folder / ".gitkeep").exists()


def test_archive_logs_moves_logs_into_a_timestamped_folder(project):
    (project / "logs" / "driver_main_run.log").write_text("run 1\n")
    (project / "logs" / "subprocesses").mkdir()
    (project / "logs" / "subprocesses" / "download_20210101.log").write_text("day\n")
    result = _run(project, "archive_logs.sh")
    assert result.returncode == 0, result.stderr
    [dest] = list((project / "archive").iterdir())
    assert dest.name.startswith("logs_")
    assert (dest / "driver_main_run.log").read_text() == "run 1\n"
    assert (dest / "subprocesses" / "download_20210101.log").exists()
    assert list((project / "logs").iterdir()) == []
    assert "Nothing to archive" in _run(project, "archive_logs.sh").stdout


def test_clean_data_asks_first_and_deletes_only_with_consent(project):
    daily = project / "data" / "unprocessed" / "daily"
    (daily / "conus404_daily_20210101.nc").write_bytes(b"x")
    refused = _run(project, "clean_data.sh")  # no terminal, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert (daily / "conus404_daily_20210101.nc").exists()
    done = _run(project, "clean_data.sh", "--yes")
    assert done.returncode == 0 and "Deleted 1 file" in done.stdout
    assert list(daily.iterdir()) == []


def test_clean_data_lists_exactly_what_it_deletes_keeps_quarantine_and_follows_config_py(project):
    elsewhere = project / "elsewhere"
    config = project / "src" / "config.py"
    config.write_text(config.read_text().replace('DATA_DIR = "data"', f'DATA_DIR = "{elsewhere}"'))
    daily = elsewhere / "unprocessed" / "daily"
    (daily / "quarantine").mkdir(parents=True)
    (elsewhere / ".chunk_cache" / "20210101").mkdir(parents=True)
    doomed = [daily / "conus404_daily_20210101.nc", daily / "conus404_daily_20210102.nc", daily / ".verified.jsonl",
              elsewhere / ".chunk_cache" / "20210101" / "T2.0.0.0", elsewhere / ".chunk_cache" / "20210101" / "T2.1.0.0",
              elsewhere / "unprocessed" / "monthly" / "conus404_monthly_202101.nc",
              elsewhere / "polygons" / "basins.nc", elsewhere / "polygons" / ".days" / "basins" / "basins_20210101.npz",
              elsewhere / "points" / ".weights" / "gauges.npz"]
    for path in doomed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    quarantined = daily / "quarantine" / "conus404_daily_20201231.nc.20261201T000000000000Z"
    quarantined.write_bytes(b"someone's file")
    untouched = project / "data" / "unprocessed" / "daily" / "conus404_daily_20210101.nc"  # data/: not configured
    untouched.write_bytes(b"x")
    done = _run(project, "clean_data.sh", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"This deletes 9 file(s) under {elsewhere}:" in done.stdout
    for path in doomed:
        assert f"  {path.relative_to(elsewhere)}\n" in done.stdout
        assert not path.exists()
    assert "Kept: 1 quarantined file(s)" in done.stdout and "Deleted 9 file(s)." in done.stdout
    assert quarantined.read_bytes() == b"someone's file" and untouched.exists()
    gone = _run(project, "clean_data.sh", "--yes", "--include-quarantine")
    assert gone.returncode == 0 and "Deleted 1 file(s)." in gone.stdout and not quarantined.exists()


def test_clean_data_refuses_a_broken_config_py_in_one_line(project):
    (project / "src" / "config.py").write_text("DATA_DIR = (\n")
    (project / "data" / "unprocessed" / "daily" / "conus404_daily_20210101.nc").write_bytes(b"x")
    refused = _run(project, "clean_data.sh", "--yes")
    assert refused.returncode == 2 and "src/config.py cannot be loaded: SyntaxError" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert (project / "data" / "unprocessed" / "daily" / "conus404_daily_20210101.nc").exists()



def test_kill_all_stops_the_recorded_run_of_this_checkout_only(project):
    ours = start_process_group(["bash", "-c", "sleep 300 & wait", str(project / "src" / "driver.py")], project / "ours.log")
    foreign = start_process_group(["bash", "-c", "sleep 300 & wait", "/elsewhere/driver.py"], project / "foreign.log")
    # reap the leader as soon as it exits, as the real run's parent does (a zombie still "exists")
    reaper = threading.Thread(target=ours.wait, daemon=True)
    reaper.start()
    try:
        (project / "logs" / "pipeline.pid").write_text(f"{foreign.pid}\n")
        result = _run(project, "kill_all.sh")
        assert result.returncode == 0 and "nothing to stop" not in result.stdout
        assert group_alive(foreign.pid), "a process group that is not this checkout's run is never touched"

        (project / "logs" / "pipeline.pid").write_text(f"{ours.pid}\n")
        assert _run(project, "clean_data.sh", "--yes").returncode == 1, "no cleaning during a run"
        result = _run(project, "kill_all.sh")
        assert result.returncode == 0 and "Stopped" in result.stdout
        deadline = time.monotonic() + 10
        while group_alive(ours.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(ours.pid)
        assert not (project / "logs" / "pipeline.pid").exists()
    finally:
        stop_process_group(ours)
        stop_process_group(foreign)


def test_the_network_guard_refuses_non_loopback_addresses():
    import socket

    from tests.conftest import NonLoopbackConnection

    with socket.socket() as sock, pytest.raises(NonLoopbackConnection):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed, and never attempted


def test_the_projects_modules_get_bytecode_once_and_again_after_a_change(tmp_path):
    """setup_env.sh compiles the project's own modules (PYTHONDONTWRITEBYTECODE would leave every
    process compiling them again), and once more after a source changes."""
    import importlib.util
    import os

    (tmp_path / "src" / "conus404").mkdir(parents=True)
    shutil.copy2(ROOT / "src" / "setup_env.sh", tmp_path / "src" / "setup_env.sh")
    module = tmp_path / "src" / "conus404" / "example.py"
    module.write_text("VALUE = 1\n")
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    os.symlink(ROOT / ".venv" / "bin" / "python", venv / "python")
    compile_once = ["bash", "-c", "source src/setup_env.sh && compile_project_sources"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cached = Path(importlib.util.cache_from_source(str(module)))

    subprocess.run(compile_once, cwd=tmp_path, env=env, check=True)
    assert cached.exists()
    first = cached.stat().st_mtime_ns
    subprocess.run(compile_once, cwd=tmp_path, env=env, check=True)
    assert cached.stat().st_mtime_ns == first, "nothing changed: nothing compiled"

    time.sleep(0.02)
    module.write_text("VALUE = 22\n")  # another size: the old bytecode no longer matches
    os.utime(module, ns=(time.time_ns() + 10**9,) * 2)
    subprocess.run(compile_once, cwd=tmp_path, env=env, check=True)
    assert cached.stat().st_mtime_ns != first, "compiled again after the change"
    value = subprocess.run([str(venv / "python"), "-c", "import sys; sys.path.insert(0, 'src'); "
                            "import conus404.example as m; print(m.VALUE)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert value == ["22"], "the new source's bytecode"
