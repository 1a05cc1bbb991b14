"""A foreground run's progress on the terminal, as it goes: a live bar on a TTY (tqdm), plain lines
otherwise (a pipe, a CI log). Both follow the driver's own log, so they show what it records: each
day's outcome as it finishes and the periodic progress line (done, failed, days/hour, ETA).
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
from pathlib import Path
from typing import TextIO

DAY_LINE = re.compile(r" (INFO|WARNING) (\d{4}-\d{2}-\d{2}) (published|skipped|failed)(.*)$")
METRICS = re.compile(r" \((?:aggregate|open|read|startup|write|verify|series|upload|peak) [^)]*\)")
POLL_S = 0.5


class TerminalProgress:
    """Follows ``log_path`` from ``offset`` on a thread until :meth:`stop`."""

    def __init__(self, log_path: Path, offset: int, total_days: int, stream: TextIO | None = None) -> None:
        self.log_path, self.offset, self.total = Path(log_path), offset, total_days
        self.stream = stream or sys.stdout
        self.counts = {"published": 0, "skipped": 0, "failed": 0}
        self._stop = threading.Event()
        self._partial = ""
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            size = shutil.get_terminal_size()  # a terminal that reports no size (0 x 0) still gets a bar
            self._bar = tqdm(total=total_days, unit="day", file=self.stream, ncols=min(size.columns or 100, 120),
                             nrows=size.lines or 24, leave=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} days [{elapsed}<{remaining}]{postfix}")
        self._thread = threading.Thread(target=self._follow, name="terminal-progress", daemon=True)

    def start(self) -> TerminalProgress:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._read()  # what the run logged last
        if self._bar is not None:
            self._bar.close()

    def _follow(self) -> None:
        while not self._stop.wait(POLL_S):
            self._read()

    def _read(self) -> None:
        try:
            with open(self.log_path, errors="replace") as handle:
                handle.seek(self.offset)
                text = handle.read()
                self.offset = handle.tell()
        except OSError:
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()  # a line still being written
        for line in lines:
            self._show(line)

    def _show(self, line: str) -> None:
        day = DAY_LINE.search(line)
        if day is not None:
            status = day.group(3)
            self.counts[status] += 1
            said = f"{day.group(2)} {status}{METRICS.sub('', day.group(4))}"  # the phases' seconds are for the log
            if self._bar is None:
                self._say(said)
            else:
                if status == "failed":
                    self._bar.write(said)
                self._bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in self.counts.items() if v), refresh=False)
                self._bar.update(1)
        elif " INFO progress: " in line and self._bar is None:
            self._say(line.split(" INFO ", 1)[1])

    def _say(self, text: str) -> None:
        try:
            print(text, file=self.stream, flush=True)
        except (BrokenPipeError, ValueError):
            pass
