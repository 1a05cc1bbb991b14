"""The seed design's day worker, as users wrote it: catalogue, sign, open, load the day, write.

    python seed_style_day.py YYYY-MM-DD VAR1,VAR2 OUT_DIR

Per day: pystac-client opens the catalogue with ``planetary_computer.sign_inplace``, xarray opens
the signed ``zarr-abfs`` asset (dask chunks, adlfs' default retry policy), the day's 00Z..23Z
records are ``.load()``-ed whole, then averaged (instantaneous) or summed (anything accumulated)
and written with ``to_netcdf``. Reads CONUS404_STAC_URL (the SDK reads PC_SDK_SAS_URL itself).
Prints one JSON line: timings and peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def main() -> int:
    day, variables, out_dir = sys.argv[1], sys.argv[2].split(","), Path(sys.argv[3])
    import pandas as pd
    import planetary_computer
    import pystac_client
    import xarray as xr

    from conus404.core.processes import peak_rss_mb, process_age_s

    timings = {"startup": process_age_s() or 0.0}
    step = time.monotonic()
    catalog = pystac_client.Client.open(os.environ["CONUS404_STAC_URL"], modifier=planetary_computer.sign_inplace)
    asset = catalog.get_collection("conus404").assets["zarr-abfs"]
    ds = xr.open_zarr(asset.href, storage_options=asset.extra_fields["xarray:storage_options"],
                      **asset.extra_fields.get("xarray:open_kwargs", {}))
    timings["open"] = time.monotonic() - step
    step = time.monotonic()
    start = pd.Timestamp(day)
    day_ds = ds[variables].sel(time=slice(start, start + pd.Timedelta(hours=23))).load()
    timings["read"] = time.monotonic() - step
    step = time.monotonic()
    out = xr.Dataset()
    for name in variables:
        accumulated = "accumulated" in str(ds[name].attrs.get("integration_length", "")).lower() or name.startswith("AC")
        out[name] = day_ds[name].sum("time") if accumulated else day_ds[name].mean("time")
    out_dir.mkdir(parents=True, exist_ok=True)
    out.to_netcdf(out_dir / f"seed_{day}.nc")
    timings["write"] = time.monotonic() - step
    print(json.dumps({"day": day, "timings": timings, "peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
