#!/usr/bin/env bash
# The web administration's figures of BENCHMARKS.md (issue 18): with N devices in the store,
# the device list page (/devices, a page of 100) and the API's list (GET /api/devices: a page
# with limit/offset, and the default page of 500 without them) answered at p99 <= 200 ms; and a CSV of N rows uploaded through the API
# (POST /api/bulk/insert) in <= 15 s.
#
# Usage: scripts/web-bench.sh [DEVICES] [REQUESTS] [PROFILE]   (defaults 100000 200 release)
# Needs: `cargo build --release --example capf-web --example capfctl` (PROFILE=debug for a
# quick check of the script itself with a small count), curl, python3.
# Each run is a fresh data directory; the CSV is inserted first (timed), then the lists.
set -euo pipefail
devices=${1:-100000}; requests=${2:-200}; profile=${3:-release}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/$profile/examples
for b in capf-web capfctl; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: cargo build --$profile --example capf-web --example capfctl" >&2; exit 1; }
done
work=$(mktemp -d /tmp/web-bench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }

data=$work/data
password='bench password 0123456789'
printf '%s\n' "$password" | "$bin/capfctl" admin add --data "$data" bench --role admin >/dev/null
token=$("$bin/capfctl" admin token create --data "$data" bench --label bench | tail -1)
p=$(port)
"$bin/capf-web" --data "$data" --listen "127.0.0.1:$p" 2>"$work/capf-web.log" & pids+=($!)
wait_port "$p"
url=https://127.0.0.1:$p
cacert=$data/web-cert.pem
c() { curl -sS --fail-with-body --cacert "$cacert" --resolve "localhost:$p:127.0.0.1" "$@"; }
url=https://localhost:$p

# The CSV: one install row per device, a unique name each (SEP + 12 hex digits).
python3 - "$devices" >"$work/phones.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("device_name,description,device_pool,model,operation,auth_string")
for i in range(n):
    print(f"SEP{i:012X},bench phone {i},Pool{i % 20},Cisco 8865,install,{1000 + i % 9000}")
PY
echo "CSV: $devices rows, $(stat -c %s "$work/phones.csv") bytes"
start=$(date +%s.%N)
c -H "Authorization: Bearer $token" --data-binary "@$work/phones.csv" "$url/api/bulk/insert" >"$work/insert.json"
end=$(date +%s.%N)
python3 - "$start" "$end" "$work/insert.json" <<'PY'
import json, sys
added = json.load(open(sys.argv[3]))["added"]
secs = float(sys.argv[2]) - float(sys.argv[1])
print(f"CSV upload through the API: {added} devices added in {secs:.2f} s (target <= 15 s)")
PY

# A session cookie for the pages.
c -c "$work/cookies" -H 'content-type: application/json' \
  --data "{\"name\":\"bench\",\"password\":\"$password\"}" "$url/api/login" >/dev/null

measure() { # name, then curl arguments: REQUESTS timed requests (after 5 to warm up)
  local name=$1; shift
  local times=$work/times.$RANDOM
  for _ in 1 2 3 4 5; do c -o /dev/null "$@"; done
  for _ in $(seq "$requests"); do c -o /dev/null -w '%{time_total}\n' "$@"; done >"$times"
  python3 - "$name" "$times" <<'PY'
import sys
t = sorted(float(x) * 1000 for x in open(sys.argv[2]))
pick = lambda q: t[min(len(t) - 1, int(q * len(t)))]
print(f"{sys.argv[1]}: n={len(t)} p50={pick(0.50):.1f} ms p99={pick(0.99):.1f} ms max={t[-1]:.1f} ms (target p99 <= 200 ms)")
PY
}
measure "device list page (/devices)" -b "$work/cookies" "$url/devices"
measure "device list page, filtered (/devices?pool=Pool7)" -b "$work/cookies" "$url/devices?pool=Pool7"
measure "device list page 500 (/devices?page=500)" -b "$work/cookies" "$url/devices?page=500"
measure "API page (GET /api/devices?limit=100&offset=50000)" -H "Authorization: Bearer $token" "$url/api/devices?limit=100&offset=50000"
measure "API list, default page (GET /api/devices, 500 devices)" -H "Authorization: Bearer $token" "$url/api/devices"
last=$(( devices > 1000 ? devices - 1000 : 0 ))
measure "API list, largest page (GET /api/devices?limit=1000&offset=$last)" -H "Authorization: Bearer $token" "$url/api/devices?limit=1000&offset=$last"
measure "API list, filtered (GET /api/devices?pool=Pool7, its first 500)" -H "Authorization: Bearer $token" "$url/api/devices?pool=Pool7"
