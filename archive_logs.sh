#!/usr/bin/env bash
# Move every log under logs/ into a new timestamped folder archive/logs_YYYYmmdd_HHMMSS/.
#   ./archive_logs.sh
#   ./archive_logs.sh --help
# The runs' logs only: each data folder keeps its own day logs, QC reports and pictures (DATA_DIR/logs,
# qc, pictures), which stay with its data. Refuses while a run from this checkout is active.
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "archive_logs.sh: unknown option '$1' (see ./archive_logs.sh --help)" >&2; exit 2 ;;
esac
source src/run_state.sh
if pgid="$(active_run_pgid)"; then
    echo "archive_logs.sh: a pipeline run is active (process group $pgid); archive after it ends" >&2
    exit 1
fi
mapfile -t entries < <(find "$LOG_DIR" -mindepth 1 -maxdepth 1 ! -name .gitkeep ! -name pipeline.pid | sort)
if [ "${#entries[@]}" -eq 0 ]; then
    echo "Nothing to archive: $LOG_DIR is empty."
    exit 0
fi
dest="archive/logs_$(date -u +%Y%m%d_%H%M%S)"
while [ -e "$dest" ]; do dest="${dest}_1"; done
mkdir -p "$dest"
mv -- "${entries[@]}" "$dest/"
echo "Moved ${#entries[@]} item(s) from $LOG_DIR to $dest/"
