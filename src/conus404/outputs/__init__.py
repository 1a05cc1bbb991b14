"""What a run writes: the daily file (``daily_file``, ``field_chunks``, ``cf``), the hourly file,
the basin and gauge series (``series``, ``series_tables``, ``series_weights``, ``polygons``, ``points``),
the Zarr store, the roll-ups, remote copies, verification records and quick looks.
"""
