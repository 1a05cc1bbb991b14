#!/usr/bin/env bash
# Emergency stop: ends the pipeline run started from this checkout (driver, retry pass and every
# day worker) by its process group, recorded in logs/pipeline.pid. Never touches other processes.
#   ./kill_all.sh                  stop the run (SIGTERM, then SIGKILL after the grace period)
#   ./kill_all.sh --log-dir DIR    the run was started with --log-dir DIR
#   ./kill_all.sh --grace SECONDS  grace period before SIGKILL (default 20)
#   ./kill_all.sh --help
set -euo pipefail
caller_dir="$PWD"
cd "$(dirname "$0")"
grace=20
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --log-dir) [ $# -ge 2 ] || { echo "kill_all.sh: --log-dir needs a folder" >&2; exit 2; }; case "$2" in /*) CONUS404_LOG_DIR="$2" ;; *) CONUS404_LOG_DIR="$caller_dir/$2" ;; esac; export CONUS404_LOG_DIR; shift ;;
        --grace) [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "kill_all.sh: --grace needs whole seconds" >&2; exit 2; }; grace="$2"; shift ;;
        *) echo "kill_all.sh: unknown option '$1' (see ./kill_all.sh --help)" >&2; exit 2 ;;
    esac
    shift
done
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
for _ in $(seq 1 $((grace * 2))); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.5
done
if kill -0 -- "-$pgid" 2>/dev/null; then
    echo "It did not stop within $grace s; sending SIGKILL."
    kill -KILL -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 1 40); do  # until the killed processes are gone (reaped), not merely signalled
        kill -0 -- "-$pgid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 -- "-$pgid" 2>/dev/null; then
        echo "kill_all.sh: process group $pgid still exists 10 s after SIGKILL (see ps -e -o pid,pgid,stat,args)" >&2
        exit 1
    fi
fi
rm -f "$PID_FILE"
# Temporaries of writers stopped mid-write, anywhere in the data folder (daily and hourly files, series
# parts, roll-ups, ledgers, QC reports; conus404/config/data_folder.py); the run's chunk cache is not walked.
data_dir="$(cat "$LOG_DIR/pipeline.data_dir" 2>/dev/null || echo "$PROJECT_ROOT/data")"
if [ -d "$data_dir" ]; then
    find "$data_dir" -path "$data_dir/.chunk_cache" -prune -o -type f -name '.tmp-*' -exec rm -f {} +
fi
echo "Stopped process group $pgid (driver, retry pass and day workers)."
echo "Finished daily files are kept; a new run resumes where this one ended."
