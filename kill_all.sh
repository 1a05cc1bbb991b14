#!/usr/bin/env bash
# Emergency stop: ends the pipeline run started from this checkout (driver, retry pass and every
# day worker) by its process group, recorded in logs/pipeline.pid. Never touches other processes.
#   ./kill_all.sh            stop the run (SIGTERM, then SIGKILL after 20 s)
#   ./kill_all.sh --help
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "kill_all.sh: unknown option '$1' (see ./kill_all.sh --help)" >&2; exit 2 ;;
esac
source src/run_state.sh
if ! pgid="$(active_run_pgid)"; then
    if [ -f "$PID_FILE" ]; then
        echo "No pipeline run from this checkout is active; removing the stale $PID_FILE."
        rm -f "$PID_FILE"
    else
        echo "No pipeline run from this checkout is active; nothing to stop."
    fi
    exit 0
fi
echo "Stopping the pipeline run (process group $pgid) ..."
kill -TERM -- "-$pgid" 2>/dev/null || true
for _ in $(seq 1 40); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.5
done
if kill -0 -- "-$pgid" 2>/dev/null; then
    echo "It did not stop within 20 s; sending SIGKILL."
    kill -KILL -- "-$pgid" 2>/dev/null || true
fi
rm -f "$PID_FILE"
echo "Stopped. Finished daily files are kept; a new run resumes where this one ended."
