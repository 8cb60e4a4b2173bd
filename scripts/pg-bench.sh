#!/usr/bin/env bash
# The PostgreSQL figures of BENCHMARKS.md (issue 16), all in one run on one machine: enrollments/s
# and p99 at concurrency 32 for SQLite on one node, PostgreSQL on one node and PostgreSQL on two
# nodes; then what one enrollment costs PostgreSQL (statements, from the server's statement log).
# Needs Debian's postgresql; run from the workspace root as root or as a user that may run
# initdb. Release builds: run by the coordinator, not in a helper's worktree.
#
#   bash scripts/pg-bench.sh [PHONES]      (default 2000)
set -eu
PHONES=${1:-2000}
W=/tmp/capf-pg-bench
PGPORT=55434
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
rm -rf "$W"; mkdir -p "$W"
cargo build --release --example capfd --example capf-phone
D=target/release/examples

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$W"
as_pg "$BIN/initdb" -D "$W/pgdata" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
as_pg "$BIN/pg_ctl" -D "$W/pgdata" -l "$W/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $W -c max_connections=200" start
trap 'as_pg "$BIN/pg_ctl" -D "$W/pgdata" -m fast stop >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT
psql() { "$BIN/psql" -h 127.0.0.1 -p $PGPORT -U postgres -qAt "$@"; }
URL="postgres://postgres@127.0.0.1:$PGPORT"

wait_listen() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

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

echo "== Bulk insert of 100,000 devices and update by query on PostgreSQL"
echo "not scripted yet: capfctl has no --store (see the issue 16 report)"
