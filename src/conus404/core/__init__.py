"""The small core every layer may use: the grid, the variable catalogue, errors, atomic files, processes.

Nothing here imports another part of the package: configuration, sources, the day, outputs and
the run all build on these modules, never the other way round.
"""
