#!/usr/bin/env bash
# Delete the processed daily files so the next run starts from nothing.
#   ./clean_data.sh                  list what would be deleted and ask before deleting
#   ./clean_data.sh --yes            delete without asking
#   ./clean_data.sh --data-dir DIR   clean DIR/unprocessed instead of data/unprocessed
#   ./clean_data.sh --help
# Refuses while a pipeline run from this checkout is active. Logs and ledgers are kept.
# Also empties DIR/.chunk_cache, which an interrupted run may have left behind.
set -euo pipefail
cd "$(dirname "$0")"
assume_yes=0
data_dir="data"
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -y|--yes) assume_yes=1 ;;
        --data-dir) [ $# -ge 2 ] || { echo "clean_data.sh: --data-dir needs a folder" >&2; exit 2; }; data_dir="$2"; shift ;;
        *) echo "clean_data.sh: unknown option '$1' (see ./clean_data.sh --help)" >&2; exit 2 ;;
    esac
    shift
done
source src/run_state.sh
if pgid="$(active_run_pgid)"; then
    echo "clean_data.sh: a pipeline run is active (process group $pgid); stop it first with ./kill_all.sh" >&2
    exit 1
fi
targets=()
for sub in unprocessed/daily unprocessed/24hours .chunk_cache; do
    [ -d "$data_dir/$sub" ] && targets+=("$data_dir/$sub")
done
count=0
for t in "${targets[@]}"; do count=$((count + $(find "$t" -mindepth 1 -maxdepth 1 | wc -l))); done
if [ "$count" -eq 0 ]; then
    echo "Nothing to delete: no files under $data_dir/unprocessed/daily or 24hours."
    exit 0
fi
echo "This deletes $count file(s) under: ${targets[*]}"
if [ "$assume_yes" -ne 1 ]; then
    if [ ! -t 0 ]; then
        echo "clean_data.sh: not asking without a terminal; rerun with --yes to confirm" >&2
        exit 1
    fi
    read -r -p "Delete them? [y/N] " answer
    case "$answer" in y|Y|yes|YES) ;; *) echo "Nothing deleted."; exit 0 ;; esac
fi
for t in "${targets[@]}"; do find "$t" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; done
echo "Deleted $count file(s)."
