#!/usr/bin/env python3
"""Retry the transient failures of the driver's run. See --help (./run_pipeline.sh starts it)."""

from conus404.core.processes import exit_without_teardown
from conus404.run.retry import main

if __name__ == "__main__":
    exit_without_teardown(main())
