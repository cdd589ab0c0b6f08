# SPDX-License-Identifier: MIT
"""Tags and schema versions end to end (issue 4, tiercachefs(8), EXTENDED ATTRIBUTES): evict_tag
removing every entry carrying a tag (at 10,000 entries, timed), and schema
versions on a directory and at the root (schema= mount option) retiring the
entries of another version: ENOENT, discarded and counted, hidden from
readdir, while new files take the expected version."""

import os
import pytest
import random
import time
from concurrent.futures import ThreadPoolExecutor

from tcutil import (read_file, tc_get, tc_set, tc_stats, wait_until, write_file)

N_BULK = 10_000
WORKERS = 4


def ls(d):
    return sorted(n for n in os.listdir(d) if n not in (".stats", ".tags"))


def assert_counts(s, **want):
    got = {k: s[k] for k in want}
    assert got == {k: float(v) for k, v in want.items()}, f"\n got  {got}\n want {want}"


def absent_soon(path, timeout=1.2):
    """ENOENT, allowing for the kernel being told asynchronously."""
    wait_until(lambda: not os.path.lexists(path), timeout, f"{path} to be ENOENT")


# -- tags --------------------------------------------------------------------------------

@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_evict_tag_semantics(mnt):
    """evict_tag removes every entry carrying the tag wherever it stands in
    the list, and nothing else; a hard-linked entry goes with all its names
    (one eviction); the counts are disk_evictions, not deletes; an open
    handle keeps reading; the blobs are reclaimed."""
    (mnt / "d").mkdir()
    files = {"d/abc": "a,b,c", "d/b": "b", "c": "c", "none": None, "d/bx": "bx,cb"}
    data = {n: os.urandom(1000 + i) for i, n in enumerate(files)}
    for n, tags in files.items():
        write_file(mnt / n, data[n])
        if tags:
            tc_set(mnt / n, "tags", tags)
    assert tc_get(mnt / "d/abc", "tags") == "a,b,c"
    os.link(mnt / "d/abc", mnt / "abc_link")
    tc_set(mnt, "reset_stats", "1")
    blob0 = tc_stats(mnt)["blob_bytes"]

    with open(mnt / "d/b", "rb") as held:
        tc_set(mnt, "evict_tag", "b")
        for n in ("d/abc", "abc_link", "d/b"):
            absent_soon(mnt / n)
        assert held.read() == data["d/b"], "open handle lost its content"
    assert ls(mnt) == ["c", "d", "none"] and ls(mnt / "d") == ["bx"]
    for n in ("c", "none", "d/bx"):
        assert read_file(mnt / n) == data[n]
    s = tc_stats(mnt)
    assert_counts(s, disk_evictions=2, deletes=0, disk_items=3)
    s = wait_until(lambda: (s := tc_stats(mnt))["blob_bytes"] <= blob0 - 2000 and s, 3,
                   "blobs of evicted entries to be reclaimed")
    assert s["blob_bytes"] == sum(len(data[n]) for n in ("c", "none", "d/bx")), s

    tc_set(mnt, "evict_tag", "nosuchtag")
    assert_counts(tc_stats(mnt), disk_evictions=2, disk_items=3)


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_evict_tag_10000_entries(tc_mount):
    """10,000 entries tagged bulk (half with it second: x,bulk) in ten
    directories plus 300 others: one evict_tag removes exactly the 10,000,
    counts 10,000 disk evictions and reclaims their blobs. The time of the
    setxattr call is printed (pytest -s)."""
    m = tc_mount(opts="sync=never")
    r = m.path
    n_dirs = 10
    per = N_BULK // n_dirs

    def make(d):
        (r / f"bulk{d}").mkdir()
        for i in range(per):
            p = r / f"bulk{d}" / f"f{i}"
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"bulk %d %d\n" % (d, i))
            os.close(fd)
            os.setxattr(p, "user.tiercache.tags", b"x,bulk" if i % 2 else b"bulk")

    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as ex:
        list(ex.map(make, range(n_dirs)))
    t_create = time.monotonic() - t0
    (r / "keep").mkdir()
    keep = {}
    for i in range(300):
        p = r / "keep" / f"k{i}"
        keep[p] = b"keep %d\n" % i
        write_file(p, keep[p])
        if i < 200:
            tc_set(p, "tags", "keep,bulky" if i % 2 else "bulk2")
    s0 = tc_stats(r)
    assert_counts(s0, disk_items=N_BULK + 300, puts=N_BULK + 300)
    tc_set(r, "reset_stats", "1")

    t0 = time.monotonic()
    tc_set(r, "evict_tag", "bulk")
    t_evict = time.monotonic() - t0
    print(f"\n[evict_tag] created {N_BULK} tagged entries in {t_create:.2f}s; "
          f"evict_tag of {N_BULK} entries took {t_evict * 1000:.0f} ms")

    s = tc_stats(r)
    assert_counts(s, disk_evictions=N_BULK, deletes=0, disk_items=300,
                  disk_bytes=sum(len(v) for v in keep.values()))
    for d in range(n_dirs):
        assert ls(r / f"bulk{d}") == [], f"bulk{d} not emptied"
    rng = random.Random(4)
    for _ in range(50):
        absent_soon(r / f"bulk{rng.randrange(n_dirs)}" / f"f{rng.randrange(per)}")
    assert len(ls(r / "keep")) == 300
    for p, v in keep.items():
        assert read_file(p) == v
    # blobs (and their RAM copies) are reclaimed in the background
    wait_until(lambda: (t := tc_stats(r))["blob_bytes"] == s["disk_bytes"]
               and t["ram_items"] == 300 and t["ram_bytes"] == s["disk_bytes"], 5,
               "blobs and RAM copies of 10,000 evicted entries to be reclaimed")


# -- schema versions ---------------------------------------------------------------------

def schema_tree(mnt):
    """d (schema v1) with a, b, sub/c taking v1, and own/ (schema v1 of its
    own, so d's changes do not reach it) with x."""
    d = mnt / "d"
    (d / "sub").mkdir(parents=True)
    (d / "own").mkdir()
    tc_set(d, "schema", "v1")
    tc_set(d / "own", "schema", "v1")
    data = {}
    for n in ("a", "b", "sub/c", "own/x"):
        data[n] = os.urandom(2000)
        write_file(d / n, data[n])
        assert tc_get(d / n, "schema") == "v1", n
    return d, data


def test_schema_change_retires_old_entries(mnt):
    """Setting d's schema to v2 retires a, b and sub/c: hidden from readdir,
    ENOENT, discarded (counted once each, blobs reclaimed) and not coming
    back when d returns to v1; new files below d take v2; own/x, below a
    directory with its own schema, is untouched."""
    d, data = schema_tree(mnt)
    tc_set(mnt, "reset_stats", "1")
    blob0 = tc_stats(mnt)["blob_bytes"]
    tc_set(d, "schema", "v2")
    assert tc_get(d, "schema") == "v2"
    assert ls(d) == ["own", "sub"] and ls(d / "sub") == []
    for n in ("a", "b", "sub/c"):
        absent_soon(d / n)
    assert read_file(d / "own/x") == data["own/x"]
    for n in ("a", "b", "sub/c"):                  # looked up again: no new discard
        assert not (d / n).exists()
    s = tc_stats(mnt)
    assert_counts(s, schema_discards=3, disk_items=1, disk_bytes=2000)
    wait_until(lambda: tc_stats(mnt)["blob_bytes"] == blob0 - 6000, 3,
               "blobs of discarded entries to be reclaimed")

    write_file(d / "new", b"new")
    write_file(d / "sub" / "new", b"new2")
    assert tc_get(d / "new", "schema") == "v2"
    assert tc_get(d / "sub" / "new", "schema") == "v2"
    assert ls(d) == ["new", "own", "sub"]

    tc_set(d, "schema", "v1")                      # back: the old ones stay gone
    assert ls(d) == ["own", "sub"] and ls(d / "sub") == []
    for n in ("a", "b", "sub/c", "new", "sub/new"):
        absent_soon(d / n)
    assert read_file(d / "own/x") == data["own/x"]
    assert_counts(tc_stats(mnt), schema_discards=5, disk_items=1)


def test_schema_change_hides_cached_entries_promptly(mnt):
    """Right after setfattr of a new schema on the directory, old-version
    entries the kernel has cached become ENOENT within a moment: the daemon
    invalidates them (the kernel may otherwise keep an entry for as long as
    its entry timeout). The invalidation is sent asynchronously, after the
    setxattr reply, so a few milliseconds are allowed."""
    d, data = schema_tree(mnt)
    for n in ("a", "b", "sub/c"):                  # the kernel has them cached now
        assert (d / n).exists()
    tc_set(d, "schema", "v2")
    t0 = time.monotonic()
    wait_until(lambda: not any(os.path.lexists(d / n) for n in ("a", "b", "sub/c")),
               0.5, "old-version entries to be ENOENT after the schema change")
    print(f"\n[schema] cached old entries ENOENT {1000 * (time.monotonic() - t0):.1f} ms "
          "after setfattr returned")


def test_schema_mount_option_at_root(tc_mount):
    """schema= sets the expected version of the root: files written take it;
    remounting with another version retires them (ENOENT, one discard, a
    miss, hidden from ls) and files written then take the new version;
    remounting with the first one does not bring them back. The root reads
    as having that schema."""
    m = tc_mount(opts="schema=v1")
    r = m.path
    write_file(r / "f", b"version one")
    (r / "dir").mkdir()
    write_file(r / "dir" / "g", b"version one below")
    assert tc_get(r / "f", "schema") == "v1"
    assert tc_get(r / "dir" / "g", "schema") == "v1"
    m.unmount()

    m = tc_mount(opts="schema=v2")
    assert ls(r) == ["dir"] and ls(r / "dir") == []
    assert not (r / "f").exists()
    assert not (r / "dir" / "g").exists()
    assert_counts(tc_stats(r), schema_discards=2, misses=2, disk_items=0, gets=0)
    write_file(r / "h", b"version two")
    assert tc_get(r / "h", "schema") == "v2"
    m.unmount()

    m = tc_mount(opts="schema=v1")
    assert ls(r) == ["dir"]
    for n in ("f", "dir/g", "h"):
        assert not (r / n).exists(), n
    assert_counts(tc_stats(r), schema_discards=1, misses=3, disk_items=0)
    # "as if set with user.tiercache.schema on the root" (tiercachefs.8)
    assert tc_get(r, "schema") == "v1"
