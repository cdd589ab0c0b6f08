# SPDX-License-Identifier: MIT
"""fsphases.py - the workloads of the benchmark, the same code on every target.

Each phase works in a fresh subdirectory of a target's root with plain
os.open/os.write/os.read/os.stat calls per file (the Python-values phase uses
open() as a Python program would), times each step with time.perf_counter()
and hands the figure to a Recorder, which also snapshots the tiercache .stats
counters around the step when the target is a tiercachefs (outside the timed
part). What is read back is compared with what was written; a mismatch is a
Failure, not a figure. Contents differ per file and per round, so the
content-addressed store of tiercachefs cannot skip work by deduplication.

  small_files   create+write+close N files of 4 KiB in D directories; stat
                each; open+read+close each twice (both passes recorded, the
                second is the hot figure); chmod, utimens (os.utime) and
                rename (to a new name in the same directory) each; unlink each
  large_files   sequential write in 1 MiB writes + fsync; sequential read cold
                (after drop_caches) and hot; random 4 KiB preads over a
                smaller file for a fixed time (after one sequential read)
  rand_fsync    4 KiB pwrite + fsync at random offsets in a big and in a
                small file, for a fixed time each
  cp_big        `cp big big2` of a big file already in the mount (coreutils
                cp tries copy_file_range), with .stats blob_bytes around it
  py_values     N values of 1 KiB stored as files and read back
  py_diskcache  the same values through diskcache.Cache set/get
  populate      fill a directory tree with N small entries (scale phase)
"""

import itertools
import multiprocessing
import os
import random
import shutil
import signal
import struct
import subprocess
import time

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_CLOEXEC
RFLAGS = os.O_RDONLY | O_CLOEXEC
MiB = 1 << 20

# Counters of .stats shown per tiercachefs step (tiercachefs(8), STATISTICS).
COUNTERS = ("gets", "ram_hits", "disk_hits", "misses", "puts", "deletes", "promotions")


class Failure(Exception):
    """A workload saw wrong data or an error."""


class Recorder:
    """Collects one round of one phase on one target: figures and, for a
    tiercachefs, the .stats counter deltas of each step."""

    def __init__(self, target):
        self.target = target
        self.values = {}    # workload -> figure (ops/s or MiB/s)
        self.counters = {}  # workload -> {"ops": n, counter: delta}
        self.failed = {}    # workload -> why its check failed
        self._before = None

    def begin(self):
        self._before = self.target.stats() if self.target.is_tc else None

    def end(self, workload, ops, value):
        self.values[workload] = value
        if self._before is not None:
            after = self.target.stats()
            d = {"ops": ops}
            for c in COUNTERS:
                d[c] = after.get(c + "_total", 0) - self._before.get(c + "_total", 0)
            self.counters[workload] = d
        self._before = None

    def fail(self, workload, msg):
        """A step's check failed after it was timed: its figure goes and msg
        is kept in .failed; the phase goes on with its next steps (their
        figures still mean something), the driver reports the step as FAIL."""
        self.values.pop(workload, None)
        self.counters.pop(workload, None)
        self.failed[workload] = msg


def _contents(n, size, rnd):
    """n distinct byte strings of size bytes, distinct for each round too."""
    base = os.urandom(size)
    return [struct.pack("<QQ", rnd, i)[:size] + base[16:] for i in range(n)]


def _fresh_dir(root, name):
    d = os.path.join(root, name)
    if os.path.lexists(d):
        shutil.rmtree(d)
    os.mkdir(d)
    return d


def small_files(root, p, rnd, rec):
    base = _fresh_dir(root, "small")
    dirs = [os.path.join(base, f"d{j:03d}") for j in range(p.dirs)]
    for d in dirs:
        os.mkdir(d)
    n = p.files
    paths = [os.path.join(dirs[i % p.dirs], f"f{i:06d}") for i in range(n)]
    datas = _contents(n, p.file_size, rnd)
    size = p.file_size
    o_open, o_write, o_read, o_close, o_stat = os.open, os.write, os.read, os.close, os.stat

    rec.begin()
    t0 = time.perf_counter()
    for path, data in zip(paths, datas):
        fd = o_open(path, WFLAGS, 0o644)
        o_write(fd, data)
        o_close(fd)
    rec.end("create", n, n / (time.perf_counter() - t0))

    bad = 0
    rec.begin()
    t0 = time.perf_counter()
    for path in paths:
        if o_stat(path).st_size != size:
            bad += 1
    rec.end("stat", n, n / (time.perf_counter() - t0))
    if bad:
        rec.fail("stat", f"stat: {bad} of {n} files have the wrong size")

    for workload in ("read1", "read2"):
        rec.begin()
        t0 = time.perf_counter()
        for path, data in zip(paths, datas):
            fd = o_open(path, RFLAGS)
            if o_read(fd, 65536) != data:
                bad += 1
            o_close(fd)
        rec.end(workload, n, n / (time.perf_counter() - t0))
        if bad:
            rec.fail(workload, f"{workload}: {bad} of {n} files read back wrong")

    paths = _metadata(paths, rec)

    o_unlink = os.unlink
    rec.begin()
    t0 = time.perf_counter()
    for path in paths:
        o_unlink(path)
    rec.end("unlink", n, n / (time.perf_counter() - t0))
    for d in dirs:
        os.rmdir(d)
    os.rmdir(base)


def _sample(seq, k=100):
    """Up to k elements spread over seq, for checks outside the timed part."""
    step = max(1, len(seq) // k)
    return seq[::step]


def _metadata(paths, rec):
    """chmod, utimens and rename of every file, each step timed; checks a
    sample after each step. @return the new paths (after the rename)."""
    n = len(paths)
    o_chmod, o_utime, o_rename = os.chmod, os.utime, os.rename

    rec.begin()
    t0 = time.perf_counter()
    for path in paths:
        o_chmod(path, 0o600)
    rec.end("chmod", n, n / (time.perf_counter() - t0))
    bad = sum(1 for p in _sample(paths) if os.stat(p).st_mode & 0o777 != 0o600)
    if bad:
        rec.fail("chmod", f"chmod: {bad} sampled files do not have mode 0600")

    # Explicit times, different per file (a SETATTR with both times).
    base = 1_600_000_000 * 10**9
    rec.begin()
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        t = base + i * 1000
        o_utime(path, ns=(t, t))
    rec.end("utime", n, n / (time.perf_counter() - t0))
    idx = {p: i for i, p in enumerate(paths)}
    bad = sum(1 for p in _sample(paths) if os.stat(p).st_mtime_ns != base + idx[p] * 1000)
    if bad:
        rec.fail("utime", f"utimens: {bad} sampled files have the wrong mtime")

    new = [os.path.join(os.path.dirname(p), "r" + os.path.basename(p)) for p in paths]
    rec.begin()
    t0 = time.perf_counter()
    for a, b in zip(paths, new):
        o_rename(a, b)
    rec.end("rename", n, n / (time.perf_counter() - t0))
    bad = sum(1 for a, b in zip(_sample(paths), _sample(new))
              if os.path.lexists(a) or not os.path.exists(b))
    if bad:
        rec.fail("rename", f"rename: {bad} sampled files are not under their new name")
    return new


def _write_seq(path, nbytes, rnd, fsync):
    buf = bytearray(os.urandom(MiB))
    fd = os.open(path, WFLAGS, 0o644)
    try:
        for i in range(nbytes // MiB):
            buf[0:16] = struct.pack("<QQ", rnd, i)
            if os.write(fd, buf) != MiB:
                raise Failure(f"short write to {path}")
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _read_seq(path, nbytes):
    buf = bytearray(MiB)
    total = 0
    fd = os.open(path, RFLAGS)
    try:
        while True:
            n = os.readv(fd, [buf])
            if n == 0:
                break
            total += n
    finally:
        os.close(fd)
    if total != nbytes:
        raise Failure(f"read {total} bytes of {nbytes} from {path}")


def large_files(root, p, rnd, rec, drop_caches):
    base = _fresh_dir(root, "large")
    path = os.path.join(base, "seq.bin")
    nbytes = p.large_mib * MiB

    rec.begin()
    t0 = time.perf_counter()
    _write_seq(path, nbytes, rnd, fsync=True)
    rec.end("write", nbytes // MiB, p.large_mib / (time.perf_counter() - t0))

    drop_caches()
    rec.begin()
    t0 = time.perf_counter()
    _read_seq(path, nbytes)
    rec.end("read_cold", nbytes // MiB, p.large_mib / (time.perf_counter() - t0))

    rec.begin()
    t0 = time.perf_counter()
    _read_seq(path, nbytes)
    rec.end("read_hot", nbytes // MiB, p.large_mib / (time.perf_counter() - t0))
    os.unlink(path)

    # Random 4 KiB reads: a permutation of every block, cycled, on one fd.
    path = os.path.join(base, "rand.bin")
    rbytes = p.rand_mib * MiB
    _write_seq(path, rbytes, rnd, fsync=False)
    _read_seq(path, rbytes)
    blocks = list(range(rbytes // 4096))
    random.Random(rnd).shuffle(blocks)
    offsets = [b * 4096 for b in blocks]
    chunks = [offsets[j:j + 1024] for j in range(0, len(offsets), 1024)]
    buf = [bytearray(4096)]
    preadv = os.preadv
    clock = time.perf_counter
    ops = 0
    short = 0
    fd = os.open(path, RFLAGS)
    try:
        rec.begin()
        t0 = clock()
        deadline = t0 + p.rand_secs
        for chunk in itertools.cycle(chunks):
            for off in chunk:
                if preadv(fd, buf, off) != 4096:
                    short += 1
            ops += len(chunk)
            if clock() >= deadline:
                break
        rec.end("rand", ops, ops / (time.perf_counter() - t0))
    finally:
        os.close(fd)
    if short:
        rec.fail("rand", f"rand: {short} short reads")
    os.unlink(path)
    os.rmdir(base)


def _fsync_rate(path, nbytes, secs, rnd):
    """pwrite 4 KiB + fsync at random 4 KiB-aligned offsets of the existing
    file at path (nbytes long) for secs seconds. @return (ops, seconds)."""
    rng = random.Random(rnd * 7919 + nbytes)
    blocks = nbytes // 4096
    buf = bytearray(os.urandom(4096))
    pwrite, fsync, clock = os.pwrite, os.fsync, time.perf_counter
    ops = 0
    fd = os.open(path, os.O_WRONLY | O_CLOEXEC)
    try:
        t0 = clock()
        deadline = t0 + secs
        while True:
            buf[0:16] = struct.pack("<QQ", rnd, ops)
            if pwrite(fd, buf, rng.randrange(blocks) * 4096) != 4096:
                raise Failure(f"short pwrite to {path}")
            fsync(fd)
            ops += 1
            if clock() >= deadline:
                break
        return ops, clock() - t0
    finally:
        os.close(fd)


def rand_fsync(root, p, rnd, rec):
    """The cost of a small durable change against the file's size: 4 KiB
    pwrite + fsync at random offsets in a big file, then in a small one,
    each written and fsynced first (outside the timed part)."""
    base = _fresh_dir(root, "fsync")
    for workload, mib in (("fsync_big", p.fsync_big_mib), ("fsync_small", p.fsync_small_mib)):
        path = os.path.join(base, f"{workload}.bin")
        _write_seq(path, mib * MiB, rnd, fsync=True)
        rec.begin()
        ops, secs = _fsync_rate(path, mib * MiB, p.fsync_secs, rnd)
        rec.end(workload, ops, ops / secs)
        if os.stat(path).st_size != mib * MiB:
            rec.fail(workload, f"{workload}: the file changed size")
        os.unlink(path)
    os.rmdir(base)


def _same_sample(a, b, nbytes):
    """True when files a and b hold the same bytes at a few offsets."""
    offs = sorted({0, max(0, nbytes - 4096)} |
                  {random.randrange(0, max(1, nbytes - 4096)) for _ in range(16)})
    fa, fb = os.open(a, RFLAGS), os.open(b, RFLAGS)
    try:
        return all(os.pread(fa, 4096, o) == os.pread(fb, 4096, o) for o in offs)
    finally:
        os.close(fa)
        os.close(fb)


def cp_big(root, p, rnd, rec, settle):
    """Time `cp big big2` inside the target, big written (and fsynced)
    before. settle() waits for the target's background work, outside the
    timed part. Records the seconds as "cp", and for a tiercachefs
    "cp_blob_before"/"cp_blob_after", the .stats blob_bytes around the cp."""
    base = _fresh_dir(root, "cp")
    big, big2 = os.path.join(base, "big"), os.path.join(base, "big2")
    nbytes = p.cp_mib * MiB
    _write_seq(big, nbytes, rnd, fsync=True)
    settle()
    before = rec.target.stats().get("blob_bytes") if rec.target.is_tc else None
    rec.begin()
    t0 = time.perf_counter()
    r = subprocess.run(["cp", big, big2], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        raise Failure(f"cp exited {r.returncode}: {r.stdout.strip()}")
    rec.end("cp", 1, secs)
    settle()
    if before is not None:
        rec.values["cp_blob_before"] = before
        rec.values["cp_blob_after"] = rec.target.stats().get("blob_bytes")
    if os.stat(big2).st_size != nbytes or not _same_sample(big, big2, nbytes):
        rec.fail("cp", "cp: the copy differs from the original")
    os.unlink(big2)
    os.unlink(big)
    os.rmdir(base)


def _values(p, rnd):
    keys = [f"key{i:06d}" for i in range(p.values)]
    return keys, _contents(p.values, p.value_size, rnd)


def py_values(root, p, rnd, rec):
    """What a Python program caching values as files would do."""
    d = _fresh_dir(root, "pyvalues")
    keys, vals = _values(p, rnd)
    paths = [os.path.join(d, k) for k in keys]
    n = len(keys)

    rec.begin()
    t0 = time.perf_counter()
    for path, v in zip(paths, vals):
        with open(path, "wb") as f:
            f.write(v)
    rec.end("set", n, n / (time.perf_counter() - t0))

    bad = 0
    rec.begin()
    t0 = time.perf_counter()
    for path, v in zip(paths, vals):
        with open(path, "rb") as f:
            if f.read() != v:
                bad += 1
    rec.end("get", n, n / (time.perf_counter() - t0))
    if bad:
        rec.fail("get", f"get: {bad} of {n} values read back wrong")
    shutil.rmtree(d)


def py_diskcache(root, p, rnd, rec):
    """The same values through python-diskcache's Cache (set/get)."""
    import diskcache
    d = _fresh_dir(root, "diskcache")
    keys, vals = _values(p, rnd)
    n = len(keys)
    cache = diskcache.Cache(d)
    try:
        rec.begin()
        t0 = time.perf_counter()
        for k, v in zip(keys, vals):
            cache.set(k, v)
        rec.end("set", n, n / (time.perf_counter() - t0))

        bad = 0
        rec.begin()
        t0 = time.perf_counter()
        for k, v in zip(keys, vals):
            if cache.get(k) != v:
                bad += 1
        rec.end("get", n, n / (time.perf_counter() - t0))
    finally:
        cache.close()
    if bad:
        rec.fail("get", f"get: {bad} of {n} values read back wrong")
    shutil.rmtree(d)


def populate_path(root, i):
    return os.path.join(root, "pop", f"d{i // 1000:04d}", f"e{i:07d}")


def stat_all(root, n):
    """stat every entry populate() made, in order. @return seconds taken."""
    o_stat = os.stat
    t0 = time.perf_counter()
    for i in range(n):
        o_stat(populate_path(root, i))
    return time.perf_counter() - t0


def populate_range(args):
    """Create entries start..end-1 of size distinct bytes under root/pop/,
    1000 per directory. @p args is (root, start, end, size), so that a
    multiprocessing pool can call it. @return the number created."""
    root, start, end, size = args
    base = os.urandom(size)
    o_open, o_write, o_close = os.open, os.write, os.close
    for i in range(start, end):
        if i % 1000 == 0 or i == start:
            os.makedirs(os.path.dirname(populate_path(root, i)), exist_ok=True)
        fd = o_open(populate_path(root, i), WFLAGS, 0o644)
        o_write(fd, struct.pack("<Q", i) + base[8:])
        o_close(fd)
    return end - start


def populate(root, n, size, jobs, progress=None):
    """Create n entries with jobs processes, in chunks of whole directories;
    progress(done, seconds) after each chunk. @return seconds taken."""
    chunk = max(1000, n // 20 // 1000 * 1000)
    ranges = [(root, s, min(n, s + chunk), size) for s in range(0, n, chunk)]
    t0 = time.perf_counter()
    done = 0
    pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_worker_signals)
    try:
        for k in pool.imap_unordered(populate_range, ranges):
            done += k
            if progress:
                progress(done, time.perf_counter() - t0)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return time.perf_counter() - t0


def _worker_signals():
    # The driver turns SIGTERM into KeyboardInterrupt; a worker just exits.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
