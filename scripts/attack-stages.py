#!/usr/bin/env python3
"""Issue 12 item 2's target: an attacker on 127.0.0.2 holds N connections at each stage (after TCP
connect, after TLS, after AUTH_REQUEST) while phones on 127.0.0.1 enroll.

usage: scripts/attack-stages.py HOST PORT N SECONDS [DEVICE DEVICE_SESSIONS]
(prints how many of each stage it holds, every few seconds; with DEVICE, also DEVICE_SESSIONS
sessions that authenticate as that null-string device and stall after KEY_GEN_REQUEST with one
REQUEST_IN_PROGRESS)
"""
import asyncio, ssl, sys, time

host, port, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
device = sys.argv[5].encode() if len(sys.argv) > 5 else None
device_sessions = int(sys.argv[6]) if len(sys.argv) > 6 else 0
held = {"tcp": 0, "tls": 0, "auth_request": 0, "device": 0}
refused = {"tcp": 0, "tls": 0, "auth_request": 0, "device": 0}
key_gen = {"requests": 0, "end_session": 0}

def tlv(tag, value):
    return bytes([tag]) + len(value).to_bytes(2, "big") + value

def message(cmd, sid, body):
    return bytes([0x55, cmd]) + sid + len(body).to_bytes(2, "big") + body

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

async def hold(stage, deadline):
    while time.monotonic() < deadline:
        try:
            if stage == "tcp":
                r, w = await asyncio.open_connection(host, port, local_addr=("127.0.0.2", 0))
            else:
                r, w = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx, local_addr=("127.0.0.2", 0)), 15)
                if stage in ("auth_request", "device"):
                    head = await asyncio.wait_for(r.readexactly(8), 15)  # the AUTH_REQUEST header
                if stage == "device":
                    await r.readexactly(int.from_bytes(head[6:8], "big"))
                    sid = head[2:6]
                    body = tlv(1, b"\x01") + tlv(7, b"\x03") + tlv(11, b"\x00") + tlv(13, device + b"\x00")
                    w.write(message(2, sid, body))
                    await w.drain()
                    answer = await asyncio.wait_for(r.readexactly(8), 15)
                    if answer[1] == 3:
                        key_gen["requests"] += 1
                        w.write(message(17, sid, b""))  # REQUEST_IN_PROGRESS
                        await w.drain()
                    else:
                        key_gen["end_session"] += 1
        except Exception:
            refused[stage] += 1
            await asyncio.sleep(0.05)
            continue
        held[stage] += 1
        try:
            # Hold it: read until the server closes it, then come back.
            while await r.read(4096):
                pass
        except Exception:
            pass
        held[stage] -= 1
        w.close()

async def report(deadline):
    while time.monotonic() < deadline:
        await asyncio.sleep(2)
        print(f"held {held} reconnects {refused} device answers {key_gen}", flush=True)

async def main():
    deadline = time.monotonic() + seconds
    tasks = [hold(stage, deadline) for stage in ("tcp", "tls", "auth_request") for _ in range(n)]
    tasks += [hold("device", deadline) for _ in range(device_sessions)]
    await asyncio.gather(report(deadline), *tasks)

asyncio.run(main())
