"""Multi-hour chunks shown to zarr a few hours per chunk (:mod:`conus404.chunk_cache` serves them).

A zarr format-2 chunk in C order keeps each time step's block contiguous, so once a chunk is
decoded, hour ``h`` of it is one byte range: ``[h * slab_bytes, (h + 1) * slab_bytes)``. Zarr is
shown the array with ``chunks[0] = shown_hours`` (a divisor of the store's, at most SHOWN_HOURS)
and no codecs, and asks for the few shown chunks a day's hours fall in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
from numcodecs.compat import ensure_bytes


@dataclass(frozen=True)
class SlicedArray:
    """A multi-hour array shown to zarr ``shown_hours`` per chunk, served from its decoded chunks."""

    hours: int  # hours per chunk of the store
    slab_bytes: int  # one hour of one chunk, decoded
    spatial_chunks: int  # chunks per time step
    separator: str
    codecs: tuple[Any, ...]  # undone in this order: the compressor, then the filters last to first
    steps: int  # time steps of the array
    shown_hours: int = 1  # hours per chunk zarr is shown: a divisor of ``hours``
    shape: tuple[int, ...] = ()  # the array's, and its chunks', as stored
    chunks: tuple[int, ...] = ()
    dtype: str = ""
    fill_value: Any = None  # zarr's, for chunks the store lacks

    def stored_hours(self, chunk_index: int) -> int:
        """Hours of time chunk ``chunk_index`` inside the array: fewer than ``hours`` in the last
        one, whose padding past the array's end nobody reads and so is not kept."""
        return max(0, min(self.hours, self.steps - chunk_index * self.hours))

    def decode(self, raw: bytes) -> bytes:
        data: Any = raw
        for codec in self.codecs:
            data = codec.decode(data)
        data = ensure_bytes(data)
        if len(data) != self.hours * self.slab_bytes:
            raise ValueError(f"a chunk decoded to {len(data)} bytes, not {self.hours * self.slab_bytes}")
        return data


# Hours per chunk zarr is shown (at most; a divisor of the store's): each chunk zarr reads costs
# ~0.1 ms of its event loop, 1,152 of them per variable-day at one hour per chunk on the full grid.
# Reading a HyTEST day from the decoded cache took 0.57 s of CPU at 12 hours against 1.0 s at 1
# (median of 16 days each); 24 would read 48 hours for the days of sums (01Z..00Z) instead of 36.
SHOWN_HOURS = 12


def sliced_array(zarray: dict[str, Any]) -> SlicedArray | None:
    """How to serve an array a few hours per chunk, or None when its layout does not allow it."""
    try:
        chunks, shape, dtype = list(zarray["chunks"]), list(zarray["shape"]), np.dtype(zarray["dtype"])
        if chunks[0] <= 1 or zarray.get("order", "C") != "C" or dtype.kind not in "biuf" or len(chunks) < 2:
            return None
        configs = [zarray["compressor"]] if zarray.get("compressor") else []
        configs += list(reversed(zarray.get("filters") or []))
        codecs = tuple(numcodecs.get_codec(dict(c)) for c in configs)
    except (KeyError, TypeError, ValueError):  # an unknown codec or odd metadata: leave the array as it is
        return None
    spatial = math.prod(math.ceil(n / c) for n, c in zip(shape[1:], chunks[1:], strict=True))
    shown = max(h for h in range(1, min(SHOWN_HOURS, chunks[0]) + 1) if chunks[0] % h == 0)
    return SlicedArray(int(chunks[0]), math.prod(chunks[1:]) * dtype.itemsize, spatial,
                       zarray.get("dimension_separator", "."), codecs, int(shape[0]), shown,
                       tuple(map(int, shape)), tuple(map(int, chunks)), dtype.str, zarray.get("fill_value"))


def shown_zarray(zarray: dict[str, Any], shown_hours: int) -> dict[str, Any]:
    """The metadata zarr is shown for a sliced array: ``shown_hours`` per chunk, stored decoded."""
    return {**zarray, "chunks": [shown_hours, *zarray["chunks"][1:]], "compressor": None, "filters": None}


def cut(data: bytes, byte_range) -> bytes:
    """The part of a served chunk a zarr byte-range request asks for."""
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start:byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset:]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix:]
    return data
