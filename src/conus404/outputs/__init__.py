"""What a run writes. A day's outputs share one interface (``day_output``): the daily file
(``daily_file``, ``field_chunks``, ``cf``), the hourly file (``hourly_file``), the day's basin and
gauge series (``series/``) and the remote copy (``remote_output``). Made from the days: the series
tables, the Zarr store (``zarr_output``), the roll-ups (``rollups``), verification records
(``verified_files``) and quick looks (``quick_look``).
"""
