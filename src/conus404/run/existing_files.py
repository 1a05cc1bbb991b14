"""What the daily files already in the range hold, against what this run asks for.

A file that holds every asked field (and perhaps more) for the same region is done. One made for
another region, or lacking asked fields, is refused before the run starts, naming the
difference: redoing it silently would move every file of a long pull to ``quarantine/`` because
of one flag. ``--replace-different`` redoes the files that lack fields (the old ones go to
``quarantine/``, as always); a run for another region needs its own data folder.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from conus404.config.settings import Settings
from conus404.core import subset
from conus404.core.exceptions import ConfigurationError
from conus404.outputs import daily_file, verified_files

SHOWN = 3  # example files named in a refusal


def _first_existing(settings: Settings) -> tuple[Path, dict] | None:
    """The range's first existing daily file and its attributes, if it is readable and of its day
    (an unreadable one is kept aside and redone by its worker, as any bad file)."""
    for day in settings.request.days:
        path = daily_file.daily_path(settings.outputs.data_dir, day)
        if not path.exists():
            continue
        attrs = daily_file.attributes(path)
        return (path, attrs) if attrs is not None and attrs.get("conus404_day") == day.isoformat() else None
    return None


def refuse_other_coverage(settings: Settings) -> None:
    """A box run must not redo (and so move aside) the whole-domain files of the range, nor the reverse:
    refuse when the range's first existing daily file covers another region (a whole-domain file
    serves a polygon/point run: it holds the cells covering them)."""
    from conus404.day.plan import region_text

    wanted, first = region_text(settings), _first_existing(settings)
    if first is not None and not subset.covers(first[1].get("conus404_bbox"), wanted):
        raise ConfigurationError(
            f"{first[0]} covers {daily_file.describe_coverage(first[1])}, not "
            f"{daily_file.describe_coverage({'conus404_bbox': wanted})}: use another --data-dir for this run"
        )


def refuse_other_day_boundary(settings: Settings) -> None:
    """Days of one boundary only in a data folder: refuse when the range's first existing daily file
    was made with another UTC offset (same-named files of other hours would silently mix)."""
    from conus404.config import day_boundary

    wanted, first = day_boundary.describe(settings.request.day_boundary), _first_existing(settings)
    held = str(first[1].get("conus404_day_boundary") or day_boundary.UTC) if first is not None else wanted
    if held != wanted:
        raise ConfigurationError(f"{first[0]} holds a day starting at local 00:00 of {held}, not of {wanted}: "
                                 "use another --data-dir for this run")


def _fields_of(path: Path, day: dt.date, records: verified_files.VerifiedFiles) -> list[str] | None:
    """The fields a daily file holds: from its verification record while it is unchanged (a stat),
    else from its attributes (None when it is not a readable daily file of ``day``)."""
    recorded = records.recorded_fields(path)
    if recorded is not None:
        return recorded
    attrs = daily_file.attributes(path)
    if attrs is None or attrs.get("conus404_day") != day.isoformat():
        return None
    return str(attrs.get("conus404_variables", "")).split()


def refuse_other_fields(settings: Settings) -> None:
    """Refuse a run whose existing files of the range lack asked fields (see the module's doc)."""
    from conus404.day.plan import output_names

    wanted = set(output_names(settings.request))
    records = verified_files.VerifiedFiles(daily_file.daily_dir(settings.outputs.data_dir))
    lacking: list[tuple[Path, list[str], list[str]]] = []
    for day in settings.request.days:
        path = daily_file.daily_path(settings.outputs.data_dir, day)
        if not path.exists():
            continue
        fields = _fields_of(path, day, records)
        if fields is not None and not wanted <= set(fields):
            lacking.append((path, sorted(fields), sorted(wanted - set(fields))))
    if lacking:
        examples = "; ".join(f"{path.name} holds {', '.join(have) or 'nothing'} (lacks {', '.join(missing)})"
                             for path, have, missing in lacking[:SHOWN])
        more = f" and {len(lacking) - SHOWN} more" if len(lacking) > SHOWN else ""
        raise ConfigurationError(
            f"{len(lacking)} daily file(s) of the range lack asked fields: {examples}{more}; "
            "--replace-different redoes them (the old files move to daily/quarantine/), "
            "or ask only for fields they hold")
