"""A chunk the store lacks is refused by its key, never read as the fill value.

Real stores lose chunks (hytest-org/hytest#395: U10 chunks missing on the OSN). zarr fills a missing
chunk with the array's fill value: NaN, where the NaN checks then refuse the day, but 0 where the fill
value is null (zarr-python 3's default for floats), so a lost hour of PREC_ACC_NC would be published
as 0 mm. Every store the pipeline reads is wrapped in :class:`LostChunkGuard`; the direct readers
(:mod:`conus404.sources.cached_hours`, :mod:`conus404.sources.local_hours`) raise the same error themselves. A zero
read from a chunk that is present is data.
"""

from __future__ import annotations

import re

import numpy as np
from zarr.storage import WrapperStore

from conus404.core.exceptions import LostChunkError, MissingDataError


def is_chunk_key(key: str) -> bool:
    """A data chunk's key (``T2/5.0.0``, ``T2/5/0/0``), not a metadata document (``.zarray``, ``zarr.json``)."""
    name, _, last = key.rpartition("/")
    return bool(name) and not last.startswith(".") and last != "zarr.json"


class LostChunkGuard(WrapperStore):
    """A read-only zarr store wrapper that raises :class:`LostChunkError` where the store lacks a chunk."""

    async def get(self, key: str, prototype, byte_range=None):
        buffer = await self._store.get(key, prototype, byte_range)
        if buffer is None and is_chunk_key(key):
            raise LostChunkError(key)
        return buffer

    async def _get_many(self, requests):
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)


def as_missing_data(ds, name: str, positions: np.ndarray, lost: LostChunkError) -> MissingDataError:
    """The error a day records: the variable and the hour(s) of the lost chunk it needed."""
    held = lost.positions
    if held is None:
        held = _time_positions(ds, name, lost.key)
    needed = [int(p) for p in positions if held is None or int(p) in held]
    times = ds.indexes["time"]
    stamps = [f"{times[p]:%Y-%m-%dT%HZ}" for p in needed] if needed else []
    when = f" at {stamps[0]}" + (f" (and {len(stamps) - 1} more of the day's hours)" if len(stamps) > 1 else "") if stamps else ""
    return MissingDataError(f"{name}{when}: the store lacks its chunk {lost.key} (a lost chunk, not data: "
                            "zarr would have read it as the fill value)")


def _time_positions(ds, name: str, key: str) -> range | None:
    """The time positions of chunk ``key`` of ``name``, as zarr sees the array's chunks."""
    try:
        chunk_index = int(re.split(r"[./]", key.split("/", 1)[1])[0])
        dims = ds[name].dims
        per_chunk = int(ds[name].encoding["chunks"][dims.index("time")])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    return range(chunk_index * per_chunk, (chunk_index + 1) * per_chunk)
