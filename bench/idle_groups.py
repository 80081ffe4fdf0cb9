#!/usr/bin/env python3
"""Server memory while many groups are touched once and left idle (issue 11, fault 4).

    cargo build --release --bin atomsync-server
    python3 bench/idle_groups.py [--server target/release/atomsync-server] [--groups 100000]

Starts the server on a temporary database (durability normal, `group_idle_timeout` of a few
seconds) and, for each of `--groups` distinct groups, pushes one change over HTTP and
subscribes to it over a WebSocket, then unsubscribes (a subscription is what starts a
group's actor; pushes alone go straight to storage), over a few connections, as a server
holding one group per user sees them. It prints the server's
resident memory (VmRSS) before, the peak while the groups were touched (VmHWM), and after
their actors went idle and stopped, for `--rounds` rounds of new groups, so that later
rounds show whether memory keeps growing. glibc keeps freed memory for reuse rather than returning it all, so
"after" stays near the peak; what matters is that later rounds add little or nothing (the
database grows by every round's groups, and SQLite's page caches, bounded, grow with it).
"""

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

IDLE_SECONDS = 3


def start_server(binary, folder):
    config = os.path.join(folder, "atomsync.toml")
    with open(config, "w") as f:
        f.write('[server]\nbind = "127.0.0.1:0"\ndb = "%s"\ndurability = "normal"\n'
                'group_idle_timeout = %d\n' % (os.path.join(folder, "atomsync.db"), IDLE_SECONDS))
    log_path = os.path.join(folder, "server.log")
    process = subprocess.Popen([binary, "--config", config], stdout=subprocess.DEVNULL,
                               stderr=open(log_path, "w"))
    deadline = time.time() + 20
    while time.time() < deadline:
        found = re.search(r"listening on http://([0-9.]+):(\d+)", open(log_path).read())
        if found:
            return process, (found.group(1), int(found.group(2)))
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the server did not start:\n" + open(log_path).read())


def status(pid, field):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MiB
    raise SystemExit("no %s for %d" % (field, pid))


class Socket:
    """The least of a WebSocket client: text frames out (masked), frames in."""

    def __init__(self, addr):
        self.s = socket.create_connection(addr, timeout=30)
        self.s.sendall(b"GET /sync/ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       b"Sec-WebSocket-Version: 13\r\n\r\n" % (addr[0].encode(), addr[1]))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise SystemExit("upgrade refused: %r" % head[:80])

    def send(self, message):
        payload = json.dumps(message).encode()
        mask = b"\x11\x22\x33\x44"
        n = len(payload)
        header = bytes([0x81, 0x80 | n]) if n < 126 else \
            bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        self.s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise SystemExit("the server closed the socket")
            self.buf += chunk

    def until(self, kind):
        """Reads frames until a text frame of `type` `kind`."""
        while True:
            self._need(2)
            n = self.buf[1] & 0x7F
            at = 2
            if n == 126:
                self._need(4)
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                self._need(10)
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            self._need(at + n)
            opcode, payload, self.buf = self.buf[0] & 0x0F, self.buf[at:at + n], self.buf[at + n:]
            if opcode == 1 and json.loads(payload).get("type") == kind:
                return
            if opcode == 1 and json.loads(payload).get("type") == "error":
                raise SystemExit("error frame: %s" % payload.decode())


def touch(addr, groups, prefix):
    """For each group of `groups`: a push, then a subscription and its end."""
    conn = http.client.HTTPConnection(*addr, timeout=30)
    ws = Socket(addr)
    for g in groups:
        group = "%s-%d" % (prefix, g)
        body = json.dumps({"group": group, "changes": [{"key": "k", "base": 0, "value": g}]})
        conn.request("POST", "/sync", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit("push to group %d: %d" % (g, answer.status))
        ws.send({"type": "subscribe", "group": group, "since": 0})
        ws.until("subscribed")
        ws.send({"type": "unsubscribe", "group": group})
        ws.until("unsubscribed")
    conn.close()
    ws.s.close()


def open_groups(addr):
    """The `atomsync_groups_open` gauge, or None when metrics are off."""
    conn = http.client.HTTPConnection(*addr, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    found = re.search(r"^atomsync_groups_open (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="target/release/atomsync-server")
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="atomsync-idle-") as folder:
        process, addr = start_server(args.server, folder)
        try:
            time.sleep(0.5)
            print("before: %.1f MiB resident" % status(process.pid, "VmRSS"))
            for round_ in range(1, args.rounds + 1):
                started = time.monotonic()
                share = [range(c, args.groups, args.connections) for c in range(args.connections)]
                threads = [threading.Thread(target=touch, args=(addr, part, "r%d" % round_))
                           for part in share]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                took = time.monotonic() - started
                peak = status(process.pid, "VmHWM")
                touched = open_groups(addr)
                deadline = time.monotonic() + 10 * IDLE_SECONDS + 60
                while open_groups(addr) not in (0.0, None) and time.monotonic() < deadline:
                    time.sleep(1)
                print("round %d: %d groups touched in %.1f s (%s actors right after); peak %.1f MiB; "
                      "after they idled: %.1f MiB resident, %s actors"
                      % (round_, args.groups, took, "%d" % touched if touched is not None else "?",
                         peak, status(process.pid, "VmRSS"), open_groups(addr)))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
