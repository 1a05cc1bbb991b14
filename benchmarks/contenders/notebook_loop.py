"""A notebook-style loop in one process: sign and open once, then each day mean/sum and write.

    python notebook_loop.py FIRST_DAY DAYS VAR1,VAR2 OUT_DIR [LOCAL_STORE]

The pattern of the PC and HyTEST example notebooks: ``xr.open_zarr`` once (dask chunks), then
for each day select 00Z..23Z, average instantaneous and sum accumulated variables, ``to_netcdf``.
With LOCAL_STORE, the store is opened from that path instead (a copy on local disk).
Prints one JSON line: per-day seconds, the one-off open cost and peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def main() -> int:
    first, days, variables, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), Path(sys.argv[4])
    import pandas as pd
    import planetary_computer
    import pystac_client
    import xarray as xr

    from conus404.core.processes import peak_rss_mb, process_age_s

    startup = process_age_s() or 0.0
    step = time.monotonic()
    if len(sys.argv) > 5:
        ds = xr.open_zarr(sys.argv[5])
    else:
        catalog = pystac_client.Client.open(os.environ["CONUS404_STAC_URL"], modifier=planetary_computer.sign_inplace)
        asset = catalog.get_collection("conus404").assets["zarr-abfs"]
        ds = xr.open_zarr(asset.href, storage_options=asset.extra_fields["xarray:storage_options"],
                          **asset.extra_fields.get("xarray:open_kwargs", {}))
    open_s = time.monotonic() - step
    out_dir.mkdir(parents=True, exist_ok=True)
    per_day = []
    for i in range(days):
        step = time.monotonic()
        start = pd.Timestamp(first) + pd.Timedelta(days=i)
        day_ds = ds[variables].sel(time=slice(start, start + pd.Timedelta(hours=23)))
        out = xr.Dataset()
        for name in variables:
            accumulated = "accumulated" in str(ds[name].attrs.get("integration_length", "")).lower() or name.startswith("AC")
            out[name] = day_ds[name].sum("time") if accumulated else day_ds[name].mean("time")
        out.to_netcdf(out_dir / f"notebook_{start:%Y-%m-%d}.nc")
        per_day.append(time.monotonic() - step)
    print(json.dumps({"startup": startup, "open": open_s, "per_day": per_day, "peak_rss_mb": round(peak_rss_mb(), 1)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
