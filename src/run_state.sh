# Sourced by the operator scripts: where a run from this checkout records its process group,
# and whether that group is still alive and really ours (a PID can be reused by the system).

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_DIR="${CONUS404_LOG_DIR:-$PROJECT_ROOT/logs}"  # ./run_pipeline.sh --log-dir DIR moves it
PID_FILE="$LOG_DIR/pipeline.pid"

# Prints the process group id of the active run of this checkout; returns 1 if there is none.
active_run_pgid() {
    [ -f "$PID_FILE" ] || return 1
    local pgid
    pgid="$(tr -dc '0-9' < "$PID_FILE")"
    [ -n "$pgid" ] || return 1
    kill -0 -- "-$pgid" 2>/dev/null || return 1
    # Our runs are started from this checkout: the leader's command line names its folder.
    if [ -r "/proc/$pgid/cmdline" ] && ! tr '\0' ' ' < "/proc/$pgid/cmdline" | grep -qF "$PROJECT_ROOT"; then
        return 1
    fi
    echo "$pgid"
}
