"""Reading a day's records one variable ahead (unit tests on a real local Zarr store; values
checked against the arrays written to it)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import xarray as xr

from conus404.day.day_reader import DayReader, as_slice, reading_order


@pytest.fixture()
def store(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {name: rng.normal(size=(48, 6, 7)).astype(np.float32) for name in ("T2", "TD2", "Q2")}
    ds = xr.Dataset({name: (("time", "south_north", "west_east"), a) for name, a in arrays.items()})
    path = tmp_path / "store.zarr"
    ds.to_zarr(path, encoding={name: {"chunks": (1, 6, 7)} for name in arrays})
    return xr.open_zarr(path, chunks=None), arrays


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("read-ahead")]


def test_records_come_in_order_reading_one_ahead(store):
    ds, arrays = store
    wanted = [(("T2",), np.arange(0, 24)), (("TD2", "Q2"), np.arange(24, 48)), (("Q2",), np.array([5, 1, 9]))]
    timings: dict[str, float] = {}
    reader = DayReader(ds, wanted, timings=timings)
    first = reader.records(0)
    assert read_ahead_threads(), "the next variable is read while this one is aggregated"
    np.testing.assert_array_equal(first["T2"], arrays["T2"][:24])
    second = reader.records(1)
    np.testing.assert_array_equal(second["TD2"], arrays["TD2"][24:])
    np.testing.assert_array_equal(second["Q2"], arrays["Q2"][24:])
    third = reader.records(2)
    np.testing.assert_array_equal(third["Q2"], arrays["Q2"][[5, 1, 9]])
    assert not read_ahead_threads(), "the read-ahead thread ends with the day's last read"
    assert set(timings) == {"read"}


def test_a_day_that_fails_mid_read_leaves_no_thread(store):
    ds, _ = store
    reader = DayReader(ds, [(("T2",), np.arange(3)), (("NOPE",), np.arange(3))])
    reader.records(0)
    with pytest.raises(KeyError):
        reader.records(1)
    reader.close()
    assert not read_ahead_threads()


def test_without_read_ahead_no_thread_is_started(store):
    ds, arrays = store
    reader = DayReader(ds, [(("T2",), np.arange(2)), (("Q2",), np.arange(2))], read_ahead=False)
    np.testing.assert_array_equal(reader.records(0)["T2"], arrays["T2"][:2])
    assert not read_ahead_threads()
    np.testing.assert_array_equal(reader.records(1)["Q2"], arrays["Q2"][:2])


@pytest.mark.parametrize("positions, expected", [
    ([3, 4, 5], slice(3, 6, 1)),
    ([0, 2, 4, 6], slice(0, 7, 2)),
    ([5, 1, 9], None),
    ([7], None),
])
def test_evenly_spaced_positions_are_read_as_a_slice(positions, expected):
    got = as_slice(np.array(positions))
    if expected is None:
        assert isinstance(got, np.ndarray) and list(got) == positions
    else:
        assert got == expected


@pytest.mark.parametrize("count, processes", [(4, 2), (5, 2), (6, 3), (10, 4), (3, 8)])
def test_neighbouring_days_start_on_different_variables(count, processes):
    slots = min(count, processes)
    orders = [reading_order(count, day, processes) for day in range(730_000, 730_000 + slots)]
    for order in orders:
        assert sorted(order) == list(range(count)), "every variable is read once"
        assert all((b - a) % count == 1 for a, b in zip(order, order[1:], strict=False)), "a rotation of the request's order"
    firsts = [order[0] for order in orders]
    assert len(set(firsts)) == slots, f"the {slots} days running at once start apart: {firsts}"
    # and as far apart as the variables allow: each starts about count/slots after the previous one
    ring = sorted(firsts)
    gaps = sorted((b - a) % count for a, b in zip(ring, [*ring[1:], ring[0] + count], strict=True))
    assert gaps[0] >= count // slots


@pytest.mark.parametrize("count, processes", [(1, 4), (4, 1), (0, 2)])
def test_nothing_to_spread_keeps_the_request_order(count, processes):
    assert reading_order(count, 738_000, processes) == list(range(count))
    assert reading_order(count, 738_001, processes) == list(range(count))
