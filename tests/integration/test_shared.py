# SPDX-License-Identifier: MIT
"""The shared tier (tiercachefs(8), SHARED TIER): several mounts, separate
stores, one pool of memcached servers.

Every test starts its own three memcached servers on free loopback ports
(mcservers.py: started and waited for with a deadline, killed by PID in the
fixture's teardown whatever happens) and two or three mounts with separate
stores on them. Waits are conditions with deadlines, never bare sleeps.

  * a value written on one mount is read on another, byte-exact, within
    shared_revalidate (small, spilled and multi-piece contents, empty files,
    subdirectories, a rename); the same for an overwrite (both ways),
    unlink (both ways), evict_tag, flush and a directory's schema change
  * a lifetime carries over: the same deadline on every mount, gone on all
  * shared_replicas=2: one server killed in the middle of a run of reads
    loses no shared hit and gives no error
  * every server killed: the mounts work locally, lookups of unknown names
    stay quick; the servers restarted: the mounts share again
  * garbage written straight into memcached (names, content pieces) is
    rejected, counted in shared_rejected and never served; with shared_key
    a single flipped byte is, and so is whatever a writer without the key
    pushes into the same namespace
  * a mount with another shared_key sees nothing of the others
  * load: 4 writers and 4 readers on each of two mounts for a bounded time,
    half the keys written on both, the rest on one only; every value read is
    one some writer wrote (self-describing values), and in the end both
    mounts agree on every key
  * bad shared options: one line, exit non-zero, no mount
  * .stats: the shared metrics with their HELP texts

Both cache modes (TC_CACHE_MODE): in cache_mode=kernel a rewrite in place is
published after the quiet period (revalidate=), so the deadlines are those
of the slower mode; the assertions are the same.
"""

import errno
import os
import random
import stat
import time
from pathlib import Path

import pytest

from mcservers import Memcached
from tcutil import (SLOW, fork_worker, read_stats, reap, run_refused, tc_bin, tc_get,
                    tc_parse_value, tc_set, tc_stats, tc_value, wait_clock, wait_until)

REVALIDATE = 1.0  # shared_revalidate= of the mounts, seconds
# How long a change may take to reach another mount: the push, the trust
# period, the kernel's entry timeout (both bounded by REVALIDATE), the
# quiet period of cache_mode=kernel (1 s), and room for a busy machine.
WAIT = 4 * REVALIDATE + 6


@pytest.fixture
def memcached(tmp_path):
    pool = Memcached(3, str(tmp_path))
    try:
        pool.start()
        yield pool
    finally:
        pool.stop()


def shared_opts(pool, *extra, revalidate=REVALIDATE):
    # Commas inside an -o value are escaped (libfuse's syntax).
    servers = pool.servers.replace(",", "\\,")
    return [f"shared={servers}", f"shared_revalidate={revalidate:g}s", *extra]


def mount_n(tc_mount, tmp_path, pool, n, *extra, opts_of=None):
    """n mounts with separate stores on the pool; opts_of(i) adds options."""
    out = []
    for i in range(n):
        more = list(extra) + (opts_of(i) if opts_of else [])
        out.append(tc_mount(opts=shared_opts(pool, *more), store=tmp_path / f"store{i}",
                            mnt=tmp_path / f"mnt{i}").path)
    return out


def read_or_none(p):
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def wait_bytes(p, data, what=None):
    """Wait until p reads exactly data; returns the seconds it took."""
    t0 = time.monotonic()
    wait_until(lambda: read_or_none(p) == data, WAIT, what or f"{p} to read {len(data)} bytes")
    return time.monotonic() - t0


def wait_gone(p, what=None):
    t0 = time.monotonic()
    wait_until(lambda: not os.path.lexists(p), WAIT, what or f"{p} to disappear")
    return time.monotonic() - t0


def write(p, data, fsync=False):
    with open(p, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def tc_get_or_none(p, name):
    try:
        return tc_get(p, name)
    except OSError:
        return None


def queue_empty(mnt):
    return tc_stats(mnt)["shared_queue_items"] == 0


def wait_names(pool, ns, count):
    """Wait until the servers hold at least count name records of ns."""
    wait_until(lambda: len(pool.all_keys(f"tc1:{ns}:n:")) >= count, WAIT,
               f"{count} name records on the servers")


# -- values cross mounts -------------------------------------------------------------

SIZES = [0, 1, 4000, 70 * 1024, 600 * 1024, (3 << 20) + 17]


def test_read_on_another_mount(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    vals = {}
    for i, n in enumerate(SIZES):
        vals[f"f{i}"] = random.Random(i).randbytes(n)
        write(a / f"f{i}", vals[f"f{i}"])
    (a / "d" / "e").mkdir(parents=True)
    write(a / "d" / "e" / "deep", b"deep value\n")
    write(a / "tmp.1", b"renamed value")
    os.rename(a / "tmp.1", a / "final")
    took = []
    for name, v in vals.items():
        took.append(wait_bytes(b / name, v))
    took.append(wait_bytes(b / "d" / "e" / "deep", b"deep value\n"))
    took.append(wait_bytes(b / "final", b"renamed value"))
    assert not os.path.exists(b / "tmp.1")
    assert stat.S_ISDIR(os.stat(b / "d").st_mode)
    assert max(took) < WAIT
    s = tc_stats(b)
    assert s["shared_hits"] >= len(SIZES) + 1
    assert s["shared_fetched_bytes"] >= sum(SIZES)
    assert s["shared_errors"] == 0 and s["shared_rejected"] == 0
    # Metadata travels: mode, owner, mtime (to the second at least).
    os.chmod(a / "f2", 0o640)
    wait_until(lambda: stat.S_IMODE(os.stat(b / "f2").st_mode) == 0o640, WAIT,
               "the mode to reach the other mount")
    assert int(os.stat(b / "f2").st_mtime) == int(os.stat(a / "f2").st_mtime)


def test_content_in_chunks_travels(memcached, tc_mount, tmp_path):
    """A content of several chunks (1 MiB each by default) reaches the other
    mount whole, also after writes out of order (its hash computed at push)
    and after a small change in its middle."""
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    rnd = random.Random(7)
    seq = rnd.randbytes(3 * 1024 * 1024 + 123)
    write(a / "seq", seq)
    shuffled = bytearray(rnd.randbytes(2 * 1024 * 1024 + 5))
    with open(a / "shuffled", "wb") as f:
        for off in sorted(range(0, len(shuffled), 65536), reverse=True):
            os.pwrite(f.fileno(), shuffled[off:off + 65536], off)
    wait_bytes(b / "seq", seq)
    wait_bytes(b / "shuffled", bytes(shuffled))
    with open(a / "shuffled", "r+b") as f:
        os.pwrite(f.fileno(), b"changed", 1024 * 1024 + 10)
    shuffled[1024 * 1024 + 10:1024 * 1024 + 17] = b"changed"
    wait_bytes(b / "shuffled", bytes(shuffled))
    s = tc_stats(b)
    assert s["shared_errors"] == 0 and s["shared_rejected"] == 0


def test_identical_content_is_not_fetched_twice(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    v = os.urandom(200 * 1024)
    write(a / "one", v)
    wait_bytes(b / "one", v)
    before = tc_stats(b)["shared_fetched_bytes"]
    write(a / "two", v)
    wait_bytes(b / "two", v)
    assert tc_stats(b)["shared_fetched_bytes"] == before


def test_overwrite_both_ways(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    write(a / "k", b"version 1")
    wait_bytes(b / "k", b"version 1")
    write(a / "k", b"version 2, longer than the first")
    wait_bytes(b / "k", b"version 2, longer than the first")
    write(b / "k", b"v3")
    wait_bytes(a / "k", b"v3")
    assert tc_stats(b)["shared_updates"] >= 1
    assert tc_stats(a)["shared_updates"] >= 1


def test_unlink_both_ways(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    write(a / "x", b"x")
    write(a / "y", b"y")
    wait_bytes(b / "x", b"x")
    wait_bytes(b / "y", b"y")
    os.unlink(a / "x")
    wait_gone(b / "x")
    os.unlink(b / "y")
    wait_gone(a / "y")
    # Gone for good: a third mount does not learn them either.
    write(a / "z", b"z")
    wait_bytes(b / "z", b"z")
    assert read_or_none(b / "x") is None
    # A name created again after its unlink is the new one.
    write(a / "x", b"x again")
    wait_bytes(b / "x", b"x again")


def test_evict_tag(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    write(a / "red1", b"r1")
    write(a / "blue1", b"b1")
    tc_set(a / "red1", "tags", "red,x")
    tc_set(a / "blue1", "tags", "blue")
    wait_bytes(b / "red1", b"r1")
    wait_bytes(b / "blue1", b"b1")
    wait_until(lambda: tc_get_or_none(b / "red1", "tags") == "red,x", WAIT, "tags to travel")
    tc_set(a, "evict_tag", "red")
    assert read_or_none(a / "red1") is None
    wait_gone(b / "red1")
    assert read_or_none(b / "blue1") == b"b1"
    assert tc_stats(b)["shared_events"] >= 1


def test_flush(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    (a / "sub").mkdir()
    for i in range(5):
        write(a / "sub" / f"f{i}", b"%d" % i)
    for i in range(5):
        wait_bytes(b / "sub" / f"f{i}", b"%d" % i)
    write(b / "mine", b"written on b")
    wait_bytes(a / "mine", b"written on b")
    tc_set(a, "flush", "all")
    for i in range(5):
        wait_gone(b / "sub" / f"f{i}")
    wait_gone(b / "mine")
    # The directories stay, and sharing goes on after a flush.
    assert os.path.isdir(b / "sub")
    write(a / "sub" / "after", b"after the flush")
    wait_bytes(b / "sub" / "after", b"after the flush")


def test_directory_schema_change(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    (a / "s").mkdir()
    tc_set(a / "s", "schema", "v1")
    write(a / "s" / "old", b"schema v1 value")
    wait_bytes(b / "s" / "old", b"schema v1 value")
    assert tc_get(b / "s" / "old", "schema") == "v1"
    tc_set(a / "s", "schema", "v2")
    assert read_or_none(a / "s" / "old") is None
    wait_gone(b / "s" / "old")
    wait_until(lambda: tc_get_or_none(b / "s", "schema") == "v2", WAIT,
               "the schema on the other mount")
    write(a / "s" / "new", b"schema v2 value")
    wait_bytes(b / "s" / "new", b"schema v2 value")


def test_expiry_is_the_same_on_all(memcached, tc_mount, tmp_path):
    a, b, c = mount_n(tc_mount, tmp_path, memcached, 3, opts_of=lambda i: ["ttl=4s"] if i == 0
                      else [])
    write(a / "short", b"lives 4 s")
    wait_bytes(b / "short", b"lives 4 s")
    wait_bytes(c / "short", b"lives 4 s")
    exp = {tc_get(m / "short", "expires") for m in (a, b, c)}
    assert len(exp) == 1, f"deadlines differ: {exp}"
    deadline = int(exp.pop())
    wait_clock(deadline + 0.3)
    for m in (a, b, c):
        assert read_or_none(m / "short") is None


# -- failures ------------------------------------------------------------------------

def test_replicas_survive_a_dead_server(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2, "shared_replicas=2")
    vals = {f"r{i}": os.urandom(1000 + i) for i in range(40)}
    for k, v in vals.items():
        write(a / k, v, fsync=True)  # published now, in either cache mode
    wait_until(lambda: queue_empty(a), WAIT, "the pushes to go out")
    wait_names(memcached, "pub", 40)
    keys = list(vals)
    t0 = time.monotonic()
    for k in keys[:20]:
        assert read_or_none(b / k) == vals[k], k
    memcached.kill(1)
    t_kill = time.monotonic()
    for k in keys[20:]:
        assert read_or_none(b / k) == vals[k], f"{k} lost with one server of three"
    after = time.monotonic() - t_kill
    s = tc_stats(b)
    assert s["shared_hits"] >= 40
    assert after < 20 * 2 * SLOW, f"20 reads took {after:.1f}s after the kill"
    # Writes after the kill are shared too.
    write(a / "later", b"after the kill")
    wait_bytes(b / "later", b"after the kill")
    assert time.monotonic() - t0 < 60 * SLOW


def test_all_servers_down_then_back(memcached, tc_mount, tmp_path, output_checker):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    write(a / "before", b"before")
    wait_bytes(b / "before", b"before")
    memcached.kill()
    wait_until(lambda: tc_stats(a)["shared_servers_up"] == 0, WAIT, "the probe to see them down")
    # Local tiers only: writes and reads work, unknown names are quick misses.
    write(a / "local-a", b"only on a")
    write(b / "local-b", b"only on b")
    assert read_or_none(a / "local-a") == b"only on a"
    assert read_or_none(b / "local-b") == b"only on b"
    assert read_or_none(b / "before") == b"before"
    t0 = time.monotonic()
    for i in range(20):
        assert read_or_none(b / f"nothing-{i}") is None
    assert time.monotonic() - t0 < 5 * SLOW, "misses with every server down are slow"
    memcached.start()
    wait_until(lambda: tc_stats(a)["shared_servers_up"] == 3, WAIT, "the servers to come back")
    write(a / "after", b"shared again")
    wait_bytes(b / "after", b"shared again")
    write(b / "after-b", b"both ways")
    wait_bytes(a / "after-b", b"both ways")


def corrupt_envelope_data(v):
    """A content piece with its bytes changed and its envelope intact."""
    head = 5 + 8 + 4 + 4  # "tc1", type, auth; size, index, count
    body = bytearray(v[head:])
    for i in range(0, len(body), 97):
        body[i] ^= 0x5A
    return v[:head] + bytes(body)


def test_garbage_is_rejected(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    vals = {f"g{i}": os.urandom(3000 + i) for i in range(12)}
    for k, v in vals.items():
        write(a / k, v, fsync=True)  # published now, in either cache mode
    wait_until(lambda: queue_empty(a), WAIT, "the pushes to go out")
    wait_names(memcached, "pub", 12)
    names = memcached.all_keys("tc1:pub:n:")
    pieces = memcached.all_keys("tc1:pub:c:")
    assert len(pieces) >= 12
    rnd = random.Random(7)
    for k, i in names.items():
        if rnd.random() < 0.5:
            with memcached.raw(i) as r:
                r.set(k, os.urandom(rnd.randint(1, 300)))
    for k, i in pieces.items():
        with memcached.raw(i) as r:
            r.set(k, corrupt_envelope_data(r.get(k)))
    for k, v in vals.items():
        got = read_or_none(b / k)
        assert got is None, f"{k}: served {len(got)} bytes of garbage"
    s = tc_stats(b)
    assert s["shared_rejected"] >= 12
    assert s["shared_hits"] == 0
    # The writer still has its values, and new ones are shared.
    for k, v in vals.items():
        assert read_or_none(a / k) == v
    write(a / "fresh", b"fresh value")
    wait_bytes(b / "fresh", b"fresh value")


def make_key(path, data=None):
    path.write_bytes(data or os.urandom(32))
    os.chmod(path, 0o600)
    return path


def test_keyed_records_resist_tampering(memcached, tc_mount, tmp_path):
    key = make_key(tmp_path / "key")
    ns = "k1"
    a, b = mount_n(tc_mount, tmp_path, memcached, 2, f"shared_key={key}",
                   f"shared_namespace={ns}")
    vals = {f"m{i}": os.urandom(2000 + i) for i in range(8)}
    for k, v in vals.items():
        write(a / k, v, fsync=True)  # published now, in either cache mode
    wait_until(lambda: queue_empty(a), WAIT, "the pushes to go out")
    wait_names(memcached, ns, 8)
    # One byte flipped in every name record: nothing verifies any more.
    for k, i in memcached.all_keys(f"tc1:{ns}:n:").items():
        with memcached.raw(i) as r:
            v = bytearray(r.get(k))
            v[len(v) // 2] ^= 1
            r.set(k, bytes(v))
    for k in vals:
        assert read_or_none(b / k) is None, f"{k}: a tampered record was served"
    assert tc_stats(b)["shared_rejected"] >= 8
    # A writer without the key, in the same namespace: nothing it pushes
    # is served by the keyed mounts.
    cm = tc_mount(opts=shared_opts(memcached, f"shared_namespace={ns}"),
                  store=tmp_path / "store-nokey", mnt=tmp_path / "mnt-nokey")
    c = cm.path
    tc_mount_of = {c: cm}.get
    write(c / "injected", b"forged by a writer without the key", fsync=True)
    write(c / "m0", b"forged over a real name", fsync=True)
    wait_until(lambda: queue_empty(c), WAIT, "the forger's pushes to go out")
    rejected = tc_stats(b)["shared_rejected"]
    assert read_or_none(b / "injected") is None
    got = read_or_none(b / "m0")
    assert got is None, "a forged record was served"
    assert tc_stats(b)["shared_rejected"] > rejected
    # The keyed mounts go on sharing between themselves once the forger
    # has stopped: what it did to the generations costs misses until they
    # are replaced (tiercachefs(8), SHARED TIER, Trust), so the value is
    # published again until it gets through.
    tc_mount_of(c).unmount()

    def shared_again():
        write(a / "real", b"authentic", fsync=True)
        return read_or_none(b / "real") == b"authentic"

    wait_until(shared_again, 2 * WAIT, "the keyed mounts to share again", interval=0.5)


def test_wrong_key_sees_nothing(memcached, tc_mount, tmp_path):
    k1 = make_key(tmp_path / "k1")
    k2 = make_key(tmp_path / "k2")
    a, b = mount_n(tc_mount, tmp_path, memcached, 2, f"shared_key={k1}")
    c = tc_mount(opts=shared_opts(memcached, f"shared_key={k2}"), store=tmp_path / "store-c",
                 mnt=tmp_path / "mnt-c").path
    write(a / "secret", b"for key 1 only")
    wait_bytes(b / "secret", b"for key 1 only")
    assert read_or_none(c / "secret") is None
    write(c / "other", b"for key 2 only")
    wait_until(lambda: queue_empty(c), WAIT, "c's pushes to go out")
    write(a / "sentinel", b"s")
    wait_bytes(b / "sentinel", b"s")
    assert read_or_none(a / "other") is None
    assert read_or_none(b / "other") is None
    assert tc_stats(c)["shared_hits"] == 0


# -- load ------------------------------------------------------------------------------

LOAD_SECONDS = 10
LOAD_KEYS = 24


def load_keys(mi):
    """Keys mount mi writes: the first half both mounts write (conflicts),
    then a quarter each mount alone (the other only reads them)."""
    both = list(range(LOAD_KEYS // 2))
    own = range(LOAD_KEYS // 2 + mi * LOAD_KEYS // 4, LOAD_KEYS // 2 + (mi + 1) * LOAD_KEYS // 4)
    return both + list(own)


def _writer(mnt, wid, keys, until):
    rnd = random.Random(wid)
    n = 0
    while time.time() < until:
        key = f"k{rnd.choice(keys)}"
        tmp = Path(mnt) / f".tmp-{wid}-{n}"
        write(tmp, tc_value(key, f"{wid}.{n}", rnd.choice([100, 3000, 40000, 300000])))
        os.rename(tmp, Path(mnt) / key)
        n += 1
    return 0


def _reader(mnt, rid, until, report):
    rnd = random.Random(1000 + rid)
    bad = []
    reads = 0
    while time.time() < until:
        key = f"k{rnd.randrange(LOAD_KEYS)}"
        data = read_or_none(Path(mnt) / key)
        if data is None:
            continue
        reads += 1
        ver, why = tc_parse_value(key, data)
        if ver is None:
            bad.append(f"{mnt}/{key}: {why}")
    Path(report).write_text(f"{reads}\n" + "\n".join(bad[:20]))
    return 1 if bad else 0


def test_load_two_mounts(memcached, tc_mount, tmp_path):
    mounts = mount_n(tc_mount, tmp_path, memcached, 2)
    until = time.time() + LOAD_SECONDS
    pids, reports = [], []
    for mi, m in enumerate(mounts):
        for w in range(4):
            pids.append(fork_worker(_writer, str(m), mi * 10 + w, load_keys(mi), until))
        for r in range(4):
            rep = tmp_path / f"reader-{mi}-{r}"
            reports.append(rep)
            pids.append(fork_worker(_reader, str(m), mi * 10 + r, until, str(rep)))
    codes = reap(pids, LOAD_SECONDS + 120)
    texts = [r.read_text() if r.exists() else "no report" for r in reports]
    assert all(c == 0 for c in codes), f"exit codes {codes}\n" + "\n".join(texts)
    reads = sum(int(t.split("\n", 1)[0]) for t in texts)
    assert reads > 100, f"only {reads} reads"
    # Each mount read values only the other one wrote.
    for m in mounts:
        assert tc_stats(m)["shared_hits"] > 0
    # And in the end both agree on every key (the last writer wins).
    def agree():
        return all(read_or_none(mounts[0] / f"k{i}") == read_or_none(mounts[1] / f"k{i}")
                   for i in range(LOAD_KEYS))
    wait_until(agree, WAIT * 2, "both mounts to agree on every key")


# -- options and stats -----------------------------------------------------------------

def test_bad_shared_options(tmp_path):
    (tmp_path / "mnt").mkdir()
    key_ok = make_key(tmp_path / "key")
    open_key = tmp_path / "open-key"
    open_key.write_bytes(os.urandom(32))
    os.chmod(open_key, 0o644)
    short_key = make_key(tmp_path / "short-key", b"x" * 31)
    cases = {
        "shared=": "shared",
        "shared=localhost": "shared",
        "shared=127.0.0.1:0": "shared",
        "shared=127.0.0.1:65536": "shared",
        "shared=127.0.0.1:11211\\,127.0.0.1:11211": "twice",
        "shared=[::1:11211": "shared",
        "shared=a b:1": "shared",
        "shared=127.0.0.1:11211,shared_replicas=0": "shared_replicas",
        "shared=127.0.0.1:11211,shared_replicas=17": "shared_replicas",
        "shared=127.0.0.1:11211,shared_replicas=two": "shared_replicas",
        "shared=127.0.0.1:11211,shared_revalidate=1y": "shared_revalidate",
        "shared=127.0.0.1:11211,shared_namespace=a/b": "shared_namespace",
        "shared=127.0.0.1:11211,shared_namespace=" + "n" * 33: "shared_namespace",
        f"shared=127.0.0.1:11211,shared_key={tmp_path}/missing": "shared_key",
        f"shared=127.0.0.1:11211,shared_key={open_key}": "shared_key",
        f"shared=127.0.0.1:11211,shared_key={short_key}": "shared_key",
        f"shared_key={key_ok}": "needs shared=",
        "shared_replicas=2": "needs shared=",
    }
    wrong = []
    for opt, word in cases.items():
        rc, out = run_refused([tc_bin(), "-f", "-o", opt, str(tmp_path / "store"),
                               str(tmp_path / "mnt")], tmp_path / "mnt")
        lines = [ln for ln in out.splitlines() if ln.strip()]
        if rc in (0, "mounted") or len(lines) != 1 or word not in lines[0]:
            wrong.append(f"{opt!r}: exit {rc}, output {out!r}")
    assert not wrong, "\n".join(wrong)


def test_stats_have_shared_metrics(memcached, tc_mount, tmp_path):
    (a,) = mount_n(tc_mount, tmp_path, memcached, 1)
    text = (a / ".stats").read_text()
    for name in ("shared_hits_total", "shared_misses_total", "shared_errors_total",
                 "shared_pushed_bytes_total", "shared_fetched_bytes_total",
                 "shared_rejected_total", "shared_servers_up", "shared_push_dropped_total",
                 "shared_queue_items"):
        assert f"# HELP tiercache_{name} " in text, name
        assert f"\ntiercache_{name} " in text, name
    assert read_stats(a)["tiercache_shared_servers_up"] == 3


def test_no_shared_metrics_without_a_shared_tier(tc_mount):
    m = tc_mount().path
    assert "shared_" not in (m / ".stats").read_text()


def test_unknown_name_misses_are_remembered(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    for _ in range(5):
        assert read_or_none(b / "nope") is None
    # One request to the servers, the other lookups answered from memory.
    assert tc_stats(b)["shared_misses"] >= 1
    write(a / "nope", b"now it exists")
    wait_bytes(b / "nope", b"now it exists")


def test_unlinked_while_open_keeps_reading(memcached, tc_mount, tmp_path):
    a, b = mount_n(tc_mount, tmp_path, memcached, 2)
    v = os.urandom(50000)
    write(a / "open", v)
    wait_bytes(b / "open", v)
    with open(b / "open", "rb") as f:
        os.unlink(a / "open")
        wait_gone(b / "open")
        assert f.read() == v
    with pytest.raises(OSError) as e:
        open(b / "open", "rb")
    assert e.value.errno == errno.ENOENT
