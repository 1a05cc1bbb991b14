"""./run_pipeline.sh --status without an active run: the configured range, counted honestly."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _status(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "run_pipeline.sh"), "--status", "--start", "2021-01-01", "--end", "2021-01-04",
                           "--data-dir", str(tmp / "data"), "--log-dir", str(tmp / "logs"), *extra],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_status_counts_an_unverified_file_apart_and_ignores_another_runs_progress(tmp_path):
    daily = tmp_path / "data" / "unprocessed" / "daily"
    daily.mkdir(parents=True)
    (daily / "conus404_daily_20210102.nc").write_bytes(b"\x89HDF\r\n\x1a\n truncated")  # never verified
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "driver_main_run.log").write_text(
        "2026-11-30 10:00:00 INFO driver (pid 4242): 2020-06-01..2020-06-02 (2 days), variables T2; 2 at once\n"
        "2026-11-30 10:00:09 INFO progress: done 2/2 (published 2, skipped 0), failed 0, active 0, pending 0\n")
    result = _status(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "run: the request given with --status"
    assert lines[1] == (f"range 2021-01-01..2021-01-04 (4 days) in {tmp_path / 'data'}: done 0, failed 0, pending 3; "
                        "present, not verified 1 (a run checks them)")
    assert lines[2] == "last progress: (none for this range; the last run logged was 2020-06-01..2020-06-02 (2 days), variables T2)"


def test_status_into_a_closed_pipe_ends_quietly(tmp_path):
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {ROOT / 'run_pipeline.sh'} --status --data-dir "
                             f"{tmp_path / 'data'} --log-dir {tmp_path / 'logs'} | true"],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
