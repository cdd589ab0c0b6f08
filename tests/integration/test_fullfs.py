# SPDX-License-Identifier: MIT
"""The store's own filesystem full (tiercachefs(8), NOTES): a write fails with
ENOSPC, the previous content stays intact, reads are still served, the
daemon lives on, and once space is freed writes succeed again without a
remount.

The store sits on a small tmpfs this file mounts (and always unmounts);
disk_size stays at its default, far above the tmpfs, so the cache never
evicts to make room and the filesystem really runs full.

Environment: TC_FULLFS_SIZE (tmpfs size, default 8m).
"""

import errno
import os
import subprocess

import pytest

from tcutil import (XATTR_PREFIX, is_mounted, pattern_bytes, read_stats, read_uncached, run,
                    tc_bin, tc_set, try_write, wait_until)

SIZE = os.environ.get("TC_FULLFS_SIZE", "8m")
CHUNK = 256 << 10  # one filler entry; 8 MiB take ~30 of them


@pytest.fixture
def small_fs(tmp_path):
    """A size-limited tmpfs under tmp_path; unmounted at teardown, always.

    Requested before tc_mount, so the FUSE mount on top is torn down first."""
    d = tmp_path / "smallfs"
    d.mkdir()
    run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", str(d)])
    try:
        yield d
    finally:
        if is_mounted(d):
            r = subprocess.run(["umount", str(d)], capture_output=True, text=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(d)], capture_output=True)
        assert not is_mounted(d), f"{d} still mounted"


def fill(root, prefix, seed, limit=200):
    """Write CHUNK-sized entries until one fails.

    Returns ({path: content} written, (path, step, errno) of the failure)."""
    written = {}
    for i in range(limit):
        p = root / f"{prefix}{i:03d}"
        data = pattern_bytes(CHUNK, seed=f"{seed}-{i}")
        failed = try_write(p, data)
        if failed:
            return written, (p, *failed)
        written[p] = data
    raise AssertionError(f"{limit} x {CHUNK} bytes written and no ENOSPC: is {SIZE} enforced?")


def fill_to_last_byte(path):
    """Grow a file until its filesystem has not a byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        n = 1 << 20
        while n:
            try:
                os.write(fd, b"\xa5" * n)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                n //= 2
    finally:
        os.close(fd)


def assert_enospc(failure, what):
    p, step, err = failure
    assert err == errno.ENOSPC, \
        f"{what}: {step} of {p.name} failed with {errno.errorcode.get(err, err)}, expected ENOSPC"


def assert_intact(files, what):
    bad = []
    for p, data in files.items():
        try:
            got = read_uncached(p)
        except OSError as e:
            bad.append(f"{p.name}: {e}")
            continue
        if got != data:
            bad.append(f"{p.name}: {len(got)} bytes, {'differs' if len(got) == len(data) else ''}")
    assert not bad, f"{what}: earlier content damaged: {bad[:10]}"


def assert_alive(m):
    assert m.proc.poll() is None, f"daemon died: rc {m.proc.returncode}\n{m.output()}"
    assert "tiercache_puts_total" in read_stats(m.path)  # .stats is served


def check_store(store):
    r = run([tc_bin(), "--check", str(store)], check=False, timeout=120)
    assert r.returncode == 0, f"--check after the full-disk test: rc {r.returncode}\n" \
        f"{r.stdout}{r.stderr}"


@pytest.mark.daemon_mode("in cache_mode=kernel a file is published after a quiet period, not at close: its error comes at fsync or close (test_kernel_mode.py)")
def test_enospc_then_delete_entries(small_fs, tc_mount, output_checker):
    output_checker.allow(r"No space left on device|ENOSPC")
    m = tc_mount(store=small_fs / "store")
    keep = {m.path / "keep": pattern_bytes(100_000, seed="keep"), m.path / "small": b"small\n"}
    for p, data in keep.items():
        assert try_write(p, data) is None
    os.setxattr(m.path / "keep", "user.note", b"kept")
    tc_set(m.path / "keep", "tags", "precious")

    written, failure = fill(m.path, "f", "fill")
    assert_enospc(failure, "filling the store")
    print(f"\nENOSPC at {failure[1]} after {len(written)} x {CHUNK} bytes on a {SIZE} tmpfs")
    failed_key = failure[0]
    # a new key whose write failed holds its previous content: nothing
    if failed_key.exists():
        assert read_uncached(failed_key) == b"", "the failed write left partial content"
    # an overwrite of an existing key fails and keeps the old content
    bigger = pattern_bytes(3 * CHUNK, seed="bigger")
    f2 = try_write(m.path / "keep", bigger)
    assert f2 is not None, "an overwrite needing 768 KiB succeeded on a full store"
    assert_enospc((m.path / "keep", *f2), "overwriting a key on a full store")
    assert_intact(keep, "after ENOSPC")
    assert_intact(written, "after ENOSPC")
    assert os.getxattr(m.path / "keep", "user.note") == b"kept"
    assert os.getxattr(m.path / "keep", XATTR_PREFIX + "tags") == b"precious"
    # reads are served from disk too, not only from RAM or the page cache
    tc_set(m.path, "flush", "ram")
    assert_intact(keep, "after flush=ram")
    assert_intact(written, "after flush=ram")
    assert_alive(m)

    # free space through the mount: delete half of the fill
    victims = sorted(written)[::2]
    for p in victims:
        os.unlink(p)
        del written[p]
    again = pattern_bytes(CHUNK, seed="again")
    # the deleted entries' files wait for a WAL fsync before they go: a
    # write that finds the store full frees them at once
    f_again = try_write(m.path / "again", again)
    assert f_again is None, f"a write right after deleting entries failed: {f_again}"
    assert read_uncached(m.path / "again") == again
    f3 = try_write(m.path / "keep", bigger)
    assert f3 is None, f"overwrite after freeing space failed: {f3}"
    keep[m.path / "keep"] = bigger
    assert_intact(keep, "after freeing space")
    assert_intact(written, "after freeing space")
    assert_alive(m)
    m.unmount()
    check_store(m.store)


@pytest.mark.daemon_mode("in cache_mode=kernel a file is published after a quiet period, not at close: its error comes at fsync or close (test_kernel_mode.py)")
def test_enospc_store_fs_to_the_last_byte(small_fs, tc_mount, output_checker):
    """A filler file outside the store takes every free byte: even the
    index cannot grow. Every operation fails cleanly or succeeds; removing
    the filler lets writes through again without a remount."""
    output_checker.allow(r"No space left on device|ENOSPC|database or disk is full|SQLITE_FULL")
    m = tc_mount(store=small_fs / "store")
    (m.path / "dir").mkdir()
    files = {m.path / "dir" / f"e{i}": pattern_bytes(50_000 + i, seed=f"e{i}") for i in range(8)}
    for p, data in files.items():
        assert try_write(p, data) is None
    # Make them durable first: a filler racing the committer for the bytes
    # the index reserve gives up could otherwise take them (the reserve
    # guards against the store's own writes, not another program's).
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    filler = small_fs / "filler"
    fill_to_last_byte(filler)
    assert os.statvfs(small_fs).f_bavail == 0

    outcomes = {}

    def attempt(name, fn, *args):
        try:
            fn(*args)
            outcomes[name] = "ok"
        except OSError as e:
            outcomes[name] = errno.errorcode.get(e.errno, str(e.errno))

    new = try_write(m.path / "new", pattern_bytes(CHUNK, seed="new"))
    assert new is not None, "a 256 KiB write succeeded with 0 bytes free"
    assert_enospc((m.path / "new", *new), "a new key on a full filesystem")
    over = try_write(m.path / "dir" / "e0", pattern_bytes(CHUNK, seed="over"))
    assert over is not None
    assert_enospc((m.path / "dir" / "e0", *over), "an overwrite on a full filesystem")
    # metadata operations either succeed or fail with ENOSPC
    attempt("mkdir", os.mkdir, m.path / "d2")
    attempt("rename", os.rename, m.path / "dir" / "e7", m.path / "dir" / "e7r")
    attempt("setxattr", os.setxattr, m.path / "dir" / "e6", "user.x", b"v" * 4000)
    attempt("symlink", os.symlink, "e5", m.path / "dir" / "lnk")
    attempt("unlink", os.unlink, m.path / "dir" / "e5")
    attempt("empty file", lambda: os.close(os.open(m.path / "empty", os.O_CREAT | os.O_WRONLY)))
    odd = {k: v for k, v in outcomes.items() if v not in ("ok", "ENOSPC")}
    assert not odd, f"on a full filesystem: {outcomes}"
    if outcomes["rename"] == "ok":
        files[m.path / "dir" / "e7r"] = files.pop(m.path / "dir" / "e7")
    if outcomes["unlink"] == "ok":
        del files[m.path / "dir" / "e5"]
    assert_intact(files, "on a full filesystem")
    tc_set(m.path, "flush", "ram")
    assert_intact(files, "on a full filesystem, after flush=ram")
    assert_alive(m)
    print(f"\nmetadata operations with 0 bytes free: {outcomes}")

    os.unlink(filler)
    data = pattern_bytes(CHUNK, seed="later")
    wait_until(lambda: try_write(m.path / "new", data) is None, 10,
               "a write to succeed after the filler was removed")
    assert read_uncached(m.path / "new") == data
    over = pattern_bytes(CHUNK, seed="over")
    assert try_write(m.path / "dir" / "e0", over) is None
    files[m.path / "dir" / "e0"] = over
    files[m.path / "new"] = data
    assert_intact(files, "after freeing space")
    assert_alive(m)
    m.unmount()
    check_store(m.store)
    m = tc_mount(store=small_fs / "store")
    assert_intact(files, "after a remount")
