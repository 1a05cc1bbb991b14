"""The scheduler's progress line: what an operator reads every few minutes of a long run."""

from __future__ import annotations

import time

from conus404.run.scheduler import Progress


def test_progress_while_days_run_gives_a_rate_and_an_eta():
    progress = Progress(total=10, started=time.monotonic() - 3600, published=4, failed=1)
    line = progress.line(active=2, pending=3)
    assert "done 4/10 (published 4, skipped 0), failed 1, active 2, pending 3, 5.0 days/hour" in line
    assert "ETA " in line and "(in 1:00:00)" in line  # 5 days left at 5 days an hour


def test_a_resume_whose_days_are_all_skipped_does_not_claim_a_rate():
    line = Progress(total=30, started=time.monotonic() - 60, skipped=20).line(active=2, pending=8)
    assert "no day worked yet" in line and "0.0 days/hour" not in line
    assert "ETA once a day has finished" in line


def test_the_last_progress_line_says_finished_not_eta_unknown():
    line = Progress(total=3, started=time.monotonic() - 125, published=3).line(active=0, pending=0)
    assert line.endswith("finished in 0:02:05") and "unknown" not in line
