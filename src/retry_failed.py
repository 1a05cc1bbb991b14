#!/usr/bin/env python3
"""Retry the transient failures of the driver's run. See --help (./run_pipeline.sh starts it)."""

import sys

from conus404.retry import main

if __name__ == "__main__":
    sys.exit(main())
