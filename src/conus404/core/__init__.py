"""The small core every layer may use: the grid, the variable catalogue and its day windows, the
known endpoints, errors, atomic files, processes, failure kinds, disk space.

Nothing here imports another part of the package: configuration, sources, the day, outputs and
the run all build on these modules, never the other way round.
"""
