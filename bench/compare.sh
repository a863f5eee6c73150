#!/usr/bin/env bash
# Compare two source trees of Kindred with the same benchmark scripts (this folder's):
# ingest (two rates), identify, audiences and calculated attributes, each run interleaved
# before, after, before, after ... for --rounds rounds, then a summary per benchmark of
# its headline figures (median and min-max per side, and after/before of the medians).
#
#   bench/compare.sh [options] BEFORE_SRC AFTER_SRC LOG_DIR
#
# BEFORE_SRC and AFTER_SRC are src directories (each holds kindred/); a side's code is
# picked with PYTHONPATH=<its src>, which the servers the benchmarks start inherit. Each
# side gets stores of its own under DATA_DIR/before and DATA_DIR/after, seeded once with
# that side's code (the store schema differs between versions: a side never opens the
# other's store) and reused across rounds (every run sends request ids and users new to
# the store). LOG_DIR (new or empty) gets every run's output (<bench>__r<N>__<side>.out
# and .err), the seeds' logs, what was run (runs.txt), each tree's commit (trees.txt) and
# the summary (summary.txt).
#
# Options:
#   --rounds N         rounds per benchmark (default 3)
#   --only "B ..."     benchmarks to run, of: ingest identify audiences attributes
#   --profiles N       profiles seeded per side (default 100000)
#   --rates "R1 R2"    ingest rates in batches/s (default "1000 1400": on this 2-core machine
#                      genuine ingest saturates at ~1,750-1,800/s; add e.g. 3000 to measure
#                      the ceiling itself, as the achieved rate)
#   --smoke            tiny sizes, to check that everything runs (1 round unless given)
#   --data-dir DIR     where the stores go (default LOG_DIR/data)
#   --keep-data        keep the stores at the end (default: removed when every run passed)
# Environment: PYTHON (default: the repository's .venv/bin/python, else python3).
#
# Duration with the defaults, 3 rounds: about 40 minutes (seeding 2 x ~0.5 min; ingest
# 12 runs x ~80 s; identify 6 x ~45 s; audiences 6 x ~45-60 s; attributes 6 x ~70 s).
# --smoke: about 2 minutes. Needs wrk for identify.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCH_DIR")"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

rounds="" only="ingest identify audiences attributes" profiles=100000 rates="1000 1400"
smoke=0 data_dir="" keep_data=0
args=()
while (($#)); do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --profiles) profiles="$2"; shift 2 ;;
        --rates) rates="$2"; shift 2 ;;
        --smoke) smoke=1; shift ;;
        --data-dir) data_dir="$2"; shift 2 ;;
        --keep-data) keep_data=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
if ((${#args[@]} != 3)); then
    echo "usage: $0 [options] BEFORE_SRC AFTER_SRC LOG_DIR  (--help for more)" >&2
    exit 2
fi

declare -A SRC
SRC[before]="$(realpath "${args[0]}")"
SRC[after]="$(realpath "${args[1]}")"
LOG="$(realpath -m "${args[2]}")"
DATA="$(realpath -m "${data_dir:-$LOG/data}")"
SIDES=(before after)

for side in "${SIDES[@]}"; do
    [[ -f "${SRC[$side]}/kindred/__init__.py" ]] || { echo "${SRC[$side]}: no kindred/ in it" >&2; exit 2; }
done
if [[ "${SRC[before]}" == "${SRC[after]}" ]]; then echo "both sides are ${SRC[before]}" >&2; exit 2; fi
if [[ -d "$LOG" && -n "$(ls -A "$LOG")" ]]; then echo "$LOG is not empty" >&2; exit 2; fi
if ! "$PYTHON" -c 'import httpx, msgspec, psycopg, uvloop' 2>/dev/null; then
    echo "$PYTHON lacks the project's packages: set PYTHON to its venv's python" >&2; exit 2
fi
if [[ " $only " == *" identify "* ]] && ! command -v wrk >/dev/null; then
    echo "identify needs wrk: apt-get install -y wrk" >&2; exit 2
fi
if ((smoke)); then
    rounds="${rounds:-1}" profiles=3000 rates="200 400"
    INGEST=(--duration 5 --warmup 1 --connections 16)
    IDENTIFY=(--duration 3 --warmup 1)
    AUDIENCES=(--profiles 2000 --batches 500)
    ATTRIBUTES=(--profiles 2000 --history-batches 5000 --batches 500)
    TIMEOUT=300
else
    rounds="${rounds:-3}"
    INGEST=(--duration 60 --warmup 10)
    IDENTIFY=(--duration 30 --warmup 5)
    AUDIENCES=(--profiles 20000 --batches 10000)
    ATTRIBUTES=(--profiles 20000 --history-batches 100000 --batches 5000)
    TIMEOUT=900
fi

[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds: a positive number" >&2; exit 2; }
mkdir -p "$LOG"

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG/runs.txt"; }

# What each side is: a tree with uncommitted changes is a moving target.
for side in "${SIDES[@]}"; do
    src="${SRC[$side]}"
    if head="$(git -C "$src" rev-parse --short HEAD 2>/dev/null)"; then
        last="$(git -C "$src" log -1 --format='%h %s' -- . | cut -c1-90)"
        dirty="$(git -C "$src" status --porcelain -- . | wc -l)"
        echo "$side: $src, checkout at $head, last change to it $last," \
            "$dirty uncommitted changes under it" >>"$LOG/trees.txt"
        ((dirty == 0)) || log "WARNING: $side tree $src has $dirty uncommitted changes"
    else
        echo "$side: $src (not in git)" >>"$LOG/trees.txt"
    fi
done
log "python $PYTHON; rounds $rounds; benchmarks: $only; profiles $profiles; ingest rates $rates"
log "trees: $(tr '\n' ';' <"$LOG/trees.txt")"

failed=0
# run NAME SIDE ROUND -- COMMAND...: one benchmark run with that side's code
run() {
    local name="$1" side="$2" round="$3"
    shift 4
    local out="$LOG/${name}__r${round}__${side}"
    sync
    sleep 2 # the previous run's writes settle
    log "$name round $round $side (load average $(cut -d' ' -f1-3 /proc/loadavg)): $*"
    local started=$SECONDS rc=0
    # SIGINT first: the script stops the server it started (its `finally`)
    PYTHONPATH="${SRC[$side]}" timeout -s INT -k 30 "$TIMEOUT" "$PYTHON" "$@" \
        >"$out.out" 2>"$out.err" </dev/null || rc=$?
    log "  ... rc=$rc in $((SECONDS - started)) s"
    if ((rc != 0)); then
        failed=$((failed + 1))
        tail -n 5 "$out.err" | sed 's/^/    /' | tee -a "$LOG/runs.txt"
    fi
}

# Stores: one seed per side, copied for each benchmark that uses a seeded store.
needs_seed=0
for b in ingest identify audiences; do [[ " $only " == *" $b "* ]] && needs_seed=1; done
if ((needs_seed)); then
    for side in "${SIDES[@]}"; do
        rm -rf "${DATA:?}/$side"
        mkdir -p "$DATA/$side"
        log "seeding $profiles profiles for $side in $DATA/$side/seed"
        started=$SECONDS
        if ! PYTHONPATH="${SRC[$side]}" "$PYTHON" "$BENCH_DIR/seed.py" \
            --data-dir "$DATA/$side/seed" --profiles "$profiles" >"$LOG/seed__$side.log" 2>&1; then
            tail -n 5 "$LOG/seed__$side.log"
            log "seeding $side failed; see $LOG/seed__$side.log"
            exit 1
        fi
        log "  ... seeded in $((SECONDS - started)) s, $(du -sh "$DATA/$side/seed" | cut -f1)"
        mkdir -p "$DATA/$side/ingest"
        cp -a "$DATA/$side/seed" "$DATA/$side/ingest/sqlite" # ingest.py: <data dir>/sqlite
        cp -a "$DATA/$side/seed" "$DATA/$side/identify"
        cp -a "$DATA/$side/seed" "$DATA/$side/audiences"
    done
fi

for bench in $only; do
    case "$bench" in
        ingest)
            for rate in $rates; do
                for round in $(seq 1 "$rounds"); do
                    for side in "${SIDES[@]}"; do
                        run "ingest-$rate" "$side" "$round" -- "$BENCH_DIR/ingest.py" \
                            --data-dir "$DATA/$side/ingest" --profiles "$profiles" \
                            --rate "$rate" "${INGEST[@]}"
                    done
                done
            done
            ;;
        identify)
            for round in $(seq 1 "$rounds"); do
                for side in "${SIDES[@]}"; do
                    run identify "$side" "$round" -- "$BENCH_DIR/identify.py" \
                        --data-dir "$DATA/$side/identify" --users "$profiles" "${IDENTIFY[@]}"
                done
            done
            ;;
        audiences)
            for round in $(seq 1 "$rounds"); do
                for side in "${SIDES[@]}"; do
                    run audiences "$side" "$round" -- "$BENCH_DIR/audiences.py" \
                        --data-dir "$DATA/$side/audiences" "${AUDIENCES[@]}"
                done
            done
            ;;
        attributes)
            for round in $(seq 1 "$rounds"); do
                for side in "${SIDES[@]}"; do
                    run attributes "$side" "$round" -- "$BENCH_DIR/attributes.py" "${ATTRIBUTES[@]}"
                done
            done
            ;;
        *) log "unknown benchmark $bench"; failed=$((failed + 1)) ;;
    esac
done

# Each side's stores must be at its own tree's last migration: a server or script that ran
# the other side's code would have migrated them (or failed on them).
if ((needs_seed)); then
    for side in "${SIDES[@]}"; do
        want="$(find "${SRC[$side]}/kindred/storage/sqlite/migrations" -name '[0-9]*.sql' \
            -printf '%f\n' | sort | tail -n 1 | sed 's/_.*//; s/^0*//')"
        for db in "$DATA/$side"/{seed,ingest/sqlite,identify,audiences}/kindred.db; do
            have="$("$PYTHON" -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT max(version) FROM schema_migrations").fetchone()[0])' "$db")"
            if [[ "$have" != "$want" ]]; then
                log "PROBLEM: $db is at migration $have, $side's code has $want"
                failed=$((failed + 1))
            fi
        done
        log "$side stores at migration $want, as its code"
    done
fi

log "summary"
summary_rc=0
"$PYTHON" "$BENCH_DIR/compare_summary.py" "$LOG" --before "${SRC[before]}" \
    --after "${SRC[after]}" | tee "$LOG/summary.txt" || summary_rc=$?
if ((failed == 0 && summary_rc == 0 && !keep_data)); then
    rm -rf "${DATA:?}/before" "${DATA:?}/after"
    rmdir "$DATA" 2>/dev/null || true
else
    log "stores kept in $DATA"
fi
if ((failed || summary_rc)); then
    log "$failed runs or checks failed; see $LOG/runs.txt"
    exit 1
fi
log "all runs passed; logs in $LOG"
