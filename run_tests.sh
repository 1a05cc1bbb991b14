#!/usr/bin/env bash
# Run the test suite. On first use (or when requirements/lock files change) it sets up .venv
# and the emulator's node packages itself.
#   ./run_tests.sh               the representative, fast set (what CI runs)
#   ./run_tests.sh --all         also the slow and full-grid tests
#   ./run_tests.sh [pytest args] e.g. -k emulator, tests/test_settings.py
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
source src/setup_env.sh
ensure_venv
ensure_emulator_packages
marker=(-m "not slow")
if [ "${1:-}" = "--all" ]; then
    marker=()
    shift
fi
exec "$PYTHON" -m pytest "${marker[@]}" "$@"
