"""Quick looks from a demo run's output: src/quick_look.py draws a real PNG map of the expected
size, and --overview leaves the run's overview image; bad files and fields are one line, exit 2."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[1]
DEMO_FIELDS = 9  # the demo's 9 variables (config.py asks for no extra statistics)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One ./run_pipeline.sh --demo --overview for the module (the demo's own test, and the maps)."""
    tmp = tmp_path_factory.mktemp("demo")
    scratch = tmp / "tmp"  # the demo's emulator works in a temporary folder: ours, to find it by
    scratch.mkdir()
    result = subprocess.run(
        [str(ROOT / "run_pipeline.sh"), "--demo", "--overview", "--data-dir", str(tmp / "data"), "--log-dir", str(tmp / "logs")],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(scratch)},
    )
    return tmp, scratch, result


@pytest.fixture(scope="module")
def demo(demo_run):
    tmp, _, result = demo_run
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp


def test_the_demo_runs_end_to_end_and_stops_its_emulator(demo_run):
    from tests.conftest import processes_mentioning

    tmp, scratch, result = demo_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo: 3 daily file(s)" in result.stdout
    assert len(list((tmp / "data" / "unprocessed" / "daily").glob("conus404_daily_*.nc"))) == 3
    assert processes_mentioning(f"{scratch}/conus404-demo-") == [], "the demo's emulator was stopped"


def quick_look(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "src" / "quick_look.py"), *args], capture_output=True, text=True,
                          timeout=120)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's own IHDR chunk (read here byte by byte)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def assert_a_real_picture(path: Path, size: tuple[int, int], coloured_share: float) -> None:
    assert png_size(path) == size
    with Image.open(path) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        assert image.size == size
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    assert len(np.unique(pixels, axis=0)) > 50, "more than a blank canvas"
    # axes, text and background are grey; the data are drawn in colour
    coloured = (pixels.max(axis=1) - pixels.min(axis=1)) > 30
    assert coloured.mean() > coloured_share, f"only {coloured.mean():.1%} of the pixels are in colour"


def test_a_map_of_a_demo_file_is_a_real_png_of_the_expected_size(demo, tmp_path):
    daily = demo / "data" / "unprocessed" / "daily" / "conus404_daily_20210102.nc"
    result = quick_look(str(daily))
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip())
    assert out == demo / "data" / "pictures" / "conus404_daily_20210102_T2.png"  # with the data, not among the files
    assert_a_real_picture(out, (900, 600), 0.15)  # 9 x 6 inches at 100 dpi; the map fills a good part

    chosen = quick_look(str(daily), "--variable", "PREC_ACC_NC", "--out", str(tmp_path / "rain.png"))
    assert chosen.returncode == 0, chosen.stderr
    assert_a_real_picture(tmp_path / "rain.png", (900, 600), 0.05)  # mostly white (dry) to blue
    assert not list(tmp_path.glob(".tmp-*")), "written through a temporary sibling"


def test_the_overview_has_one_panel_per_field(demo):
    overview = demo / "data" / "pictures" / "overview_20210101_20210103.png"
    assert_a_real_picture(overview, (900, int(round((1.6 * DEMO_FIELDS + 1.0) * 100))), 0.002)  # thin blue lines
    assert f"overview of 3 daily file(s): {overview}" in (demo / "logs" / "retry_run.log").read_text()


@pytest.mark.parametrize(("make", "args", "message"), [
    (lambda tmp: tmp / "missing.nc", (), "is not a file"),
    (lambda tmp: (tmp / "notes.nc").write_text("not netcdf") and tmp / "notes.nc", (), "cannot read"),
    (None, ("--variable", "T3"), "has no field 'T3'; it has ACSNOM"),
])
def test_bad_files_and_fields_are_one_line_and_exit_2(demo, tmp_path, make, args, message):
    path = make(tmp_path) if make else demo / "data" / "unprocessed" / "daily" / "conus404_daily_20210101.nc"
    result = quick_look(str(path), *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_a_long_colour_bar_label_is_wrapped_to_fit_the_figure():
    from conus404.outputs import quick_look

    plt = quick_look._pyplot()
    long_name = ("daily total (over the UTC day) of Accumulated downwelling shortwave radiation flux at bottom, "
                 "accumulated since last bucket_J (1.0e9 J m-2) reset")  # the length of the seed's ACSWDNB label

    def label_extent(label: str) -> tuple[float, float, float]:
        fig, ax = plt.subplots(figsize=quick_look.MAP_SIZE_IN, dpi=quick_look.DPI)
        try:
            mesh = ax.pcolormesh(np.arange(4.0), np.arange(3.0), np.ones((3, 4)), shading="nearest")
            bar = fig.colorbar(mesh, ax=ax, label=label, shrink=0.85)
            fig.canvas.draw()
            box = bar.ax.yaxis.label.get_window_extent()
            return box.y0, box.y1, fig.bbox.height
        finally:
            plt.close(fig)

    y0, y1, height = label_extent(f"{long_name} (J m-2)")
    assert y0 < 0 or y1 > height, "the check sees an unwrapped label run off the figure"
    y0, y1, height = label_extent(quick_look.colour_bar_label(long_name, "J m-2"))
    assert 0 <= y0 and y1 <= height
