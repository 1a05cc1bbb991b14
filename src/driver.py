#!/usr/bin/env python3
"""Run the whole date range, one worker per day. See --help (./run_pipeline.sh starts it)."""

import sys

from conus404.driver import main

if __name__ == "__main__":
    sys.exit(main())
