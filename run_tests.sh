#!/usr/bin/env bash
# Run the test suite. On first use (or when requirements/lock files change) it sets up .venv
# and the emulator's node packages itself.
#   ./run_tests.sh               the representative, fast set (what CI runs), on 3 pytest-xdist workers
#   ./run_tests.sh --all         also the slow and full-grid tests
#   ./run_tests.sh [pytest args] e.g. -k emulator, tests/test_settings.py, -n 0 (no workers)
# The 15 slowest tests are listed at the end; CONUS404_TEST_WORKERS sets the number of workers.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
source src/setup_env.sh
ensure_venv_and_emulator_packages
marker=(-m "not slow")
if [ "${1:-}" = "--all" ]; then
    marker=()
    shift
fi
# One test file per worker at a time (--dist loadfile: a module's emulator is started once), the
# slow files first (tests/conftest.py orders them) so that neither worker is left with a long tail.
exec "$PYTHON" -m pytest -n "${CONUS404_TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder --durations 15 \
    "${marker[@]}" "$@"
