# SPDX-License-Identifier: MIT
"""The two tiers end to end (issue 4, tiercachefs(8): DESCRIPTION, Mount options, NOTES): RAM LRU
eviction by bytes (ram_size) and by items (ram_items) with exact .stats
counts, promotion of a RAM miss, max_ram_item, ram_ttl idle expiry (mount
option and per-tag rule from config=), disk LRU eviction under disk_items
and disk_size (ties broken by name), EFBIG, and open entries that eviction
must skip.

Where a file is is read through user.tiercache.tier, which must not count
as a read. The RAM tier orders by access time with 1 ms granularity, so
tick() lets the clock move on between the steps whose order matters.
"""

import errno
import math
import os
import time

import pytest

from tcutil import (SLOW, read_file, run, tc_get, tc_set, tc_stats,
                    wait_clock, wait_until, write_config, write_file)

K = 1024


# The engine records a disk-tier use at most once a second per entry
# (engine.c ACCESS_GRANULARITY_NS): a read meant to change the disk LRU
# order comes more than that after the entry's last recorded use.
DISK_ACCESS_GRANULARITY = 1.1


def tick():
    """Step past the RAM tier's 1 ms recency granularity."""
    time.sleep(0.003)


def tiers(mnt, names):
    return {n: tc_get(mnt / n, "tier") for n in names}


def blobs(*sizes, seed=0):
    """Distinct contents of the given sizes (distinct hashes: distinct RAM items)."""
    return [bytes([65 + (i + seed) % 26]) * (n - 8) + (i + 1000 * seed).to_bytes(8, "little")
            for i, n in enumerate(sizes)]


def ls(d):
    """Sorted names in d, without the root's .stats and .tags."""
    return sorted(n for n in os.listdir(d) if n not in (".stats", ".tags"))


def assert_counts(s, **want):
    got = {k: s[k] for k in want}
    assert got == {k: float(v) for k, v in want.items()}, f"\n got  {got}\n want {want}"


def counts_soon(r, timeout=2, **want):
    """assert_counts once they settle: an evicted entry's RAM copy and blob
    go when the kernel forgets its inode, which follows the invalidation
    asynchronously (the content stays readable through a descriptor until
    then)."""
    want_f = {k: float(v) for k, v in want.items()}
    try:
        wait_until(lambda: {k: tc_stats(r)[k] for k in want} == want_f, timeout,
                   "the counts to settle")
    except AssertionError:
        pass
    assert_counts(tc_stats(r), **want)


def gone_soon(path):
    """An entry removed by the daemon is ENOENT at once; the kernel is told
    asynchronously, so allow a moment (less than an entry timeout)."""
    wait_until(lambda: not os.path.lexists(path), 0.9, f"{path.name} to be ENOENT")


# -- RAM tier ---------------------------------------------------------------------------

@pytest.mark.daemon_mode("RAM recency and tiers follow the reads the daemon sees; in cache_mode=kernel the page cache serves repeat reads")
def test_ram_lru_eviction_by_bytes(tc_mount):
    """ram_size=100K, four 30000-byte items: the least recently used one
    leaves RAM (stays on disk); reading it back is a disk hit that promotes it
    and evicts the next LRU item."""
    m = tc_mount(opts="ram_size=100K")
    r = m.path
    a, b, c, d = blobs(30_000, 30_000, 30_000, 30_000)
    for name, data in (("a", a), ("b", b), ("c", c)):
        write_file(r / name, data)
        tick()
    assert tiers(r, "abc") == dict.fromkeys("abc", "ram")
    assert_counts(tc_stats(r), ram_items=3, ram_bytes=90_000, ram_evictions=0, puts=3)

    assert read_file(r / "a") == a            # a is now the most recent
    tick()
    write_file(r / "d", d)                    # 120000 > 102400: b goes
    tick()
    assert tiers(r, "abcd") == {"a": "ram", "b": "disk", "c": "ram", "d": "ram"}
    assert_counts(tc_stats(r), ram_items=3, ram_bytes=90_000, ram_evictions=1,
                  gets=1, ram_hits=1, disk_hits=0, promotions=0, puts=4)

    assert read_file(r / "b") == b            # disk hit, promoted; c goes
    tick()
    assert tiers(r, "abcd") == {"a": "ram", "b": "ram", "c": "disk", "d": "ram"}
    s = tc_stats(r)
    assert_counts(s, ram_items=3, ram_bytes=90_000, ram_limit_bytes=100 * K,
                  ram_evictions=2, promotions=1, gets=2, ram_hits=1, disk_hits=1,
                  misses=0, puts=4, write_bytes=120_000, read_bytes=60_000,
                  disk_items=4, disk_bytes=120_000, disk_evictions=0)
    assert read_file(r / "c") == c            # still on disk


@pytest.mark.daemon_mode("RAM recency and tiers follow the reads the daemon sees; in cache_mode=kernel the page cache serves repeat reads")
def test_ram_lru_eviction_by_items(tc_mount):
    """ram_items=2: the third item evicts the LRU one; a promotion evicts
    again; two keys with the same content are one RAM item."""
    m = tc_mount(opts="ram_items=2")
    r = m.path
    a, b, c = blobs(1000, 2000, 3000)
    write_file(r / "a", a)
    tick()
    write_file(r / "b", b)
    tick()
    write_file(r / "c", c)                    # a leaves RAM
    tick()
    assert tiers(r, "abc") == {"a": "disk", "b": "ram", "c": "ram"}
    assert_counts(tc_stats(r), ram_items=2, ram_bytes=5000, ram_evictions=1)

    assert read_file(r / "a") == a            # disk hit, promoted: b leaves
    tick()
    assert tiers(r, "abc") == {"a": "ram", "b": "disk", "c": "ram"}
    assert_counts(tc_stats(r), ram_items=2, ram_bytes=4000, ram_evictions=2,
                  promotions=1, disk_hits=1, ram_hits=0)

    write_file(r / "e", c)                    # same content as c: one RAM item
    tick()
    assert read_file(r / "e") == c            # ram hit on the shared item
    tick()
    assert tiers(r, "ace") == {"a": "ram", "c": "ram", "e": "ram"}
    assert_counts(tc_stats(r), ram_items=2, ram_bytes=4000, ram_evictions=2,
                  ram_hits=1, disk_items=4, disk_bytes=9000, blob_bytes=6000)

    assert read_file(r / "b") == b            # promoted: a is now the LRU item
    tick()
    assert tiers(r, "abce") == {"a": "disk", "b": "ram", "c": "ram", "e": "ram"}
    assert_counts(tc_stats(r), ram_items=2, ram_bytes=5000, ram_evictions=3,
                  promotions=2, disk_hits=2, ram_hits=1, gets=3)


@pytest.mark.daemon_mode("counts the opens and reads the daemon sees; in cache_mode=kernel the kernel's caches serve repeats (test_kernel_mode.py)")
def test_max_ram_item_keeps_large_items_on_disk(tc_mount):
    """max_ram_item=64K: 65537 bytes never enter RAM, not at the put and not
    when read (disk hits, no promotion); exactly 65536 bytes do."""
    m = tc_mount(opts="max_ram_item=64K")
    r = m.path
    big, edge, small = blobs(64 * K + 1, 64 * K, 10)
    write_file(r / "big", big)
    write_file(r / "edge", edge)
    write_file(r / "small", small)
    assert tiers(r, ["big", "edge", "small"]) == {"big": "disk", "edge": "ram",
                                                  "small": "ram"}
    assert_counts(tc_stats(r), ram_items=2, ram_bytes=64 * K + 10, ram_evictions=0)
    for _ in range(2):
        assert read_file(r / "big") == big
    assert tc_get(r / "big", "tier") == "disk"
    assert_counts(tc_stats(r), gets=2, disk_hits=2, ram_hits=0, promotions=0,
                  ram_items=2, ram_bytes=64 * K + 10)

    tc_set(r, "flush", "ram")
    assert read_file(r / "edge") == edge      # small enough: promoted
    assert tiers(r, ["big", "edge", "small"]) == {"big": "disk", "edge": "ram",
                                                  "small": "disk"}
    assert_counts(tc_stats(r), gets=3, disk_hits=3, promotions=1, ram_items=1,
                  ram_bytes=64 * K)


def first_disk_times(mnt, names, until, interval=0.05):
    """Poll the tier of names until each has been seen on disk or until;
    {name: first time seen on disk, or None}."""
    seen = dict.fromkeys(names)
    while time.time() <= until and any(v is None for v in seen.values()):
        for n in names:
            if seen[n] is None and tc_get(mnt / n, "tier") == "disk":
                seen[n] = time.time()
        time.sleep(interval)
    return seen


@pytest.mark.daemon_mode("RAM recency and tiers follow the reads the daemon sees; in cache_mode=kernel the page cache serves repeat reads")
def test_ram_ttl_idle_items_leave_ram(tc_mount):
    """ram_ttl=2s: an item nobody reads leaves RAM after 2 s (not before) and
    stays on disk; an item read every 0.2 s stays; reading the idle one
    again is a disk hit that promotes it."""
    m = tc_mount(opts="ram_ttl=2s")
    r = m.path
    idle, busy = blobs(5000, 6000)
    t0 = time.time()
    write_file(r / "idle", idle)
    t1 = time.time()
    write_file(r / "busy", busy)
    gone = None
    while time.time() < t1 + 2 + 1.5 * SLOW:
        assert read_file(r / "busy") == busy
        if tc_get(r / "idle", "tier") == "disk":
            gone = time.time()
            break
        time.sleep(0.05)
    assert gone is not None, "idle item still in RAM 1.5s after its ram_ttl"
    assert gone >= t0 + 2, f"idle item left RAM after only {gone - t0:.2f}s"
    assert tc_get(r / "busy", "tier") == "ram"
    s = tc_stats(r)
    assert_counts(s, ram_items=1, ram_bytes=6000, disk_items=2, promotions=0)
    assert read_file(r / "idle") == idle
    assert tc_get(r / "idle", "tier") == "ram"
    s2 = tc_stats(r)
    assert s2["disk_hits"] == s["disk_hits"] + 1 and s2["promotions"] == 1, s2


TAG_RAM_TTL_CONF = """\
[mount]
ram_ttl = 2s

[tag keep]
ram_ttl = 1h

[tag brief]
ram_ttl = 1s
"""


def test_tag_ram_ttl_from_config(tc_mount, tmp_path):
    """Per-tag ram_ttl from config=: [tag brief] ram_ttl=1s makes items leave
    RAM after 1 s, [mount] ram_ttl=2s applies to untagged ones, and the first
    matching rule in config order ([tag keep] 1h) keeps an item tagged
    brief,keep in RAM."""
    conf = write_config(tmp_path / "tc.ini", TAG_RAM_TTL_CONF)
    m = tc_mount(opts=f"config={conf}")
    r = m.path
    names = {"plain": None, "brief": "other,brief", "keep": "brief,keep", "keep2": "keep"}
    t0 = time.time()
    for (n, tags), data in zip(names.items(), blobs(100, 200, 300, 400)):
        write_file(r / n, data)
        if tags:
            tc_set(r / n, "tags", tags)
    t1 = time.time()
    assert tiers(r, names) == dict.fromkeys(names, "ram")
    seen = first_disk_times(r, list(names), t1 + 2 + 1.5 * SLOW)
    assert seen["brief"] is not None and t0 + 1 <= seen["brief"] <= t1 + 1 + 1.5 * SLOW, \
        f"brief (ram_ttl 1s) left RAM at {seen['brief'] and seen['brief'] - t0}"
    assert seen["plain"] is not None and t0 + 2 <= seen["plain"] <= t1 + 2 + 1.5 * SLOW, \
        f"plain (ram_ttl 2s) left RAM at {seen['plain'] and seen['plain'] - t0}"
    assert seen["keep"] is None and seen["keep2"] is None, \
        f"[tag keep] ram_ttl=1h items left RAM: {seen}"
    assert_counts(tc_stats(r), ram_items=2, ram_bytes=700, disk_items=4)


# -- disk tier ------------------------------------------------------------------------------

@pytest.mark.daemon_mode("disk-tier recency follows the reads the daemon sees; in cache_mode=kernel only revalidations (test_kernel_mode.py)")
def test_disk_lru_eviction_by_items(tc_mount):
    """disk_items=3: each write beyond three evicts the least recently used
    entry (a read counts as use); the key disappears, from RAM too. The reads
    that must count come a second after the writes: the engine records
    disk-tier use at one-second granularity."""
    m = tc_mount(opts="disk_items=3")
    r = m.path
    data = dict(zip("abcde", blobs(100, 200, 300, 400, 500)))
    for n in "abc":
        write_file(r / n, data[n])
        tick()
    wait_clock(time.time() + DISK_ACCESS_GRANULARITY)
    assert read_file(r / "a") == data["a"]
    tick()
    write_file(r / "d", data["d"])            # LRU: b
    gone_soon(r / "b")
    assert ls(r) == ["a", "c", "d"]
    counts_soon(r, disk_items=3, disk_bytes=800, disk_evictions=1,
                ram_items=3, ram_bytes=800, blob_bytes=800)

    assert read_file(r / "c") == data["c"]
    tick()
    write_file(r / "e", data["e"])            # LRU: a (read before c was read, d written)
    gone_soon(r / "a")
    assert ls(r) == ["c", "d", "e"]
    for n in "cde":
        assert read_file(r / n) == data[n]
    counts_soon(r, disk_items=3, disk_bytes=1200, disk_evictions=2,
                ram_items=3, ram_bytes=1200, blob_bytes=1200, puts=5, deletes=0)


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_disk_lru_eviction_by_size(tc_mount):
    """disk_size=100K: writes evict LRU entries until the logical size fits."""
    m = tc_mount(opts="disk_size=100K")
    r = m.path
    data = dict(zip("abcde", blobs(30_000, 30_000, 30_000, 30_000, 40_000)))
    for n in "abc":
        write_file(r / n, data[n])
        tick()
    wait_clock(time.time() + DISK_ACCESS_GRANULARITY)
    assert read_file(r / "a") == data["a"]
    tick()
    write_file(r / "d", data["d"])            # 120000 > 102400: b goes
    gone_soon(r / "b")
    assert_counts(tc_stats(r), disk_items=3, disk_bytes=90_000, disk_evictions=1)
    write_file(r / "e", data["e"])            # 130000: c goes (100000 fits)
    gone_soon(r / "c")
    assert ls(r) == ["a", "d", "e"]
    counts_soon(r, disk_items=3, disk_bytes=100_000, disk_evictions=2,
                disk_limit_bytes=100 * K, blob_bytes=100_000)


CLOCK_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>

/* The daemon's wall clock in whole seconds, so that entries written within
 * one second share one access time and eviction must break the tie. */
int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	int rc;

	if (!real)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT,
								   "clock_gettime");
	rc = real(id, ts);
	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_nsec = 0;
	return rc;
}
"""


def test_disk_eviction_ties_broken_by_name(tc_mount, tmp_path):
    """Entries used at the same moment are evicted in name order. The daemon
    runs with its wall clock cut to whole seconds (an LD_PRELOAD shim) and c,
    a, b are written within one second: writes beyond disk_items=3 evict a,
    then b, then c, not c first as the write order alone would."""
    src = tmp_path / "clockshim.c"
    src.write_text(CLOCK_SHIM)
    shim = tmp_path / "clockshim.so"
    run(["cc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(src), "-ldl"])
    env = dict(os.environ, LD_PRELOAD=str(shim),
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    m = tc_mount(opts="disk_items=3", env=env)
    r = m.path
    data = dict(zip("cabdef", blobs(10, 20, 30, 40, 50, 60)))
    for attempt in range(5):
        wait_clock(math.floor(time.time()) + 1.02)   # early in a fresh second
        sec = math.floor(time.time())
        for n in "cab":
            write_file(r / n, data[n])
        if math.floor(time.time()) == sec:
            break
        tc_set(r, "flush", "disk")                   # straddled a second: again
    else:
        pytest.fail("could not write three files within one second")
    assert os.stat(r / "c").st_mtime_ns % 1_000_000_000 == 0, \
        "clock shim not in effect (mtime has nanoseconds)"

    for new, evicted, left in (("d", "a", "bcd"), ("e", "b", "cde"), ("f", "c", "def")):
        write_file(r / new, data[new])
        gone_soon(r / evicted)
        assert ls(r) == list(left), f"writing {new} should evict {evicted}"
    assert_counts(tc_stats(r), disk_evictions=3, disk_items=3)


@pytest.mark.daemon_mode("in cache_mode=kernel a file is published after a quiet period, not at close: its error comes at fsync or close (test_kernel_mode.py)")
def test_file_larger_than_disk_size_is_efbig(tc_mount, tmp_path):
    """disk_size=64K: cp of a 100 KiB file fails with "File too large"
    (EFBIG), so does a single write(2) of it, and the tier stays within its
    limit; a file of exactly 64 KiB fits, evicting the rest."""
    m = tc_mount(opts="disk_size=64K")
    r = m.path
    write_file(r / "small", b"s" * 1000)
    src = tmp_path / "big"
    src.write_bytes(os.urandom(100 * K))
    p = run(["cp", str(src), str(r / "big")], check=False)
    assert p.returncode != 0 and "File too large" in p.stderr, p.stderr

    fd = os.open(r / "big2", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = None
    try:
        os.write(fd, os.urandom(100 * K))
    except OSError as e:
        err = e
    try:
        os.close(fd)
    except OSError as e:
        err = err or e
    assert err is not None and err.errno == errno.EFBIG, f"expected EFBIG, got {err}"
    s = tc_stats(r)
    assert s["disk_bytes"] <= 64 * K, s
    for n in ("big", "big2"):
        if os.path.exists(r / n):
            assert os.stat(r / n).st_size <= 64 * K

    exact = os.urandom(64 * K)
    write_file(r / "exact", exact)          # fits, after evicting the rest
    assert read_file(r / "exact") == exact
    gone_soon(r / "small")
    left = [n for n in ("big", "big2") if os.path.exists(r / n)]
    for n in left:                            # what a failed write may leave: nothing
        assert os.stat(r / n).st_size == 0, n
    assert_counts(tc_stats(r), disk_bytes=64 * K, disk_items=1 + len(left))


@pytest.mark.daemon_mode("in cache_mode=kernel opens do not reach the daemon, so an open entry is not pinned (an open descriptor still reads it: test_kernel_mode.py)")
def test_open_entry_is_not_evicted(tc_mount):
    """disk_items=2: the LRU entry is held open, so a write evicts the next
    one instead; the held entry stays listed and readable through its fd, and
    is evicted once closed."""
    m = tc_mount(opts="disk_items=2")
    r = m.path
    data = dict(zip("abcd", blobs(1000, 2000, 3000, 4000)))
    write_file(r / "a", data["a"])
    tick()
    write_file(r / "b", data["b"])
    tick()
    fd = os.open(r / "a", os.O_RDONLY)       # a get: a is now the most recent...
    try:
        tick()
        assert read_file(r / "b") == data["b"]  # ...then b: a is LRU, but open
        tick()
        write_file(r / "c", data["c"])
        gone_soon(r / "b")
        assert ls(r) == ["a", "c"]
        assert os.pread(fd, 5000, 0) == data["a"]
        assert_counts(tc_stats(r), disk_evictions=1, disk_items=2)
    finally:
        os.close(fd)
    tick()
    write_file(r / "d", data["d"])            # a, closed, is LRU now
    gone_soon(r / "a")
    assert ls(r) == ["c", "d"]
    assert_counts(tc_stats(r), disk_evictions=2, disk_items=2)
