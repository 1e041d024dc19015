#!/usr/bin/env python3
"""A stand-in for systemd's notification socket: prints each datagram with its sender's PID
(from SCM_CREDENTIALS) and the time, one per line, for at most LIMIT seconds."""
import socket
import struct
import sys
import time

path, limit = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.settimeout(0.5)
start = time.monotonic()
print("listening", flush=True)
while time.monotonic() - start < limit:
    try:
        data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    except socket.timeout:
        continue
    pid = -1
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    for line in data.decode(errors="replace").splitlines():
        print(f"{time.monotonic() - start:.3f} {pid} {line}", flush=True)
