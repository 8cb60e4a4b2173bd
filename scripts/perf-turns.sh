#!/usr/bin/env bash
# Compares two capfd builds by turns in one run (issue 19): release builds of a baseline commit
# and of this checkout, run alternately for several rounds, each run against a fresh data
# directory (capfd's generated RSA-2048 CAPF certificate), with capf-phone's load generator
# (this checkout's, for both: RSA-2048 phone keys, --server-pid for the server's CPU and memory)
# on the same machine. Prints every run, then the ratios new/base per round and their medians.
#
#   scripts/perf-turns.sh [BASE]          BASE: a commit (default: the merge base with main,
#                                         which is right on the branch; once it is merged, name
#                                         the commit before the merge, e.g. 7094865)
#
# Environment: ROUNDS (4), PHONES (2000, at concurrency 32), PHONES1 (300, at concurrency 1),
# IDLE (10000 idle sessions mid-install for the memory figure; 0 skips it), IDLE_PHONES (1000,
# enrolled while they are held), OUT (/tmp/capf-perf-turns: sources, one release target shared
# by both builds, binaries, logs), BASE_BIN / NEW_BIN (directories that already hold capfd and
# capf-phone: skip that build), FEATURES (cargo features of the new build, default: its
# defaults), PORT (13807). Run it on a quiet machine: the figures are only as good as that.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-$(git -C "$here" merge-base HEAD main)}
ROUNDS=${ROUNDS:-4}
PHONES=${PHONES:-2000}
PHONES1=${PHONES1:-300}
IDLE=${IDLE:-10000}
IDLE_PHONES=${IDLE_PHONES:-1000}
OUT=${OUT:-/tmp/capf-perf-turns}
PORT=${PORT:-13807}
mkdir -p "$OUT"
results=$OUT/results.txt
: >"$results"

build() { # build LABEL SRC-DIR [cargo args...] -> $OUT/LABEL/{capfd,capf-phone}
    local label=$1 src=$2
    shift 2
    echo "== building $label in $src" >&2
    (cd "$src" && CARGO_TARGET_DIR=$OUT/target CARGO_INCREMENTAL=0 \
        cargo build --release --example capfd --example capf-phone "$@" >&2)
    mkdir -p "$OUT/$label"
    cp "$OUT/target/release/examples/capfd" "$OUT/target/release/examples/capf-phone" "$OUT/$label/"
    echo "$OUT/$label"
}

if [ -z "${BASE_BIN:-}" ]; then
    rm -rf "$OUT/base-src" && mkdir -p "$OUT/base-src"
    git -C "$here" archive "$base" | tar -x -C "$OUT/base-src"
    BASE_BIN=$(build base "$OUT/base-src" --locked)
fi
if [ -z "${NEW_BIN:-}" ]; then
    NEW_BIN=$(build new "$here" ${FEATURES:+--features "$FEATURES"})
fi
phone=$NEW_BIN/capf-phone
echo "base: $base ($BASE_BIN)  new: $(git -C "$here" rev-parse --short HEAD) ($NEW_BIN)"

start_capfd() { # start_capfd BIN DIR -> sets pid
    "$1/capfd" --data "$2" --listen 127.0.0.1:$PORT >"$2.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        [ -f "$2/capf.pem" ] && (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
        sleep 0.1
    done
    echo "capfd did not start: $(cat "$2.log")" >&2
    return 1
}

run() { # run LABEL BIN CONC PHONES -> one line in $results
    local label=$1 bin=$2 conc=$3 phones=$4 d out
    d=$(mktemp -d "$OUT/run.XXXX")
    start_capfd "$bin" "$d"
    out=$("$phone" --server 127.0.0.1:$PORT --trust "$d/capf.pem" --phones "$phones" \
        --concurrency "$conc" --provision "$d" --server-pid "$pid" 2>&1) || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local rate mean p99 cpu cs
    rate=$(grep -o '[0-9.]* enrollments/s' <<<"$out" | head -1 | cut -d' ' -f1)
    mean=$(grep -o 'latency mean [0-9.]* ms' <<<"$out" | cut -d' ' -f3)
    p99=$(grep -o 'p99 [0-9.]* ms (' <<<"$out" | head -1 | cut -d' ' -f2)
    cpu=$(grep -o '[0-9.]* ms CPU per enrollment' <<<"$out" | cut -d' ' -f1)
    cs=$(grep -o '[0-9.]* voluntary' <<<"$out" | cut -d' ' -f1)
    if [ -z "$rate" ] || [ -z "$cpu" ]; then
        echo "run $label c=$conc failed:" >&2; echo "$out" | tail -5 >&2
    fi
    echo "$round $label c=$conc rate=${rate:-0} mean=${mean:-0} p99=${p99:-0} cpu=${cpu:-0} cs=${cs:-0}" | tee -a "$results"
    rm -rf "$d" "$d.log"
}

idle() { # idle LABEL BIN -> kB per idle session
    local label=$1 bin=$2 d out
    d=$(mktemp -d "$OUT/idle.XXXX")
    start_capfd "$bin" "$d"
    out=$("$phone" --server 127.0.0.1:$PORT --trust "$d/capf.pem" --phones "$IDLE_PHONES" \
        --concurrency 32 --idle "$IDLE" --idle-secs 600 --provision "$d" --server-pid "$pid" 2>&1) || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local kb
    kb=$(grep -o '[0-9.]* kB each' <<<"$out" | cut -d' ' -f1)
    [ -n "$kb" ] || { echo "idle run $label failed:" >&2; echo "$out" | tail -5 >&2; }
    echo "$round $label idle kB=${kb:-0}" | tee -a "$results"
    rm -rf "$d" "$d.log"
}

for round in $(seq "$ROUNDS"); do
    # Alternate which build goes first, so neither always runs on the warmer machine.
    if [ $((round % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
    echo "== round $round (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    for label in $order; do
        bin=$BASE_BIN; [ "$label" = new ] && bin=$NEW_BIN
        run "$label" "$bin" 32 "$PHONES"
        run "$label" "$bin" 1 "$PHONES1"
        [ "$IDLE" -gt 0 ] && idle "$label" "$bin"
    done
done

# Ratios new/base per round, then the median over the rounds; p99/mean per build.
awk '
function val(s,  a) { split(s, a, "="); return a[2] + 0 }
function median(arr, n,  i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
$3 == "c=32" || $3 == "c=1" { r = $1; b = $2; c = $3
    rate[r, b, c] = val($4); mean[r, b, c] = val($5); p99[r, b, c] = val($6); cpu[r, b, c] = val($7); rounds[r] = 1 }
$3 == "idle" { idle[$1, $2] = val($4) }
END {
    printf "\n%-5s %-14s %-14s %-16s %-16s %-16s %-12s\n", "round", "rate c32 n/b", "cpu c32 n/b", "p99/mean c32 b,n", "p99/mean c1 b,n", "cpu c32 b,n ms", "idle kB b,n"
    n = 0
    for (r in rounds) order[++n] = r + 0
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (order[j] < order[i]) { t = order[i]; order[i] = order[j]; order[j] = t }
    for (i = 1; i <= n; i++) { r = order[i]
        rr[i] = rate[r, "base", "c=32"] ? rate[r, "new", "c=32"] / rate[r, "base", "c=32"] : 0
        cr[i] = cpu[r, "base", "c=32"] ? cpu[r, "new", "c=32"] / cpu[r, "base", "c=32"] : 0
        pb = mean[r, "base", "c=32"] ? p99[r, "base", "c=32"] / mean[r, "base", "c=32"] : 0
        pn = mean[r, "new", "c=32"] ? p99[r, "new", "c=32"] / mean[r, "new", "c=32"] : 0
        qb = mean[r, "base", "c=1"] ? p99[r, "base", "c=1"] / mean[r, "base", "c=1"] : 0
        qn = mean[r, "new", "c=1"] ? p99[r, "new", "c=1"] / mean[r, "new", "c=1"] : 0
        printf "%-5d %-14.2f %-14.2f %-16s %-16s %-16s %-12s\n", r, rr[i], cr[i], sprintf("%.2f,%.2f", pb, pn), sprintf("%.2f,%.2f", qb, qn), sprintf("%.2f,%.2f", cpu[r, "base", "c=32"], cpu[r, "new", "c=32"]), sprintf("%.1f,%.1f", idle[r, "base"], idle[r, "new"])
    }
    printf "median rate ratio (new/base, c=32): %.2fx (target >= 1.7)\n", median(rr, n)
    printf "median CPU ratio (new/base, c=32): %.2fx (target <= 0.5)\n", median(cr, n)
}' "$results"
echo "crypto floor: cargo bench --bench crypto_floor (same machine, same run of the day); target: new CPU per enrollment <= 1.5x it"
