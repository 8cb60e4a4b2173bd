#!/usr/bin/env bash
# Issue 18's third figure: the enrollment rate while an administrator browses the web pages,
# against the rate without, taking turns in one run on one machine. capfd serves phones on
# 127.0.0.1 and the web administration on its own listener (--admin-listen); capf-phone's load
# generator enrolls PHONES phones at concurrency CONC; during the "browsing" runs one client
# requests a page every PAUSE seconds (the device list, a later page, the CAPF pane, reports,
# the API's paged list; a new connection each, as curl makes), busier than a person clicking.
# PAUSE=0 requests them back to back: then the client's own TLS handshakes take CPU from the
# two-core machine's server and load generator.
#
# Usage: [PAUSE=0.5] scripts/web-browse-load.sh [ROUNDS] [PHONES] [CONC]   (defaults 3 1000 32)
# Needs: cargo build --release --example capfd --example capf-phone --example capfctl; curl.
set -euo pipefail
rounds=${1:-3}; phones=${2:-1000}; conc=${3:-32}; pause=${PAUSE:-0.5}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release/examples
for b in capfd capf-phone capfctl; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: cargo build --release --example $b" >&2; exit 1; }
done
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }

one_run() { # label browse(0|1): prints "label rate"
  local label=$1 browse=$2 work pid bpid=
  work=$(mktemp -d /tmp/web-browse.XXXX)
  local data=$work/data password='browse password 0123456789'
  printf '%s\n' "$password" | "$bin/capfctl" admin add --data "$data" admin --role admin >/dev/null
  local cap=$(port) web=$(port)
  "$bin/capfd" --data "$data" --listen "127.0.0.1:$cap" --admin-listen "127.0.0.1:$web" >"$work/capfd.log" 2>&1 & pid=$!
  wait_port "$cap"; wait_port "$web"
  local url=https://localhost:$web
  c() { curl -sS --cacert "$data/web-cert.pem" --resolve "localhost:$web:127.0.0.1" "$@"; }
  if [ "$browse" = 1 ]; then
    c -c "$work/cookies" -H 'content-type: application/json' \
      --data "{\"name\":\"admin\",\"password\":\"$password\"}" "$url/api/login" >/dev/null
    ( while :; do
        for path in /devices "/devices?page=5" /devices/SEP000000000010 /reports "/api/devices?limit=100&offset=200"; do
          c -o /dev/null -b "$work/cookies" "$url$path" 2>/dev/null || true
          sleep "$pause"
        done
      done ) & bpid=$!
  fi
  local out
  out=$("$bin/capf-phone" --server "127.0.0.1:$cap" --trust "$data/capf.pem" --phones "$phones" \
        --concurrency "$conc" --provision "$data" --server-pid "$pid" 2>&1)
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null; wait "$bpid" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$label $(echo "$out" | grep -o '[0-9.]* enrollments/s' | head -1 | cut -d' ' -f1)"
  rm -rf "$work"
}

results=$(mktemp)
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then one_run quiet 0; one_run browsing 1; else one_run browsing 1; one_run quiet 0; fi
done | tee "$results"
python3 - "$results" <<'PY'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
quiet = [float(r) for l, r in runs if l == "quiet"]
browsing = [float(r) for l, r in runs if l == "browsing"]
print(f"quiet: {quiet} enrollments/s; browsing: {browsing}")
print(f"median browsing/quiet: {statistics.median(browsing) / statistics.median(quiet):.2f}x;"
      f" spread of the quiet runs: {min(quiet) / max(quiet):.2f}-1.00")
PY
rm -f "$results"
