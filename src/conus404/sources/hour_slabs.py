"""Multi-hour chunks shown to zarr a few hours per chunk (:mod:`conus404.sources.chunk_cache` serves them).

A zarr format-2 chunk in C order keeps each time step's block contiguous, so once a chunk is
decoded, hour ``h`` of it is one byte range: ``[h * slab_bytes, (h + 1) * slab_bytes)``. Zarr is
shown the array with ``chunks[0] = shown_hours`` (a divisor of the store's, at most SHOWN_HOURS)
and no codecs, and asks for the few shown chunks a day's hours fall in. A day's whole hours are
mostly copied without zarr (:mod:`conus404.sources.cached_hours`); zarr reads the rest.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
from numcodecs.compat import ensure_bytes


@dataclass(frozen=True)
class SlicedArray:
    """A multi-hour array shown to zarr ``shown_hours`` per chunk, served from its decoded chunks."""

    shape: tuple[int, ...]  # the array's, time first, as stored
    chunks: tuple[int, ...]  # its chunks': ``chunks[0]`` hours each
    dtype: str
    fill_value: Any  # zarr's, for chunks the store lacks
    separator: str
    codecs: tuple[Any, ...]  # undone in this order: the compressor, then the filters last to first
    shown_hours: int  # hours per chunk zarr is shown: a divisor of ``hours``

    @property
    def hours(self) -> int:
        """Hours per chunk of the store."""
        return self.chunks[0]

    @property
    def steps(self) -> int:
        """Time steps of the array."""
        return self.shape[0]

    @property
    def slab_bytes(self) -> int:
        """One hour of one chunk, decoded."""
        return math.prod(self.chunks[1:]) * np.dtype(self.dtype).itemsize

    def tiles(self) -> list[tuple[int, ...]]:
        """The chunk indices of one time step (every spatial tile)."""
        counts = (math.ceil(n / c) for n, c in zip(self.shape[1:], self.chunks[1:], strict=True))
        return list(itertools.product(*map(range, counts)))

    def chunk_key(self, name: str, index: int, tile) -> str:
        """The store's key of time chunk ``index``, spatial ``tile``, of array ``name``."""
        return f"{name}/" + self.separator.join(map(str, (index, *tile)))

    def region(self, tile) -> tuple[slice, ...]:
        """Where spatial ``tile`` sits in the array (an edge tile is cut at the array's end)."""
        return tuple(slice(t * c, min((t + 1) * c, n)) for t, c, n in zip(tile, self.chunks[1:], self.shape[1:], strict=True))

    def place(self, data: bytes | None, target: np.ndarray) -> None:
        """Decoded hours of one tile (``target.shape[0]`` of them, C order, the whole chunk's extent)
        copied into ``target``, its place in the day's array; None (a chunk the store lacks) as NaN,
        zarr's fill value, which the direct readers check first."""
        if data is None:
            target[...] = np.nan
            return
        block = np.frombuffer(data, dtype=target.dtype).reshape(target.shape[0], *self.chunks[1:])
        target[...] = block[(slice(None), *(slice(0, n) for n in target.shape[1:]))]

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
    spec = array_layout(zarray)
    return spec if spec is not None and spec.hours > 1 else None


def array_layout(zarray: dict[str, Any]) -> SlicedArray | None:
    """A zarr format-2 array's layout, time first, any hours per chunk; None when it is not one
    whose chunks are C-order numbers undone by known codecs."""
    try:
        chunks, shape, dtype = list(zarray["chunks"]), list(zarray["shape"]), np.dtype(zarray["dtype"])
        if zarray.get("order", "C") != "C" or dtype.kind not in "biuf" or len(chunks) < 2 or chunks[0] < 1:
            return None
        configs = [zarray["compressor"]] if zarray.get("compressor") else []
        configs += list(reversed(zarray.get("filters") or []))
        codecs = tuple(numcodecs.get_codec(dict(c)) for c in configs)
    except (KeyError, TypeError, ValueError):  # an unknown codec or odd metadata: leave the array as it is
        return None
    shown = max(h for h in range(1, min(SHOWN_HOURS, chunks[0]) + 1) if chunks[0] % h == 0)
    return SlicedArray(tuple(map(int, shape)), tuple(map(int, chunks)), dtype.str, zarray.get("fill_value"),
                       zarray.get("dimension_separator", "."), codecs, shown)


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
