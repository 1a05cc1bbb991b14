"""``./run_pipeline.sh --status``: the active or last run of the data folder (its own range,
variables, flags, outcome and last progress line), and says which; flags given with ``--status``
beyond ``--data-dir``/``--log-dir`` select another request (on top of the last run's settings).

The launcher records each accepted run's settings (as the flags it gave the driver) in
``logs/pipeline.run.json`` and in the data folder (``DATA_DIR/.pipeline.run.json``, with its log
folder and start); the run's process group writes its exit code beside it when it ends
(``.pipeline.run.exit``). A daily file counts as done only when its record in ``.verified.jsonl``
still matches it (one ``stat``); a file without one is "present, not verified" until a run checks it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

from conus404.config import settings as settings_mod
from conus404.core.atomic import atomic_write_json
from conus404.outputs import daily_file, verified_files
from conus404.run.ledgers import Ledger

RUN_RECORD = "pipeline.run.json"
DATA_RECORD = ".pipeline.run.json"  # in the data folder: its last run's flags, log folder, start
DATA_OUTCOME = ".pipeline.run.exit"  # beside it: that run's exit code, written as it ends
DRIVER_HEADER = " INFO driver (pid "  # the first line a driver logs for its run
OUTCOMES = {0: "every day published or already valid", 1: "some day failed (see ultimate_failures.json)",
            70: "the driver itself failed", 73: "the data folder's disk was full", 130: "interrupted (Ctrl-C)"}


def record_run(log_dir: Path, flags: list[str]) -> None:
    atomic_write_json(Path(log_dir) / RUN_RECORD, {"flags": flags})


def record_data_run(data_dir: Path, flags: list[str], log_dir: Path, pgid: int) -> None:
    """The run accepted for ``data_dir``; its group writes ``pgid exit-code`` to DATA_OUTCOME as it ends."""
    atomic_write_json(Path(data_dir) / DATA_RECORD, {"flags": flags, "log_dir": str(log_dir), "pgid": pgid,
                                                     "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%MZ")})


def outcome_command(data_dir: Path) -> str:
    """What the run's bash leader runs last, with ``$rc`` its exit code (a refusal, exit 2, writes nothing)."""
    import shlex

    return f'if [ $rc -ne 2 ]; then echo "$$ $rc" > {shlex.quote(str(Path(data_dir) / DATA_OUTCOME))} 2>/dev/null; fi; '


def last_run(data_dir: Path) -> dict | None:
    """The data folder's last recorded run: flags, log_dir, started, and exit/ended once it has ended."""
    try:
        record = json.loads((Path(data_dir) / DATA_RECORD).read_text())
        if not isinstance(record.get("flags"), list):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    outcome = Path(data_dir) / DATA_OUTCOME
    try:
        pgid, code = (int(v) for v in outcome.read_text().split())
        if pgid == record.get("pgid"):  # this run's, not an earlier one's
            record["exit"] = code
            record["ended"] = dt.datetime.fromtimestamp(outcome.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%MZ")
    except (OSError, ValueError):
        pass
    return record


def _outcome(record: dict, active: bool) -> str:
    if active:
        return f"active (started {record.get('started', '?')})"
    if "exit" not in record:
        return f"started {record.get('started', '?')}, ended without an exit code (stopped by kill_all.sh or a crash?)"
    code = record["exit"]
    meaning = OUTCOMES.get(code) or (f"stopped by signal {code - 128}" if code > 128 else f"exit {code}")
    return f"started {record.get('started', '?')}, ended {record['ended']}: exit {code}, {meaning}"


def request_flags(argv: list[str]) -> list[str]:
    """The flags given with --status that select a request (all but --status, --data-dir, --log-dir)."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        if token in ("--status", "--data-dir", "--log-dir"):
            skip = token != "--status"
            continue
        if token.startswith(("--data-dir=", "--log-dir=")):
            continue
        out.append(token)
    return out


def active_run_settings(log_dir: Path, parser_factory) -> settings_mod.Settings | None:
    """The settings of the run recorded in ``log_dir`` (None if there is no readable record)."""
    try:
        flags = json.loads((Path(log_dir) / RUN_RECORD).read_text())["flags"]
        args = parser_factory().parse_args(flags)
        return settings_mod.load(args)
    except (OSError, ValueError, KeyError, TypeError, SystemExit, settings_mod.ConfigurationError):
        return None


def _last_run_lines(log_path: Path) -> list[str]:
    """The lines of the last run in the driver's log (an earlier run's progress is not this run's)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    starts = [i for i, line in enumerate(lines) if DRIVER_HEADER in line]
    return lines[starts[-1]:] if starts else []


def _day_counts(settings: settings_mod.Settings) -> tuple[list, list, list]:
    """(verified days, present but unverified days, failed days) of the range."""
    from conus404.day.plan import output_names, region_text
    from conus404.run.retry import ultimate_failures_path

    days = settings.request.days
    unverified: list = []
    if settings.series.series_only:  # no gridded files: a day is done when its series verify
        from conus404.outputs.series import weights as series_weights
        from conus404.outputs.series import zarr_table

        targets = series_weights.cached(settings.series, settings.outputs.data_dir, settings.request.bbox)
        made = zarr_table.days_done(settings.outputs.data_dir, output_names(settings.request), targets,
                                     settings.request.day_boundary)
        done = [d for d in days if made(d)]
    elif settings.outputs.output_url:
        from conus404.outputs.remote_output import RemoteOutput

        committed = RemoteOutput.of(settings.outputs).committed_names()
        done = [d for d in days if daily_file.daily_name(d) in committed]
    else:
        records = verified_files.VerifiedFiles(daily_file.daily_dir(settings.outputs.data_dir))
        names, box = output_names(settings.request), region_text(settings)
        done = []
        for day in days:
            path = daily_file.daily_path(settings.outputs.data_dir, day)
            if records.unchanged(path, names, box, settings.request.output_units):
                done.append(day)
            elif path.exists():
                unverified.append(day)
    failed_keys = set(Ledger(settings.outputs.data_dir / "failed_jobs.json").entries)
    try:
        failed_keys |= set(json.loads(ultimate_failures_path(settings.outputs.data_dir).read_text()))
    except (OSError, ValueError):
        pass
    settled = set(done) | set(unverified)
    failed = [d for d in days if d.isoformat() in failed_keys and d not in settled]
    return done, unverified, failed


def report(settings: settings_mod.Settings, log_dir: Path, pgid: int | None, parser_factory,
           given: list[str] | None = None) -> list[str]:
    """The status lines: of the active run of ``log_dir`` (``pgid``), else of the data folder's last run,
    else of the configured range; ``given`` (flags given with --status) select another request."""
    from conus404.run import run_lock

    lines = []
    record = last_run(settings.outputs.data_dir)
    holder = run_lock.active_holder(settings.outputs.data_dir)
    if pgid:
        run = active_run_settings(log_dir, parser_factory)
        recorded = json.loads((Path(log_dir) / RUN_RECORD).read_text()).get("flags", []) if run else []
        settings = (_settings_of(recorded + given, parser_factory) if given and run else run) or settings
        lines.append(f"run: active (process group {pgid})" + ("" if run else "; its settings are not recorded, "
                                                                "so this is the configured range")
                     + ("; the counts are of the request given with --status" if given else ""))
    elif record is not None and not given:
        settings = _settings_of(record["flags"], parser_factory) or settings
        log_dir = Path(record.get("log_dir") or log_dir)
        lines.append(f"run: the {'active' if holder is not None else 'last'} run of {settings.outputs.data_dir}: "
                     f"{_outcome(record, holder is not None)}; log {log_dir / 'driver_main_run.log'}")
        lines.append(f"variables {','.join(settings.request.variables)}; flags {' '.join(_shown_flags(record['flags']))}")
    elif given:
        settings = (_settings_of(record["flags"] + given, parser_factory) if record else None) or settings
        lines.append("run: the request given with --status" + (" (on top of the last run's settings)" if record else "")
                     + (f"; a run of {settings.outputs.data_dir} is active" if holder is not None else ""))
    else:
        lines.append(f"run: none recorded for {settings.outputs.data_dir}; the configured range:")
    done, unverified, failed = _day_counts(settings)
    days = settings.request.days
    pending = len(days) - len(done) - len(unverified) - len(failed)
    where = settings.outputs.output_url or settings.outputs.data_dir
    counts = f"done {len(done)}, failed {len(failed)}, pending {pending}"
    if unverified:
        counts += f"; present, not verified {len(unverified)} (a run checks them)"
    lines.append(f"range {settings.request.start_date}..{settings.request.end_date} ({len(days)} days) in {where}: {counts}")
    logged = _last_run_lines(log_dir / "driver_main_run.log")
    progress = [line for line in logged if "progress:" in line]
    header = logged[0].split(DRIVER_HEADER, 1)[1].partition("): ")[2] if logged else ""  # "A..B (N days), ..."
    this_run = bool(pgid) or header.startswith(f"{settings.request.start_date}..{settings.request.end_date} ")
    if progress and this_run:
        lines.append(f"last progress: {progress[-1]}")
    elif progress:
        lines.append(f"last progress: (none for this range; the last run logged was {header.split(';')[0]})")
    else:
        lines.append("last progress: (none yet)")
    if failed:
        lines.append("failed days: " + ", ".join(d.isoformat() for d in failed[:10]) + (" ..." if len(failed) > 10 else ""))
    return lines


def _settings_of(flags: list[str], parser_factory) -> settings_mod.Settings | None:
    try:
        return settings_mod.load(parser_factory().parse_args(flags))
    except (SystemExit, settings_mod.ConfigurationError, OSError, ValueError):
        return None


def _shown_flags(flags: list[str]) -> list[str]:
    """The run's flags a reader cares about (not the ones every run is given, nor empty values)."""
    shown, i = [], 0
    while i < len(flags):
        name = flags[i]
        value = flags[i + 1] if i + 1 < len(flags) and not flags[i + 1].startswith("--") else None
        i += 2 if value is not None else 1
        if name in ("--variables", "--data-dir", "--log-dir", "--start", "--end") or value == "":
            continue
        if "=" in name and name.split("=", 1)[1] == "":
            continue
        shown.append(name if value is None else f"{name} {value}")
    return shown


def print_report(lines: list[str]) -> int:
    """Print, and end quietly when the reader has gone (``--status | head``)."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
