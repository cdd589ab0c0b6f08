# SPDX-License-Identifier: MIT
"""Behave like a local filesystem: device nodes, fallocate, permissions.

Each behaviour is compared with a reference: the same steps on a tmpfs this
file mounts under tmp_path (nodev, like a FUSE mount), or a model of the
file's bytes.

  device nodes   character and block nodes with their numbers through
                 mknod, stat, rename, link, unlink, a remount and tar
                 --numeric-owner out of the mount and back; opening one as a
                 device fails as on any nodev mount.
  fallocate      every mode (fallocate -l, -n, -p, -z, posix_fallocate and
                 fallocate(2) through ctypes) against a model of the bytes
                 and the size, after every step and after a remount.
  permissions    one script run as unprivileged users (setpriv, see
                 tcutil.as_user) on the allow_other mount and on the tmpfs:
                 every operation's result, errno included, and the trees
                 afterwards must be the same.
"""

import ctypes
import errno
import json
import os
import random
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from tcutil import (as_user, diff_snapshots, expect_errno, is_mounted, make_traversable,
                    pattern_bytes, read_file, run, snapshot, write_file)

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd, mode, off, length):
    """fallocate(2); raises OSError like the os module."""
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


@pytest.fixture
def tmpfs(tmp_path):
    """A tmpfs under tmp_path, nodev like a FUSE mount; always unmounted.

    Requested before tc_mount, so the FUSE mount is torn down first."""
    d = tmp_path / "tmpfs"
    d.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755,nodev", "tmpfs", str(d)])
    try:
        yield d
    finally:
        if is_mounted(d):
            r = subprocess.run(["umount", str(d)], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(d)], capture_output=True)
        assert not is_mounted(d), f"{d} still mounted"


def mount_options(path):
    """The per-mount options of path (fields 6 of /proc/self/mountinfo)."""
    p = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == p:
                return set(fields[5].split(","))
    raise AssertionError(f"{p} is not mounted")


def devices(root):
    """{relative path: (type, major, minor)} of the device nodes below root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
                out[str(p.relative_to(root))] = (kind, os.major(st.st_rdev),
                                                 os.minor(st.st_rdev))
    return out


# -- device nodes ----------------------------------------------------------------------

# (name, type, major, minor): the largest numbers FUSE carries (12-bit major,
# 20-bit minor), the usual ones and zeros.
NODES = [("null", stat.S_IFCHR, 1, 3), ("zero", stat.S_IFCHR, 1, 5),
         ("sda1", stat.S_IFBLK, 8, 1), ("nvme", stat.S_IFBLK, 259, 65537),
         ("big", stat.S_IFCHR, 4095, 1048575), ("none", stat.S_IFBLK, 0, 0)]


def test_device_nodes_round_trip(tc_mount, tmpfs):
    m = tc_mount()
    mnt = m.path
    assert "nodev" in mount_options(mnt)
    for root in (mnt, tmpfs):
        (root / "dev").mkdir()
        for name, kind, ma, mi in NODES:
            os.mknod(root / "dev" / name, kind | 0o640, os.makedev(ma, mi))
        os.chown(root / "dev" / "sda1", 0, 6)
        # mknod(1) too, and a FIFO among them
        run(["mknod", "-m", "600", str(root / "dev" / "tty9"), "c", "4", "9"])
        run(["mknod", str(root / "dev" / "fifo"), "p"])
    for name, kind, ma, mi in NODES:
        st = os.lstat(mnt / "dev" / name)
        assert stat.S_IFMT(st.st_mode) == kind, name
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (ma, mi), name
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_size == 0, name
    assert run(["stat", "-c", "%F %t:%T %a %u:%g", str(mnt / "dev" / "sda1")]).stdout == \
        run(["stat", "-c", "%F %t:%T %a %u:%g", str(tmpfs / "dev" / "sda1")]).stdout == \
        "block special file 8:1 640 0:6\n"
    assert devices(mnt) == devices(tmpfs)

    # nodev: opening one as a device fails, on both, the same way
    for root in (mnt, tmpfs):
        for flags in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
            expect_errno(errno.EACCES, os.open, root / "dev" / "null", flags)
        # O_PATH does not open the device
        os.close(os.open(root / "dev" / "null", os.O_PATH))
        expect_errno(errno.EEXIST, os.mknod, root / "dev" / "null",
                     stat.S_IFCHR | 0o600, os.makedev(1, 3))

    # rename (within and across directories), link, unlink
    for root in (mnt, tmpfs):
        d = root / "dev"
        os.rename(d / "null", d / "null.renamed")
        (root / "other").mkdir()
        os.rename(d / "nvme", root / "other" / "nvme")
        os.link(d / "zero", root / "other" / "zero.link")
        os.rename(d / "sda1", d / "big")  # replaces another node
        os.unlink(d / "none")
    for root in (mnt, tmpfs):
        st = os.lstat(root / "other" / "zero.link")
        assert st.st_nlink == 2 and st.st_ino == os.lstat(root / "dev" / "zero").st_ino
        assert os.lstat(root / "dev" / "big").st_rdev == os.makedev(8, 1)
        assert not os.path.lexists(root / "dev" / "none")
    assert devices(mnt) == devices(tmpfs)
    assert diff_snapshots(snapshot(mnt, times=False, skip=(".", ".stats", ".tags")),
                          snapshot(tmpfs, times=False, skip=("."))) == ""

    # a remount keeps them
    want = devices(mnt)
    m.unmount()
    m = tc_mount()
    assert devices(m.path) == want
    assert os.lstat(m.path / "other" / "zero.link").st_nlink == 2
    os.unlink(m.path / "other" / "zero.link")
    assert os.lstat(m.path / "dev" / "zero").st_nlink == 1
    # Device nodes are not cache items: df -i and disk_items count files only.
    assert os.statvfs(m.path).f_files - os.statvfs(m.path).f_ffree == 0


def make_dev_tree(root):
    """A small root filesystem: device nodes of several owners and modes,
    a hard-linked device, files, a symlink, a FIFO."""
    root = Path(root)
    for d in ("dev", "dev/block", "etc", "var/empty"):
        (root / d).mkdir(parents=True)
    nodes = [("dev/null", stat.S_IFCHR, 0o666, 1, 3, 0, 0),
             ("dev/tty", stat.S_IFCHR, 0o666, 5, 0, 0, 5),
             ("dev/console", stat.S_IFCHR, 0o600, 5, 1, 0, 0),
             ("dev/block/sda", stat.S_IFBLK, 0o660, 8, 0, 0, 6),
             ("dev/block/sda2", stat.S_IFBLK, 0o660, 8, 2, 0, 6),
             ("dev/loop-big", stat.S_IFBLK, 0o600, 4095, 1048575, 1234, 1234)]
    for rel, kind, mode, ma, mi, uid, gid in nodes:
        os.mknod(root / rel, kind | mode, os.makedev(ma, mi))
        os.chmod(root / rel, mode)
        os.chown(root / rel, uid, gid)
    os.link(root / "dev/block/sda", root / "dev/sda.alias")
    os.mkfifo(root / "dev/initctl", 0o600)
    write_file(root / "etc/hostname", b"box\n")
    write_file(root / "etc/big", pattern_bytes(200_000, seed=7))
    os.chown(root / "etc/big", 1000, 1000)
    os.symlink("/proc/self/fd", root / "dev/fd")
    t = 1_700_000_000
    for p in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        if not p.is_symlink():
            os.utime(p, (t, t))
    os.utime(root, (t, t))


def tar_c(src, archive):
    run(["tar", "--numeric-owner", "-C", str(src), "-cf", str(archive), "."])


def tar_x(archive, dst):
    Path(dst).mkdir(parents=True, exist_ok=True)
    run(["tar", "--numeric-owner", "-p", "--same-owner", "-C", str(dst), "-xf", str(archive)])


def tar_listing(archive):
    """(name, type, mode, uid, gid, devmajor, devminor, link target) per member."""
    with tarfile.open(archive) as t:
        return sorted((mb.name, mb.type, mb.mode, mb.uid, mb.gid, mb.devmajor, mb.devminor,
                       mb.linkname) for mb in t.getmembers())


def test_device_tree_tar_round_trip(tc_mount, tmpfs, tmp_path):
    m = tc_mount()
    src = tmpfs / "src"
    make_dev_tree(src)
    a1 = tmp_path / "in.tar"
    tar_c(src, a1)
    # The reference is the archive extracted on tmpfs: GNU tar records no
    # hard links between device nodes, so both copies get two nodes.
    tar_x(a1, tmpfs / "ref")
    ref = snapshot(tmpfs / "ref")
    assert devices(tmpfs / "ref") == devices(src)

    # into the mount
    tar_x(a1, m.path / "root")
    assert diff_snapshots(snapshot(m.path / "root"), ref) == ""
    assert devices(m.path / "root") == devices(src)

    # out of the mount: the same archive members, and the same tree again
    a2 = tmp_path / "out.tar"
    tar_c(m.path / "root", a2)
    assert tar_listing(a2) == tar_listing(a1)
    back = tmpfs / "back"
    tar_x(a2, back)
    assert diff_snapshots(snapshot(back), ref) == ""
    assert devices(back) == devices(src)

    # and after a remount, straight into a second mount's tree
    m.unmount()
    m = tc_mount()
    assert diff_snapshots(snapshot(m.path / "root"), ref) == ""
    a3 = tmp_path / "again.tar"
    tar_c(m.path / "root", a3)
    assert tar_listing(a3) == tar_listing(a1)
    run(["tar", "--numeric-owner", "-C", str(m.path / "root"), "--compare", "-f", str(a1)])


# -- fallocate ---------------------------------------------------------------------------

class Model:
    """What a file must hold: its bytes (and so its size)."""

    def __init__(self, data=b""):
        self.b = bytearray(data)

    def write(self, off, data):
        if off > len(self.b):
            self.b += bytes(off - len(self.b))
        self.b[off:off + len(data)] = data

    def fallocate(self, mode, off, length):
        end = off + length
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) and off < len(self.b):
            stop = min(end, len(self.b))
            self.b[off:stop] = bytes(stop - off)
        if not mode & FALLOC_FL_KEEP_SIZE and end > len(self.b):
            self.b += bytes(end - len(self.b))

    def check(self, path, what=""):
        st = os.stat(path)
        assert st.st_size == len(self.b), f"{what}: size {st.st_size}, model {len(self.b)}"
        got = read_file(path)
        if got != self.b:
            at = next(i for i in range(min(len(got), len(self.b))) if got[i] != self.b[i])
            raise AssertionError(f"{what}: bytes differ from offset {at}")


def fallocate_cli(args, path):
    run(["fallocate", *args, str(path)])


def test_fallocate_command(tc_mount, tmp_path):
    # The reference is a plain directory (ext4 here, which has every mode;
    # tmpfs lacks zero-range), and both follow the model.
    m = tc_mount()
    plain = tmp_path / "plain"
    plain.mkdir()
    for root in (m.path, plain):
        f = root / "f"
        model = Model(pattern_bytes(100_000, seed=3))
        write_file(f, bytes(model.b))
        steps = [
            (["-l", "2M"], 0, 0, 2 << 20),                                  # allocate, grows
            (["-l", "4096"], 0, 0, 4096),                                   # inside: no change
            (["-n", "-l", "8M"], FALLOC_FL_KEEP_SIZE, 0, 8 << 20),          # keep size
            (["-p", "-o", "10", "-l", "70000"],
             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10, 70000),        # punch
            (["-p", "-o", str((2 << 20) - 100), "-l", "1M"],
             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (2 << 20) - 100, 1 << 20),
            (["-z", "-o", "99000", "-l", "2000"], FALLOC_FL_ZERO_RANGE, 99000, 2000),
            (["-z", "-o", str(2 << 20), "-l", "5000"],
             FALLOC_FL_ZERO_RANGE, 2 << 20, 5000),                          # zero, grows
            (["-z", "-n", "-o", "5", "-l", str(3 << 20)],
             FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 5, 3 << 20),
        ]
        for args, mode, off, length in steps:
            # new bytes before each step, so each zeroing shows
            with open(f, "r+b") as fh:
                fh.seek(off)
                fh.write(b"data" * 8)
            model.write(off, b"data" * 8)
            fallocate_cli(args, f)
            model.fallocate(mode, off, length)
            model.check(f, f"{root.name}: fallocate {' '.join(args)}")
        # -d (dig holes) keeps the bytes
        fallocate_cli(["-d"], f)
        model.check(f, f"{root.name}: fallocate -d")
    assert read_file(m.path / "f") == read_file(plain / "f")
    m.unmount()
    m = tc_mount()
    assert read_file(m.path / "f") == read_file(plain / "f")


def test_fallocate_errors_like_tmpfs(tc_mount, tmpfs):
    m = tc_mount(opts="disk_size=64M")
    results = {}
    for root in (m.path, tmpfs):
        f = root / "f"
        write_file(f, b"x" * 1000)
        os.mkfifo(root / "fifo")
        r = {}

        def attempt(name, fn, *args):
            try:
                fn(*args)
                r[name] = "ok"
            except OSError as e:
                r[name] = errno.errorcode[e.errno]

        fd = os.open(f, os.O_RDWR)
        ro = os.open(f, os.O_RDONLY)
        dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        pfd = os.open(root / "fifo", os.O_RDWR)
        try:
            attempt("negative offset", fallocate, fd, 0, -1, 10)
            attempt("zero length", fallocate, fd, 0, 0, 0)
            attempt("punch without keep-size", fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 10)
            attempt("punch and zero", fallocate, fd,
                    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 10)
            attempt("read-only descriptor", fallocate, ro, 0, 0, 4096)
            attempt("directory", fallocate, dfd, 0, 0, 4096)
            attempt("fifo", fallocate, pfd, 0, 0, 4096)
            attempt("offset overflow", fallocate, fd, 0, (1 << 63) - 10, 100)
            attempt("posix_fallocate", os.posix_fallocate, fd, 0, 3000)
            attempt("posix_fallocate read-only", os.posix_fallocate, ro, 0, 5000)
            # past the mount's disk_size: tmpfs (size=64m) has no room
            # either; the errnos differ, each is checked below
            try:
                fallocate(fd, 0, 0, 100 << 20)
                big = "ok"
            except OSError as e:
                big = errno.errorcode[e.errno]
        finally:
            for x in (fd, ro, dfd, pfd):
                os.close(x)
        results[root.name] = r
        assert os.stat(f).st_size == 3000 and read_file(f) == b"x" * 1000 + bytes(2000)
        if root == m.path:
            assert big == "EFBIG"  # past disk_size, as a write would
        else:
            assert big == "ENOSPC"
    assert results[m.path.name] == results[tmpfs.name]
    assert results[tmpfs.name]["negative offset"] == "EINVAL"
    assert results[tmpfs.name]["read-only descriptor"] == "EBADF"
    assert results[tmpfs.name]["punch without keep-size"] == errno.errorcode[errno.EOPNOTSUPP]


def test_fallocate_unsupported_modes(mnt):
    # Modes a local filesystem may lack: collapse and insert range are
    # refused cleanly (by the kernel's FUSE code or by the daemon) and
    # change nothing; the supported modes keep working afterwards.
    f = mnt / "f"
    write_file(f, pattern_bytes(64 << 10, seed=1))
    fd = os.open(f, os.O_RDWR)
    try:
        for mode in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE):
            expect_errno(errno.EOPNOTSUPP, fallocate, fd, mode, 0, 4096)
        fallocate(fd, 0, 0, 128 << 10)
    finally:
        os.close(fd)
    assert read_file(f) == pattern_bytes(64 << 10, seed=1) + bytes(64 << 10)


MODES = [0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
         FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fallocate_random_against_model(tc_mount, seed):
    """Random writes, truncates and fallocate calls (every mode, through
    fallocate(2) and posix_fallocate) on files small and large (3 MiB: several
    chunks, some sealed into files before the publish), every byte and the size
    compared with the model after each step, after publishing (fsync,
    close) and after a remount."""
    rng = random.Random(seed)
    m = tc_mount()
    span = 3 << 20 if seed == 3 else 200_000
    data = pattern_bytes(span, seed=seed)
    models = {}
    for k in range(2):
        f = m.path / f"f{k}"
        model = models[f.name] = Model()
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for step in range(40):
                off = rng.randrange(span)
                n = rng.randrange(1, span // 3)
                op = rng.choice(["write", "fallocate", "fallocate", "posix", "truncate"])
                if op == "write":
                    os.pwrite(fd, data[off:off + n], off)
                    model.write(off, data[off:off + n])
                elif op == "truncate":
                    os.ftruncate(fd, off)
                    model.b = model.b[:off] + bytes(max(0, off - len(model.b)))
                elif op == "posix":
                    os.posix_fallocate(fd, off, n)
                    model.fallocate(0, off, n)
                else:
                    mode = rng.choice(MODES)
                    fallocate(fd, mode, off, n)
                    model.fallocate(mode, off, n)
                model.check(f, f"seed {seed} {f.name} step {step} {op}")
                if step % 13 == 12:
                    os.fsync(fd)
                    model.check(f, f"after fsync at step {step}")
        finally:
            os.close(fd)
        model.check(f, "after close")
    m.unmount()
    m = tc_mount()
    for name, model in models.items():
        model.check(m.path / name, f"{name} after remount")


# -- the permission matrix -----------------------------------------------------------------

# Users of the matrix: the owner of most things, a second user sharing its
# group, and one in no common group. No supplementary groups (as_user).
U_A = (1234, 1234)
U_G = (1236, 1234)
U_O = (1235, 1235)
USERS = {"A": U_A, "G": U_G, "O": U_O}


def build_matrix_tree(base):
    """The fixture tree, made by root; identical on both filesystems."""
    b = Path(base)
    os.chmod(b, 0o755)
    dirs = {  # name: (mode, uid, gid)
        "pub": (0o777, 0, 0),
        "sticky": (0o1777, 0, 0),
        "ro": (0o755, 0, 0),
        "adir": (0o755, *U_A),
        "agrp": (0o775, *U_A),
        "ax": (0o711, *U_A),
        "aprivate": (0o700, *U_A),
        "sgid": (0o2777, *U_A),
        "movable": (0o777, 0, 0),
    }
    for name, (mode, uid, gid) in dirs.items():
        (b / name).mkdir()
        os.chown(b / name, uid, gid)
        os.chmod(b / name, mode)
    files = {  # path: (mode, uid, gid)
        "ro/rootfile": (0o644, 0, 0),
        "ro/root600": (0o600, 0, 0),
        "adir/f644": (0o644, *U_A),
        "adir/f600": (0o600, *U_A),
        "adir/f660": (0o660, *U_A),
        "adir/f666": (0o666, *U_A),
        "adir/f604": (0o604, *U_A),
        "adir/suid": (0o6777, *U_A),
        "adir/sgidonly": (0o2775, *U_A),
        "adir/script": (0o755, *U_A),
        "adir/script_noexec": (0o644, *U_A),
        "adir/script_xonly": (0o711, *U_A),
        "ax/hidden": (0o644, *U_A),
        "aprivate/secret": (0o644, *U_A),
        "sticky/a_file": (0o666, *U_A),
        "sticky/root_file": (0o666, 0, 0),
        "pub/a_file": (0o644, *U_A),
        "pub/root_file": (0o644, 0, 0),
        "pub/root_rw": (0o666, 0, 0),
        "agrp/f": (0o664, *U_A),
    }
    for rel, (mode, uid, gid) in files.items():
        body = b"#!/bin/sh\necho ran\n" if "script" in rel else b"content of " + rel.encode()
        write_file(b / rel, body)
        os.chown(b / rel, uid, gid)
        os.chmod(b / rel, mode)
    os.setxattr(b / "adir/f644", "user.note", b"by A")
    (b / "sticky/a_dir").mkdir()
    os.chown(b / "sticky/a_dir", *U_A)
    (b / "movable/adir_to_move").mkdir()
    os.chown(b / "movable/adir_to_move", *U_A)
    os.chmod(b / "movable/adir_to_move", 0o755)
    # device nodes and a FIFO made by root
    os.mknod(b / "pub/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(b / "sticky/disk", stat.S_IFBLK | 0o660, os.makedev(8, 0))
    os.mknod(b / "ro/tty", stat.S_IFCHR | 0o620, os.makedev(4, 1))
    os.chown(b / "ro/tty", 0, 5)
    os.mkfifo(b / "pub/fifo", 0o666)
    os.symlink("adir/f600", b / "link_to_f600")


# The script each user runs: (user, [operation, ...]), in order. An
# operation is [name, args...]; paths are relative to the base directory.
PHASES = [
    ("A", [
        ["read", "adir/f600"], ["write", "adir/f600"], ["create", "adir/new_by_a", 0o644],
        ["create", "sgid/a_in_sgid", 0o2755], ["mkdir", "sgid/a_sub", 0o755],
        ["create", "sticky/a_new", 0o666], ["create", "ro/a_cannot", 0o644],
        ["chmod", "adir/f604", 0o640], ["chmod", "adir/sgidonly", 0o2775],
        ["chown", "adir/f644", 1234, 1234], ["chown", "adir/f644", -1, 1235],
        ["chown", "adir/f644", 1235, -1], ["chown", "ro/rootfile", 1234, -1],
        ["chmod", "ro/rootfile", 0o777], ["utime_now", "adir/f644"],
        ["utime_set", "adir/f644"], ["utime_set", "ro/rootfile"], ["utime_now", "ro/rootfile"],
        ["utime_now", "pub/root_rw"], ["utime_set", "pub/root_rw"],
        ["setxattr", "adir/f644", "user.a"], ["setxattr", "ro/rootfile", "user.a"],
        ["getxattr", "adir/f644", "user.note"], ["setxattr", "sticky/a_dir", "user.d"],
        ["setxattr", "sticky", "user.d"], ["setxattr", "pub/null", "user.dev"],
        ["getxattr", "pub/null", "user.dev"],
        ["truncate", "adir/f666", 3], ["truncate", "ro/rootfile", 0],
        ["mknod_chr", "pub/a_null"], ["mknod_blk", "adir/a_disk"], ["mkfifo", "pub/a_fifo"],
        ["open_dev", "pub/null"], ["open_dev", "ro/tty"], ["stat", "ro/tty"],
        ["exec", "adir/script"], ["exec", "adir/script_noexec"], ["exec", "adir/script_xonly"],
        ["access", "adir/script_noexec", os.X_OK], ["access", "ro/root600", os.R_OK],
        ["listdir", "aprivate"], ["mkdir", "pub/a_dir", 0o755], ["rmdir", "pub/a_dir"],
        ["symlink", "adir/f600", "pub/a_link"], ["readlink", "link_to_f600"],
        ["read", "link_to_f600"],
    ]),
    ("G", [
        ["read", "adir/f660"], ["write", "adir/f660"], ["read", "adir/f600"],
        ["read", "adir/f604"], ["write", "adir/f644"], ["write_append", "adir/suid"],
        ["stat", "adir/suid"], ["truncate", "adir/sgidonly", 1],
        ["create", "agrp/g_new", 0o664], ["unlink", "agrp/f"], ["create", "adir/g_cannot", 0o644],
        ["create", "sgid/g_in_sgid", 0o2755], ["stat", "sgid/g_in_sgid"],
        ["mkdir", "sgid/g_sub", 0o2755], ["stat", "sgid/g_sub"],
        ["create", "sgid/a_sub/g_deep", 0o644], ["stat", "sgid/a_sub/g_deep"],
        ["chmod", "adir/f660", 0o666], ["chown", "adir/f660", -1, 1234],
        ["utime_now", "adir/f660"], ["utime_set", "adir/f660"], ["utime_now", "adir/f644"],
        ["setxattr", "adir/f660", "user.g"], ["setxattr", "adir/f644", "user.g"],
        ["getxattr", "adir/f644", "user.note"], ["listxattr", "adir/f644"],
        ["removexattr", "adir/f644", "user.note"],
        ["stat", "ax/hidden"], ["listdir", "ax"], ["read", "ax/hidden"],
        ["stat", "aprivate/secret"], ["listdir", "aprivate"],
        ["exec", "adir/script"], ["exec", "adir/script_xonly"],
        ["link", "adir/f600", "pub/g_hard_f600"], ["link", "adir/f660", "pub/g_hard_f660"],
        ["link", "adir/f644", "pub/g_hard_f644"], ["link", "pub/null", "pub/g_hard_null"],
        ["link", "pub/fifo", "pub/g_hard_fifo"],
        ["mknod_chr", "pub/g_null"], ["mkfifo", "pub/g_fifo"],
    ]),
    ("O", [
        ["read", "adir/f644"], ["read", "adir/f604"], ["read", "adir/f660"],
        ["write", "adir/f666"], ["write", "adir/f644"], ["write_append", "adir/suid"],
        ["stat", "adir/suid"], ["create", "pub/o_new", 0o600], ["create", "sticky/o_new", 0o644],
        ["unlink", "sticky/a_file"], ["unlink", "sticky/root_file"], ["unlink", "sticky/disk"],
        ["rename", "sticky/a_file", "sticky/o_took"], ["rename", "sticky/o_new", "sticky/o_own"],
        ["rename", "pub/a_file", "pub/o_took"], ["rmdir", "sticky/a_dir"],
        ["unlink", "pub/null"], ["rename", "pub/root_file", "sticky/o_moved"],
        ["rename", "movable/adir_to_move", "pub/moved_dir"],
        ["rename", "movable/adir_to_move", "movable/renamed_dir"],
        ["chmod", "adir/f666", 0o600], ["chown", "adir/f666", 1235, 1235],
        ["chown", "pub/o_new", -1, 1234], ["chown", "pub/o_new", -1, 1235],
        ["chmod", "pub/o_new", 0o2755], ["stat", "pub/o_new"],
        ["utime_now", "adir/f666"], ["utime_set", "adir/f666"], ["utime_now", "adir/f644"],
        ["utime_set", "pub/o_new"],
        ["setxattr", "adir/f666", "user.o"], ["setxattr", "adir/f644", "user.o"],
        ["getxattr", "adir/f644", "user.note"], ["setxattr", "pub/fifo", "user.o"],
        ["truncate", "adir/f666", 1], ["truncate", "adir/f644", 1],
        ["open_trunc", "adir/f644"], ["open_creat_excl", "adir/f644"],
        ["mkdir", "ro/o_dir", 0o755], ["mkdir", "pub/o_dir", 0o700], ["rmdir", "sgid/a_sub"],
        ["create", "sgid/o_in_sgid", 0o2755], ["stat", "sgid/o_in_sgid"],
        ["chmod", "sgid/o_in_sgid", 0o2755],
        ["mkdir", "sgid/o_sub", 0o755], ["stat", "sgid/o_sub"],
        ["link", "adir/f644", "pub/o_hard_f644"], ["link", "adir/f666", "pub/o_hard_f666"],
        ["link", "pub/root_rw", "pub/o_hard_root_rw"], ["link", "sticky/disk", "pub/o_hard_disk"],
        ["symlink", "../adir/f600", "pub/o_link"], ["read", "pub/o_link"],
        ["read", "pub/a_link"], ["read", "link_to_f600"],
        ["open_dev", "pub/null"], ["open_dev", "sticky/disk"], ["mknod_blk", "pub/o_disk"],
        ["exec", "adir/script"], ["exec", "adir/script_noexec"], ["exec", "adir/script_xonly"],
        ["access", "adir/f666", os.W_OK], ["access", "adir/f644", os.W_OK],
        ["listdir", "ax"], ["stat", "ax/hidden"], ["listdir", "sticky"],
        ["stat", "ro/tty"], ["open_dev", "ro/tty"], ["chmod", "ro/tty", 0o666],
    ]),
]

# Runs as one user: performs the operations on a base directory and prints
# [[operation, result], ...] as JSON. The result is "ok" or the errno's
# name, with what the operation saw (bytes read, new entry's mode and owner).
USER_SCRIPT = r'''
import errno, json, os, stat, subprocess, sys
base, ops = sys.argv[1], json.loads(sys.argv[2])
os.umask(0o022)
P = lambda p: os.path.join(base, p)

def st(p):
    s = os.lstat(P(p))
    return f"{stat.filemode(s.st_mode)} {s.st_uid}:{s.st_gid} n{s.st_nlink}"

def do(op, *a):
    if op == "read":
        with open(P(a[0]), "rb") as f:
            return f.read(64).decode(errors="replace")
    if op == "write":
        with open(P(a[0]), "r+b") as f:
            f.write(b"W")
        return None
    if op == "write_append":
        with open(P(a[0]), "ab") as f:
            f.write(b"+")
        return None
    if op == "create":
        os.close(os.open(P(a[0]), os.O_CREAT | os.O_EXCL | os.O_WRONLY, a[1]))
        return st(a[0])
    if op == "open_trunc":
        os.close(os.open(P(a[0]), os.O_WRONLY | os.O_TRUNC))
        return None
    if op == "open_creat_excl":
        os.close(os.open(P(a[0]), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return None
    if op == "mkdir":
        os.mkdir(P(a[0]), a[1])
        return st(a[0])
    if op == "rmdir":
        os.rmdir(P(a[0]))
        return None
    if op == "unlink":
        os.unlink(P(a[0]))
        return None
    if op == "rename":
        os.rename(P(a[0]), P(a[1]))
        return None
    if op == "link":
        os.link(P(a[0]), P(a[1]))
        return st(a[1])
    if op == "symlink":
        os.symlink(a[0], P(a[1]))
        return None
    if op == "readlink":
        return os.readlink(P(a[0]))
    if op == "chmod":
        os.chmod(P(a[0]), a[1])
        return st(a[0])
    if op == "chown":
        os.chown(P(a[0]), a[1], a[2])
        return st(a[0])
    if op == "utime_now":
        os.utime(P(a[0]), None)
        return None
    if op == "utime_set":
        os.utime(P(a[0]), (1000000000, 1000000000))
        return None
    if op == "setxattr":
        os.setxattr(P(a[0]), a[1], b"v", follow_symlinks=False)
        return None
    if op == "getxattr":
        return os.getxattr(P(a[0]), a[1], follow_symlinks=False).decode()
    if op == "listxattr":
        return sorted(os.listxattr(P(a[0])))
    if op == "removexattr":
        os.removexattr(P(a[0]), a[1])
        return None
    if op == "truncate":
        os.truncate(P(a[0]), a[1])
        return None
    if op == "mknod_chr":
        os.mknod(P(a[0]), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        return None
    if op == "mknod_blk":
        os.mknod(P(a[0]), stat.S_IFBLK | 0o660, os.makedev(8, 0))
        return None
    if op == "mkfifo":
        os.mkfifo(P(a[0]), 0o644)
        return st(a[0])
    if op == "open_dev":
        os.close(os.open(P(a[0]), os.O_RDONLY | os.O_NONBLOCK))
        return None
    if op == "stat":
        return st(a[0])
    if op == "listdir":
        return sorted(os.listdir(P(a[0])))
    if op == "access":
        return os.access(P(a[0]), a[1])
    if op == "exec":
        r = subprocess.run([P(a[0])], capture_output=True, text=True)
        return f"exit {r.returncode} {r.stdout.strip()}"
    raise ValueError(op)

out = []
for op in ops:
    try:
        v = do(*op)
        out.append([op, "ok" if v is None else ["ok", v]])
    except OSError as e:
        out.append([op, errno.errorcode.get(e.errno, str(e.errno))])
print(json.dumps(out))
'''


def run_phase(script, user, base, ops):
    r = run(as_user(USERS[user], ["/usr/bin/python3", str(script), str(base), json.dumps(ops)]))
    return json.loads(r.stdout)


def test_permission_matrix(tc_mount, tmpfs, tmp_path):
    make_traversable(tmp_path)
    script = tmp_path / "ops.py"
    script.write_text(USER_SCRIPT)
    os.chmod(script, 0o644)
    m = tc_mount(opts="allow_other")
    os.chmod(m.path, 0o755)
    bases = {"tiercachefs": m.path / "base", "tmpfs": tmpfs / "base"}
    for b in bases.values():
        b.mkdir()
        build_matrix_tree(b)
    assert diff_snapshots(snapshot(bases["tiercachefs"], times=False),
                          snapshot(bases["tmpfs"], times=False)) == ""
    diffs = []
    for user, ops in PHASES:
        got = {name: run_phase(script, user, b, ops) for name, b in bases.items()}
        for (op, ours), (_, ref) in zip(got["tiercachefs"], got["tmpfs"]):
            if ours != ref:
                diffs.append(f"{user} {op}: tiercachefs {ours}, tmpfs {ref}")
    assert not diffs, "results differ:\n" + "\n".join(diffs)
    # the same trees afterwards: modes (setuid/setgid cleared or kept),
    # owners, groups inherited from setgid directories, contents, links
    assert diff_snapshots(snapshot(bases["tiercachefs"], times=False),
                          snapshot(bases["tmpfs"], times=False)) == ""
    assert devices(bases["tiercachefs"]) == devices(bases["tmpfs"])
    # and after a remount
    want = snapshot(bases["tiercachefs"], times=False)
    m.unmount()
    m = tc_mount(opts="allow_other")
    assert diff_snapshots(snapshot(m.path / "base", times=False), want) == ""


def test_permission_matrix_checks_something(tmpfs, tmp_path):
    """The matrix is only worth something if its operations are refused
    and allowed in a real mix: on the reference, each phase has both."""
    make_traversable(tmp_path)
    script = tmp_path / "ops.py"
    script.write_text(USER_SCRIPT)
    os.chmod(script, 0o644)
    base = tmpfs / "base"
    base.mkdir()
    build_matrix_tree(base)
    seen = set()
    for user, ops in PHASES:
        results = [res for _, res in run_phase(script, user, base, ops)]
        ok = sum(1 for r in results if r == "ok" or isinstance(r, list))
        assert 0 < ok < len(results), (user, results)
        seen |= {r for r in results if isinstance(r, str)}
    assert {"EACCES", "EPERM", "EEXIST"} <= seen, seen
