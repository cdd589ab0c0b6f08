# SPDX-License-Identifier: MIT
"""Concurrency and soak: fio verifying several concurrent jobs, stress-ng
filesystem stressors, many processes reading and rewriting the same keys,
and a valgrind memcheck run of the daemon (tiercachefs(8): DESCRIPTION and NOTES).

After each run the store is unmounted and `tiercachefs --check` must find
it sound: a clean workload leaves no orphan blob, drift or temporary file.

Environment (CI-sized defaults):
  TC_SOAK_SECONDS         readers/rewriters run time (6)
  TC_SOAK_FIO_SIZE        bytes per fio job (16M)
  TC_SOAK_STRESS_SECONDS  stress-ng --timeout (8)
"""

import errno
import fcntl
import json
import mmap
import os
import random
import re
import shutil
import time

import pytest

import tcutil
from tcutil import (VALGRIND, fork_worker, read_file, reap, run, tc_bin, tc_parse_value,
                    tc_set, tc_value, write_file)

SECONDS = float(os.environ.get("TC_SOAK_SECONDS", "6"))
FIO_SIZE = os.environ.get("TC_SOAK_FIO_SIZE", "16M")
STRESS_SECONDS = int(os.environ.get("TC_SOAK_STRESS_SECONDS", "8"))


def check_store(store):
    r = run([tc_bin(), "--check", str(store)], check=False, timeout=300)
    assert r.returncode == 0, f"--check after a clean workload: rc {r.returncode}\n" \
        f"{r.stdout}{r.stderr}"


def leftovers(mnt):
    return sorted(set(os.listdir(mnt)) - {".stats", ".tags"})


# -- fio -------------------------------------------------------------------------------------

FIO_JOBS = """
[global]
directory={mnt}
size={size}
verify=crc32c
verify_fatal=1
do_verify=1
randrepeat=1
group_reporting=0

[seq]
rw=write
bs=128k
ioengine=sync
numjobs=2

[rand]
rw=randwrite
bsrange=4k-64k
ioengine=psync
numjobs=2
fsync=32
verify_backlog=64

[vec]
rw=randwrite
bs=8k
ioengine=pvsync2
numjobs=1

[mapped]
rw=randwrite
bs=4k
ioengine=mmap
size=4M
numjobs=1

[reader]
rw=randread
bs=16k
ioengine=psync
verify=0
do_verify=0
numjobs=2
"""
FIO_WRITERS = ("seq", "rand", "vec", "mapped")


@pytest.mark.skipif(not shutil.which("fio"), reason="no fio")
def test_fio_concurrent_verify(tc_mount, tmp_path):
    """Sequential, random, vectored and mmap writers plus random readers at
    once, each writer verifying its crc32c headers (during the run with
    verify_backlog, and after it); then again after a remount with a tiny
    RAM tier, so every verify read comes from the disk tier."""
    m = tc_mount(opts="ram_size=4M,max_ram_item=1M")
    job = tmp_path / "soak.fio"
    job.write_text(FIO_JOBS.format(mnt=m.path, size=FIO_SIZE))
    t0 = time.monotonic()
    r = run(["fio", "--output-format=terse", str(job)], check=False, timeout=600,
            cwd=tmp_path)  # fio writes its verify state files in cwd
    assert r.returncode == 0, f"fio exited {r.returncode}\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    elapsed = time.monotonic() - t0
    m.unmount()
    m = tc_mount(opts="ram_size=1M,max_ram_item=64K")
    sections = [f"--section={s}" for s in FIO_WRITERS]
    r = run(["fio", "--output-format=terse", "--verify_only", *sections, str(job)], check=False,
            timeout=600, cwd=tmp_path)
    assert r.returncode == 0, f"fio --verify_only after remount exited {r.returncode}\n" \
        f"{r.stdout[-3000:]}{r.stderr[-3000:]}"
    print(f"\nfio: 8 jobs x {FIO_SIZE} in {elapsed:.1f}s, verified again after remount")
    for f in os.listdir(m.path):
        if f not in (".stats", ".tags"):
            os.unlink(m.path / f)
    m.unmount()
    check_store(m.store)


# -- stress-ng ---------------------------------------------------------------------------------

# Stressors that exercise a filesystem; all run at once. fsize is left out
# (it checks RLIMIT_FSIZE handling of fallocate, which is the kernel's FUSE
# code, not ours).
STRESSORS = ["hdd", "dentry", "dir", "dirdeep", "rename", "link", "symlink", "flock", "lockf",
             "fcntl", "lockofd", "locka", "lease", "seek", "xattr", "utime", "chdir",
             "filename", "getdent", "io", "readahead", "chmod", "chown", "copy-file", "iomix",
             "fpunch", "mmap", "open", "access", "fstat", "fallocate", "sync-file"]


@pytest.mark.skipif(not shutil.which("stress-ng"), reason="no stress-ng")
def test_stress_ng_filesystem(tc_mount, tmp_path):
    m = tc_mount()
    have = set(run(["stress-ng", "--stressors"]).stdout.split())
    chosen = [s for s in STRESSORS if s in have]
    args = [a for s in chosen for a in (f"--{s}", "1")]
    cmd = ["stress-ng", *args, "--temp-path", str(m.path), "--timeout", f"{STRESS_SECONDS}s",
           "--verify", "--metrics-brief", "--hdd-bytes", "4M", "--iomix-bytes", "4M",
           "--mmap-bytes", "4M", "--seek-size", "4M", "--readahead-bytes", "4M",
           "--dirdeep-dirs", "1", "--dirdeep-inodes", "2000"]
    r = run(cmd, check=False, timeout=STRESS_SECONDS * 10 + 120, cwd=tmp_path)
    out = r.stdout + r.stderr
    bad = [ln for ln in out.splitlines()
           if re.search(r"(?i)\bfail|\berror\b|verif.*(mismatch|differ)|unsuccessful", ln)
           and "fsize" not in ln]
    assert r.returncode == 0 and not bad, \
        f"stress-ng exited {r.returncode}\n" + "\n".join(bad[:40]) + "\n" + out[-3000:]
    assert "successful run completed" in out, out[-2000:]
    print(f"\nstress-ng: {len(chosen)} stressors at once for {STRESS_SECONDS}s: "
          + " ".join(chosen))
    assert leftovers(m.path) == [], f"stress-ng left {leftovers(m.path)[:10]}"
    m.unmount()
    check_store(m.store)


# -- readers and rewriters on the same keys ------------------------------------------------------

RKEYS = [f"r{i:02d}" for i in range(12)]  # replaced by rename (lock-free)
LKEYS = [f"l{i:02d}" for i in range(6)]   # rewritten in place under flock
SIZES = [0, 10, 4096, 12_345, 65_536, 200_000, 700_000]


def rewriter(mnt, w, seed, until, out):
    rnd = random.Random(seed)
    n = errors = 0
    err_samples = []
    seq = 0
    while time.monotonic() < until:
        seq += 1
        key = rnd.choice(RKEYS + LKEYS)
        data = tc_value(key, f"w{w}.{seq}", rnd.choice(SIZES))
        try:
            if key in RKEYS:
                tmp = os.path.join(mnt, f".tmp.{w}.{seq}")
                write_file(tmp, data)
                if rnd.random() < 0.2:
                    fd = os.open(tmp, os.O_RDONLY)
                    os.fsync(fd)
                    os.close(fd)
                os.rename(tmp, os.path.join(mnt, key))
            else:
                fd = os.open(os.path.join(mnt, key), os.O_WRONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    os.ftruncate(fd, 0)
                    off = 0
                    while off < len(data):
                        off += os.pwrite(fd, data[off:off + 65536], off)
                    if rnd.random() < 0.2:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            n += 1
        except OSError as e:
            errors += 1
            err_samples.append(f"{key}: {e}")
    with open(out, "w") as fh:
        json.dump({"writes": n, "errors": errors, "samples": err_samples[:5]}, fh)
    return 0


def reader(mnt, seed, until, out):
    rnd = random.Random(seed)
    reads = torn = errors = held = 0
    samples = []

    def judge(key, data, how):
        nonlocal torn
        _, why = tc_parse_value(key, data)
        if why:
            torn += 1
            samples.append(f"{key} ({how}): {why}")

    while time.monotonic() < until:
        key = rnd.choice(RKEYS + LKEYS)
        path = os.path.join(mnt, key)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                if key in LKEYS:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                how = rnd.choice(["read", "read", "pread-later", "mmap"])
                if how == "mmap" and os.fstat(fd).st_size:
                    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mm:
                        judge(key, mm[:], how)
                elif how == "pread-later" and key in RKEYS:
                    # keep the handle across a likely replacement: it keeps
                    # the content it opened (tiercachefs(8), NOTES)
                    first = os.pread(fd, 1 << 20, 0)
                    os.sched_yield()
                    time.sleep(0.001 * rnd.random())  # widen the window, not a sync
                    again = os.pread(fd, 1 << 20, 0)
                    judge(key, first, "first read of held fd")
                    judge(key, again, "second read of held fd")
                    if first != again:
                        torn += 1
                        samples.append(f"{key}: a held fd changed content")
                    held += 1
                else:
                    chunks = []
                    while True:
                        b = os.read(fd, rnd.choice([4096, 65536, 1 << 20]))
                        if not b:
                            break
                        chunks.append(b)
                    judge(key, b"".join(chunks), "read")
            finally:
                os.close(fd)
            reads += 1
        except OSError as e:
            errors += 1
            samples.append(f"{key}: {e}")
    with open(out, "w") as fh:
        json.dump({"reads": reads, "torn": torn, "errors": errors, "held": held,
                   "samples": samples[:10]}, fh)
    return 0


def test_readers_never_see_torn_values(tc_mount, tmp_path):
    """Writers replace keys by rename or rewrite them in place under flock;
    readers (read, pread on a held fd, mmap) must only ever see complete
    values. A small RAM tier keeps content moving between the tiers."""
    m = tc_mount(opts="ram_size=1M,max_ram_item=256K")
    for k in RKEYS + LKEYS:
        write_file(m.path / k, tc_value(k, "init", 1000))
    rnd = random.Random()
    seed = rnd.randrange(1 << 30)
    until = time.monotonic() + SECONDS
    outs = [tmp_path / f"w{i}.json" for i in range(3)] + [tmp_path / f"r{i}.json"
                                                          for i in range(4)]
    pids = [fork_worker(rewriter, str(m.path), i, seed + i, until, outs[i]) for i in range(3)]
    pids += [fork_worker(reader, str(m.path), seed + 10 + i, until, outs[3 + i])
             for i in range(4)]
    codes = reap(pids, SECONDS + 60)
    assert codes == [0] * len(pids), f"worker exit statuses {codes}"
    res = [json.loads(p.read_text()) for p in outs]
    writes = sum(r["writes"] for r in res[:3])
    reads = sum(r["reads"] for r in res[3:])
    torn = sum(r["torn"] for r in res[3:])
    errors = sum(r["errors"] for r in res)
    samples = [s for r in res for s in r["samples"]]
    print(f"\nreaders/rewriters: {writes} writes, {reads} reads "
          f"({sum(r['held'] for r in res[3:])} on held fds) in {SECONDS}s; torn {torn}, "
          f"errors {errors}")
    assert torn == 0 and errors == 0, f"{torn} torn reads, {errors} errors:\n" + \
        "\n".join(samples[:20])
    assert writes > 20 and reads > 20, f"too little work: {writes} writes, {reads} reads"
    for k in RKEYS + LKEYS:
        _, why = tc_parse_value(k, read_file(m.path / k))
        assert why is None, f"{k}: {why}"
    assert not [n for n in leftovers(m.path) if n.startswith(".tmp.")]
    m.unmount()
    check_store(m.store)
    m = tc_mount()
    for k in RKEYS + LKEYS:
        _, why = tc_parse_value(k, read_file(m.path / k))
        assert why is None, f"after remount, {k}: {why}"


# -- valgrind ----------------------------------------------------------------------------------

def _uses_sanitizer(binary):
    r = run(["ldd", binary], check=False)
    return "libasan" in r.stdout or "libtsan" in r.stdout or "libubsan" in r.stdout


@pytest.mark.skipif(not shutil.which("valgrind"), reason="no valgrind")
@pytest.mark.skipif(VALGRIND, reason="TC_VALGRIND=1 already runs every daemon under valgrind")
def test_valgrind_memcheck(tc_mount, monkeypatch):
    """A small workload touching every kind of request, under memcheck
    (--error-exitcode=99 --leak-check=full): the fixture fails the test on
    any valgrind report or a non-zero exit."""
    if _uses_sanitizer(tc_bin()):
        pytest.skip("a sanitizer build cannot run under valgrind")
    monkeypatch.setattr(tcutil, "VALGRIND", True)  # daemon_prefix() -> valgrind
    m = tc_mount(opts="ram_size=256K,max_ram_item=64K,ram_items=8")
    p = m.path
    (p / "d" / "e").mkdir(parents=True)
    files = {}
    for i, n in enumerate([0, 1, 4095, 65_536, 100_000, 300_000]):
        files[p / "d" / f"f{i}"] = os.urandom(n)
        write_file(p / "d" / f"f{i}", files[p / "d" / f"f{i}"])
    for f, data in files.items():
        assert read_file(f) == data
    f = p / "d" / "f2"
    tc_set(f, "ttl", "1h")
    tc_set(f, "tags", "a,b")
    tc_set(f, "schema", "v1")
    tc_set(f, "ttl_mode", "sliding")
    os.setxattr(f, "user.x", b"v" * 1000)
    assert os.getxattr(f, "user.x") == b"v" * 1000
    for n in ("expires", "tier", "hash", "tags"):
        os.getxattr(f, "user.tiercache." + n)
    os.listxattr(f)
    os.removexattr(f, "user.x")
    try:
        tc_set(f, "ttl", "bogus")
    except OSError as e:
        assert e.errno == errno.EINVAL
    os.rename(p / "d" / "f1", p / "d" / "e" / "moved")
    os.link(p / "d" / "f3", p / "d" / "hard")
    os.symlink("f3", p / "d" / "sym")
    assert os.readlink(p / "d" / "sym") == "f3"
    os.truncate(p / "d" / "f4", 10)
    with open(p / "d" / "f5", "r+b") as fh:
        fh.seek(150_000)
        fh.write(b"patched")
        fh.flush()
        os.fsync(fh.fileno())
    held = open(p / "d" / "f3", "rb")
    os.unlink(p / "d" / "f3")
    assert held.read() == files[p / "d" / "f3"]
    held.close()
    os.mkfifo(p / "d" / "fifo")
    sorted(os.listdir(p / "d"))
    os.statvfs(p)
    read_file(p / ".stats")
    tc_set(p, "flush", "ram")
    tc_set(p, "evict_tag", "nosuch")
    tc_set(p, "expire", "1")
    tc_set(p, "reset_stats", "1")
    assert read_file(p / "d" / "f0") == b""
    m.unmount()
    m = tc_mount(opts="ram_size=256K,max_ram_item=64K")
    assert read_file(m.path / "d" / "f4") == files[p / "d" / "f4"][:10]
    assert read_file(m.path / "d" / "hard") == files[p / "d" / "f3"]
    shutil.rmtree(m.path / "d")
    tc_set(m.path, "flush", "all")
    m.unmount()
    assert re.search(r"valgrind", " ".join(m.cmd)), m.cmd
