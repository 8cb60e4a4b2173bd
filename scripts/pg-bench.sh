#!/usr/bin/env bash
# The PostgreSQL figures of BENCHMARKS.md (issue 16), all in one run on one machine: enrollments/s
# and p99 at concurrency 32 for SQLite on one node, PostgreSQL on one node and PostgreSQL on two
# nodes; then what one enrollment costs PostgreSQL (statements, from the server's statement log,
# with provisioning and background reads: scripts/pg-statements.sh isolates the enrollments).
# Needs Debian's postgresql; run from the workspace root as root or as a user that may run
# initdb. Release builds: run by the coordinator, not in a helper's worktree.
#
#   bash scripts/pg-bench.sh [PHONES]      (default 2000)
#
# Then bulk insert of DEVICES devices (default 100,000) from a CSV and an update by query of all
# of them, through `capfctl --store postgres://...` (targets <= 10 s and <= 5 s, as for SQLite).
# SECTIONS=bulk runs only that; PROFILE=debug DEVICES=1000 checks the script quickly (figures
# come from release builds only).
set -eu
PHONES=${1:-2000}
DEVICES=${DEVICES:-100000}
SECTIONS=${SECTIONS:-enroll,bulk}
PROFILE=${PROFILE:-release}
W=/tmp/capf-pg-bench
PGPORT=55434
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
rm -rf "$W"; mkdir -p "$W"
if [ "$PROFILE" = release ]; then
    cargo build --release --example capfd --example capf-phone --example capfctl
    D=target/release/examples
else
    cargo build --example capfd --example capf-phone --example capfctl
    D=${CARGO_TARGET_DIR:-target}/debug/examples
fi

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$W"
as_pg "$BIN/initdb" -D "$W/pgdata" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
as_pg "$BIN/pg_ctl" -D "$W/pgdata" -l "$W/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $W -c max_connections=200" start
trap 'as_pg "$BIN/pg_ctl" -D "$W/pgdata" -m fast stop >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT
psql() { "$BIN/psql" -h 127.0.0.1 -p $PGPORT -U postgres -qAt "$@"; }
URL="postgres://postgres@127.0.0.1:$PGPORT"

wait_listen() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

case ",$SECTIONS," in *,enroll,*)
echo "== SQLite, one node"
$D/capfd --data "$W/sqlite" --listen 127.0.0.1:13811 >"$W/sqlite.log" 2>&1 & P=$!
wait_listen 13811
$D/capf-phone --server 127.0.0.1:13811 --trust "$W/sqlite/capf.pem" --phones "$PHONES" \
    --concurrency 32 --provision "$W/sqlite" --server-pid $P
kill $P; wait $P 2>/dev/null || true

echo "== PostgreSQL, one node"
psql -c "CREATE DATABASE one"
$D/capfd --data "$W/pg1" --store "$URL/one" --listen 127.0.0.1:13812 >"$W/pg1.log" 2>&1 & P=$!
wait_listen 13812
$D/capf-phone --server 127.0.0.1:13812 --trust "$W/pg1/capf.pem" --phones "$PHONES" \
    --concurrency 32 --provision "$W/pg1" --store "$URL/one" --server-pid $P
kill $P; wait $P 2>/dev/null || true

echo "== PostgreSQL, two nodes (16 + 16 phones at once, half the phones each)"
psql -c "CREATE DATABASE two"
mkdir -p "$W/n1" "$W/n2"; chmod 700 "$W/n1" "$W/n2"
# One cluster: the same CAPF certificate and authentication-string key on both nodes.
$D/capfd --data "$W/n1" --store "$URL/two" --check-config >/dev/null
$D/capfd --data "$W/n1" --store "$URL/two" --listen 127.0.0.1:13813 >"$W/n1.log" 2>&1 & P1=$!
wait_listen 13813
cp -p "$W/n1/capf.pem" "$W/n1/capf.key" "$W/n1/auth-string.key" "$W/n2/"
$D/capfd --data "$W/n2" --store "$URL/two" --listen 127.0.0.1:13814 >"$W/n2.log" 2>&1 & P2=$!
wait_listen 13814
HALF=$((PHONES / 2))
$D/capf-phone --server 127.0.0.1:13813 --trust "$W/n1/capf.pem" --phones $HALF --prefix SEPA \
    --concurrency 16 --provision "$W/n1" --store "$URL/two" >"$W/two-a.txt" &
A=$!
$D/capf-phone --server 127.0.0.1:13814 --trust "$W/n1/capf.pem" --phones $HALF --prefix SEPB \
    --concurrency 16 --provision "$W/n2" --store "$URL/two" >"$W/two-b.txt" &
B=$!
wait $A; wait $B
cat "$W/two-a.txt" "$W/two-b.txt"
echo "(the two-node rate is the sum of the two runs' rates; p99 the larger of the two)"

echo "== What one enrollment costs PostgreSQL (100 phones, statement log)"
psql -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
before=$(grep -c 'LOG:  \(statement\|execute\)' "$W/pg.log" || true)
$D/capf-phone --server 127.0.0.1:13813 --trust "$W/n1/capf.pem" --phones 100 --prefix SEPC \
    --concurrency 4 --provision "$W/n1" --store "$URL/two" >/dev/null
sleep 3  # let the provisioning's settings refresh pass
after=$(grep -c 'LOG:  \(statement\|execute\)' "$W/pg.log" || true)
psql -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
echo "statements for 100 provisionings + enrollments, with both nodes' background reads: $((after - before))"
echo "(each statement is one round trip: prepared once per connection, then Bind/Execute/Sync)"
kill $P1 $P2; wait $P1 $P2 2>/dev/null || true
;; esac

case ",$SECTIONS," in *,bulk,*)
echo "== Bulk insert of $DEVICES devices and update by query on PostgreSQL (capfctl --store)"
psql -c "CREATE DATABASE bulk"
mkdir -p "$W/bulk"; chmod 700 "$W/bulk"
# All nine columns, an install each, ten pools, half with an authentication string.
python3 - "$DEVICES" >"$W/devices.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("Device Name,Description,Device Pool,Model,Operation,Auth Mode,Auth String,Key Spec,Complete-By")
for i in range(n):
    auth = ("", f"{100000 + i % 900000}") if i % 2 == 0 else ("null-string", "")
    print(f"SEP{i:012X},phone {i},Pool{i % 10},Cisco 8865,install,{auth[0]},{auth[1]},rsa-only/2048/P-256,2099-12-31")
PY
ctl() { $D/capfctl "$@" --data "$W/bulk" --store "$URL/bulk"; }
ctl device add SEPFFFFFFFFFFFF >/dev/null  # the schema and the key file, outside the timing
t0=$(date +%s.%N)
ctl bulk insert "$W/devices.csv" >/dev/null
t1=$(date +%s.%N)
ctl bulk update --name 'SEP0*' --model 'Cisco 8865NR' --json >"$W/update.json"
t2=$(date +%s.%N)
ctl status --json >"$W/status.json"
python3 - "$t0" "$t1" "$t2" "$DEVICES" "$W/update.json" "$W/status.json" <<'PY'
import json, sys
t0, t1, t2, n = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
status = json.load(open(sys.argv[6]))
assert status["pending"] == n, status
print(f"bulk insert of {n} devices: {t1 - t0:.2f} s (target <= 10 s for 100,000)")
changed = json.load(open(sys.argv[5]))["changed"]
assert changed == n, changed
print(f"update by query of {n} devices: {t2 - t1:.2f} s (target <= 5 s for 100,000), {changed} changed")
PY
;; esac
