"""How a day's worker process starts and stops: the executors family (a child process here,
forked from a warm launch template, or a Dask task) and the worker's command line.
"""
