# SPDX-License-Identifier: MIT
"""cache_mode=kernel (tiercachefs(8), cache_mode=; SPEC section 8): the kernel's
page and attribute caches are the first tier.

Every test here mounts with cache_mode=kernel itself, whatever TC_CACHE_MODE
says. What they check: writes are seen by other processes at once; changes
the kernel did not make (an evict_tag, a flush, a schema change, an expiry)
are seen within revalidate=; an open descriptor keeps reading an evicted
entry; mmap writers and readers agree; O_APPEND from two writers loses
nothing; the SIGKILL crash cycles leave only whole versions; .stats is never
stale; a hot open+read+close reaches the daemon not at all; and when a
publish happens.
"""

import errno
import mmap
import os
import re
import subprocess
import sys
import time

import pytest

from tcutil import (SLOW, expect_errno, fork_worker, parse_metrics, read_file, read_stats,
                    reap, tc_get, tc_set, tc_stats, wait_until, write_config, write_file,
                    xxh128_hex)

REVALIDATE = 1.0
KERNEL = f"cache_mode=kernel,revalidate={REVALIDATE:g}s"
# What "within revalidate" may take on top of the bound itself: the
# maintenance round that notices (about a second) and a loaded machine.
SLACK = 2.5


def mount_kernel(tc_mount, extra="", **kw):
    return tc_mount(opts=KERNEL + ("," + extra if extra else ""), **kw)


def other_process_read(path):
    """Read path from a new process (its own page-cache-independent view is
    the same page cache: what a second program sees)."""
    r = subprocess.run([sys.executable, "-c",
                        "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())",
                        str(path)], capture_output=True, timeout=30 * SLOW)
    if r.returncode != 0:
        raise OSError(errno.ENOENT, r.stderr.decode(errors="replace").strip(), str(path))
    return r.stdout


def gone(path):
    return not os.path.lexists(path)


def test_stats_says_kernel_mode(tc_mount):
    m = mount_kernel(tc_mount)
    text = read_file(m.path / ".stats").decode()
    assert 'tiercache_cache_mode{mode="kernel"} 1' in text
    assert 'tiercache_cache_mode{mode="daemon"} 0' in text
    help_gets = next(line for line in text.splitlines()
                     if line.startswith("# HELP tiercache_gets_total"))
    assert "cache_mode=kernel" in help_gets


def test_cache_mode_in_config_file_and_bad_value(tc_mount, tmp_path, tc_run, monkeypatch):
    import conftest
    monkeypatch.setattr(conftest, "CACHE_MODE_ENV", "")  # the file decides here
    cfg = write_config(tmp_path / "tc.ini", "[mount]\ncache_mode = kernel\nrevalidate = 2s\n")
    m = tc_mount(opts=f"config={cfg}")
    assert 'cache_mode{mode="kernel"} 1' in read_file(m.path / ".stats").decode()
    m.unmount()
    r = tc_run(["-f", "-o", "cache_mode=bogus", str(tmp_path / "s2"), str(tmp_path / "mnt")])
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "cache_mode" in lines[0], lines


def test_write_seen_by_another_process_at_once(tc_mount):
    m = mount_kernel(tc_mount)
    f = m.path / "k"
    write_file(f, b"first")
    assert other_process_read(f) == b"first"
    # a writer still holding its descriptor: the reader sees the bytes
    with open(f, "r+b", buffering=0) as w:
        w.write(b"SECOND")
        assert other_process_read(f) == b"SECOND"
    write_file(f, b"third, longer than the others")
    assert other_process_read(f) == b"third, longer than the others"


def test_overwrite_seen_within_revalidate(tc_mount):
    m = mount_kernel(tc_mount)
    f = m.path / "k"
    write_file(f, b"v1" * 1000)
    assert read_file(f) == b"v1" * 1000  # cached by the kernel now
    pid = fork_worker(lambda: write_file(f, b"v2" * 10))
    assert reap([pid], 30) == [0]
    wait_until(lambda: read_file(f) == b"v2" * 10, REVALIDATE + SLACK, "the overwrite")


def _read_all_cached(paths):
    for p in paths:
        read_file(p)
        os.stat(p)


def test_evict_tag_seen_within_revalidate(tc_mount):
    m = mount_kernel(tc_mount)
    tagged = [m.path / f"t{i}" for i in range(5)]
    kept = m.path / "kept"
    for p in tagged:
        write_file(p, b"x")
        tc_set(p, "tags", "doomed")
    write_file(kept, b"y")
    _read_all_cached(tagged + [kept])
    assert sorted(os.listdir(m.path))  # the listing is cached too
    t0 = time.monotonic()
    tc_set(m.path, "evict_tag", "doomed")
    wait_until(lambda: all(gone(p) for p in tagged), REVALIDATE + SLACK, "evicted names to go")
    wait_until(lambda: not {p.name for p in tagged} & set(os.listdir(m.path)),
               REVALIDATE + SLACK, "the listing to drop them")
    assert time.monotonic() - t0 <= (REVALIDATE + SLACK) * SLOW
    assert read_file(kept) == b"y"


def test_flush_seen_within_revalidate(tc_mount):
    m = mount_kernel(tc_mount)
    (m.path / "d").mkdir()
    files = [m.path / "a", m.path / "d" / "b"]
    for p in files:
        write_file(p, b"content")
    _read_all_cached(files)
    tc_set(m.path, "flush", "all")
    wait_until(lambda: all(gone(p) for p in files), REVALIDATE + SLACK, "flushed names to go")
    assert (m.path / "d").is_dir() and os.listdir(m.path / "d") == []


def test_schema_change_seen_within_revalidate(tc_mount):
    m = mount_kernel(tc_mount)
    d = m.path / "d"
    d.mkdir()
    tc_set(d, "schema", "v1")
    write_file(d / "old", b"old schema")
    _read_all_cached([d / "old"])
    tc_set(d, "schema", "v2")
    wait_until(lambda: gone(d / "old"), REVALIDATE + SLACK, "the discarded entry to go")
    write_file(d / "new", b"new schema")
    assert tc_get(d / "new", "schema") == "v2"


def test_expiry_seen_within_revalidate(tc_mount):
    m = mount_kernel(tc_mount)
    f = m.path / "short"
    write_file(f, b"soon gone")
    tc_set(f, "ttl", "1s")
    t0 = time.monotonic()
    _read_all_cached([f])
    wait_until(lambda: gone(f), 1 + REVALIDATE + SLACK, "the expired entry to go")
    assert time.monotonic() - t0 >= 0.9  # not before its deadline


def test_sliding_entry_lives_while_read_and_expires_after(tc_mount):
    """Reads the kernel serves keep a sliding entry alive through the
    revalidations they cause; once nothing touches it, it expires within
    its ttl plus revalidate=."""
    m = mount_kernel(tc_mount, "ttl=1,ttl_mode=sliding")
    f = m.path / "s"
    write_file(f, b"slide")
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        assert read_file(f) == b"slide", "sliding entry gone while read"
        time.sleep(0.1)
    last = time.monotonic()
    # wait without touching the name; then look once
    time.sleep((1 + REVALIDATE + 1) * SLOW)  # the lifetime under test, not a synchronisation
    assert gone(f), "sliding entry alive after its ttl with nobody using it"
    assert time.monotonic() - last >= 1


def test_open_descriptor_reads_evicted_entry(tc_mount):
    m = mount_kernel(tc_mount)
    f = m.path / "big"
    data = os.urandom(3 << 20)
    write_file(f, data)
    tc_set(f, "tags", "t")
    fd = os.open(f, os.O_RDONLY)
    try:
        assert os.read(fd, 4096) == data[:4096]
        tc_set(m.path, "evict_tag", "t")
        wait_until(lambda: gone(f), REVALIDATE + SLACK, "the evicted name to go")
        # the kernel's pages gone too: the daemon must serve the rest
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        rest = b""
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            rest += b
        assert data[:4096] + rest == data
    finally:
        os.close(fd)


def test_mmap_writers_and_readers_agree(tc_mount):
    m = mount_kernel(tc_mount)
    f = m.path / "mapped"
    size = 64 << 10
    write_file(f, b"\0" * size)

    def writer():
        fd = os.open(f, os.O_RDWR)
        with mmap.mmap(fd, size) as mm:
            for i in range(0, size, 4096):
                mm[i:i + 8] = i.to_bytes(8, "little")
            mm.flush()
        os.close(fd)
        return 0

    assert reap([fork_worker(writer)], 30) == [0]
    fd = os.open(f, os.O_RDONLY)
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mm:
        for i in range(0, size, 4096):
            assert int.from_bytes(mm[i:i + 8], "little") == i
    os.close(fd)
    want = bytearray(size)
    for i in range(0, size, 4096):
        want[i:i + 8] = i.to_bytes(8, "little")
    assert read_file(f) == bytes(want)
    # published: the store's hash is that of what the mapping wrote
    wait_until(lambda: tc_get(f, "hash") == xxh128_hex(bytes(want)), REVALIDATE + SLACK,
               "the mapped writes to be published")
    m.unmount()
    m2 = mount_kernel(tc_mount)
    assert read_file(m2.path / "mapped") == bytes(want)


def test_append_from_two_writers_loses_nothing(tc_mount):
    m = mount_kernel(tc_mount)
    f = m.path / "log"
    write_file(f, b"")
    lines = 300

    def appender(tag):
        fd = os.open(f, os.O_WRONLY | os.O_APPEND)
        for i in range(lines):
            os.write(fd, f"{tag} {i:05d} {'x' * 40}\n".encode())
        os.close(fd)
        return 0

    pids = [fork_worker(appender, t) for t in ("A", "B")]
    assert reap(pids, 60) == [0, 0]
    got = read_file(f).decode().splitlines()
    assert len(got) == 2 * lines
    for tag in ("A", "B"):
        mine = [ln for ln in got if ln.startswith(tag + " ")]
        assert mine == [f"{tag} {i:05d} {'x' * 40}" for i in range(lines)]
    m.unmount()
    m2 = mount_kernel(tc_mount)
    assert len(read_file(m2.path / "log").decode().splitlines()) == 2 * lines


def test_stats_changes_between_two_reads(tc_mount):
    m = mount_kernel(tc_mount)
    s = m.path / ".stats"
    first = read_file(s)
    write_file(m.path / "f", b"x" * 1000)
    # the put is published at the release that follows the close
    second = wait_until(lambda: (t := read_file(s)) and parse_metrics(t.decode())[
        "tiercache_puts_total"] > parse_metrics(first.decode())["tiercache_puts_total"] and t,
        REVALIDATE + SLACK, "the put to show in .stats")
    assert first != second
    # a descriptor opened earlier keeps reading its own whole snapshot
    with open(s, "rb") as held:
        snap = held.read()
        write_file(m.path / "g", b"y" * 1000)
        held.seek(0)
        assert held.read() == snap
        assert read_file(s) != snap
    expect_errno(errno.EPERM, os.truncate, s, 0)
    expect_errno(errno.EPERM, os.unlink, s)


def _requests(m):
    """Requests the daemon logged so far (-d output: 'unique: N, opcode: X')."""
    return re.findall(r"opcode: ([A-Z_]+)", m.output())


def test_hot_open_read_close_does_not_reach_the_daemon(tc_mount, output_checker):
    output_checker.allow(r"unique: \d+, (error|success)")
    m = tc_mount(opts="cache_mode=kernel,revalidate=60s", args=("-d",))
    paths = [m.path / f"f{i}" for i in range(50)]
    for i, p in enumerate(paths):
        write_file(p, bytes([i]) * 4096)
    for p in paths:  # cold pass: lookups and reads reach the daemon
        fd = os.open(p, os.O_RDONLY)
        os.read(fd, 8192)
        os.close(fd)
    s0 = tc_stats(m.path)
    wait_until(lambda: _requests(m), 10, "the debug log")
    before = len(_requests(m))
    for _ in range(20):
        for i, p in enumerate(paths):
            fd = os.open(p, os.O_RDONLY)
            assert os.read(fd, 8192) == bytes([i]) * 4096
            os.close(fd)
    during = _requests(m)[before:]
    s1 = tc_stats(m.path)
    # (a FORGET of an earlier .stats snapshot may come at any time)
    reached = [r for r in during if r not in ("FORGET", "BATCH_FORGET")]
    assert reached == [], f"a hot pass reached the daemon: {reached[:20]}"
    # .stats itself was looked up once between the two snapshots
    assert s1["gets"] == s0["gets"] and s1["read_bytes"] == s0["read_bytes"]


def test_publish_after_close(tc_mount):
    """A new file is published at the release after its close, a rewrite in
    place once no write came for revalidate=; reading a computed attribute
    publishes first; a rename publishes the file first."""
    m = mount_kernel(tc_mount)
    small = b"small value" * 10
    write_file(m.path / "small", small)
    assert tc_get(m.path / "small", "hash") == xxh128_hex(small)
    big = os.urandom(3 << 20)
    write_file(m.path / "big", big)
    wait_until(lambda: tc_get(m.path / "big", "hash") == xxh128_hex(big),
               REVALIDATE + SLACK, "the large file to be published")
    # an O_TRUNC rewrite that is only a truncate publishes nothing at once
    # and is published whole later
    with open(m.path / "small", "wb") as f:
        f.write(b"rewritten")
    wait_until(lambda: tc_get(m.path / "small", "hash") == xxh128_hex(b"rewritten"),
               REVALIDATE + SLACK, "the rewrite to be published")
    s0 = tc_stats(m.path)["puts"]
    with open(m.path / "tmp", "wb") as f:
        f.write(b"renamed into place")
    os.rename(m.path / "tmp", m.path / "key")
    assert tc_stats(m.path)["puts"] >= s0 + 1
    # without reading an attribute: remount, the store holds it
    m.unmount()
    m2 = mount_kernel(tc_mount)
    assert read_file(m2.path / "key") == b"renamed into place"


def test_fsync_publishes_durably(tc_mount):
    m = mount_kernel(tc_mount)
    fd = os.open(m.path / "f", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"durable" * 1000)
        os.fsync(fd)
        assert tc_get(m.path / "f", "hash") == xxh128_hex(b"durable" * 1000)
    finally:
        os.close(fd)


def test_writes_reach_the_daemon_before_close(tc_mount):
    """No writeback cache: each write(2) is sent to the daemon as it is made
    (the kernel would otherwise hold the pages for up to 30 s), and what a
    writer still holds open is read back whole by another process."""
    m = mount_kernel(tc_mount)
    before = tc_stats(m.path)["write_bytes"]
    fd = os.open(m.path / "open", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"w" * 3000)
        wait_until(lambda: tc_stats(m.path)["write_bytes"] >= before + 3000, SLACK,
                   "the write to reach the daemon")
        os.write(fd, b"x" * 1000)
        assert other_process_read(m.path / "open") == b"w" * 3000 + b"x" * 1000
    finally:
        os.close(fd)
    assert read_file(m.path / "open") == b"w" * 3000 + b"x" * 1000


def test_write_error_reported_at_close_or_fsync(tc_mount, output_checker):
    """A file larger than disk_size fails: at the write(2) that passes the
    limit (writes reach the daemon as they are made), at the latest at fsync
    or close; a file that fits is stored."""
    output_checker.allow(r"(?i)EFBIG|too large|publish")
    m = mount_kernel(tc_mount, "disk_size=1M")
    fd = os.open(m.path / "huge", os.O_WRONLY | os.O_CREAT, 0o644)
    err = None
    try:
        for _ in range(32):
            os.write(fd, b"y" * 65536)
        os.fsync(fd)
    except OSError as e:
        err = e.errno
    finally:
        try:
            os.close(fd)
        except OSError as e:
            err = err or e.errno
    assert err in (errno.EFBIG, errno.EIO), err
    write_file(m.path / "fits", b"z" * 1000)
    assert read_file(m.path / "fits") == b"z" * 1000


def test_crash_cycles_in_kernel_mode(tc_mount, tmp_path):
    """test_crash's SIGKILL cycles, in cache_mode=kernel (a handful; set
    TC_CRASH_KERNEL_CYCLES for more)."""
    from test_crash import crash_cycles
    crash_cycles(tc_mount, tmp_path, int(os.environ.get("TC_CRASH_KERNEL_CYCLES", "8")),
                 opts="cache_mode=kernel")
