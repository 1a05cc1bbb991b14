"""A stand-in for someone else's process that happens to be called single_download.py."""

import time

time.sleep(300)
