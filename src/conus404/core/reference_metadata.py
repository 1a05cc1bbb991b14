"""Published metadata shipped with the package: the PC STAC collection and the stores' variable lists.

Copied from the public sources (the Planetary Computer's ``conus404`` collection, and the
variable listings of the PC and HyTEST hourly stores) so that nothing is read from outside the
project at run time.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

_DATA = resources.files("conus404") / "data"


@dataclass(frozen=True)
class StoreVariable:
    name: str
    dims: tuple[str, ...]
    dtype: str
    attrs: dict[str, Any]


@lru_cache(maxsize=1)
def _collection() -> dict[str, Any]:
    return json.loads((_DATA / "conus404_collection.json").read_text())


def collection_document() -> dict[str, Any]:
    """A fresh copy of the real STAC collection ``conus404`` (safe to modify)."""
    return copy.deepcopy(_collection())


def _parse_listing(filename: str) -> dict[str, StoreVariable]:
    out = {}
    for entry in json.loads((_DATA / filename).read_text()):
        name, dims, dtype, attrs = entry[:4]
        dim_names = tuple(d.strip() for d in dims.strip("()").split(",") if d.strip())
        out[name] = StoreVariable(name, dim_names, dtype, dict(attrs))
    return out


@lru_cache(maxsize=1)
def pc_store_variables() -> dict[str, StoreVariable]:
    """Name -> dims, dtype, attributes of every array in the PC store (``az://noaa/conus404.zarr``)."""
    return _parse_listing("conus404_pc_variables.json")


@lru_cache(maxsize=1)
def hytest_store_variables() -> dict[str, StoreVariable]:
    """The same for HyTEST's hourly store on OSN (dims ``x``/``y``, radiation as since-start totals)."""
    return _parse_listing("conus404_hytest_hourly_variables.json")
