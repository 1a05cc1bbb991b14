# Sourced by ./run_pipeline.sh and ./run_tests.sh: make .venv and the emulator's node packages
# match the pinned requirements and lock file, installing only what changed.
# Needs: python3 (3.11+) with venv; npm only for the emulator (tests, --demo).

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$PROJECT_ROOT/.venv"
PYTHON="$VENV/bin/python"
EMULATOR_NODE_DIR="$PROJECT_ROOT/src/conus404/emulator"
NODE_CACHE="${CONUS404_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/conus404}/node-modules"
UV_VERSION="0.13.8"  # the installer (from PyPI, into .venv); pip is used if it cannot run

_say() { echo "[setup] $*" >&2; }

_hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

ensure_venv() {
    local want stamp="$VENV/.requirements.sha256"
    want="$(_hash_of "$PROJECT_ROOT/requirements.txt" "$PROJECT_ROOT/requirements-dev.txt")"
    if [ -x "$PYTHON" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        compile_project_sources
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        _say "error: python3 is not installed; install Python 3.11 or newer"; return 1
    fi
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        _say "error: $(python3 -V 2>&1) is too old; Python 3.11 or newer is needed"; return 1
    fi
    if [ ! -x "$PYTHON" ]; then
        _say "creating $VENV"
        # without pip (5 s of ensurepip): uv installs everything; pip is added only if uv cannot run
        python3 -m venv --without-pip "$VENV" || { _say "error: python3 -m venv failed (on Debian: apt-get install python3-venv)"; return 1; }
    fi
    _say "installing the pinned Python packages (requirements.txt changed or first run)"
    # uv installs the same pins in seconds where pip takes minutes; pip remains the fallback.
    # Bytecode is compiled at install time, as pip does: where PYTHONDONTWRITEBYTECODE is set,
    # nothing would ever write it and every process would compile every module again (3 x slower).
    # Packages' own test suites, the big packages nothing here imports and the AWS services moto
    # emulates that the S3 server never loads are left out (half the compile time; a module
    # imported anyway is compiled in memory, as without).
    local skip='/(tests?|sympy|cfnlint|networkx|pip|setuptools)/'
    skip+='|/moto/(?!(__init__|backend_index|backends|cloudwatch|core|events|iam|moto_api|moto_server|s3|s3bucket_path|server|settings|sts|utilities)\b)'
    if _install_uv && "$VENV/bin/uv" pip install --quiet --native-tls --python "$PYTHON" \
            -r "$PROJECT_ROOT/requirements-dev.txt"; then
        "$PYTHON" -m compileall -q -j 0 -x "$skip" \
            "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
    else
        _say "uv was not usable here: installing with pip instead (a few minutes)"
        "$PYTHON" -m ensurepip --upgrade >/dev/null 2>&1 || true
        if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$PROJECT_ROOT/requirements-dev.txt"; then
            _say "error: pip could not install requirements-dev.txt (see the messages above)"; return 1
        fi
    fi
    echo "$want" > "$stamp"
    compile_project_sources
}

compile_project_sources() {
    # The project's own modules get bytecode as the packages do (see ensure_venv): where
    # PYTHONDONTWRITEBYTECODE is set, every process of a run (launcher, driver, template, retry
    # pass) would compile them again, about 0.5 s of CPU each. Only after a source has changed.
    local stamp="$VENV/.project-bytecode" changed
    if [ -f "$stamp" ]; then
        changed="$(find "$PROJECT_ROOT/src" "$PROJECT_ROOT/tests" -name node_modules -prune -o \
            -name '*.py' -newer "$stamp" -print -quit 2>/dev/null)"
        [ -z "$changed" ] && return 0
    fi
    touch "$stamp.new"  # before compiling: a file edited meanwhile is compiled next time
    local package="$PROJECT_ROOT/src/conus404"
    # -l, one level per folder: the emulator's node_modules hold thousands of files, none Python
    "$PYTHON" -m compileall -q -l -j 0 "$PROJECT_ROOT/src" "$package" "$package"/*/ \
        "$PROJECT_ROOT/tests" >/dev/null 2>&1 || true
    mv -f "$stamp.new" "$stamp" 2>/dev/null || true
}

_install_uv() {
    # into .venv: by the system's pip when it can install for another interpreter, else by the venv's own
    [ -x "$VENV/bin/uv" ] && "$VENV/bin/uv" --version 2>/dev/null | grep -q "$UV_VERSION" && return 0
    python3 -m pip --python "$PYTHON" install --quiet --disable-pip-version-check "uv==$UV_VERSION" 2>/dev/null && return 0
    "$PYTHON" -m ensurepip --upgrade >/dev/null 2>&1 \
        && "$PYTHON" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" 2>/dev/null
}

ensure_emulator_packages() {
    # Azurite's packages (60,000 files) are installed once per lock file into a per-user cache,
    # as uv keeps Python wheels, and each clone links to them; where that cache cannot be
    # written, they are installed into the clone itself.
    local want stamp="$EMULATOR_NODE_DIR/node_modules/.package-lock.sha256"
    want="$(_hash_of "$EMULATOR_NODE_DIR/package-lock.json")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        _say "error: npm is not installed; the local emulator needs Node.js 20+ and npm"; return 1
    fi
    local cached="$NODE_CACHE/$want" tmp
    if [ ! -f "$cached/node_modules/.package-lock.sha256" ] && mkdir -p "$NODE_CACHE" 2>/dev/null \
        && tmp="$(mktemp -d "$NODE_CACHE/.tmp-XXXXXX" 2>/dev/null)"; then
        _say "installing the emulator's node packages (npm ci, about a minute; once per lock file, kept in $NODE_CACHE)"
        cp "$EMULATOR_NODE_DIR/package.json" "$EMULATOR_NODE_DIR/package-lock.json" "$tmp/"
        if ! (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2); then
            rm -rf "$tmp"; _say "error: npm ci failed (see the messages above)"; return 1
        fi
        echo "$want" > "$tmp/node_modules/.package-lock.sha256"
        mv -T "$tmp" "$cached" 2>/dev/null || rm -rf "$tmp"  # another setup finished first: use its copy
    fi
    rm -rf "$EMULATOR_NODE_DIR/node_modules"  # an older install, or a link to one
    if [ -f "$cached/node_modules/.package-lock.sha256" ]; then
        ln -s "$cached/node_modules" "$EMULATOR_NODE_DIR/node_modules"
        return 0
    fi
    _say "installing the emulator's node packages into $EMULATOR_NODE_DIR (npm ci; about a minute)"
    if ! (cd "$EMULATOR_NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2); then
        _say "error: npm ci failed in $EMULATOR_NODE_DIR (see the messages above)"; return 1
    fi
    echo "$want" > "$stamp"
}

ensure_venv_and_emulator_packages() {
    # npm ci (about a minute, the first time) runs while the Python packages install
    local npm_pid venv_status=0 npm_status=0
    ensure_emulator_packages &
    npm_pid=$!
    ensure_venv || venv_status=$?
    wait "$npm_pid" || npm_status=$?
    [ "$venv_status" -eq 0 ] && [ "$npm_status" -eq 0 ]
}
