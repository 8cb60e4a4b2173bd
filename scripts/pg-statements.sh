#!/usr/bin/env bash
# What one enrollment costs PostgreSQL (issue 16, BENCHMARKS.md): statements and round trips per
# enrollment, the node's background reads counted apart. One capfd node on a throwaway
# PostgreSQL cluster with pg_stat_statements (Debian's postgresql ships it); PHONES devices
# (default 200) registered beforehand by `capfctl bulk insert`, then, with the counters reset,
# capf-phone's load generator enrolls them (concurrency 4). The same node then idles as long as
# the enrollments took, counters reset again, to show its background reads at that rate.
# Statement counts do not depend on the build's speed: the debug build is fine.
#
#   bash scripts/pg-statements.sh [PHONES]
set -eu
PHONES=${1:-200}
PROFILE=${PROFILE:-debug}
W=/tmp/capf-pg-statements
PGPORT=55435
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
as_pg "$BIN/pg_ctl" -D "$W/pgdata" -l "$W/pg.log" -w -o "-c listen_addresses=127.0.0.1 \
    -p $PGPORT -k $W -c shared_preload_libraries=pg_stat_statements \
    -c pg_stat_statements.track=all -c pg_stat_statements.track_utility=on" start >/dev/null
trap 'as_pg "$BIN/pg_ctl" -D "$W/pgdata" -m fast stop >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT
psql() { "$BIN/psql" -h 127.0.0.1 -p $PGPORT -U postgres -qAt "$@"; }
URL="postgres://postgres@127.0.0.1:$PGPORT/capf"
psql -c "CREATE DATABASE capf"
psql -d capf -c "CREATE EXTENSION pg_stat_statements"
wait_listen() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# The devices, as capf-phone's load generator names them (SEPD + 11 hex digits), EC P-256.
python3 - "$PHONES" >"$W/devices.csv" <<'PY'
import sys
print("Device Name,Description,Device Pool,Model,Operation,Auth Mode,Auth String,Key Spec,Complete-By")
for n in range(1, int(sys.argv[1]) + 1):
    print(f"SEPD{n:011X},,,,install,null-string,,ec-only/2048/P-256,")
PY
$D/capfctl bulk insert "$W/devices.csv" --data "$W/node" --store "$URL" >/dev/null
$D/capfd --data "$W/node" --store "$URL" --listen 127.0.0.1:13815 >"$W/capfd.log" 2>&1 & P=$!
wait_listen 13815
sleep 3  # the node's start-up reads and first refreshes, outside the counts

# Statements by kind: each query's calls, the top ones, and the total.
report() {
    psql -d capf -F ' | ' -c "SELECT calls, regexp_replace(left(query, 90), '\s+', ' ', 'g')
        FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'capf')
          AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC, query"
    psql -d capf -c "SELECT 'total: ' || sum(calls) FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'capf')
          AND query NOT LIKE '%pg_stat_statements%'"
}

psql -d capf -c "SELECT pg_stat_statements_reset()" >/dev/null
t0=$(date +%s.%N)
$D/capf-phone --server 127.0.0.1:13815 --trust "$W/node/capf.pem" --phones "$PHONES" \
    --prefix SEPD --key P-256 --concurrency 4
t1=$(date +%s.%N)
echo "== $PHONES enrollments: statements by query (with the background reads of $(python3 -c "print(f'{$t1 - $t0:.1f}')") s)"
report
psql -d capf -c "SELECT 'devices succeeded: ' || count(*) FROM devices WHERE status = 'success'"

psql -d capf -c "SELECT pg_stat_statements_reset()" >/dev/null
sleep "$(python3 -c "print($t1 - $t0)")"
echo "== the node idle as long: its background reads"
report
kill $P; wait $P 2>/dev/null || true
