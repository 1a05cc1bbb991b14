"""A day's hours of a store on local disk (an HPC copy) decoded straight into the day's array.

Why: from local disk, reading is decoding, and zarr's per-chunk machinery (its event loop, buffers,
the copy of each decoded chunk into the selection) cost about as much again as the decoding: a
full-grid day of T2 and PREC_ACC_NC (48 one-hour chunks) took 0.25-0.28 s of CPU through xarray
and 0.12 s read and decoded here, each hour's chunk file straight into its slot of the day's array.

Only a zarr format-2 store in a local folder, and only where the result is exactly what xarray
returns (:func:`conus404.sources.cached_hours.served_from`); anything else reads through zarr.
A chunk file the store lacks is refused (:mod:`conus404.sources.lost_chunks`), as every reader does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conus404.core.exceptions import LostChunkError
from conus404.sources.hour_slabs import SlicedArray, array_layout

ENCODING_KEY = "conus404_local_store"  # in a dataset's encoding: the LocalArrays of the folder it was opened from


class LocalArrays:
    """The layouts of a local zarr format-2 store's arrays, read from their ``.zarray`` when first asked."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._layouts: dict[str, SlicedArray | None] = {}

    def layout(self, name: str) -> SlicedArray | None:
        if name not in self._layouts:
            try:
                self._layouts[name] = array_layout(json.loads((self.root / name / ".zarray").read_text()))
            except (OSError, ValueError):  # not a format-2 array here (e.g. format 3): zarr reads it
                self._layouts[name] = None
        return self._layouts[name]


def remember_local_store(ds, root: str | Path) -> None:
    """Let :func:`read_hours` find the local folder ``ds`` was opened from (xarray keeps a dataset's
    encoding through renames, selections and ``drop_vars``)."""
    ds.encoding[ENCODING_KEY] = LocalArrays(Path(root))


def read_hours(ds, name: str, positions: np.ndarray) -> np.ndarray | None:
    """``ds[name]`` at the consecutive time ``positions``, decoded from the local store's one-hour
    chunk files; None if not served here (multi-hour chunks are :mod:`conus404.sources.cached_hours`' or zarr's)."""
    from conus404.sources.cached_hours import served_from

    arrays = ds.encoding.get(ENCODING_KEY)
    if arrays is None or name not in ds.variables or len(positions) == 0:
        return None
    spec = arrays.layout(name)
    first = None if spec is None or spec.hours != 1 else served_from(ds[name], spec, positions)
    if first is None:
        return None
    out = np.empty((len(positions), *spec.shape[1:]), dtype=np.dtype(spec.dtype))
    tiles = spec.tiles()
    for hour in range(len(positions)):
        for tile in tiles:
            target = out[(slice(hour, hour + 1), *spec.region(tile))]
            key = spec.chunk_key(name, first + hour, tile)
            try:
                raw = (arrays.root / key).read_bytes()
            except FileNotFoundError:
                raise LostChunkError(key, range(first + hour, first + hour + 1)) from None
            _fill_tile(raw, spec, target)
    return out


def _fill_tile(raw: bytes, spec: SlicedArray, target: np.ndarray) -> None:
    if target.shape[1:] == spec.chunks[1:] and target.flags.c_contiguous and _decode_into(spec, raw, target):
        return
    spec.place(spec.decode(raw), target)


def _decode_into(spec: SlicedArray, raw: bytes, target: np.ndarray) -> bool:
    """A Blosc chunk decompressed into ``target`` itself (no copy), when it holds exactly its bytes."""
    from numcodecs import blosc
    from numcodecs.blosc import Blosc

    if len(spec.codecs) != 1 or not isinstance(spec.codecs[0], Blosc):
        return False
    if len(raw) < 16 or int.from_bytes(raw[4:8], "little") != target.nbytes:  # Blosc's header: the bytes it holds
        return False
    blosc.decompress(raw, target)
    return True
