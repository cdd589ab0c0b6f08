#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The shared tier's figures, from one run on one machine (as root).

Starts three memcached servers on free loopback ports (killed by PID at
the end, whatever happens) and tiercachefs mounts with separate stores
under a temporary directory, then measures:

  latency   first read (lookup + open + read + close) of a 4 KiB file on a
            second mount that never saw it: a shared hit; next to a local
            disk hit (a remounted store: empty RAM tier and kernel caches)
            with and without a shared tier, and a miss (absent name) with
            and without one
  readers   shared hits per second with 4 reader processes on a fresh mount
  pushes    how fast one mount's publishes reach the servers: files written
            and the time until its queue is empty and every push taken
  failures  shared_replicas=2 with one server killed (the reads after it),
            every server killed (miss latency), servers restarted (time until
            a new value is shared again)

    sudo /usr/bin/python3 tests/bench/shared_bench.py [--bin build/fs/tiercachefs]
                                                      [--files N] [--mode daemon|kernel]

It prints a markdown report. Medians and p90 in microseconds.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from mcservers import Memcached  # noqa: E402
from tcutil import tc_stats, wait_until  # noqa: E402


class Mounts:
    def __init__(self, binary, root, mode):
        self.binary, self.root, self.mode = binary, Path(root), mode
        self.procs = {}

    def mount(self, name, opts):
        mnt, store = self.root / f"mnt-{name}", self.root / f"store-{name}"
        mnt.mkdir(exist_ok=True)
        o = ",".join([*opts, f"cache_mode={self.mode}"])
        log = open(self.root / f"{name}.log", "ab")
        p = subprocess.Popen([self.binary, "-f", "-o", o, str(store), str(mnt)],
                             stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = (p, mnt)
        wait_until(lambda: os.path.ismount(mnt) or p.poll() is not None, 20, f"mount {name}")
        if p.poll() is not None:
            raise SystemExit(f"mount {name} failed: {(self.root / f'{name}.log').read_text()}")
        return mnt

    def unmount(self, name):
        """fusermount3 -u (again while the kernel still has a release in
        flight: EBUSY), then -uz; wait for the daemon, kill its PID if it
        hangs."""
        p, mnt = self.procs.pop(name)
        try:
            wait_until(lambda: subprocess.run(["fusermount3", "-u", str(mnt)],
                                              capture_output=True).returncode == 0
                       or not os.path.ismount(mnt), 10, f"unmount {mnt}", interval=0.1)
        except AssertionError:
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def close(self):
        for name in list(self.procs):
            self.unmount(name)


def shared(pool, *extra):
    return ["shared=" + pool.servers.replace(",", "\\,"), *extra]


def first_reads(mnt, names):
    out = []
    for n in names:
        t = time.perf_counter()
        with open(mnt / n, "rb") as f:
            f.read()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def misses(mnt, n, tag):
    out = []
    for i in range(n):
        t = time.perf_counter()
        try:
            os.stat(mnt / f"absent-{tag}-{i}")
        except FileNotFoundError:
            pass
        out.append((time.perf_counter() - t) * 1e6)
    return out


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def row(what, v):
    return f"| {what} | {statistics.median(v):,.0f} | {pct(v, 0.9):,.0f} | {len(v)} |"


FSYNC = True


def write_files(mnt, prefix, n, size):
    data = os.urandom(size)
    for i in range(n):
        with open(mnt / f"{prefix}{i}", "wb") as f:
            f.write(i.to_bytes(8, "little") + data[8:])
            if FSYNC:  # cache_mode=kernel publishes at fsync (or later)
                f.flush()
                os.fsync(f.fileno())


def drained(mnt, pushes):
    s = tc_stats(mnt)
    return s["shared_queue_items"] == 0 and s["shared_pushes"] >= pushes


def reader(mnt, names):
    for n in names:
        with open(mnt / n, "rb") as f:
            f.read()
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(HERE.parents[1] / "build" / "fs" / "tiercachefs"))
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--mode", default="daemon", choices=("daemon", "kernel"))
    args = ap.parse_args()
    global FSYNC
    FSYNC = args.mode == "kernel"
    root = tempfile.mkdtemp(prefix="tc-shared-bench-", dir="/var/tmp")
    pool = Memcached(3, root)
    ms = Mounts(os.path.abspath(args.bin), root, args.mode)
    rep = [f"# Shared tier, cache_mode={args.mode}, {args.files} files of 4 KiB", ""]
    try:
        pool.start()
        n = args.files
        a = ms.mount("a", shared(pool))
        b = ms.mount("b", shared(pool))
        plain = ms.mount("plain", [])

        # -- pushes: one mount publishing as fast as it can
        t0 = time.perf_counter()
        write_files(a, "h", n, 4096)
        t_write = time.perf_counter() - t0
        wait_until(lambda: drained(a, 2 * n), 120, "the pushes")
        t_push = time.perf_counter() - t0
        t1 = time.perf_counter()
        write_files(a, "big", 100, 256 * 1024)
        t_bigw = time.perf_counter() - t1
        wait_until(lambda: drained(a, 2 * n + 200), 120, "the big pushes")
        t_big = time.perf_counter() - t1
        s = tc_stats(a)
        rep += ["## Pushes (one mount)", "",
                "| what | value |", "|---|---:|",
                f"| 4 KiB files published{' (with fsync)' if FSYNC else ''} | {n / t_write:,.0f}/s |",
                f"| ... and pushed (content + name, queue empty) | {n / t_push:,.0f}/s |",
                f"| 256 KiB files published | {100 * 0.25 / t_bigw:,.0f} MiB/s |",
                f"| ... and pushed | {100 * 0.25 / t_big:,.0f} MiB/s |",
                f"| pushed bytes, total | {s['shared_pushed_bytes'] / 2**20:.1f} MiB |",
                f"| pushes dropped | {s['shared_push_dropped']:.0f} |", ""]

        # -- latency
        shared_hit = first_reads(b, [f"h{i}" for i in range(n // 2)])
        write_files(b, "l", n // 2, 4096)
        write_files(plain, "l", n // 2, 4096)
        ms.unmount("b")
        ms.unmount("plain")
        b = ms.mount("b", shared(pool))
        plain = ms.mount("plain", [])
        disk_shared = first_reads(b, [f"l{i}" for i in range(n // 2)])
        disk_plain = first_reads(plain, [f"l{i}" for i in range(n // 2)])
        ram_plain = first_reads(plain, [f"l{i}" for i in range(n // 2)])
        miss_shared = misses(b, n // 2, "s")
        miss_plain = misses(plain, n // 2, "p")
        rep += ["## Latency of a first read (lookup + open + read + close), µs", "",
                "| what | median | p90 | n |", "|---|---:|---:|---:|",
                row("shared hit: another mount's file, content fetched", shared_hit),
                row("local disk hit, with a shared tier (one revalidation)", disk_shared),
                row("local disk hit, no shared tier", disk_plain),
                row("local repeat read, no shared tier (kernel dentry, RAM)", ram_plain),
                row("miss: absent name, with a shared tier", miss_shared),
                row("miss: absent name, no shared tier", miss_plain), ""]

        # -- readers: 4 processes on a fresh mount
        c = ms.mount("c", shared(pool))
        names = [f"h{i}" for i in range(n // 2, n)] + [f"h{i}" for i in range(n // 2)]
        t0 = time.perf_counter()
        pids = []
        for k in range(4):
            pid = os.fork()
            if pid == 0:
                reader(c, names[k::4])
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        dt = time.perf_counter() - t0
        sc = tc_stats(c)
        rep += ["## Shared hits with 4 readers (fresh mount)", "",
                "| what | value |", "|---|---:|",
                f"| files | {len(names)} |",
                f"| shared hits/s | {sc['shared_hits'] / dt:,.0f} |",
                f"| MiB/s fetched | {sc['shared_fetched_bytes'] / dt / 2**20:.1f} |",
                f"| shared_errors / shared_rejected | {sc['shared_errors']:.0f} / "
                f"{sc['shared_rejected']:.0f} |", ""]
        ms.close()
        shutil.rmtree(Path(root) / "store-c", ignore_errors=True)

        # -- failures
        a = ms.mount("a2", shared(pool, "shared_replicas=2"))
        write_files(a, "r", 100, 4096)
        wait_until(lambda: drained(a, 200), 60, "the pushes")
        b = ms.mount("b2", shared(pool, "shared_replicas=2"))
        before = first_reads(b, [f"r{i}" for i in range(50)])
        pool.kill(1)
        t_kill = time.perf_counter()
        after = first_reads(b, [f"r{i}" for i in range(50, 100)])
        lost = 100 - tc_stats(b)["shared_hits"]
        rep += ["## Failures", "",
                "| what | value |", "|---|---:|",
                f"| replicas=2, first reads before the kill: median / max µs | "
                f"{statistics.median(before):,.0f} / {max(before):,.0f} |",
                f"| ... after killing 1 of 3 servers: median / max µs | "
                f"{statistics.median(after):,.0f} / {max(after):,.0f} |",
                f"| ... shared hits lost, errors to programs | {lost:.0f}, 0 |",
                f"| ... 50 reads after the kill took | {time.perf_counter() - t_kill:.2f} s |"]
        pool.kill()
        wait_until(lambda: tc_stats(b)["shared_servers_up"] == 0, 30, "down")
        down = misses(b, 50, "down")
        t0 = time.perf_counter()
        write_files(a, "local", 20, 4096)
        t_local = time.perf_counter() - t0
        pool.start()
        t0 = time.perf_counter()
        wait_until(lambda: tc_stats(a)["shared_servers_up"] == 3, 30, "up")
        t_up = time.perf_counter() - t0
        write_files(a, "again", 1, 4096)
        t1 = time.perf_counter()

        def readable():
            try:
                with open(b / "again0", "rb") as f:
                    return len(f.read()) == 4096
            except FileNotFoundError:
                return False

        wait_until(readable, 60, "sharing again")
        rep += [f"| all servers down: a miss, median / p90 µs | "
                f"{statistics.median(down):,.0f} / {pct(down, 0.9):,.0f} |",
                f"| all servers down: 20 local publishes took | {t_local * 1e3:.0f} ms |",
                f"| servers restarted: probe sees them after | {t_up:.2f} s |",
                f"| ... a new write shared again after | {time.perf_counter() - t1:.2f} s |", ""]
    finally:
        try:
            ms.close()
        finally:
            pool.stop()
            shutil.rmtree(root, ignore_errors=True)
    print("\n".join(rep))


if __name__ == "__main__":
    main()
