#!/usr/bin/env bash
# Start the CONUS404 daily pipeline. On first use (or when requirements.txt changes) it creates
# .venv from the pinned requirements by itself.
#   ./run_pipeline.sh               run with the settings in src/config.py
#   ./run_pipeline.sh --setup-only  only prepare .venv and the emulator's packages
#   ./run_pipeline.sh --help
set -euo pipefail
cd "$(dirname "$0")"
setup_only=0
case "${1:-}" in
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --setup-only) setup_only=1 ;;
    "") ;;
    *) echo "run_pipeline.sh: unknown option '$1' (see ./run_pipeline.sh --help)" >&2; exit 2 ;;
esac
source src/setup_env.sh
ensure_venv
ensure_emulator_packages
echo "Setup complete: .venv and the emulator's node packages are ready."
if [ "$setup_only" -eq 1 ]; then
    exit 0
fi
if [ ! -f src/driver.py ]; then
    echo "run_pipeline.sh: this version has no download driver yet (src/driver.py); nothing was downloaded." >&2
    echo "The local emulator can already be tried: see 'Running against the local emulator' in readme.md." >&2
    exit 1
fi
