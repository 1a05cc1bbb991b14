#!/usr/bin/env bash
# Run the test suite. On first use (or when requirements/lock files change) it sets up .venv
# and the emulator's node packages itself.
#   ./run_tests.sh               the representative, fast set (what CI runs), on 3 pytest-xdist workers
#   ./run_tests.sh --all         also the slow and full-grid tests
#   ./run_tests.sh [pytest args] e.g. -k emulator, tests/test_settings.py, -n 0 (no workers)
# The package's import layers are checked first (lint-imports: pyproject.toml [tool.importlinter]).
# The 15 slowest tests are listed at the end; CONUS404_TEST_WORKERS sets the number of workers.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
source src/setup_env.sh
ensure_venv_and_emulator_packages
# Layers that only point down (docs/design.md): an import that breaks them fails the suite at once.
if ! layers="$(cd "$PROJECT_ROOT" && PYTHONPATH=src "$VENV/bin/lint-imports" --no-cache 2>&1)"; then
    printf '%s\n' "$layers" | sed -n '/^Contracts: /,$p' >&2
    echo "run_tests.sh: an import breaks the package's layers (see above; pyproject.toml [tool.importlinter])" >&2
    exit 1
fi
printf '%s\n' "$layers" | grep -E ' (KEPT|BROKEN)$'
marker=(-m "not slow")
if [ "${1:-}" = "--all" ]; then
    marker=()
    shift
fi
# One test file per worker at a time (--dist loadfile: a module's emulator is started once), the
# slow files first (tests/conftest.py orders them) so that neither worker is left with a long tail.
exec "$PYTHON" -m pytest -n "${CONUS404_TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder --durations 15 \
    "${marker[@]}" "$@"
