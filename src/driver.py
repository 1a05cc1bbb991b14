#!/usr/bin/env python3
"""Run the whole date range, one worker per day. See --help (./run_pipeline.sh starts it)."""

import sys

from conus404.launch.launch_template import prestart_unless_declined

prestart_unless_declined(sys.argv[1:])  # its imports overlap with the driver's own (stdlib only so far)

from conus404.core.processes import exit_without_teardown  # noqa: E402
from conus404.run.driver import main  # noqa: E402

if __name__ == "__main__":
    exit_without_teardown(main())
