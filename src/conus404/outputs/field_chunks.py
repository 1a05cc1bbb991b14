"""A daily file's fields stored as ready-made HDF5 chunks, compressed outside HDF5.

Why: HDF5 compresses each chunk with zlib itself, and on the full grid that was most of a day's
write (a field of 1015 x 1367 took 50-100 ms at zlib level 1). The chunk HDF5 would store, its
shuffle filter then deflate in zlib's format, exactly what the variable's filter pipeline declares
and every netCDF-4 reader undoes, is made here instead: at the default level 1 with ISA-L
(python-isal, its level 2: 8-18 ms per field, files -6 % to +6 % of zlib level 1's on the fields
measured), at any other level with zlib itself, as HDF5 would. netCDF4 writes the file as before
but for these fields' data (:class:`FieldsAside` keeps them aside), then h5py writes each field's
one chunk as it is (``write_direct_chunk``); :func:`conus404.outputs.daily_file.publish` then reads the file
back through netCDF4 and its checksum, as for every file.

Only a field stored as one shuffled, deflated float32 chunk is written so; anything else (another
pipeline, no compression, an install without h5py) is written by HDF5 as before.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from pathlib import Path

import numpy as np

SHUFFLE, DEFLATE = 2, 1  # HDF5's filter ids (H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE)


class FieldsAside:
    """A writer for xarray's ``dump_to_store`` (its ``ArrayWriter``'s interface) that writes every
    variable but ``names``, whose encoded data it keeps in ``kept`` for :func:`write_chunks`."""

    def __init__(self, names: Collection[str]) -> None:
        self.names = set(names)
        self.kept: dict[str, np.ndarray] = {}

    def add(self, source, target, region=None) -> None:
        name = getattr(target, "variable_name", None)
        data = source if isinstance(source, np.ndarray) else None
        if name in self.names and region is None and data is not None and data.dtype == np.float32:
            self.kept[name] = data
        elif region:
            target[region] = source
        else:
            target[...] = source


def shuffled_deflate(data: np.ndarray, level: int) -> bytes:
    """``data``'s bytes as HDF5's shuffle then deflate filters store them: byte 0 of every value,
    then byte 1, ...; then a zlib stream."""
    values = np.ascontiguousarray(data)
    shuffled = np.ascontiguousarray(values.reshape(-1).view(np.uint8).reshape(-1, values.itemsize).T)
    if level == 1:
        try:
            from isal import isal_zlib
        except ImportError:  # not installed here: zlib's own level 1, as HDF5 would
            pass
        else:
            return isal_zlib.compress(shuffled, 2)
    return zlib.compress(shuffled, level)


def write_chunks(path: Path, fields: dict[str, np.ndarray], level: int) -> None:
    """Each of ``fields`` (defined in ``path`` as one shuffled, deflated chunk) written as one chunk."""
    if not fields:
        return
    try:
        import h5py
    except ImportError:  # a broken install: still a complete file, compressed by HDF5
        _write_through_netcdf4(path, fields)
        return
    with h5py.File(path, "r+") as file:
        for name, data in fields.items():
            dataset = file[name]
            if not _one_shuffled_deflated_chunk(dataset, data):
                dataset[...] = data  # not the layout expected: let HDF5 compress it
                continue
            dataset.id.write_direct_chunk((0,) * data.ndim, shuffled_deflate(data, level))


def _write_through_netcdf4(path: Path, fields: dict[str, np.ndarray]) -> None:
    import netCDF4

    with netCDF4.Dataset(path, "a") as nc:
        for name, data in fields.items():
            nc[name].set_auto_maskandscale(False)  # already encoded by xarray
            nc[name][...] = data


def _one_shuffled_deflated_chunk(dataset, data: np.ndarray) -> bool:
    if dataset.chunks != data.shape or dataset.shape != data.shape or dataset.dtype != data.dtype:
        return False
    plist = dataset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())] == [SHUFFLE, DEFLATE]
