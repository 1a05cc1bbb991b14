"""The record of verified daily files: a rerun skips a file unchanged since it was verified without
decoding it, and checks in full any file that was rewritten, replaced, touched or recorded for
another request (unit tests: real daily files, the driver's own skip check)."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np

from conus404.config.settings import assemble
from conus404.core.grid import grid_latlon
from conus404.outputs import daily_file, verified_files
from conus404.run import driver

DAYS = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(5)]


def publish(data_dir, day: dt.date, value: float = 280.0) -> None:
    lat, lon = grid_latlon(4, 5)
    field = daily_file.DailyField("T2", np.full((4, 5), value, np.float32), {"units": "K", "cell_methods": "time: mean"})
    daily_file.publish(daily_file.build_dataset(day, lat, lon, [field], {"source": "test"}),
                       daily_file.daily_path(data_dir, day))


def counting_checker(monkeypatch, data_dir):
    """The driver's skip check, and how many full verifications it has made so far."""
    calls = []
    real = daily_file.verify
    monkeypatch.setattr(daily_file, "verify", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    settings = assemble(start_date=DAYS[0], end_date=DAYS[-1], variables=("T2",), data_dir=data_dir)
    return driver.verified_on_disk(settings), calls


def test_a_rerun_skips_recorded_files_by_a_stat_and_checks_changed_ones_in_full(tmp_path, monkeypatch):
    for day in DAYS:
        publish(tmp_path, day)
    check, calls = counting_checker(monkeypatch, tmp_path)
    assert all(check(day) for day in DAYS) and calls == DAYS, "no records yet: every file checked in full"

    check, calls = counting_checker(monkeypatch, tmp_path)
    assert all(check(day) for day in DAYS) and calls == [], "recorded and unchanged: no file decoded"

    path = lambda day: daily_file.daily_path(tmp_path, day)  # noqa: E731
    os.utime(path(DAYS[0]), ns=(0, path(DAYS[0]).stat().st_mtime_ns + 1))  # touched
    publish(tmp_path, DAYS[1], value=290.0)  # rewritten (a new file under the name)
    data = bytearray(path(DAYS[2]).read_bytes())  # damaged in place, size kept, mtime put back
    mtime = path(DAYS[2]).stat().st_mtime_ns
    data[-200:-100] = bytes(100)
    path(DAYS[2]).write_bytes(bytes(data))
    os.utime(path(DAYS[2]), ns=(mtime, mtime + 1))
    path(DAYS[3]).unlink()
    check, calls = counting_checker(monkeypatch, tmp_path)
    results = {day: check(day) for day in DAYS}
    assert sorted(calls) == [DAYS[0], DAYS[1], DAYS[2]], "each changed file checked in full, the gone one not at all"
    assert results == {DAYS[0]: True, DAYS[1]: True, DAYS[2]: daily_file.verify(path(DAYS[2]), DAYS[2], ["T2"]) is None,
                       DAYS[3]: False, DAYS[4]: True}


def test_a_record_for_other_fields_or_another_box_is_not_a_skip(tmp_path):
    publish(tmp_path, DAYS[0])
    path = daily_file.daily_path(tmp_path, DAYS[0])
    verified_files.remember(path, ["T2"], None, "abc")
    records = verified_files.VerifiedFiles(path.parent)
    assert records.unchanged(path, ["T2"], None)
    assert not records.unchanged(path, ["T2", "Q2"], None)
    assert not records.unchanged(path, ["T2"], "-105.0,39.0,-104.0,40.0")


def test_torn_lines_are_ignored_and_compaction_keeps_one_line_per_present_file(tmp_path):
    for day in DAYS[:2]:
        publish(tmp_path, day)
    daily = daily_file.daily_dir(tmp_path)
    for _ in range(60):
        for day in DAYS[:2]:
            verified_files.remember(daily_file.daily_path(tmp_path, day), ["T2"], None)
    with open(verified_files.records_path(daily), "a") as handle:
        handle.write('{"name": "conus404_daily_2021')  # a line cut short by a crash
    daily_file.daily_path(tmp_path, DAYS[1]).unlink()
    records = verified_files.VerifiedFiles(daily)
    assert records.lines == 121 and set(records.records) == {daily_file.daily_name(d) for d in DAYS[:2]}
    records.compact()
    lines = verified_files.records_path(daily).read_text().splitlines()
    assert len(lines) == 1 and daily_file.daily_name(DAYS[0]) in lines[0]
    assert verified_files.VerifiedFiles(daily).unchanged(daily_file.daily_path(tmp_path, DAYS[0]), ["T2"], None)
