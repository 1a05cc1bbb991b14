#!/usr/bin/env bash
# Delete the processed daily files so the next run starts from nothing.
#   ./clean_data.sh                       list every file it would delete, then ask
#   ./clean_data.sh --yes                 delete without asking
#   ./clean_data.sh --data-dir DIR        clean DIR (default: DATA_DIR of src/config.py, as the pipeline reads it)
#   ./clean_data.sh --include-quarantine  also delete daily/quarantine/ (files that failed verification)
#   ./clean_data.sh --include-pictures    also delete pictures/ (the overview and quick looks)
#   ./clean_data.sh --help
# Deletes unprocessed/daily (with its .verified.jsonl), unprocessed/24hours, the roll-ups
# (unprocessed/monthly, annual, water_year), polygons/ and points/ (series, weights) and .chunk_cache;
# a --zarr store lives where you put it and is not touched. Keeps the ledgers, the QC reports (qc/),
# the day logs (logs/) and, unless asked, quarantine/ and pictures/. Refuses while a run is active.
set -euo pipefail
caller_dir="$PWD"
cd "$(dirname "$0")"
assume_yes=0
include_quarantine=0
include_pictures=0
data_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -y|--yes) assume_yes=1 ;;
        --include-quarantine) include_quarantine=1 ;;
        --include-pictures) include_pictures=1 ;;
        --data-dir)
            [ $# -ge 2 ] && [ -n "$2" ] || { echo "clean_data.sh: --data-dir needs a folder" >&2; exit 2; }
            case "$2" in /*) data_dir="$2" ;; *) data_dir="$caller_dir/$2" ;; esac
            shift ;;
        *) echo "clean_data.sh: unknown option '$1' (see ./clean_data.sh --help)" >&2; exit 2 ;;
    esac
    shift
done

configured_data_dir() {
    # DATA_DIR of src/config.py, relative to the project folder as for the pipeline
    local python=python3
    [ -x .venv/bin/python ] && python="$PWD/.venv/bin/python"
    (cd src && "$python" -c '
import os, sys
try:
    import config
except Exception as exc:
    sys.exit(f"clean_data.sh: src/config.py cannot be loaded: {type(exc).__name__}: {exc}")
path = os.path.expanduser(str(getattr(config, "DATA_DIR", "data")))
print(path if os.path.isabs(path) else os.path.join(os.path.dirname(os.getcwd()), path))')
}

if [ -z "$data_dir" ]; then
    data_dir="$(configured_data_dir)" || exit 2
fi
source src/run_state.sh
if pgid="$(active_run_pgid)"; then
    echo "clean_data.sh: a pipeline run is active (process group $pgid); stop it first with ./kill_all.sh" >&2
    exit 1
fi
# a run with another log folder holds the data folder's lock (src/conus404/run/run_lock.py)
if [ -f "$data_dir/.pipeline.lock" ] && command -v flock >/dev/null && ! flock -n "$data_dir/.pipeline.lock" true; then
    echo "clean_data.sh: a pipeline run is active on $data_dir; stop it first with ./kill_all.sh --log-dir ITS_LOG_FOLDER" >&2
    exit 1
fi

files=()
subs=(unprocessed/daily unprocessed/24hours unprocessed/monthly unprocessed/annual unprocessed/water_year polygons points .chunk_cache)
[ "$include_pictures" -eq 1 ] && subs+=(pictures)
for sub in "${subs[@]}"; do
    [ -d "$data_dir/$sub" ] || continue
    if [ "$sub" = unprocessed/daily ] && [ "$include_quarantine" -ne 1 ]; then
        mapfile -t -O "${#files[@]}" files < <(find "$data_dir/$sub" -path "$data_dir/$sub/quarantine" -prune -o \( -type f -o -type l \) -print | sort)
    else
        mapfile -t -O "${#files[@]}" files < <(find "$data_dir/$sub" \( -type f -o -type l \) -print | sort)
    fi
done
kept=0
if [ "$include_quarantine" -ne 1 ] && [ -d "$data_dir/unprocessed/daily/quarantine" ]; then
    kept="$(find "$data_dir/unprocessed/daily/quarantine" -type f | wc -l)"
fi
if [ "${#files[@]}" -eq 0 ]; then
    echo "Nothing to delete under $data_dir (unprocessed/daily, unprocessed/24hours, .chunk_cache)."
    exit 0
fi
echo "This deletes ${#files[@]} file(s) under $data_dir:"
shown=0
for f in "${files[@]}"; do
    if [ "$shown" -lt 50 ]; then echo "  ${f#"$data_dir"/}"; fi
    shown=$((shown + 1))
done
[ "${#files[@]}" -gt 50 ] && echo "  ... and $(( ${#files[@]} - 50 )) more"
[ "$kept" -gt 0 ] && echo "Kept: $kept quarantined file(s) in unprocessed/daily/quarantine/ (--include-quarantine deletes them too)."
if [ "$include_pictures" -ne 1 ] && [ -d "$data_dir/pictures" ] && [ -n "$(ls -A "$data_dir/pictures")" ]; then
    echo "Kept: the pictures in pictures/ (--include-pictures deletes them too)."
fi
if [ "$assume_yes" -ne 1 ]; then
    if [ ! -t 0 ]; then
        echo "clean_data.sh: not asking without a terminal; rerun with --yes to confirm" >&2
        exit 1
    fi
    read -r -p "Delete them? [y/N] " answer
    case "$answer" in y|Y|yes|YES) ;; *) echo "Nothing deleted."; exit 0 ;; esac
fi
deleted=0
for f in "${files[@]}"; do
    rm -f -- "$f" && deleted=$((deleted + 1))
done
for sub in unprocessed/24hours unprocessed/monthly unprocessed/annual unprocessed/water_year polygons points .chunk_cache unprocessed/daily; do  # folders left empty (the kept ones stay)
    [ -d "$data_dir/$sub" ] && find "$data_dir/$sub" -mindepth 1 -type d -empty -delete
done
echo "Deleted $deleted file(s)."
