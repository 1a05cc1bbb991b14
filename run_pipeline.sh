#!/usr/bin/env bash
# Start the CONUS404 daily pipeline (see ./run_pipeline.sh --help for every flag).
# On first use, or when requirements.txt changes, it creates .venv from the pinned requirements
# (and installs the emulator's node packages for --demo) by itself.
#   ./run_pipeline.sh                 background run with src/config.py (nohup; prints the tail -f command)
#   ./run_pipeline.sh --demo          a short run against the local emulator, in the foreground
#   ./run_pipeline.sh --foreground    the same run as the default, waiting for its result
#   ./run_pipeline.sh --status        is a run active, and how far is the configured range
#   ./run_pipeline.sh --check-source  before a long pull: does the source meet every assumption? (exit 0/1)
#   ./run_pipeline.sh --setup-only    only prepare .venv and the emulator's packages
set -euo pipefail
export CONUS404_CALLER_DIR="$PWD"  # relative paths on the command line are the user's, not src/'s
cd "$(dirname "$0")"
source src/setup_env.sh
if [ "${1:-}" = "--setup-only" ]; then
    ensure_venv_and_emulator_packages
    echo "Setup complete: .venv and the emulator's node packages are ready."
    exit 0
fi
needs_emulator=0
for arg in "$@"; do
    if [ "$arg" = "--demo" ]; then needs_emulator=1; fi
done
if [ "$needs_emulator" = 1 ]; then ensure_venv_and_emulator_packages; else ensure_venv; fi
cd src
exec "$PYTHON" -m conus404.run.launcher "$@"
