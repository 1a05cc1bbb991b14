#!/usr/bin/env python3
"""Draw a PNG map of a daily file's field. See --help."""

import sys

from conus404.run.quick_look_cli import main

if __name__ == "__main__":
    sys.exit(main())
