"""The retry pass's list of what still failed: it belongs to its data folder and keeps what it did
not look at."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _entry(message: str) -> dict:
    return {"variables": ["T2"], "error_class": "permanent", "message": message, "exit_code": 1, "attempts": 1,
            "log": "logs/subprocesses/x.log", "last_attempt": "2026-11-30T00:00:00Z"}


def _retry_pass(data_dir: Path, logs: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "src" / "retry_failed.py"), "--start", "2021-01-01", "--end",
                           "2021-01-02", "--data-dir", str(data_dir), "--log-dir", str(logs)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT / "src", stdin=subprocess.DEVNULL)


def test_a_partial_rerun_keeps_unresolved_days_outside_its_range_and_folders_never_share_the_list(tmp_path):
    first, sibling = tmp_path / "first" / "data", tmp_path / "sibling" / "data"
    first.mkdir(parents=True)
    earlier = {"2021-01-02": _entry("in this run's range, and no longer in failed_jobs.json"),
               "2021-02-10": _entry("a day of an earlier, wider run")}
    (first / "ultimate_failures.json").write_text(json.dumps(earlier))
    result = _retry_pass(first, tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    assert json.loads((first / "ultimate_failures.json").read_text()) == {"2021-02-10": earlier["2021-02-10"]}
    assert not (tmp_path / "first" / "ultimate_failures.json").exists(), "not in the data folder's parent"

    result = _retry_pass(sibling, tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    assert json.loads((sibling / "ultimate_failures.json").read_text()) == {}
    assert json.loads((first / "ultimate_failures.json").read_text()) == {"2021-02-10": earlier["2021-02-10"]}, \
        "a pass over another data folder leaves this one's list alone"
