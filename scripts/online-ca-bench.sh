#!/usr/bin/env bash
# The Online CA figure of BENCHMARKS.md (issue 14): enrollments per second through EST against
# a local libEST estserver, and in the CAPF mode, taking turns in one run, with the time each
# phone waits from KEY_GEN_RESPONSE to its certificate.
#
# Usage: scripts/online-ca-bench.sh [ROUNDS] [PHONES] [CONCURRENCY]   (defaults 3 200 8)
# Needs: `cargo build --release --examples` (binaries in $CARGO_TARGET_DIR/release/examples,
# else target/release/examples), estserver under /opt/libest (`cargo xtask deps`), openssl.
# Each run is a fresh capfd data directory; estserver and its CA live for the whole run.
set -euo pipefail
rounds=${1:-3}; phones=${2:-200}; conc=${3:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release/examples
libest=/opt/libest
fixtures=$root/crates/capf-test-support/fixtures
work=$(mktemp -d /tmp/online-ca-bench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }

# The EST CA: as tests/online_ca_est.rs starts it (the LSC profile gives KeyUsage
# digitalSignature and keyEncipherment, which the guide requires of an LSC).
est=$work/est; mkdir -p "$est/newcerts"; : >"$est/index.txt"; echo 1000 >"$est/serial"
cp "$fixtures/rsa-2048.pem" "$est/ca.key"; cp "$fixtures/rsa-3072.pem" "$est/srv.key"
cat >"$est/openssl.cnf" <<'CNF'
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
certificate = ./ca.pem
private_key = ./ca.key
serial = ./serial
default_md = sha256
default_days = 365
policy = policy_any
email_in_dn = no
unique_subject = no
copy_extensions = none
x509_extensions = v3_lsc
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
[ req_dn ]
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[ v3_server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[ v3_lsc ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth,1.3.6.1.5.5.7.3.5
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
(cd "$est" &&
  openssl req -config openssl.cnf -x509 -new -key ca.key -subj "/CN=capf bench EST CA" -days 3650 -extensions v3_root -out ca.pem &&
  openssl req -config openssl.cnf -new -key srv.key -subj /CN=127.0.0.1 -out srv.csr &&
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -set_serial 77 -days 365 -extfile openssl.cnf -extensions v3_server -out srv.pem) >/dev/null 2>&1
est_port=$(port)
(cd "$est" && LD_LIBRARY_PATH=$libest/usr/lib/x86_64-linux-gnu EST_CACERTS_RESP=ca.pem \
  EST_TRUSTED_CERTS=ca.pem EST_OPENSSL_CACONFIG=openssl.cnf \
  exec "$libest/usr/bin/estserver" -c srv.pem -k srv.key -r estrealm -d 600 -p "$est_port" \
  >estserver.log 2>&1) & pids+=($!)
wait_port "$est_port"

# One load run in MODE (capf or online-ca) against a fresh capfd; prints one line.
run() {
  local mode=$1 round=$2 d listen pid out issuer=()
  d=$work/$mode-$round; mkdir -p "$d/data"; listen=$(port)
  printf '[settings]\ncertificate_issuer = "%s"\n' "$mode" >"$d/capfd.toml"
  "$bin/capfd" --config "$d/capfd.toml" --data "$d/data" --listen "127.0.0.1:$listen" >"$d/capfd.log" 2>&1 & pid=$!; pids+=("$pid")
  wait_port "$listen"
  for _ in $(seq 100); do [ -f "$d/data/capf.pem" ] && break; sleep 0.05; done
  if [ "$mode" = online-ca ]; then
    mkdir -m 700 "$d/data/trust"
    "$bin/capfctl" trust upload --purpose CAPF-trust --store "$d/data/trust" "$est/ca.pem" >/dev/null
    echo estpwd | "$bin/capfctl" online-ca set --data "$d/data" --host 127.0.0.1 --port "$est_port" \
      --type est --username estuser --password-stdin >/dev/null
    issuer=(--lsc-issuer "$est/ca.pem")
  fi
  out=$("$bin/capf-phone" --server "127.0.0.1:$listen" --trust "$d/data/capf.pem" --phones "$phones" \
    --concurrency "$conc" --provision "$d/data" --server-pid "$pid" "${issuer[@]}" 2>&1) || { echo "$out" >&2; grep -iE 'warn|error|fail' "$d/capfd.log" | tail -20 >&2; tail -20 "$est/estserver.log" >&2; exit 1; }
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%-9s round %s | %s | %s | %s | capfd %s\n' "$mode" "$round" \
    "$(echo "$out" | grep -o 'enrolled [0-9/]* in [0-9.]* s: [0-9.]* enrollments/s')" \
    "$(echo "$out" | grep -o 'p50 [0-9.]* ms, p95 [0-9.]* ms, p99 [0-9.]* ms (' | head -1 | sed 's/ ($//')" \
    "wait $(echo "$out" | grep -o 'received): .*' | sed 's/received): //')" \
    "$(echo "$out" | grep -o '[0-9.]* ms CPU per enrollment')"
  echo "$out" | grep -q "LSCs verified against" || { echo "$out" >&2; exit 1; }
}

echo "phones $phones, concurrency $conc, $rounds rounds each, taking turns; $(nproc) cores, $(uptime | sed 's/.*load/load/')"
for r in $(seq "$rounds"); do run capf "$r"; run online-ca "$r"; done
echo "after: $(uptime | sed 's/.*load/load/')"
