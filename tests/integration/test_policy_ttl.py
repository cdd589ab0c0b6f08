# SPDX-License-Identifier: MIT
"""Lifetimes end to end (issue 4, tiercachefs(8): Mount options and EXTENDED ATTRIBUTES): each TTL source and
their precedence (own ttl > first matching [tag] rule in config order >
ttl the nearest ancestor directory had at creation > mount ttl=), absolute
and sliding lifetimes, expiry seen by ls, stat and cat right at the
deadline, the background sweep reclaiming blob space, an open handle
outliving its entry's expiry, and ttl=never (issue 13) against each default,
through a remount and copies.

Lifetimes are short (1-3 s) and counted on the wall clock the daemon uses,
so "before the deadline" and "after it" are moments on time.time(): the
tests wait for those moments (tcutil.wait_clock) and poll for what the
daemon does with a deadline; they never sleep to synchronise with it.
"""

import errno
import pytest
import math
import os
import time

from tcutil import (XATTR_PREFIX, SLOW, expect_errno, read_file, run, tc_get, tc_set,
                    tc_stats, wait_clock, wait_until, write_config, write_file)

# An expired entry must be invisible within this long after its deadline:
# the kernel's entry/attr cache times out at min(1 s, remaining lifetime),
# plus scheduling slack.
GRACE = 1.2 * SLOW


def first_time(pred, until, interval=0.02):
    """Poll pred() until it is true; the time it first was, or None at until."""
    while True:
        if pred():
            return time.time()
        if time.time() > until:
            return None
        time.sleep(interval)


def probe(path, data):
    """What ls, stat and cat say about path: (listed, stat ok, cat gives data).

    A failing stat or cat must fail with ENOENT, nothing else."""
    listed = path.name in run(["ls", "-1a", str(path.parent)]).stdout.splitlines()
    st = run(["stat", "-c", "%s", str(path)], check=False)
    if st.returncode != 0:
        assert "No such file or directory" in st.stderr, st.stderr
    cat = run(["cat", str(path)], check=False, text=False)
    if cat.returncode != 0:
        assert b"No such file or directory" in cat.stderr, cat.stderr
    return (listed, st.returncode == 0 and st.stdout.strip() == str(len(data)),
            cat.returncode == 0 and cat.stdout == data)


PRESENT = (True, True, True)
GONE = (False, False, False)


def assert_expires(path, ttl, t_before, t_after):
    """user.tiercache.expires is the deadline (rounded up) of a lifetime of
    ttl seconds resolved between t_before and t_after."""
    e = int(tc_get(path, "expires"))
    lo, hi = math.ceil(t_before + ttl), math.ceil(t_after + ttl)
    assert lo <= e <= hi, f"{path.name}: expires={e}, expected {lo}..{hi} (ttl {ttl}s)"


def never_expires(path):
    expect_errno(errno.ENODATA, os.getxattr, path, XATTR_PREFIX + "expires")


def put(path, data):
    """Write path; returns (time before, time after)."""
    t0 = time.time()
    write_file(path, data)
    return t0, time.time()


# -- expiry seen by programs -------------------------------------------------------

def test_expiry_seen_by_ls_stat_cat_at_the_deadline(tc_mount):
    """Mount ttl=2: present to ls, stat and cat just before the deadline,
    ENOENT to all three within GRACE after it, counted once as an expiration
    however often the name is looked up."""
    m = tc_mount(opts="ttl=2")
    f = m.path / "key"
    data = b"value of the key\n"
    t0, t1 = put(f, data)
    assert_expires(f, 2, t0, t1)
    assert probe(f, data) == PRESENT

    wait_clock(t0 + 2 - 0.4)
    state = probe(f, data)
    probed = time.time()
    assert probed < t0 + 2, f"probing took too long ({probed - t0:.2f}s after the write)"
    assert state == PRESENT, f"0.4s before the deadline: (ls, stat, cat) = {state}"

    gone = first_time(lambda: probe(f, data) == GONE, t1 + 2 + GRACE + 2)
    assert gone is not None, f"still visible {GRACE + 2:.1f}s after the deadline: " \
        f"{probe(f, data)}"
    assert gone <= t1 + 2 + GRACE, \
        f"(ls, stat, cat) all ENOENT only {gone - (t1 + 2):.2f}s after the deadline"
    for _ in range(3):
        assert probe(f, data) == GONE
    # The blob goes when the kernel has forgotten the inode and the next
    # group commit purges its row: after the name, not with it.
    s = wait_until(lambda: (s := tc_stats(m.path))["disk_items"] == 0
                   and s["blob_bytes"] == 0 and s, 3,
                   "the sweep to drop the expired entry and its blob")
    assert s["expirations"] == 1, s
    assert s["disk_bytes"] == 0, s


@pytest.mark.daemon_mode("polls with stat(2), which in cache_mode=kernel is a revalidation that restarts a sliding lifetime as a read does (test_kernel_mode.py)")
def test_sliding_reads_keep_alive_absolute_ones_do_not(tc_mount, tmp_path):
    """ttl=1: reading every 0.1 s keeps sliding entries (file ttl_mode,
    directory ttl_mode, mount ttl_mode=sliding) alive for 2.2 s, while the
    absolute one dies at its deadline; once the reads stop, each sliding
    entry dies 1 s after its last read, and its expires followed the reads."""
    m = tc_mount(opts="ttl=1")
    m2 = tc_mount(opts="ttl=1,ttl_mode=sliding", store=tmp_path / "store2",
                  mnt=tmp_path / "mnt2")
    (m.path / "sd").mkdir()
    tc_set(m.path / "sd", "ttl_mode", "sliding")
    data = b"slide\n"
    absf, slx, sld, slm = m.path / "abs", m.path / "slx", m.path / "sd" / "f", m2.path / "f"
    t_abs0, t_abs1 = put(absf, data)
    for p in (slx, sld, slm):
        write_file(p, data)
    tc_set(slx, "ttl_mode", "sliding")
    assert tc_get(slx, "ttl_mode") == "sliding"
    assert_expires(absf, 1, t_abs0, t_abs1)

    sliding = [slx, sld, slm]
    last = {}
    abs_gone = None
    end = time.time() + 2.2
    while time.time() < end:
        for p in sliding:
            t = time.time()
            assert read_file(p) == data, f"{p} unreadable while being read every 0.1s"
            last[p] = (t, time.time())
        if abs_gone is None and not absf.exists():
            abs_gone = time.time()
        time.sleep(0.1)
    assert abs_gone is not None, "absolute entry survived 2.2s of reads with ttl=1"
    assert abs_gone <= t_abs1 + 1 + GRACE + 0.1, \
        f"absolute entry gone {abs_gone - t_abs1 - 1:.2f}s after its deadline"
    for p in sliding:
        t, t_end = last[p]
        assert_expires(p, 1, t, t_end)  # the last read restarted the lifetime
        assert p.exists(), f"{p} gone while still being read"

    for p in sliding:
        t, t_end = last[p]
        gone = first_time(lambda: not p.exists(), t_end + 1 + GRACE + 2)
        assert gone is not None, f"{p}: sliding entry never expired once reads stopped"
        assert gone <= t_end + 1 + GRACE, \
            f"{p}: gone {gone - t_end - 1:.2f}s after the deadline of its last read"


# -- the four sources and their precedence ---------------------------------------------

PRECEDENCE_CONF = """\
# lifetimes for the precedence tests
[mount]
ttl = 1h

[tag first]
ttl = 2h

[tag second]
ttl = 3h
; a rule that pins: never expires
[tag pinned]
ttl = none
"""


def test_precedence_of_ttl_sources(tc_mount, tmp_path):
    """Resolved from expires, with long lifetimes: own ttl > first matching
    tag rule in config order > nearest ancestor dir's ttl at creation >
    mount ttl=; setting ttl/tags re-resolves; ttl=none drops the own ttl."""
    conf = write_config(tmp_path / "tc.ini", PRECEDENCE_CONF)
    m = tc_mount(opts=f"config={conf}")
    r = m.path
    H = 3600

    def at(path, action, ttl):
        t0 = time.time()
        action()
        t1 = time.time()
        if ttl is None:
            never_expires(path)
        else:
            assert_expires(path, ttl, t0, t1)

    (r / "d").mkdir()
    tc_set(r / "d", "ttl", "5h")
    (r / "d" / "sub").mkdir()          # no ttl of its own: d's applies below
    (r / "d" / "own").mkdir()
    tc_set(r / "d" / "own", "ttl", "6h")

    # mount ttl= when nothing else applies
    at(r / "plain", lambda: write_file(r / "plain", b"1"), 1 * H)
    # a tag without a rule changes nothing
    at(r / "plain", lambda: tc_set(r / "plain", "tags", "norule"), 1 * H)
    # directory default beats the mount's; the nearest ancestor with a ttl wins
    at(r / "d" / "f", lambda: write_file(r / "d" / "f", b"2"), 5 * H)
    at(r / "d" / "sub" / "f", lambda: write_file(r / "d" / "sub" / "f", b"3"), 5 * H)
    at(r / "d" / "own" / "f", lambda: write_file(r / "d" / "own" / "f", b"4"), 6 * H)
    # a tag rule beats the directory default (and the mount's)
    at(r / "d" / "f", lambda: tc_set(r / "d" / "f", "tags", "second"), 3 * H)
    at(r / "plain", lambda: tc_set(r / "plain", "tags", "norule,second"), 3 * H)
    # the first matching rule in config-file order, not in the entry's tag order
    at(r / "d" / "f", lambda: tc_set(r / "d" / "f", "tags", "second,first"), 2 * H)
    assert tc_get(r / "d" / "f", "tags") == "second,first"
    # the entry's own ttl beats every rule
    at(r / "d" / "f", lambda: tc_set(r / "d" / "f", "ttl", "4h"), 4 * H)
    at(r / "d" / "f", lambda: tc_set(r / "d" / "f", "ttl", "30m"), 30 * 60)
    # ttl=none removes the own ttl: back to the tag rule
    at(r / "d" / "f", lambda: tc_set(r / "d" / "f", "ttl", "none"), 2 * H)
    # a rule with ttl=none pins the entry past directory and mount defaults
    at(r / "d" / "f", lambda: tc_set(r / "d" / "f", "tags", "pinned"), None)
    at(r / "d" / "f", lambda: tc_set(r / "d" / "f", "tags", "first,pinned"), 2 * H)
    at(r / "plain", lambda: tc_set(r / "plain", "tags", "pinned,first"), 2 * H)
    # ...and an own ttl still beats a pinning rule
    at(r / "plain", lambda: tc_set(r / "plain", "ttl", "7h"), 7 * H)

    # the directory's ttl counts as it was when the entry was created
    tc_set(r / "d", "ttl", "9h")
    at(r / "d" / "sub" / "f", lambda: tc_set(r / "d" / "sub" / "f", "tags", "x"), 5 * H)
    at(r / "d" / "late", lambda: write_file(r / "d" / "late", b"5"), 9 * H)
    at(r / "d" / "sub" / "late", lambda: write_file(r / "d" / "sub" / "late", b"6"), 9 * H)
    # an own ttl of 0 means never expires... only for itself: it is removed
    at(r / "d" / "late", lambda: tc_set(r / "d" / "late", "ttl", "0"), 9 * H)


SOURCES_CONF = """\
[mount]
ttl = 1h
[tag quick]
ttl = 2s
[tag slow]
ttl = 1h
"""


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_each_source_expires_in_time(tc_mount, tmp_path):
    """Each source really ends a lifetime, and a longer one of higher
    precedence really keeps an entry: own ttl 2s beats a 1h tag rule and a
    1h directory; a 2s tag rule beats a 1h directory; a 2s directory beats
    the 1h mount; a 1h own ttl / 1h tag rule outlive a 2s rule / 2s
    directory. Setting tags restarts the lifetime from that moment."""
    conf = write_config(tmp_path / "tc.ini", SOURCES_CONF)
    m = tc_mount(opts=f"config={conf}")
    r = m.path
    (r / "long").mkdir()
    tc_set(r / "long", "ttl", "1h")
    (r / "short").mkdir()
    tc_set(r / "short", "ttl", "2")
    data = b"x"

    def mk(path, tags=None, ttl=None):
        write_file(path, data)
        if tags:
            tc_set(path, "tags", tags)
        if ttl:
            tc_set(path, "ttl", ttl)
        return path

    t0 = time.time()
    dying = [mk(r / "long" / "own", tags="slow", ttl="2"),
             mk(r / "long" / "tag", tags="quick"),
             mk(r / "short" / "dir")]
    living = [mk(r / "short" / "keep_own", tags="quick", ttl="1h"),
              mk(r / "short" / "keep_tag", tags="slow")]
    restart = mk(r / "long" / "restart", ttl="3")
    t1 = time.time()
    for p in dying:
        assert_expires(p, 2, t0, t1)

    wait_clock(t0 + 1.0)
    ts0 = time.time()
    tc_set(restart, "tags", "misc")    # re-resolved: 3s from now
    ts1 = time.time()
    assert_expires(restart, 3, ts0, ts1)

    wait_clock(t0 + 1.6)
    early = [str(p.relative_to(r)) for p in dying if not p.exists()]
    assert time.time() < t0 + 2
    assert not early, f"gone before their 2s deadline: {early}"

    for p in dying:
        gone = first_time(lambda: not p.exists(), t1 + 2 + GRACE + 2)
        assert gone is not None and gone <= t1 + 2 + GRACE, \
            f"{p.relative_to(r)}: not gone {GRACE:.1f}s after its 2s deadline"

    wait_clock(t1 + 3 + 0.4)        # past restart's first deadline
    assert restart.exists(), "setting tags did not restart the lifetime from then"
    gone = first_time(lambda: not restart.exists(), ts1 + 3 + GRACE + 2)
    assert gone is not None and gone <= ts1 + 3 + GRACE, \
        "re-resolved entry not gone at its new deadline"
    for p in living:
        assert read_file(p) == data, f"{p.relative_to(r)} expired early"
        assert_expires(p, 3600, t0, t1)


# -- the sweep and open handles -----------------------------------------------------------

def du_bytes(path):
    return int(run(["du", "-sb", str(path)]).stdout.split()[0])


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_sweep_reclaims_blob_space(tc_mount):
    """Entries that expire without ever being looked up again are dropped by
    the background sweep: blob files leave STORE/blobs and the gauges fall to
    zero within a few seconds, with one expiration each and no misses."""
    m = tc_mount()
    (m.path / "d").mkdir()
    tc_set(m.path / "d", "ttl", "1")
    n, size = 20, 70_000  # over 64 KiB: blob files, not rows
    t0 = time.time()
    for i in range(n):
        write_file(m.path / "d" / f"f{i}", os.urandom(size))
    t1 = time.time()
    s = tc_stats(m.path)
    assert s["blob_bytes"] == n * size and s["disk_bytes"] == n * size, s
    blobs = m.store / "blobs"
    du0 = du_bytes(blobs)
    assert du0 >= n * size

    # The names go first; a blob leaves when the kernel has forgotten the
    # expired inode (it is told at once, and answers with a FORGET).
    s = wait_until(lambda: (s := tc_stats(m.path))["disk_items"] == 0
                   and s["blob_bytes"] == 0 and s,
                   t1 + 1 + 3 - time.time(), "the background sweep to drop 20 entries")
    assert time.time() >= t0 + 1
    assert s["expirations"] == n, s
    assert s["blob_bytes"] == 0 and s["disk_bytes"] == 0, s
    assert s["misses"] == 0 and s["gets"] == 0, s
    du1 = wait_until(lambda: (d := du_bytes(blobs)) <= du0 - n * size and d + 1, 3,
                     "blob files to leave STORE/blobs") - 1
    assert du1 <= du0 - n * size, (du0, du1)
    assert os.listdir(m.path / "d") == []


def test_open_handle_outlives_expiry(tc_mount):
    """An entry that expires while open: its name is ENOENT at once, its
    content stays readable through the open fd; once closed, the sweep
    reclaims it."""
    m = tc_mount()
    f = m.path / "held"
    data = os.urandom(100_000)
    write_file(f, data)
    t0 = time.time()
    tc_set(f, "ttl", "1")
    t1 = time.time()
    fd = os.open(f, os.O_RDONLY)
    try:
        gone = first_time(lambda: not f.exists(), t1 + 1 + GRACE + 2)
        assert gone is not None and gone <= t1 + 1 + GRACE, "held entry did not expire"
        assert gone >= t0 + 1
        assert f.name not in os.listdir(m.path)
        assert os.pread(fd, len(data) + 1, 0) == data, "open fd lost the content"
        assert os.pread(fd, 100, 50_000) == data[50_000:50_100]
    finally:
        os.close(fd)
    tc_set(m.path, "expire", "1")
    s = wait_until(lambda: (s := tc_stats(m.path))["blob_bytes"] == 0 and s, 3,
                   "blob of the closed, expired entry to be reclaimed")
    assert s["expirations"] == 1, s


# -- ttl=never ---------------------------------------------------------------------------

NEVER_CONF = """\
[mount]
ttl = 2
[tag quick]
ttl = 2s
"""


def fsynced(path, data=b"x"):
    """Write path and fsync it: published in both cache modes, so its
    lifetime is counted from now."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def test_ttl_never_against_every_default(tc_mount, tmp_path):
    """ttl=never keeps an entry past a 2 s mount ttl=, a 2 s [tag] rule of
    config= and a 2 s directory default, while entries without it (and
    entries whose never was taken back with none or 0) expire; a directory's
    never is the default of entries created below it afterwards (a tag rule
    still comes first). getfattr shows never, expires is absent, listxattr
    lists ttl."""
    conf = write_config(tmp_path / "tc.ini", NEVER_CONF)
    m = tc_mount(opts=f"config={conf}")
    r = m.path
    (r / "short").mkdir()
    tc_set(r / "short", "ttl", "2")
    (r / "forever").mkdir()
    (r / "forever" / "before").mkdir()   # made before the directory's never
    fsynced(r / "forever" / "old")       # made before: the mount's 2 s
    tc_set(r / "forever", "ttl", "never")
    assert tc_get(r / "forever", "ttl") == "never"
    (r / "forever" / "sub").mkdir()

    def never(path, tags=None):
        fsynced(path)
        if tags:
            tc_set(path, "tags", tags)
        tc_set(path, "ttl", "never")
        return path

    def plain(path, tags=None):
        fsynced(path)
        if tags:
            tc_set(path, "tags", tags)
        return path

    t0 = time.time()
    kept = [never(r / "mount_never"),                       # vs the mount's ttl=
            never(r / "tag_never", tags="quick"),           # vs a tag rule
            never(r / "short" / "dir_never"),               # vs a directory
            plain(r / "forever" / "inherits"),              # the directory's never
            plain(r / "forever" / "sub" / "deep"),          # ... further down
            plain(r / "forever" / "before" / "late")]       # ... made afterwards
    dying = [plain(r / "mount_plain"),
             plain(r / "tag_plain", tags="quick"),
             plain(r / "short" / "dir_plain"),
             plain(r / "forever" / "tagged", tags="quick"), # a tag rule comes first
             r / "forever" / "old"]
    # none and 0 still remove the entry's own ttl: back to the defaults
    for name, off in (("none_back", "none"), ("zero_back", "0")):
        p = never(r / name)
        tc_set(p, "ttl", off)
        expect_errno(errno.ENODATA, os.getxattr, p, XATTR_PREFIX + "ttl")
        dying.append(p)
    t1 = time.time()
    for p in kept:
        never_expires(p)
    for p in kept[:3]:
        assert tc_get(p, "ttl") == "never"
        assert XATTR_PREFIX + "ttl" in os.listxattr(p)
    for p in dying:
        assert int(tc_get(p, "expires")) <= math.ceil(t1 + 2), p

    for p in dying:
        gone = first_time(lambda: not p.exists(), t1 + 2 + GRACE + 2)
        assert gone is not None and gone <= t1 + 2 + GRACE, \
            f"{p.relative_to(r)}: still there {GRACE:.1f}s after its 2 s deadline"
    wait_until(lambda: tc_stats(r)["disk_items"] == len(kept), 3,
               "the sweep to drop the expired entries")
    assert time.time() > t0 + 2
    for p in kept:
        assert read_file(p) == b"x", f"{p.relative_to(r)} expired"
        never_expires(p)


def test_ttl_never_survives_remount_and_copies(tc_mount, tmp_path):
    """never is kept by a remount, and carried by cp -a and rsync -X within
    the mount, out to a local disk and back in (on files and directories)."""
    conf = write_config(tmp_path / "tc.ini", NEVER_CONF)
    m = tc_mount(opts=f"config={conf}")
    src = m.path / "src"
    src.mkdir()
    (src / "d").mkdir()
    tc_set(src / "d", "ttl", "never")
    fsynced(src / "f", b"kept")
    tc_set(src / "f", "ttl", "never")
    tc_set(src / "f", "tags", "quick")

    def check(root, where):
        assert read_file(root / "f") == b"kept", where
        assert tc_get(root / "f", "ttl") == "never", where
        assert tc_get(root / "d", "ttl") == "never", where
        never_expires(root / "f")

    m.unmount()
    m = tc_mount(opts=f"config={conf}")
    check(src, "after a remount")
    run(["cp", "-a", str(src), str(m.path / "cpcopy")])
    check(m.path / "cpcopy", "cp -a within the mount")
    run(["rsync", "-aX", f"{src}/", f"{m.path}/rsynced/"])
    check(m.path / "rsynced", "rsync -X within the mount")
    local = tmp_path / "local"
    run(["rsync", "-aX", f"{src}/", f"{local}/"])
    assert os.getxattr(local / "f", XATTR_PREFIX + "ttl") == b"never"
    run(["rsync", "-aX", f"{local}/", f"{m.path}/back/"])
    check(m.path / "back", "rsync -X back in")
    # the copies outlive the 2 s defaults too: a witness written after
    # them, on the mount's 2 s, goes first
    witness = fsynced(m.path / "witness")
    wait_until(lambda: not witness.exists(), 2 + GRACE + 2,
               "the witness to expire on the mount's ttl=2")
    for d in ("cpcopy", "rsynced", "back"):
        assert read_file(m.path / d / "f") == b"kept", f"{d}/f expired"
        never_expires(m.path / d / "f")
