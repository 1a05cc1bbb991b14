"""The throughput benchmark's smoke run: its contenders measured (all of them on both layouts with
--all), and its instruments agree with each other (proxy byte counts against the blob listing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]


ALL = ("limit", "pipeline", "pipeline-batched", "seed", "notebook", "pipeline-local", "notebook-local")
# The default suite runs the HyTEST layout (144-hour chunks: its own assertion below) with one
# contender of each kind; --all adds the PC layout and the batched pipeline and networked notebook.
SUITE = ("limit", "pipeline", "seed", "pipeline-local", "notebook-local")


@pytest.mark.parametrize("layouts, contenders", [(("hytest",), SUITE),
                                                 pytest.param(("pc", "hytest"), ALL, marks=pytest.mark.slow)],
                         ids=["hytest", "pc+hytest"])
def test_throughput_smoke_run(tmp_path, layouts, contenders):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--smoke", "--layouts",
                           ",".join(layouts), "--contenders", ",".join(contenders), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {(r["layout"], r["contender"]): r for r in json.loads((tmp_path / "throughput.json").read_text())["rows"]}
    assert set(rows) == {(layout, c) for layout in layouts for c in contenders}
    for layout in layouts:  # a copy on local disk: nothing crosses the network
        assert rows[(layout, "pipeline-local")]["bytes_fetched"] == rows[(layout, "notebook-local")]["bytes_fetched"] == 0
    for layout, variant in [(layout, v) for layout in layouts for v in ("pipeline", "pipeline-batched") if v in contenders]:
        limit, pipeline = rows[(layout, "limit")], rows[(layout, variant)]
        # The limit fetches exactly the needed keys once: the proxy's count must equal the listing's sizes.
        assert limit["bytes_fetched"] == limit["bytes_needed"]
        assert pipeline["bytes_needed"] <= pipeline["bytes_fetched"] <= 1.1 * pipeline["bytes_needed"]
        assert pipeline["peak_rss_mb"] > 50 and pipeline["overhead_s"] > 0
        assert set(pipeline["phases_s"]) == {"startup", "open", "read", "aggregate", "write", "verify"}
        # the run's prefetcher read the store's time axis (HyTEST's float32 XTIME minutes, the PC's
        # datetime64) and fetched ahead: fetched / needed above is with it on
        assert pipeline["prefetched_chunks"] > 0, (layout, variant)
    # Two days inside one 144-hour chunk: whoever reads per day without the cache fetches it twice.
    assert rows[("hytest", "seed")]["bytes_fetched"] > 1.8 * rows[("hytest", "seed")]["bytes_needed"]
    table = (tmp_path / "throughput.md").read_text()
    assert all(table.count(f"\n| {layout} |") == len(contenders) for layout in layouts)
