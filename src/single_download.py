#!/usr/bin/env python3
"""Process one UTC day: download, aggregate, validate, publish. See --help."""

import sys

from conus404.launch.worker_cli import main

if __name__ == "__main__":
    sys.exit(main())
