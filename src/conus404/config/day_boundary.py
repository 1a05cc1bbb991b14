"""Days of a fixed offset from UTC (``--day-boundary``, ``DAY_BOUNDARY``): e.g. ``-06:00``, US
Central standard time all year (no daylight saving, as climate services do). Day D then runs from
local 00:00 = D 06:00Z to the next local 00:00; its records follow the same rules as a UTC day's
(:func:`conus404.core.day_windows.hour_window`). CONUS404 is hourly, so the offset is whole hours.
"""

from __future__ import annotations

import re

from conus404.core.exceptions import ConfigurationError

UTC = "UTC"
_FORM = re.compile(r"^(?:UTC)?([+-])(\d{2}):(\d{2})$")


def parse(value, what: str = "DAY_BOUNDARY") -> int:
    """``UTC``, ``+00:00``, ``-06:00``, ``UTC+09:00`` -> hours east of UTC (-06:00 -> -6)."""
    text = str(value if value is not None else UTC).strip()
    if text.upper() in ("", UTC, "Z"):
        return 0
    found = _FORM.match(text.upper())
    if found is None:
        raise ConfigurationError(f"{what} {value!r} is not a UTC offset: write UTC or ±HH:MM, e.g. -06:00 "
                                 "for US Central standard time")
    sign, hours, minutes = found.group(1), int(found.group(2)), int(found.group(3))
    if minutes:
        raise ConfigurationError(f"{what} {value!r}: CONUS404's records are hourly, so the offset must be whole "
                                 f"hours (e.g. {sign}{hours:02d}:00)")
    if hours > 14:
        raise ConfigurationError(f"{what} {value!r}: UTC offsets run from -12:00 to +14:00")
    return -hours if sign == "-" else hours


def describe(offset_hours: int) -> str:
    """0 -> 'UTC', -6 -> 'UTC-06:00' (what files record in conus404_day_boundary)."""
    if not offset_hours:
        return UTC
    return f"UTC{'+' if offset_hours > 0 else '-'}{abs(offset_hours):02d}:00"


def offset_of(attribute) -> int:
    """The offset a file records (no attribute: a UTC day, as every file before this option)."""
    return parse(attribute or UTC, "conus404_day_boundary")
