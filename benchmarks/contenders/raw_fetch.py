"""The raw-fetch limit: fetch and decompress exactly the given chunk keys, nothing else.

Reads one JSON document from standard input ({"asset": signed asset, "keys": [...],
"codecs": {array: {"compressor": ..., "filters": ...}}}), imports and connects, prints
``ready``, waits for a line on standard input, then fetches every key with ``--threads``
concurrent requests, decompressing each as it arrives, and prints one JSON line of results.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def main() -> int:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    request = json.loads(sys.stdin.readline())
    import adlfs
    import numcodecs

    from conus404.core.processes import peak_rss_mb

    asset = request["asset"]
    fs = adlfs.AzureBlobFileSystem(**asset["storage_options"])
    root = asset["href"].split("://", 1)[1].rstrip("/")
    codecs = {
        name: ([numcodecs.get_codec(f) for f in (spec.get("filters") or [])],
               numcodecs.get_codec(spec["compressor"]) if spec.get("compressor") else None)
        for name, spec in request["codecs"].items()
    }
    fs.info(root + "/.zmetadata")  # connect before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()

    def fetch(key: str) -> tuple[int, int]:
        raw = fs.cat_file(f"{root}/{key}")
        filters, compressor = codecs.get(key.split("/", 1)[0], ([], None))  # .zmetadata: plain JSON
        data = compressor.decode(raw) if compressor else raw
        for codec in reversed(filters):
            data = codec.decode(data)
        return len(raw), len(memoryview(data).cast("B"))

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        sizes = list(pool.map(fetch, request["keys"]))
    seconds = time.monotonic() - started
    print(json.dumps({
        "seconds": seconds, "keys": len(sizes), "bytes": sum(s[0] for s in sizes),
        "decoded_bytes": sum(s[1] for s in sizes), "peak_rss_mb": round(peak_rss_mb(), 1),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
