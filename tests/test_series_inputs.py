"""Polygon and point files as users bring them (series_weights.prepare over polygons/points):
every format and CRS gives the same weights, the cache is reused and follows the file's content,
and each refusal is one ConfigurationError naming the file and the offending feature (unit tests
on a synthetic grid of the real projection; no emulator)."""

from __future__ import annotations

import datetime as dt
import json
import os
import zipfile
from pathlib import Path

import geopandas
import numpy as np
import pyproj
import pytest
from shapely.geometry import Point, Polygon

from conus404.config.settings import Settings, assemble
from conus404.core import grid
from conus404.core.exceptions import ConfigurationError
from conus404.outputs.series import weights as series_weights
from conus404.outputs.series.polygons import conus404_crs

LAT, LON = grid.grid_latlon(30, 40)  # the CONUS404 domain with cells of ~140 km
BASINS = {  # lon/lat rings: a Colorado-sized basin, a non-convex one, one smaller than a cell
    "06": [(-108.0, 37.2), (-103.1, 37.0), (-102.2, 40.8), (-104.6, 41.0), (-106.9, 39.9)],
    "10": [(-96.0, 40.0), (-92.0, 40.3), (-92.5, 44.5), (-94.0, 42.0), (-96.3, 44.0)],
    "17": [(-120.05, 45.0), (-119.95, 45.0), (-119.95, 45.1), (-120.05, 45.1)],
}


def settings(tmp: Path, **kwargs) -> Settings:
    return assemble(start_date=dt.date(2021, 1, 1), end_date=dt.date(2021, 1, 2), variables=("T2",),
                    data_dir=tmp / "data", **kwargs)


def geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def feature(props: dict, ring) -> dict:
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in [*ring, ring[0]]]]}}


def basins_geojson(tmp: Path, name: str = "basins.geojson") -> Path:
    return geojson(tmp / name, [feature({"huc": key, "area": i}, ring) for i, (key, ring) in enumerate(BASINS.items())])


def prepare(tmp: Path, **kwargs):
    s = settings(tmp, **kwargs)
    return series_weights.prepare(s.series, s.outputs.data_dir, s.request.bbox, LAT, LON)


def cached(s: Settings):
    return series_weights.cached(s.series, s.outputs.data_dir, s.request.bbox)


def as_dict(target) -> dict[tuple[str, int, int], float]:
    w = target.weights
    return {(target.ids[t], int(j), int(i)): float(a) for t, j, i, a in zip(w.target, w.row, w.col, w.area, strict=True)}


def test_pyproj_and_the_grids_own_projection_agree():
    """The polygons are projected with pyproj, the store's grid is fitted with conus404.core.grid:
    a datum shift between the two would move every basin."""
    x, y = pyproj.Transformer.from_crs("EPSG:4326", conus404_crs(), always_xy=True).transform(LON, LAT)
    gx, gy = grid.xy_from_latlon(LAT, LON)
    assert np.abs(x - gx).max() < 0.01 and np.abs(y - gy).max() < 0.01


def test_geojson_zipped_shapefile_and_geopackage_in_other_crss_give_the_same_weights(tmp_path):
    reference = prepare(tmp_path / "a", polygons=basins_geojson(tmp_path), polygon_id="huc")[0]
    assert reference.ids == list(BASINS) and reference.name == "basins"
    assert (reference.extra["polygon_coverage"][0] == pytest.approx(1.0))
    frame = geopandas.read_file(tmp_path / "basins.geojson")
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    frame.to_crs("EPSG:5070").to_file(shp_dir / "basins.shp")  # CONUS Albers, metres
    with zipfile.ZipFile(tmp_path / "basins.zip", "w") as archive:
        for part in shp_dir.iterdir():
            archive.write(part, part.name)
    frame.to_crs("EPSG:3857").to_file(tmp_path / "basins.gpkg", driver="GPKG")
    for path in (tmp_path / "basins.zip", tmp_path / "basins.gpkg", shp_dir / "basins.shp"):
        other = prepare(tmp_path / path.suffix, polygons=path, polygon_id="huc")[0]
        assert other.name == "basins" and other.ids == reference.ids
        got, want = as_dict(other), as_dict(reference)
        assert set(got) == set(want), path
        assert all(got[k] == pytest.approx(want[k], rel=1e-6, abs=1.0) for k in want), path


def test_the_weights_cache_is_reused_and_follows_the_files_content(tmp_path):
    path = basins_geojson(tmp_path)
    first = prepare(tmp_path, polygons=path, polygon_id="huc")[0]
    cache = series_weights.cache_path(tmp_path / "data", "polygon", path)
    made = cache.stat().st_mtime_ns
    again = prepare(tmp_path, polygons=path, polygon_id="huc")[0]
    assert cache.stat().st_mtime_ns == made and again.key == first.key, "the same file: the cache is used as it is"
    assert cached(settings(tmp_path, polygons=path, polygon_id="huc"))[0].key == first.key
    rings = dict(BASINS, **{"06": [(lon + 1.0, lat) for lon, lat in BASINS["06"]]})
    geojson(path, [feature({"huc": k}, r) for k, r in rings.items()])
    assert cached(settings(tmp_path, polygons=path, polygon_id="huc")) is None, "a changed file is not trusted"
    moved = prepare(tmp_path, polygons=path, polygon_id="huc")[0]
    assert moved.key != first.key and as_dict(moved) != as_dict(first)


def test_a_box_restricts_the_weights_and_reports_coverage(tmp_path):
    from conus404.core.subset import parse_bbox

    two = geojson(tmp_path / "two.geojson", [feature({"huc": k}, BASINS[k]) for k in ("06", "10")])
    target = prepare(tmp_path, polygons=two, polygon_id="huc", bbox=parse_bbox("-106,36,-90,46"))[0]
    coverage = dict(zip(target.ids, target.extra["polygon_coverage"][0], strict=True))
    assert 0 < coverage["06"] < 1 and coverage["10"] == pytest.approx(1.0)
    with pytest.raises(ConfigurationError, match=r"basins.geojson: 06, 17 lie wholly outside the box's window"):
        prepare(tmp_path, polygons=basins_geojson(tmp_path), polygon_id="huc", bbox=parse_bbox("-100,36,-90,46"))


def test_a_bowtie_is_repaired_and_a_ring_without_area_is_refused(tmp_path):
    bowtie = [(-100.0, 35.0), (-96.0, 39.0), (-96.0, 35.0), (-100.0, 39.0)]
    target = prepare(tmp_path, polygons=geojson(tmp_path / "b.geojson", [feature({"id": "x"}, bowtie)]),
                     polygon_id="id")[0]
    assert target.weights.covered_area()[0] > 0
    flat = [(-100.0, 35.0), (-98.0, 37.0), (-100.0, 35.0)]  # there and back: no area in any projection
    with pytest.raises(ConfigurationError, match=r"feature flat is not a valid polygon .* cannot be repaired"):
        prepare(tmp_path, polygons=geojson(tmp_path / "f.geojson", [feature({"id": "flat"}, flat)]), polygon_id="id")


REFUSALS = {
    "missing file": (lambda tmp: tmp / "nowhere.geojson", "huc", r"nowhere.geojson: no such file"),
    "unreadable": (lambda tmp: (tmp / "bad.geojson").write_text("{not json") and tmp / "bad.geojson", "huc",
                   r"bad.geojson cannot be read as a vector file"),
    "no features": (lambda tmp: geojson(tmp / "empty.geojson", []), "huc", r"(empty.geojson holds no features|cannot be read)"),
    "no id field given": (basins_geojson, None, r"say which field names the features with --polygon-id \(its fields: huc, area\)"),
    "unknown id field": (basins_geojson, "HUC8", r"--polygon-id 'HUC8' is not a field of .*basins.geojson \(its fields: huc, area\)"),
    "ids missing": (lambda tmp: geojson(tmp / "n.geojson", [feature({"huc": None}, BASINS["06"]), feature({"huc": "10"}, BASINS["10"])]),
                    "huc", r"feature\(s\) 0 of .*n.geojson have no huc"),
    "duplicate ids": (lambda tmp: geojson(tmp / "d.geojson", [feature({"huc": "06"}, r) for r in BASINS.values()]),
                      "huc", r"--polygon-id 'huc' is not unique in .*d.geojson: 06 appears more than once"),
    "wholly off the grid": (lambda tmp: geojson(tmp / "eu.geojson", [feature({"huc": "06"}, BASINS["06"]),
                                                                     feature({"huc": "rhine"}, [(6, 47), (9, 47), (8, 51)])]),
                            "huc", r"eu.geojson: rhine lies wholly outside the source's grid"),
    "not a polygon": (lambda tmp: geojson(tmp / "p.geojson", [{"type": "Feature", "properties": {"huc": "g1"},
                                                                "geometry": {"type": "Point", "coordinates": [-100, 40]}}]),
                      "huc", r"feature g1 is a Point, not a polygon \(points go to --points\)"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_bad_polygon_file_is_refused_in_one_line_naming_the_problem(tmp_path, case):
    make, id_field, message = REFUSALS[case]
    with pytest.raises(ConfigurationError, match=message) as caught:
        prepare(tmp_path, polygons=make(tmp_path), polygon_id=id_field)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "data" / "polygons" / ".weights").exists() or not any(
        (tmp_path / "data" / "polygons" / ".weights").iterdir()), "nothing is cached for a refused file"


def test_a_shapefile_without_a_crs_is_refused(tmp_path):
    frame = geopandas.GeoDataFrame({"huc": ["06"]}, geometry=[Polygon(BASINS["06"])], crs=None)
    frame.to_file(tmp_path / "nocrs.shp")
    assert not (tmp_path / "nocrs.prj").exists()
    with pytest.raises(ConfigurationError, match=r"nocrs.shp declares no coordinate reference system"):
        prepare(tmp_path, polygons=tmp_path / "nocrs.shp", polygon_id="huc")


def write_points(tmp: Path, text: str) -> Path:
    path = tmp / "gauges.csv"
    path.write_text(text)
    return path


def test_points_from_a_csv_or_a_vector_file_hold_their_cells(tmp_path):
    csv = write_points(tmp_path, "id,lon,lat\n06752000,-105.0,40.6\n 05587450 ,-90.6,39.0\n")
    target = prepare(tmp_path, points=csv)[0]
    assert target.ids == ["06752000", "05587450"], "ids are text, leading zeros kept, spaces trimmed"
    x, y = grid.xy_from_latlon(np.array([40.6, 39.0]), np.array([-105.0, -90.6]))
    gx, gy = grid.xy_from_latlon(LAT, LON)
    for k in range(2):  # the cell whose square holds the point: nearest centre along each axis of the plane
        col = int(np.argmin(np.abs(gx[0] - x[k])))
        row = int(np.argmin(np.abs(gy[:, 0] - y[k])))
        assert (target.extra["cell_row"][0][k], target.extra["cell_col"][0][k]) == (row, col)
        assert target.extra["cell_lat"][0][k] == pytest.approx(LAT[row, col])
    frame = geopandas.GeoDataFrame({"site": ["06752000", "05587450"]},
                                   geometry=[Point(-105.0, 40.6), Point(-90.6, 39.0)], crs="EPSG:4326")
    frame.to_crs("EPSG:5070").to_file(tmp_path / "gauges.gpkg", driver="GPKG")
    other = prepare(tmp_path / "v", points=tmp_path / "gauges.gpkg", point_id="site")[0]
    assert list(other.extra["cell_row"][0]) == list(target.extra["cell_row"][0])
    assert list(other.extra["cell_col"][0]) == list(target.extra["cell_col"][0])


@pytest.mark.parametrize("text, message", [
    ("site,lon,lat\na,-100,40\n", r"gauges.csv lacks the column\(s\) id: a CSV of points has the columns id,lon,lat"),
    ("id,lon,lat\na,-100,95\n", r"point a has lat '?95'?, not a number within ±90 degrees"),
    ("id,lon,lat\na,-100,forty\n", r"point a has lat 'forty', not a number"),
    ("id,lon,lat\na,-100,40\na,-101,41\n", r"the id\(s\) a appear more than once"),
    ("id,lon,lat\na,-100,40\nparis,2.35,48.85\n", r"gauges.csv: paris lies outside the source's grid"),
    ("id,lon,lat\n", r"gauges.csv holds no points"),
])
def test_each_bad_point_file_is_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        prepare(tmp_path, points=write_points(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_the_cache_is_trusted_only_for_the_file_it_was_made_from(tmp_path):
    path = basins_geojson(tmp_path)
    prepare(tmp_path, polygons=path, polygon_id="huc")
    os.utime(path, ns=(1, 1))  # same content, other time: the content is checked again, and matches
    assert cached(settings(tmp_path, polygons=path, polygon_id="huc")) is None
    prepare(tmp_path, polygons=path, polygon_id="huc")
    assert cached(settings(tmp_path, polygons=path, polygon_id="huc")) is not None
    assert cached(settings(tmp_path, polygons=path, polygon_id="area")) is None, "another id field"
