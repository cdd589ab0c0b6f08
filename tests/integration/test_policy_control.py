# SPDX-License-Identifier: MIT
"""Controlling the cache end to end (issue 4, tiercachefs(8)): the root's
control attributes (flush=ram|disk|all, expire, reset_stats; EPERM
elsewhere), config files with a malformed line refused with FILE:LINE,
df showing the disk tier, and a scripted workload whose every .stats
counter is known exactly afterwards.

Exact counts follow tiercachefs(8), STATISTICS with the brief's caveats: each get is one
open from python, and misses are looked up under names the kernel holds no
entry for (fresh names, or names whose entry was dropped by unlink or by the
daemon's invalidation), since a stale kernel entry makes the kernel look a
name up twice.
"""

import errno
import os
import subprocess
import time
from fractions import Fraction

import pytest

from tcutil import (SLOW, XATTR_PREFIX, daemon_prefix, expect_errno, is_mounted, read_file,
                    run, tc_bin, tc_get, tc_set, tc_stats, wait_clock, wait_until,
                    write_config, write_file)

K = 1024
CONTROLS = {"flush": ["ram", "disk", "all"], "expire": ["1"], "reset_stats": ["1"],
            "evict_tag": ["t"]}
COUNTERS = ["gets", "ram_hits", "disk_hits", "misses", "puts", "deletes", "ram_evictions",
            "disk_evictions", "expirations", "schema_discards", "promotions", "corruptions",
            "read_bytes", "write_bytes"]


def tick():
    """Step past the RAM tier's 1 ms recency granularity."""
    time.sleep(0.003)


def ls(d):
    return sorted(n for n in os.listdir(d) if n not in (".stats", ".tags"))


def assert_counts(s, **want):
    got = {k: s[k] for k in want}
    assert got == {k: float(v) for k, v in want.items()}, f"\n got  {got}\n want {want}"


def du_bytes(path):
    return int(run(["du", "-sb", str(path)]).stdout.split()[0])


# -- control attributes ------------------------------------------------------------------

@pytest.mark.daemon_mode("RAM recency and tiers follow the reads the daemon sees; in cache_mode=kernel the page cache serves repeat reads")
def test_flush_ram(tc_mount):
    """flush=ram empties the RAM tier (not counted as RAM evictions) and
    keeps every entry on disk; the next read is a disk hit that promotes."""
    m = tc_mount()
    r = m.path
    a, b = os.urandom(1000), os.urandom(2000)
    write_file(r / "a", a)
    write_file(r / "b", b)
    assert tc_get(r / "a", "tier") == tc_get(r / "b", "tier") == "ram"
    tc_set(r, "reset_stats", "1")
    tc_set(r, "flush", "ram")
    assert tc_get(r / "a", "tier") == tc_get(r / "b", "tier") == "disk"
    assert_counts(tc_stats(r), ram_items=0, ram_bytes=0, ram_evictions=0, disk_items=2,
                  disk_bytes=3000, disk_evictions=0, blob_bytes=3000)
    assert read_file(r / "a") == a
    assert tc_get(r / "a", "tier") == "ram" and tc_get(r / "b", "tier") == "disk"
    assert_counts(tc_stats(r), gets=1, disk_hits=1, ram_hits=0, promotions=1, ram_items=1,
                  ram_bytes=1000, ram_evictions=0)


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
@pytest.mark.parametrize("what", ["disk", "all"])
def test_flush_disk_removes_every_entry(tc_mount, what):
    """flush=disk|all removes every non-directory entry (files, hard links,
    symlinks, FIFOs) and keeps directories; the RAM tier and the blobs empty;
    a handle open before keeps reading; the cache works on afterwards."""
    m = tc_mount()
    r = m.path
    (r / "d" / "e").mkdir(parents=True)
    f = os.urandom(100_000)
    write_file(r / "f", f)
    write_file(r / "d" / "g", os.urandom(70_000))  # both over 64 KiB: blob files
    write_file(r / "d" / "e" / "h", b"h" * 10)
    os.link(r / "f", r / "d" / "f_link")
    os.symlink("f", r / "sym")
    os.mkfifo(r / "d" / "fifo")
    du0 = du_bytes(m.store / "blobs")
    with open(r / "f", "rb") as held:
        tc_set(r, "flush", what)
        assert ls(r / "d" / "e") == []
        for n in ("f", "d/g", "d/f_link", "d/e/h"):
            wait_until(lambda: not os.path.lexists(r / n), 0.9, f"{n} to be ENOENT")
        assert held.read() == f
    s = wait_until(lambda: (s := tc_stats(r))["blob_bytes"] == 0 and s, 3,
                   "blobs to be reclaimed after the flush")
    assert_counts(s, disk_items=0, disk_bytes=0, ram_items=0, ram_bytes=0)
    # files go once the group that dropped their last reference commits
    wait_until(lambda: du_bytes(m.store / "blobs") <= du0 - 170_000, 3,
               "blob files to be deleted")
    st = os.statvfs(r)
    assert st.f_bfree == st.f_blocks
    write_file(r / "d" / "again", b"works")
    assert read_file(r / "d" / "again") == b"works"
    # symlinks and FIFOs are non-directory entries too
    left = [n for n in ("sym", "d/fifo") if os.path.lexists(r / n)]
    assert not left, f"flush={what} left non-directory entries: {left}"
    assert ls(r) == ["d"] and ls(r / "d") == ["again", "e"]


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_expire_runs_the_sweep_now(tc_mount):
    """expire drops every expired entry at once (counted, gone from the
    gauges) and nothing else; their blobs are freed soon after."""
    m = tc_mount()
    r = m.path
    (r / "short").mkdir()
    tc_set(r / "short", "ttl", "1")
    for i in range(5):
        write_file(r / "short" / f"f{i}", os.urandom(10_000))
    t1 = time.time()
    write_file(r / "stays", b"no ttl")
    wait_clock(t1 + 1.05)
    tc_set(r, "expire", "1")
    assert_counts(tc_stats(r), expirations=5, disk_items=1, disk_bytes=6, misses=0)
    assert ls(r / "short") == []
    assert read_file(r / "stays") == b"no ttl"
    wait_until(lambda: tc_stats(r)["blob_bytes"] == 6, 3, "expired blobs to be freed")


@pytest.mark.daemon_mode("counts the opens and reads the daemon sees; in cache_mode=kernel the kernel's caches serve repeats (test_kernel_mode.py)")
def test_reset_stats_zeroes_counters_only(tc_mount):
    m = tc_mount(opts="ram_items=1")
    r = m.path
    write_file(r / "a", b"a" * 100)
    write_file(r / "b", b"b" * 200)           # a leaves RAM
    read_file(r / "a")
    assert not (r / "nope").exists()
    s0 = tc_stats(r)
    assert all(s0[c] > 0 for c in ("gets", "puts", "misses", "ram_evictions",
                                   "promotions", "disk_hits", "read_bytes")), s0
    tc_set(r, "reset_stats", "1")
    s1 = tc_stats(r)
    assert {c: s1[c] for c in COUNTERS} == dict.fromkeys(COUNTERS, 0.0)
    assert s1["hit_ratio"] == 0
    for g in ("ram_items", "ram_bytes", "disk_items", "disk_bytes", "blob_bytes",
              "ram_limit_bytes", "disk_limit_bytes"):
        assert s1[g] == s0[g], g
    assert s1["uptime_seconds"] >= s0["uptime_seconds"]
    read_file(r / "a")                         # counting goes on from zero
    assert_counts(tc_stats(r), gets=1, ram_hits=1, misses=0, puts=0)


@pytest.mark.daemon_mode("counts the opens and reads the daemon sees; in cache_mode=kernel the kernel's caches serve repeats (test_kernel_mode.py)")
def test_read_bytes_counts_what_the_daemon_served(tc_mount):
    """read_bytes counts the bytes the daemon served (its HELP text): the
    kernel keeps the pages of unchanged content (keep_cache), so reading a
    file three times counts its size once, and three gets; after a rewrite
    the next read is served again."""
    m = tc_mount()
    r = m.path
    write_file(r / "f", os.urandom(10_000))
    tc_set(r, "reset_stats", "1")
    for _ in range(3):
        assert len(read_file(r / "f")) == 10_000
    assert_counts(tc_stats(r), gets=3, read_bytes=10_000)
    write_file(r / "f", os.urandom(10_000))
    assert len(read_file(r / "f")) == 10_000
    assert_counts(tc_stats(r), gets=4, read_bytes=20_000)


def test_controls_only_on_the_root(mnt):
    """Each control attribute gives EPERM on a file or a directory below the
    root, and changes nothing."""
    (mnt / "d").mkdir()
    write_file(mnt / "d" / "f", b"x")
    tc_set(mnt / "d" / "f", "tags", "t")
    for p in (mnt / "d", mnt / "d" / "f"):
        for name, values in CONTROLS.items():
            for v in values:
                expect_errno(errno.EPERM, os.setxattr, p, XATTR_PREFIX + name, v.encode())
        r = run(["setfattr", "-n", XATTR_PREFIX + "flush", "-v", "all", str(p)], check=False)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    assert read_file(mnt / "d" / "f") == b"x"
    assert tc_get(mnt / "d" / "f", "tier") == "ram"


# -- config files ----------------------------------------------------------------------

def refused(tmp_path, opts):
    """Start the daemon expecting it to refuse; returns its output.

    Fails (and unmounts) if it mounts instead."""
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    cmd = [*daemon_prefix(), tc_bin(), "-f", "-o", opts, str(tmp_path / "store"), str(mnt)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, text=True)
    end = time.monotonic() + 20 * SLOW
    while p.poll() is None and time.monotonic() < end:
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
            out = p.communicate(timeout=30 * SLOW)[0]
            pytest.fail(f"mounted with {opts!r}; output: {out!r}")
        time.sleep(0.02)
    if p.poll() is None:
        p.kill()
        p.wait()
        pytest.fail(f"daemon neither mounted nor exited with {opts!r}")
    out = p.communicate()[0]
    assert p.returncode != 0, f"exit status 0 with {opts!r}: {out!r}"
    assert not is_mounted(mnt)
    return out


@pytest.mark.parametrize("text,line,word", [
    ("[mount]\nram_size = 1M\nthis line is junk\n", 3, None),
    ("# comment\n\n[mount]\nttl = 5y\n", 4, "ttl"),
    ("[mount]\nram_size =\n", 2, "ram_size"),
    ("[mount]\nunknown_opt = 3\n", 2, "unknown_opt"),
    ("[mount]\ndisk_size = 1G\n[tag bad tag]\nttl = 1h\n", 3, "bad tag"),
    ("[tag t]\nttl = 1h\nschema = v1\n", 3, "schema"),
    ("[tag t]\nram_ttl = never\n", 2, "ram_ttl"),
    ("[mount\nram_size = 1M\n", 1, None),
    ("ram_size = 1M\n", 1, "ram_size"),
    ("[mount]\nram_size = 1M\n[mont]\ndisk_size = 1G\n", 3, "mont"),
], ids=["junk", "bad-duration", "empty-value", "unknown-option", "bad-tag-name",
        "unknown-tag-key", "bad-ram_ttl", "unclosed-section", "outside-section",
        "unknown-section"])
def test_malformed_config_line_refused(tmp_path, text, line, word):
    """A config file with a malformed line: non-zero exit, no mount, one
    line of output naming FILE:LINE (and the offending word)."""
    conf = write_config(tmp_path / "tc.ini", text)
    out = refused(tmp_path, f"config={conf}")
    lines = [x for x in out.splitlines() if x.strip()]
    assert len(lines) == 1, f"expected one line, got {out!r}"
    assert f"{conf}:{line}" in lines[0], f"no {conf}:{line} in {lines[0]!r}"
    if word:
        assert word in lines[0], lines[0]


def test_config_file_applies(tc_mount, tmp_path):
    """A well-formed config (comments, blanks, spaces around '=') sets the
    mount options it names."""
    conf = write_config(tmp_path / "tc.ini", "; limits\n[mount]\n  ram_size = 3M \n"
                        "disk_size=7M\n\n# rules\n[tag t]\nttl = 2h\n")
    m = tc_mount(opts=f"config={conf}")
    s = tc_stats(m.path)
    assert s["ram_limit_bytes"] == 3 << 20 and s["disk_limit_bytes"] == 7 << 20, s


# -- df --------------------------------------------------------------------------------------

def df(path):
    out = run(["df", "-B1", "--output=size,used,avail", str(path)]).stdout.split("\n")[1]
    return tuple(int(x) for x in out.split())


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_df_shows_the_disk_tier(tc_mount):
    """df: size is disk_size; used is the logical bytes of all entries
    (duplicates count twice though stored once) and follows writes,
    deletes and evictions; avail is the rest."""
    m = tc_mount(opts="disk_size=10M")
    r = m.path
    assert df(r) == (10 << 20, 0, 10 << 20)
    dup = os.urandom(1 << 20)
    write_file(r / "one", dup)
    write_file(r / "two", dup)
    write_file(r / "three", os.urandom(512 * K))
    tc_set(r / "three", "tags", "gone")
    s = tc_stats(r)
    assert s["disk_bytes"] == 2.5 * (1 << 20) and s["blob_bytes"] == 1.5 * (1 << 20), s
    assert df(r) == (10 << 20, 5 << 19, (10 << 20) - (5 << 19))
    os.unlink(r / "two")
    assert df(r) == (10 << 20, 3 << 19, (10 << 20) - (3 << 19))
    tc_set(r, "evict_tag", "gone")
    assert df(r) == (10 << 20, 1 << 20, 9 << 20)
    tc_set(r, "flush", "all")
    assert df(r) == (10 << 20, 0, 10 << 20)


# -- exact counts ------------------------------------------------------------------------------

def test_one_lookup_of_an_expired_name_is_one_miss(tc_mount):
    """A program that stats a name the kernel still holds after its entry
    expired does one lookup: one miss, one expiration (tiercachefs(8), STATISTICS)."""
    m = tc_mount()
    r = m.path
    write_file(r / "k", b"v")
    tc_set(r / "k", "ttl", "1")
    t1 = time.time()
    assert (r / "k").exists()                  # the kernel holds the entry
    tc_set(r, "reset_stats", "1")
    # Poll from just before the deadline, so the first lookup that fails is
    # right after it (before the background sweep, which runs once a second,
    # drops the entry); the stats before that are served by the kernel.
    wait_clock(t1 + 0.8)
    end = time.time() + 2
    while (r / "k").exists():
        assert time.time() < end, "k did not expire"
        time.sleep(0.002)
    assert_counts(tc_stats(r), misses=1, expirations=1)


@pytest.mark.daemon_mode("counts the opens and reads the daemon sees; in cache_mode=kernel the kernel's caches serve repeats (test_kernel_mode.py)")
def test_scripted_workload_exact_stats(tc_mount):
    """A known sequence of puts, gets, misses, RAM and disk evictions,
    promotions, a delete and an expiration, with ram_items=2 and
    disk_items=4; afterwards every counter and gauge of .stats has exactly
    the value the sequence implies. The snapshot is printed (pytest -s).

    The disk victim (v) is the first entry written and is never read, so
    it is the least recently used whether or not the engine records reads
    at a coarse granularity."""
    m = tc_mount(opts="ram_items=2,disk_items=4")
    r = m.path
    tc_set(r, "reset_stats", "1")
    sizes = {"v": 300, "a": 100, "b": 200, "d": 400, "e": 500, "nope1": 600}
    data = {n: bytes([97 + i]) * s for i, (n, s) in enumerate(sizes.items())}

    def put(n):
        write_file(r / n, data[n])
        tick()

    def get(n, flags=os.O_RDONLY):
        """One get: one open, read to the end, close."""
        fd = os.open(r / n, flags)
        try:
            got = b""
            while chunk := os.read(fd, 65536):
                got += chunk
        finally:
            os.close(fd)
        assert got == data[n], n
        tick()

    def tiers(names):
        return {n: tc_get(r / n, "tier") for n in names}

    put("v")
    put("a")
    put("b")                      # RAM over 2 items: v leaves RAM (ram_evictions 1)
    assert tiers("vab") == {"v": "disk", "a": "ram", "b": "ram"}
    get("b")                      # get 1: RAM hit
    put("d")                      # RAM: a leaves (2); disk holds v a b d
    get("a")                      # get 2: disk hit, promotion 1; RAM: b leaves (3)
    get("a")                      # get 3: RAM hit
    assert tiers("vabd") == {"v": "disk", "a": "ram", "b": "disk", "d": "ram"}
    for n in ("nope1", "nope2", "nope3"):
        assert not (r / n).exists()               # misses 1-3: fresh names
    put("e")                      # disk over 4: v (LRU, never read) evicted; RAM: d leaves (4)
    wait_until(lambda: not (r / "v").exists(), 1, "v to be evicted")  # miss 4
    os.unlink(r / "d")            # delete 1
    get("b")                      # get 4: disk hit, promotion 2; RAM: a leaves (5)
    tc_set(r / "a", "ttl", "1")   # a expires later; nobody looks it up again
    t_ttl = time.time()
    put("nope1")                  # its lookup (a miss) is taken back by the create; RAM: e leaves (6)
    get("e", os.O_RDWR)           # get 5: O_RDWR is a read; disk hit, promotion 3; RAM: b leaves (7)
    data["b"] = b"B" * 250
    put("b")                      # overwrite: put 7; RAM: nope1 leaves (8)
    assert not (r / "d").exists()                 # miss 5: unlinked, no kernel entry
    wait_clock(t_ttl + 1.01)
    tc_set(r, "expire", "1")      # expiration 1
    assert ls(r) == ["b", "e", "nope1"]
    assert tiers(["b", "e", "nope1"]) == {"b": "ram", "e": "ram", "nope1": "disk"}
    s = wait_until(lambda: (s := tc_stats(r))["blob_bytes"] == 1350 and s, 3,
                   "blobs of evicted, deleted, expired and replaced contents to go")
    text = read_file(r / ".stats").decode()
    print("\n[scripted workload] .stats:\n" + text)
    s = tc_stats(r)

    want = {
        "gets": 5, "ram_hits": 2, "disk_hits": 3, "misses": 5, "puts": 7, "deletes": 1,
        "ram_evictions": 8, "disk_evictions": 1, "expirations": 1, "schema_discards": 0,
        "promotions": 3, "corruptions": 0,
        # bytes the daemon served: the second get of a and of b come from
        # the kernel's page cache (content unchanged since it was cached)
        "read_bytes": 200 + 100 + 500,
        "write_bytes": 300 + 100 + 200 + 400 + 500 + 600 + 250,
        "ram_items": 2, "ram_bytes": 500 + 250, "ram_limit_bytes": 256 << 20,
        "disk_items": 3, "disk_bytes": 250 + 500 + 600, "disk_limit_bytes": 10 << 30,
        "blob_bytes": 1350,
    }
    got = {k: s[k] for k in want}
    assert got == {k: float(v) for k, v in want.items()}, \
        "\n".join(f"{k}: got {got[k]:g}, want {v}" for k, v in want.items() if got[k] != v)
    assert Fraction(s["hit_ratio"]).limit_denominator(1000) == Fraction(5, 10), s["hit_ratio"]
