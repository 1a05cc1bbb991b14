"""What ``./run_pipeline.sh`` does after setting up .venv: check, then start a run, or report on one.

A run is one process group: a small bash leader that runs ``driver.py`` and then
``retry_failed.py``. Its group id is recorded in ``logs/pipeline.pid``, which ``kill_all.sh``
uses. This process checks the flags, folders and lock; the driver then checks the request
against the source (in a child of its launch template, which has the storage stack imported) and
sends its verdict back on a pipe. So this process never imports the storage stack, and a usage
error is still one line on the terminal and exit code 2, even for background runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conus404.config import output_settings
from conus404.config import settings as settings_mod
from conus404.config.settings import PROJECT_ROOT
from conus404.core import disk_space
from conus404.core.atomic import atomic_write_text
from conus404.core.exceptions import ConfigurationError
from conus404.core.processes import start_process_group, stop_process_group
from conus404.outputs import daily_file
from conus404.run import foreground, run_lock, run_report, run_status
from conus404.run.driver import EXIT_DISK_FULL, EXIT_DRIVER_FAILED
from conus404.run.preflight import ensure_writable
from conus404.run.run_options import add_run_arguments, run_options
from conus404.run.scheduler import AssetSigner

SRC = PROJECT_ROOT / "src"
DEMO_VARIABLES = "T2,TD2,Q2,PSFC,U10,V10,PREC_ACC_NC,ACSNOM,ACSWDNB"
DEMO_DAYS = 3
BANNER = """==================================================================
Run this command to watch the driver's log:

    tail -f {log}

==================================================================
The pipeline runs in the background (process group {pgid}); you can log out.
Status: ./run_pipeline.sh --status    Stop: ./kill_all.sh"""


def build_parser() -> argparse.ArgumentParser:
    parser = settings_mod.ArgumentParser(
        prog="run_pipeline.sh",
        description="Download CONUS404 days and aggregate them into daily files. By default the run goes "
        "to the background under nohup (driver.py, then retry_failed.py) and this command returns at once.",
        epilog="Exit codes (--foreground and --demo): 0 every day published or already valid, 1 some day "
        "ultimately failed (see ultimate_failures.json), 2 usage or configuration error (nothing started), "
        "70 the driver itself failed, 73 the data folder's disk is full, 75 another run is active (any mode), "
        "130 interrupted by Ctrl-C.",
    )
    mode = parser.add_argument_group("mode")
    mode.add_argument("--demo", action="store_true", help="run a few days against the local emulator, in the foreground")
    mode.add_argument("--foreground", action="store_true", help="wait for the run and exit with its result")
    mode.add_argument("--status", action="store_true", help="show whether a run is active and the range's progress")
    mode.add_argument("--force", action="store_true", help="redo days whose daily files already verify")
    mode.add_argument("--replace-different", action="store_true",
                      help="redo the range's daily files that lack asked fields (they move to daily/quarantine/); "
                      "without it such a run is refused (files with more fields than asked count as done)")
    mode.add_argument("--check-source", action="store_true",
                      help="before a long pull: check the source against every assumption the pipeline makes "
                      "(catalogue, signing, metadata, grid, time axis, record end, the variables, one hour of each "
                      "through the checks); one line per check; exit 0, or 1 when an assumption fails; with --demo, "
                      "the emulator's")
    mode.add_argument("--list-variables", nargs="?", const="", metavar="FILTER",
                      help="list the source's variables (name, units, class, daily value, statistics, dimensions, "
                      "description), those whose name or description holds FILTER; with --demo, the emulator's")
    settings_mod.add_arguments(parser)
    add_run_arguments(parser)
    retry = parser.add_argument_group("retry pass")
    retry.add_argument("--retry-rounds", type=int, metavar="N", help="rounds of retries for transient failures (default 3)")
    retry.add_argument("--retry-backoff", type=float, metavar="SECONDS", help="wait before the first retry round (default 60)")
    return parser


def check_retry_options(args: argparse.Namespace) -> None:
    """The retry pass's flags, checked here: the retry pass itself runs only after the whole driver."""
    if args.retry_rounds is not None and args.retry_rounds < 0:
        raise ConfigurationError(f"--retry-rounds {args.retry_rounds} cannot be negative (0 = no retries)")
    if args.retry_backoff is not None and not args.retry_backoff >= 0:
        raise ConfigurationError(f"--retry-backoff {args.retry_backoff:g} must be zero or more seconds")


def active_run(log_dir: Path) -> int | None:
    """Process group of this checkout's active run (the same rule as kill_all.sh), or None."""
    out = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(SRC / 'run_state.sh'))} && active_run_pgid"],
        capture_output=True, text=True, env={**os.environ, "CONUS404_LOG_DIR": str(log_dir)},
    )
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else None


def _settings_flags(args: argparse.Namespace, settings: settings_mod.Settings) -> list[str]:
    """The effective settings as flags, so driver and retry see exactly what was checked."""
    flags = [
        "--start", settings.request.start_date.isoformat(), "--end", settings.request.end_date.isoformat(),
        "--max-processes", str(settings.execution.max_processes), "--days-per-worker", str(settings.execution.days_per_worker),
        "--executor", settings.execution.executor, "--dask-scheduler", settings.execution.dask_scheduler or "",
        "--launch", settings.execution.launch, *settings_mod.worker_flags(settings),
    ]
    flags += ["--overview"] if settings.outputs.overview else []
    flags += [] if settings.execution.prefetch else ["--no-prefetch"]
    flags += output_settings.run_flags(settings.outputs)
    for name in ("day_timeout", "progress_interval", "min_available_mb", "log_dir"):
        value = getattr(args, name, None)
        if value is not None:
            value = settings_mod.from_command_line(value) if name == "log_dir" else value
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def start_run(args: argparse.Namespace, settings: settings_mod.Settings, verdict_fd: int,
              started: list[subprocess.Popen]) -> subprocess.Popen:
    """Start the run's process group: its driver starts the launch template, checks the request in
    a child of it, and writes the verdict on ``verdict_fd`` (read by :func:`read_verdict`). The group
    is in ``started`` as soon as it exists, so that a Ctrl-C from then on stops it."""
    log_dir = run_options(args).log_dir
    pid_file = log_dir / "pipeline.pid"
    common = _settings_flags(args, settings)
    driver = [sys.executable, str(SRC / "driver.py"), *common, "--verdict-fd", str(verdict_fd)]
    driver += (["--force"] if args.force else []) + (["--replace-different"] if args.replace_different else [])
    retry = [sys.executable, str(SRC / "retry_failed.py"), *common]
    if args.retry_rounds is not None:
        retry += ["--rounds", str(args.retry_rounds)]
    if args.retry_backoff is not None:
        retry += ["--backoff", str(args.retry_backoff)]
    # bash leads the group: driver, then (unless a usage error or a kill) the retry pass; a driver
    # that failed itself fails the run whatever the retry pass mends
    script = (
        f"{shlex.join(driver)} </dev/null; rc=$?; exec {verdict_fd}>&-; "  # the verdict's pipe ends with the driver
        f"if [ $rc -ne 2 ] && [ $rc -ne {EXIT_DISK_FULL} ] && [ $rc -lt 128 ]; then {shlex.join(retry)} </dev/null; retry_rc=$?; "
        f"if [ $rc -ne {EXIT_DRIVER_FAILED} ]; then rc=$retry_rc; fi; fi; "
        f"{run_status.outcome_command(settings.outputs.data_dir)}rm -f {shlex.quote(str(pid_file))}; exit $rc"
    )
    lock_fd = run_lock.acquire(settings.outputs.data_dir, log_dir)  # held by the run's group from here on
    try:
        proc = subprocess.Popen(
            ["bash", "-c", script], stdin=subprocess.DEVNULL, stdout=open(log_dir / "pipeline_console.log", "ab"),
            stderr=subprocess.STDOUT, cwd=SRC, start_new_session=True, pass_fds=(lock_fd, verdict_fd),
        )
        started.append(proc)
    finally:
        os.close(lock_fd)  # this process's copy: the group keeps the lock
    atomic_write_text(pid_file, f"{proc.pid}\n")
    atomic_write_text(log_dir / "pipeline.data_dir", f"{settings.outputs.data_dir}\n")  # for kill_all.sh
    run_status.record_run(log_dir, common)  # for --status
    proc.run_flags = common  # recorded in the data folder once the request is accepted
    return proc


def read_verdict(verdict_r: int) -> dict | None:
    """The driver's check of the request: ``{"warnings": [...]}`` or ``{"refused": why}``; None if the
    driver ended without one."""
    with os.fdopen(verdict_r, "rb") as pipe:
        line = pipe.readline()
    try:
        verdict = json.loads(line)
    except ValueError:
        return None
    return verdict if isinstance(verdict, dict) else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Untouched:
    """What folders held before a run was started, so that a refused request can leave them as they
    were: what did not exist (a new folder and its parents, new entries) is removed."""

    def __init__(self, *folders: Path) -> None:
        self.folders = {}
        for folder in folders:
            folder = Path(folder)
            if folder.is_dir():
                self.folders[folder] = ("entries", {entry.name for entry in folder.iterdir()})
            else:
                top = folder
                while not top.parent.exists() and top.parent != top:
                    top = top.parent
                self.folders[folder] = ("new", top)

    def restore(self) -> None:
        for folder, (kind, what) in self.folders.items():
            try:
                if kind == "new":
                    shutil.rmtree(what, ignore_errors=True)
                    continue
                for entry in folder.iterdir():
                    if entry.name in what:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            except OSError:
                pass  # a folder that cannot be tidied keeps what the refused request left: never an error


def cancel_run(proc: subprocess.Popen, log_dir: Path) -> None:
    """The checks failed (or the user interrupted them): end the waiting group, which has written
    nothing yet, and forget it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    pid_file = log_dir / "pipeline.pid"
    try:
        if pid_file.read_text().strip() == str(proc.pid):
            pid_file.unlink()
    except OSError:
        pass


EXIT_ANOTHER_RUN = 75  # EX_TEMPFAIL: refused while another run is active; try again later
def list_variables(settings: settings_mod.Settings, signer: AssetSigner, pattern: str) -> int:
    from conus404.day.variable_listing import describe_variables, format_listing
    from conus404.run.preflight import open_checked
    from conus404.sources.source import release_storage_clients

    try:
        ds = open_checked(settings, signer)
        every = describe_variables(ds)
    finally:
        release_storage_clients()
    rows = [row for row in every if row.matches(pattern.strip())]
    where = f"{settings.access.source} ({settings.access.stac_url})" if settings.access.uses_planetary_computer else settings.access.source
    print(format_listing(rows, len(every), pattern.strip(), where))
    return 0 if rows else 1


def start_demo_emulator(log_dir: Path, scratch: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """The emulator in its own process group; its data and TLS material live in ``scratch``."""
    env_file = scratch / "emulator.env"
    log_path = log_dir / "demo_emulator.log"
    proc = start_process_group(
        [sys.executable, "-m", "conus404.emulator", "serve", "--days", str(DEMO_DAYS), "--grid", "60x80",
         "--workdir", str(scratch / "work"), "--env-file", str(env_file)],
        log_path, cwd=SRC,
    )
    deadline = time.monotonic() + 180
    while not env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process_group(proc)
            raise ConfigurationError(f"the local emulator did not start; see {log_path}")
        time.sleep(0.2)
    env = {}
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    return proc, env


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    emulator = None
    scratch = None
    proc = settings = None
    started: list[subprocess.Popen] = []
    try:
        if args.demo:
            args.foreground = True
            args.start = args.start or "2021-01-01"
            args.end = args.end or (dt.date(2021, 1, 1) + dt.timedelta(days=DEMO_DAYS - 1)).isoformat()
            args.variables = args.variables or DEMO_VARIABLES
            args.data_dir = args.data_dir or str(PROJECT_ROOT / "data" / "demo")
            args.source = "planetary-computer"
        settings = settings_mod.load(args)
        check_retry_options(args)
        log_dir = run_options(args).log_dir
        if args.status:
            given = run_status.request_flags(sys.argv[1:] if argv is None else list(argv))
            return run_status.print_report(run_status.report(settings, log_dir, active_run(log_dir), build_parser, given))
        pgid = active_run(log_dir) if args.list_variables is None and not args.check_source else None
        if pgid:
            print(f"run_pipeline.sh: a run from this checkout is already active (process group {pgid}); "
                  "see ./run_pipeline.sh --status, or stop it with ./kill_all.sh", file=sys.stderr)
            return EXIT_ANOTHER_RUN
        before = Untouched(settings.outputs.data_dir)  # a refused request leaves it as it was (the log says why it was refused)
        ensure_writable(log_dir, "log folder")
        if args.demo:
            scratch = Path(tempfile.mkdtemp(prefix="conus404-demo-"))
            print("demo: starting the local Planetary Computer emulator ...", flush=True)
            emulator, env = start_demo_emulator(log_dir, scratch)
            os.environ.update(env)  # before anything imports aiohttp (it reads SSL_CERT_FILE once)
            settings = settings_mod.load(args)  # the emulator's STAC and SAS URLs
        if args.list_variables is not None:
            return list_variables(settings, AssetSigner(settings), args.list_variables)
        if args.check_source:
            from conus404.run.source_check import check_source

            return check_source(settings)
        run_started = time.time()
        ensure_writable(daily_file.daily_dir(settings.outputs.data_dir), "data folder")  # before its lock is taken
        log_start = _size(log_dir / "driver_main_run.log")  # a foreground run shows what its driver logs from here
        verdict_r, verdict_w = os.pipe()
        try:
            proc = start_run(args, settings, verdict_w, started)
        except BaseException:
            os.close(verdict_r)
            raise
        finally:
            os.close(verdict_w)  # the driver's copy is the one that counts
        try:
            verdict = read_verdict(verdict_r)
        except BaseException:
            cancel_run(proc, log_dir)
            raise
        if verdict is None or "refused" in verdict:
            try:
                proc.wait(timeout=10)  # the driver ends by itself once it has said why
            except subprocess.TimeoutExpired:
                pass
            cancel_run(proc, log_dir)
            before.restore()
            if verdict is None:
                raise ConfigurationError(f"the run ended before its checks did (exit {proc.returncode}); see "
                                         f"{log_dir / 'driver_main_run.log'} and {log_dir / 'pipeline_console.log'}")
            raise ConfigurationError(verdict["refused"])
        try:
            run_status.record_data_run(settings.outputs.data_dir, proc.run_flags, log_dir, proc.pid)
        except OSError:  # the record is for --status only: a full disk is the run's to say
            pass
        warnings = verdict.get("warnings", [])
        for warning in warnings:
            print(f"run_pipeline.sh: warning: {warning}", flush=True)
        if not args.foreground:
            print(BANNER.format(log=log_dir / "driver_main_run.log", pgid=proc.pid))
            return 0
        origin = "" if args.start or args.end else " (START_DATE..END_DATE of src/config.py)"
        print(f"running {settings.request.start_date}..{settings.request.end_date}{origin} in the foreground; log: "
              f"{log_dir / 'driver_main_run.log'}", flush=True)
        from conus404.run.terminal_progress import TerminalProgress

        shown = TerminalProgress(log_dir / "driver_main_run.log", log_start, len(settings.request.days)).start()
        try:
            code = foreground.wait_foreground(proc)
        finally:
            shown.stop()
        if code > 128:  # stopped (Ctrl-C): no temporary of a writer stopped mid-write is left behind
            from conus404.config.data_folder import remove_temporaries

            remove_temporaries(settings.outputs.data_dir)
        for line in run_report.written_since(log_dir, run_started):
            print(line)
        if code == EXIT_DISK_FULL:
            print(f"run_pipeline.sh: the run stopped: {disk_space.describe(settings.outputs.data_dir)}; free space there "
                  "and rerun the same command to resume", file=sys.stderr)
        elif code != 0:
            print(f"run_pipeline.sh: the run {foreground.outcome(code, proc.returncode)}; see "
                  f"{log_dir / 'driver_main_run.log'} and {log_dir / 'pipeline_console.log'}", file=sys.stderr)
        if args.demo:
            files = sorted(daily_file.daily_dir(settings.outputs.data_dir).glob("*.nc"))
            print(f"demo: {len(files)} daily file(s) in {daily_file.daily_dir(settings.outputs.data_dir)}:")
            for path in files:
                print(f"  {path.name}")
        return code
    except KeyboardInterrupt:  # Ctrl-C before the foreground wait took the signals over
        return foreground.interrupted(started[0] if started else None, settings)
    except run_lock.AnotherRunActive as exc:
        print(f"run_pipeline.sh: {exc}", file=sys.stderr)
        return EXIT_ANOTHER_RUN
    except ConfigurationError as exc:
        print(f"run_pipeline.sh: {exc}", file=sys.stderr)
        return 2
    finally:
        if emulator is not None:
            stop_process_group(emulator)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    from conus404.core.processes import exit_without_teardown

    exit_without_teardown(main())
