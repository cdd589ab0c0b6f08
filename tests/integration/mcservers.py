# SPDX-License-Identifier: MIT
"""memcached servers for the shared-tier tests, and a tiny client.

Servers: Memcached(n) picks n free loopback ports; start() runs
`memcached -l 127.0.0.1 -p PORT` (with -u nobody as root) for each and waits,
with a deadline, until each accepts connections; kill(i) / start(i) stop and
restart one by PID; stop() kills every one still running. The memcached
fixture of test_shared.py calls stop() in its teardown, whatever happened, so
no test leaves a server behind. Nothing listens beyond 127.0.0.1.

Client: Raw(port) speaks memcached's text protocol over a socket, enough to
list the keys a server holds (lru_crawler metadump), read one and overwrite
it: the tests use it to put garbage where tiercachefs stored records.
"""

import os
import socket
import subprocess
import time
import urllib.parse

from tcutil import SLOW, wait_until

START_TIMEOUT = 10  # seconds until a server accepts connections


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Memcached:
    """n memcached servers on loopback, each started and killed by PID."""

    def __init__(self, n, log_dir):
        self.ports = []
        while len(self.ports) < n:
            p = free_port()
            if p not in self.ports:
                self.ports.append(p)
        self.procs = [None] * n
        self.log_dir = log_dir

    @property
    def servers(self):
        """The shared= value: "127.0.0.1:P1,127.0.0.1:P2,..."."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, *which):
        for i in which or range(len(self.ports)):
            if self.procs[i] is not None:
                continue
            cmd = ["memcached", "-l", "127.0.0.1", "-p", str(self.ports[i]), "-U", "0",
                   "-m", "64", "-t", "2"]
            if os.geteuid() == 0:
                cmd[1:1] = ["-u", "nobody"]
            with open(os.path.join(self.log_dir, f"memcached-{i}.log"), "ab") as log:
                self.procs[i] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                                 stderr=subprocess.STDOUT)
            proc, port = self.procs[i], self.ports[i]

            def up():
                if proc.poll() is not None:
                    raise AssertionError(f"memcached on port {port} exited {proc.returncode}")
                return accepts(port)

            wait_until(up, START_TIMEOUT, f"memcached on port {port}")
        return self

    def kill(self, *which):
        """SIGKILL the servers (by PID) and wait for them."""
        for i in which or range(len(self.ports)):
            p = self.procs[i]
            if p is None:
                continue
            p.kill()
            p.wait(timeout=10 * SLOW)
            self.procs[i] = None

    def stop(self):
        self.kill()

    def raw(self, i):
        return Raw(self.ports[i])

    def all_keys(self, prefix=""):
        """{key: server index} of every key starting with prefix."""
        out = {}
        for i, p in enumerate(self.procs):
            if p is None:
                continue
            with self.raw(i) as r:
                for k in r.keys():
                    if k.startswith(prefix):
                        out[k] = i
        return out


class Raw:
    """memcached's text protocol, just enough for the tests."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("memcached closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("memcached closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def keys(self):
        """Every key the server holds (lru_crawler metadump all: lines end
        in a bare newline, the dump in END)."""
        end = time.monotonic() + 10 * SLOW
        while time.monotonic() < end:
            self.sock.sendall(b"lru_crawler metadump all\r\n")
            data = b""
            while not (data.endswith(b"END\r\n") or data.startswith(b"BUSY")):
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("memcached closed the connection")
                data += chunk
            if data.startswith(b"BUSY"):
                time.sleep(0.05)
                continue
            return [urllib.parse.unquote(ln.split()[0][4:].decode())
                    for ln in data.splitlines() if ln.startswith(b"key=")]
        raise AssertionError("metadump stayed busy")

    def get(self, key):
        self.sock.sendall(b"get " + key.encode() + b"\r\n")
        line = self._line()
        if line == b"END":
            return None
        parts = line.split()
        assert parts[0] == b"VALUE", line
        data = self._bytes(int(parts[3]))
        assert self._line() == b"END"
        return data

    def set(self, key, data, exptime=0):
        self.sock.sendall(b"set %s 0 %d %d\r\n" % (key.encode(), exptime, len(data)) + data
                          + b"\r\n")
        line = self._line()
        assert line == b"STORED", line
