# SPDX-License-Identifier: MIT
"""The POSIX namespace: links, special files, renames, attributes, locks,
statfs, name limits and the reserved .stats name (tiercachefs(8), DESCRIPTION)."""

import errno
import fcntl
import os
import socket
import stat
import struct
import subprocess
import sys

import pytest

from tcutil import (RENAME_EXCHANGE, RENAME_NOREPLACE, SLOW, expect_errno, kernel_mode, wait_until,
                    read_file, renameat2, run, sh, wait_until, write_file)


# -- hard links and symlinks ---------------------------------------------------

def test_hard_links_share_content(mnt):
    a, b, c = mnt / "a", mnt / "b", mnt / "sub" / "c"
    (mnt / "sub").mkdir()
    write_file(a, b"first")
    run(["ln", str(a), str(b)])
    os.link(b, c)
    sa, sb, sc = os.stat(a), os.stat(b), os.stat(c)
    assert sa.st_ino == sb.st_ino == sc.st_ino
    assert sa.st_nlink == sb.st_nlink == sc.st_nlink == 3
    assert run(["stat", "-c", "%h", str(a)]).stdout.strip() == "3"
    write_file(b, b"second, longer content")
    assert read_file(a) == read_file(c) == b"second, longer content"
    os.setxattr(c, "user.shared", b"yes")
    assert os.getxattr(a, "user.shared") == b"yes"
    os.chmod(a, 0o600)
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o600
    os.unlink(a)
    assert not a.exists()
    assert os.stat(b).st_nlink == 2
    assert read_file(b) == b"second, longer content"
    os.unlink(b)
    assert os.stat(c).st_nlink == 1
    assert read_file(c) == b"second, longer content"
    # no hard links to directories
    expect_errno(errno.EPERM, os.link, mnt / "sub", mnt / "sublink")


def test_symlink_readlink(mnt):
    link = mnt / "link"
    os.symlink("target.txt", link)
    assert os.readlink(link) == "target.txt"
    st = os.lstat(link)
    assert stat.S_ISLNK(st.st_mode)
    assert st.st_size == len("target.txt")
    assert run(["readlink", str(link)]).stdout == "target.txt\n"
    r = run(["cat", str(link)], check=False)
    assert r.returncode != 0 and "No such file" in r.stderr  # dangling
    write_file(mnt / "target.txt", b"through the link\n")
    assert run(["cat", str(link)]).stdout == "through the link\n"
    # long target, absolute target, link to a directory
    long_target = "/".join(["d" * 99] * 40)  # 3999 bytes
    run(["ln", "-s", long_target, str(mnt / "long")])
    assert os.readlink(mnt / "long") == long_target
    os.symlink("/etc/hostname", mnt / "abs")
    assert os.readlink(mnt / "abs") == "/etc/hostname"
    (mnt / "dir").mkdir()
    write_file(mnt / "dir" / "inside", b"x")
    os.symlink("dir", mnt / "dirlink")
    assert os.listdir(mnt / "dirlink") == ["inside"]
    expect_errno(errno.EEXIST, os.symlink, "other", link)
    expect_errno(errno.EINVAL, os.readlink, mnt / "target.txt")


# -- special files -------------------------------------------------------------------

def test_fifo(mnt):
    fifo = mnt / "fifo"
    os.mkfifo(fifo, 0o640)
    st = os.stat(fifo)
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    run(["mkfifo", "-m", "600", str(mnt / "fifo2")])
    assert stat.S_ISFIFO(os.stat(mnt / "fifo2").st_mode)
    # data passes through it
    writer = subprocess.Popen(["sh", "-c", f"echo through-the-fifo > '{fifo}'"])
    try:
        assert read_file(fifo) == b"through-the-fifo\n"
    finally:
        assert writer.wait(timeout=30 * SLOW) == 0


def test_socket(mnt):
    path = mnt / "sock"
    os.mknod(mnt / "sock_node", stat.S_IFSOCK | 0o644)
    assert stat.S_ISSOCK(os.stat(mnt / "sock_node").st_mode)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(str(path))
        srv.listen(1)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.settimeout(10 * SLOW)
        cli.connect(str(path))
        conn, _ = srv.accept()
        cli.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        conn.close()
        cli.close()
    finally:
        srv.close()
    os.unlink(path)
    assert not path.exists()


def test_device_nodes_stored(mnt):
    # The full round trip (rename, link, tar, nodev) is in test_localfs.py.
    os.mknod(mnt / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(mnt / "disk", stat.S_IFBLK | 0o600, os.makedev(8, 0))
    run(["mknod", str(mnt / "null2"), "c", "1", "3"])
    assert stat.S_ISCHR(os.lstat(mnt / "null").st_mode)
    assert os.lstat(mnt / "null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(mnt / "disk").st_mode)
    assert os.lstat(mnt / "null2").st_rdev == os.makedev(1, 3)


# -- renames -----------------------------------------------------------------------

def test_rename_files(mnt):
    write_file(mnt / "a", b"A")
    write_file(mnt / "b", b"B")
    run(["mv", str(mnt / "a"), str(mnt / "b")])  # replaces b
    assert not (mnt / "a").exists()
    assert read_file(mnt / "b") == b"A"
    (mnt / "d").mkdir()
    os.rename(mnt / "b", mnt / "d" / "moved")
    assert read_file(mnt / "d" / "moved") == b"A"
    assert os.listdir(mnt / "d") == ["moved"]
    os.rename(mnt / "d" / "moved", mnt / "d" / "moved")  # same name: no-op
    assert read_file(mnt / "d" / "moved") == b"A"
    expect_errno(errno.ENOENT, os.rename, mnt / "absent", mnt / "x")


def test_rename_noreplace(mnt):
    write_file(mnt / "a", b"A")
    write_file(mnt / "b", b"B")
    expect_errno(errno.EEXIST, renameat2, mnt / "a", mnt / "b", RENAME_NOREPLACE)
    assert read_file(mnt / "a") == b"A" and read_file(mnt / "b") == b"B"
    renameat2(mnt / "a", mnt / "c", RENAME_NOREPLACE)
    assert not (mnt / "a").exists() and read_file(mnt / "c") == b"A"


def test_rename_exchange(mnt):
    write_file(mnt / "a", b"A")
    write_file(mnt / "b", b"BB")
    (mnt / "d").mkdir()
    write_file(mnt / "d" / "inside", b"I")
    ino_a = os.stat(mnt / "a").st_ino
    renameat2(mnt / "a", mnt / "b", RENAME_EXCHANGE)
    assert read_file(mnt / "a") == b"BB" and read_file(mnt / "b") == b"A"
    assert os.stat(mnt / "b").st_ino == ino_a
    # a file with a directory, across directories
    renameat2(mnt / "b", mnt / "d", RENAME_EXCHANGE)
    assert read_file(mnt / "d") == b"A"
    assert read_file(mnt / "b" / "inside") == b"I"
    expect_errno(errno.ENOENT, renameat2, mnt / "a", mnt / "absent", RENAME_EXCHANGE)
    assert read_file(mnt / "a") == b"BB"


def test_rename_directories(mnt):
    deep = mnt / "top" / "x" / "y" / "z"
    deep.mkdir(parents=True)
    write_file(deep / "f", b"deep")
    write_file(mnt / "top" / "g", b"shallow")
    os.rename(mnt / "top", mnt / "renamed")
    assert not (mnt / "top").exists()
    assert read_file(mnt / "renamed" / "x" / "y" / "z" / "f") == b"deep"
    assert read_file(mnt / "renamed" / "g") == b"shallow"
    # into another directory
    (mnt / "parent").mkdir()
    os.rename(mnt / "renamed" / "x", mnt / "parent" / "x2")
    assert read_file(mnt / "parent" / "x2" / "y" / "z" / "f") == b"deep"
    assert os.listdir(mnt / "renamed") == ["g"]
    # over an empty directory: replaces it
    (mnt / "empty").mkdir()
    os.rename(mnt / "parent" / "x2", mnt / "empty")
    assert read_file(mnt / "empty" / "y" / "z" / "f") == b"deep"
    # errors
    (mnt / "full").mkdir()
    write_file(mnt / "full" / "f", b"")
    expect_errno(errno.ENOTEMPTY, os.rename, mnt / "empty", mnt / "full")
    write_file(mnt / "file", b"")
    expect_errno(errno.ENOTDIR, os.rename, mnt / "empty", mnt / "file")
    expect_errno(errno.EISDIR, os.rename, mnt / "file", mnt / "full")
    expect_errno(errno.EINVAL, os.rename, mnt / "empty", mnt / "empty" / "y" / "inside")
    assert read_file(mnt / "full" / "f") == b""
    assert read_file(mnt / "empty" / "y" / "z" / "f") == b"deep"


# -- attributes --------------------------------------------------------------------------

def test_chmod_chown(mnt):
    f = mnt / "f"
    write_file(f, b"x")
    os.chmod(f, 0o640)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o640
    run(["chmod", "4711", str(f)])
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o4711
    os.chown(f, 1234, 5678)
    st = os.stat(f)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    run(["chown", "4321:8765", str(f)])
    st = os.stat(f)
    assert (st.st_uid, st.st_gid) == (4321, 8765)
    os.chown(f, -1, 42)  # group only
    st = os.stat(f)
    assert (st.st_uid, st.st_gid) == (4321, 42)
    d = mnt / "d"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o1770)
    os.chown(d, 7, 8)
    st = os.stat(d)
    assert stat.S_IMODE(st.st_mode) == 0o1770 and (st.st_uid, st.st_gid) == (7, 8)
    os.symlink("f", mnt / "l")
    os.chown(mnt / "l", 99, 98, follow_symlinks=False)
    st = os.lstat(mnt / "l")
    assert (st.st_uid, st.st_gid) == (99, 98)
    assert os.stat(f).st_uid == 4321


def test_new_entries_belong_to_root_caller(mnt):
    write_file(mnt / "f", b"")
    (mnt / "d").mkdir()
    for p in (mnt / "f", mnt / "d"):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (0, 0)


def test_utimens(mnt):
    f = mnt / "f"
    write_file(f, b"x")
    os.utime(f, ns=(1_000_000_001_000_000_123, 1_200_000_000_987_654_321))
    st = os.stat(f)
    assert st.st_mtime_ns == 1_200_000_000_987_654_321
    assert st.st_atime_ns == 1_000_000_001_000_000_123
    run(["touch", "-m", "-d", "@1234567890.5", str(f)])
    assert os.stat(f).st_mtime_ns == 1_234_567_890_500_000_000
    ctime = os.stat(f).st_ctime_ns
    os.chmod(f, 0o600)
    assert os.stat(f).st_ctime_ns >= ctime
    # a write moves mtime to now
    before = os.stat(f).st_mtime
    write_file(f, b"new")
    assert os.stat(f).st_mtime > before + 1000
    d = mnt / "d"
    d.mkdir()
    os.utime(d, ns=(5_000_000_000, 6_000_000_000))
    assert os.stat(d).st_mtime_ns == 6_000_000_000
    os.symlink("f", mnt / "l")
    os.utime(mnt / "l", ns=(7_000_000_000, 8_000_000_000), follow_symlinks=False)
    assert os.lstat(mnt / "l").st_mtime_ns == 8_000_000_000


def test_truncate(mnt):
    f = mnt / "f"
    write_file(f, b"0123456789" * 1000)
    os.truncate(f, 15)
    assert read_file(f) == b"012345678901234"
    os.truncate(f, 100_000)
    assert read_file(f) == b"012345678901234" + bytes(100_000 - 15)
    run(["truncate", "-s", "3", str(f)])
    assert read_file(f) == b"012"
    with open(f, "r+b") as fh:
        fh.truncate(0)
        assert os.fstat(fh.fileno()).st_size == 0
    assert read_file(f) == b""
    assert os.stat(f).st_size == 0


# -- locks -------------------------------------------------------------------------------

LOCK_HOLDER = """
import fcntl, os, sys
f = open(sys.argv[1], "r+b")
if sys.argv[2] == "flock":
    fcntl.flock(f, fcntl.LOCK_EX)
else:
    fcntl.lockf(f, fcntl.LOCK_EX, 100, 0)
print("locked", flush=True)
sys.stdin.read()
"""


def _hold_lock(path, kind):
    p = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path), kind],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "locked\n"
    return p


def _release(p):
    p.stdin.close()
    assert p.wait(timeout=30 * SLOW) == 0


def test_flock_between_processes(mnt):
    f = mnt / "lockfile"
    write_file(f, b"x")
    holder = _hold_lock(f, "flock")
    try:
        with open(f, "rb") as mine:
            with pytest.raises(BlockingIOError):
                fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(BlockingIOError):
                fcntl.flock(mine, fcntl.LOCK_SH | fcntl.LOCK_NB)
            r = run(["flock", "-n", str(f), "true"], check=False)
            assert r.returncode == 1
            _release(holder)

            def try_lock():
                try:
                    fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    return False
            wait_until(try_lock, 10, "flock after the holder exited")
    finally:
        if holder.poll() is None:
            _release(holder)


def test_fcntl_locks_between_processes(mnt):
    f = mnt / "lockfile"
    write_file(f, b"x" * 1000)
    holder = _hold_lock(f, "fcntl")
    try:
        with open(f, "r+b") as mine:
            with pytest.raises(OSError) as e:
                fcntl.lockf(mine, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
            assert e.value.errno in (errno.EAGAIN, errno.EACCES)
            fcntl.lockf(mine, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 200)  # disjoint range
            # F_GETLK names the holder
            flock = struct.pack("hh4xqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 10, 0)
            got = struct.unpack("hh4xqqi4x", fcntl.fcntl(mine, fcntl.F_GETLK, flock))
            assert got[0] == fcntl.F_WRLCK and got[4] == holder.pid
            _release(holder)
            fcntl.lockf(mine, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
    finally:
        if holder.poll() is None:
            _release(holder)


# -- statfs, names, .stats -----------------------------------------------------------------

def test_statfs_reports_disk_tier(tc_mount):
    m = tc_mount(opts="disk_size=1G")
    st = os.statvfs(m.path)
    assert st.f_blocks * st.f_frsize == 1 << 30
    assert st.f_namemax == 255
    out = run(["df", "-B1", "--output=size", str(m.path)]).stdout.split()
    assert out[-1] == str(1 << 30)
    used0 = (st.f_blocks - st.f_bfree) * st.f_frsize
    write_file(m.path / "ten", bytes(10 << 20))

    def grown():
        s = os.statvfs(m.path)
        return s if (s.f_blocks - s.f_bfree) * s.f_frsize > used0 else None

    # cache_mode=kernel publishes a file over 1 MiB once its writes went
    # quiet (tiercachefs(8), cache_mode=), not when close() returns
    st = wait_until(grown, 5, "statfs to count the file") if kernel_mode() else \
        os.statvfs(m.path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    assert abs(used - used0 - (10 << 20)) <= max(st.f_frsize, 4096), \
        f"used grew by {used - used0}, wrote {10 << 20}"
    assert st.f_bavail * st.f_frsize <= (1 << 30) - (10 << 20) + st.f_frsize


def test_statfs_default_size(mnt):
    st = os.statvfs(mnt)
    assert st.f_blocks * st.f_frsize == 10 << 30


def test_name_length_limit(mnt):
    ok, long = "n" * 255, "n" * 256
    write_file(mnt / ok, b"fine")
    assert ok in os.listdir(mnt)
    assert read_file(mnt / ok) == b"fine"
    (mnt / "d").mkdir()
    (mnt / "d" / ok).mkdir()
    os.symlink("x", mnt / "d" / ok / ok)
    utf8_ok = "é" * 127 + "x"  # 255 bytes
    utf8_long = "é" * 128       # 256 bytes
    write_file(mnt / utf8_ok, b"")
    for fn, args in [
        (os.open, (mnt / long, os.O_CREAT | os.O_WRONLY, 0o644)),
        (os.open, (mnt / utf8_long, os.O_CREAT | os.O_WRONLY, 0o644)),
        (os.mkdir, (mnt / long,)),
        (os.symlink, ("x", mnt / long)),
        (os.mkfifo, (mnt / long,)),
        (os.rename, (mnt / ok, mnt / long)),
        (os.link, (mnt / ok, mnt / long)),
        (os.stat, (mnt / long,)),
    ]:
        expect_errno(errno.ENAMETOOLONG, fn, *args)
    r = sh(f"echo x > '{mnt / long}'", check=False)
    assert r.returncode != 0 and "File name too long" in r.stderr
    assert sorted(os.listdir(mnt)) == sorted([ok, "d", utf8_ok, ".stats", ".tags"])


def test_stats_name_is_reserved(mnt):
    s = mnt / ".stats"
    assert s.is_file()
    before = read_file(s)
    # cache_mode=kernel: opens never reach the daemon, so only one that
    # truncates is refused (by its SETATTR); writes to one opened for
    # writing fail when the kernel writes them back, and never change the
    # file (tiercachefs(8), .stats in cache_mode=kernel)
    refused = (os.O_WRONLY | os.O_TRUNC,) if kernel_mode() else \
        (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC,
         os.O_WRONLY | os.O_CREAT, os.O_WRONLY | os.O_APPEND)
    for flags in refused:
        expect_errno(errno.EPERM, os.open, s, flags, 0o644)
    expect_errno(errno.EPERM, os.truncate, s, 0)
    expect_errno(errno.EPERM, os.unlink, s)
    expect_errno(errno.EPERM, os.rename, s, mnt / "moved")
    write_file(mnt / "x", b"not stats")
    expect_errno(errno.EPERM, os.rename, mnt / "x", s)
    assert read_file(mnt / "x") == b"not stats"
    with pytest.raises(OSError) as e:
        os.link(mnt / "x", s)
    assert e.value.errno in (errno.EEXIST, errno.EPERM)
    with pytest.raises(OSError) as e:
        os.mkdir(s)
    assert e.value.errno in (errno.EEXIST, errno.EPERM)
    r = sh(f"echo x > '{s}'", check=False)
    assert r.returncode != 0
    assert s.is_file() and not (mnt / "moved").exists()
    assert b"tiercache_" in read_file(s) and b"tiercache_" in before
    # only the root's .stats is special
    (mnt / "sub").mkdir()
    write_file(mnt / "sub" / ".stats", b"mine")
    assert read_file(mnt / "sub" / ".stats") == b"mine"
    os.rename(mnt / "sub" / ".stats", mnt / "sub" / "other")
    os.unlink(mnt / "sub" / "other")
