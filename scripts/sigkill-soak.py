#!/usr/bin/env python3
"""SIGKILL soak (issue 12 item 14): N kills of capfd at random moments while PHONES enroll.

usage: scripts/sigkill-soak.py BINDIR DATADIR PHONES KILLS SEED

BINDIR holds release builds of capfd and capf-phone (cargo build --release --example capfd
--example capf-phone; target/release/examples). Exits 0 when every device ended installed exactly
once (or pending), none is left in progress, and the audit agrees with the store.
"""
import os, random, signal, socket, sqlite3, subprocess, sys, time

bindir, data, phones, kills, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
port = 13807
addr = f"127.0.0.1:{port}"

def start():
    p = subprocess.Popen([f"{bindir}/capfd", "--data", data, "--listen", addr],
                         stdout=subprocess.DEVNULL, stderr=open(f"{data}.capfd.log", "a"))
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.02)
    raise SystemExit("capfd did not come up")

def load(tag, provision):
    extra = ["--provision", data] if provision else []
    return subprocess.Popen([f"{bindir}/capf-phone", "--server", addr, "--trust", f"{data}/capf.pem",
                             "--phones", str(phones), "--concurrency", "32"] + extra,
                            stdout=open(f"{data}.{tag}.log", "w"), stderr=subprocess.STDOUT)

subprocess.run(["rm", "-rf", data, f"{data}.capfd.log"], check=True)
capfd = start()
# Pass 1 schedules every device; later passes run the same phones again (an installed device is
# told END_SESSION 0), with kills at random moments until KILLS are done; a last pass has none.
passes = 0
done_kills = 0
while done_kills < kills:
    passes += 1
    gen = load(f"pass{passes}", provision=(passes == 1))
    if passes == 1:
        time.sleep(3.0)  # provisioning, and the server re-reading its limits
    while done_kills < kills and gen.poll() is None:
        time.sleep(rng.uniform(0.05, 0.8))
        if gen.poll() is not None:
            break
        capfd.send_signal(signal.SIGKILL)
        capfd.wait()
        done_kills += 1
        capfd = start()
    gen.wait()
passes += 1
load(f"pass{passes}", provision=False).wait()
capfd.send_signal(signal.SIGTERM)
capfd.wait()

db = sqlite3.connect(f"{data}/capf.sqlite")
q = lambda sql: db.execute(sql).fetchall()
status = dict(q("SELECT status, count(*) FROM devices GROUP BY status"))
op = dict(q("SELECT operation, count(*) FROM devices GROUP BY operation"))
installed_per_device = q("SELECT d.name, (SELECT count(*) FROM lscs l WHERE l.device = d.name AND l.state = 'installed') FROM devices d")
over = [n for n, c in installed_per_device if c > 1]
success_without = q("SELECT count(*) FROM devices d WHERE d.status = 'success' AND (SELECT count(*) FROM lscs l WHERE l.device = d.name AND l.state = 'installed') != 1")[0][0]
audit = {a: c for a, c in q("SELECT action, count(*) FROM audit GROUP BY action")}
per_dev = q("""SELECT device,
   sum(action = 'attempt begun'), sum(action = 'lsc installed'),
   sum(action = 'attempt interrupted'), sum(action = 'attempt failed')
   FROM audit WHERE device IS NOT NULL GROUP BY device""")
unbalanced = [r for r in per_dev if r[1] != r[2] + r[3] + r[4]]
installed_audit_vs_lscs = (audit.get("lsc installed", 0), q("SELECT count(*) FROM lscs WHERE state = 'installed'")[0][0])
print(f"kills: {done_kills}; phones: {phones}")
print(f"devices by status: {status}; by operation: {op}")
print(f"devices with more than one installed LSC: {len(over)}; succeeded without exactly one: {success_without}")
print(f"audit: {audit}")
print(f"'lsc installed' audit entries vs installed LSCs: {installed_audit_vs_lscs}")
print(f"devices whose begun attempts != installed + interrupted + failed: {len(unbalanced)} {unbalanced[:5]}")
for n in range(1, passes + 1):
    lines = open(f"{data}.pass{n}.log").read().strip().splitlines()
    print(f"pass{n}", next((l for l in lines if l.startswith("enrolled")), lines[-1] if lines else "")[:160])
ok = status.get("in_progress", 0) == 0 and not over and success_without == 0 and not unbalanced \
     and installed_audit_vs_lscs[0] == installed_audit_vs_lscs[1]
print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
