# SPDX-License-Identifier: MIT
"""Whole trees through real archivers: mkdir -p / rm -r, tar, rsync -aHX,
cp -a, in and back out with identical content, link counts, modes, owners,
times and xattrs."""

import errno
import os
from pathlib import Path

import pytest

from tcutil import (diff_snapshots, expect_errno, make_special_tree, run, sh,
                    snapshot, write_file, XATTR_PREFIX)

# A real tree to archive: /usr/include (~130 MB, ~9000 entries here) takes
# ~20 s per archiver under ASan on 2 cores. TC_REAL_TREE=/usr/include/linux
# makes a quick run.
REAL_TREE = Path(os.environ.get("TC_REAL_TREE", "/usr/include"))


def assert_same_tree(a, b, **kw):
    sa, sb = snapshot(a, **kw), snapshot(b, **kw)
    d = diff_snapshots(sa, sb)
    assert not d, f"{a} and {b} differ:\n{d}"
    return sa


def getfattr_dump(root):
    """getfattr -R -d of a tree as {file: {name: value}}, user.tiercache.* left out."""
    out = run(["getfattr", "-R", "-d", "-P", "-h", "-e", "hex", "."], cwd=root).stdout
    res, cur = {}, None
    for line in out.splitlines():
        if line.startswith("# file: "):
            cur = line[len("# file: "):]
        elif "=" in line and cur is not None and not line.startswith(XATTR_PREFIX):
            k, v = line.split("=", 1)
            res.setdefault(cur, {})[k] = v
    return res


def diff_r(a, b):
    """diff -r of two trees; FIFOs (which diff reports as differing) excluded."""
    run(["diff", "-r", "--no-dereference", "--exclude=fifo*", str(a), str(b)])


def test_mkdir_p_rm_r_deep(mnt):
    parts = [f"d{i:02d}" for i in range(80)]
    deep = mnt.joinpath(*parts)
    run(["mkdir", "-p", str(deep)])
    p = mnt
    for i, part in enumerate(parts):
        p = p / part
        write_file(p / f"f{i}", f"level {i}\n".encode())
    assert (deep / "f79").read_bytes() == b"level 79\n"
    found = run(["find", str(mnt / "d00")]).stdout.splitlines()
    assert len(found) == 160
    expect_errno(errno.ENOTEMPTY, os.rmdir, mnt / "d00")
    expect_errno(errno.EEXIST, os.mkdir, mnt / "d00")
    expect_errno(errno.ENOTDIR, os.rmdir, mnt / "d00" / "f0")
    expect_errno(errno.EISDIR, os.unlink, mnt / "d00" / "d01")
    run(["rm", "-r", str(mnt / "d00")])
    assert not (mnt / "d00").exists()
    assert set(os.listdir(mnt)) <= {".stats", ".tags"}


def test_wide_directory(mnt):
    """Thousands of entries: readdir must page through them all exactly once."""
    d = mnt / "wide"
    d.mkdir()
    names = [f"entry-{i:05d}-" + "x" * (i % 200) for i in range(3000)]
    for n in names:
        write_file(d / n, b"")
    assert sorted(os.listdir(d)) == names
    ls = run(["ls", "-1", "-f", str(d)]).stdout.splitlines()
    assert sorted(ls) == sorted(names + [".", ".."])
    for n in names[::2]:
        os.unlink(d / n)
    assert sorted(os.listdir(d)) == names[1::2]
    run(["rm", "-r", str(d)])
    assert not d.exists()


def test_tar_real_tree(mnt, tmp_path):
    dst = mnt / "tree"
    dst.mkdir()
    # posix format: GNU tar's default keeps whole seconds only
    sh(f"tar --format=posix -C '{REAL_TREE}' -cf - . | tar -C '{dst}' -xpf -")
    diff_r(REAL_TREE, dst)
    assert_same_tree(REAL_TREE, dst)
    out = tmp_path / "out"
    out.mkdir()
    sh(f"tar --format=posix -C '{dst}' -cf - . | tar -C '{out}' -xpf -")
    diff_r(REAL_TREE, out)
    assert_same_tree(REAL_TREE, out)


def test_rsync_real_tree(mnt, tmp_path):
    dst = mnt / "tree"
    run(["rsync", "-aHX", f"{REAL_TREE}/", f"{dst}/"])
    diff_r(REAL_TREE, dst)
    assert_same_tree(REAL_TREE, dst)
    # a second run finds nothing to do: times, modes and sizes all match
    again = run(["rsync", "-aHXi", f"{REAL_TREE}/", f"{dst}/"]).stdout
    assert again == "", f"rsync still sees differences:\n{again[:2000]}"
    out = tmp_path / "out"
    run(["rsync", "-aHX", f"{dst}/", f"{out}/"])
    diff_r(REAL_TREE, out)
    assert_same_tree(REAL_TREE, out)


@pytest.fixture
def special_tree(tmp_path):
    return make_special_tree(tmp_path / "src")


def test_tar_special_tree(mnt, tmp_path, special_tree):
    src = special_tree
    dst = mnt / "t"
    dst.mkdir()
    xa = "--xattrs --xattrs-include='user.*'"
    sh(f"tar --format=posix {xa} -C '{src}' -cf - . | tar {xa} -C '{dst}' -xpf -")
    diff_r(src, dst)
    want = assert_same_tree(src, dst)
    assert want[1], "the tree has hard-link groups"
    assert getfattr_dump(src) == getfattr_dump(dst)
    out = tmp_path / "out"
    out.mkdir()
    sh(f"tar --format=posix {xa} -C '{dst}' -cf - . | tar {xa} -C '{out}' -xpf -")
    diff_r(src, out)
    assert_same_tree(src, out)
    assert getfattr_dump(src) == getfattr_dump(out)


def test_rsync_special_tree(mnt, tmp_path, special_tree):
    src = special_tree
    dst = mnt / "r"
    run(["rsync", "-aHX", f"{src}/", f"{dst}/"])
    diff_r(src, dst)
    assert_same_tree(src, dst)
    assert getfattr_dump(src) == getfattr_dump(dst)
    again = run(["rsync", "-aHXi", f"{src}/", f"{dst}/"]).stdout
    assert again == "", f"rsync still sees differences:\n{again[:2000]}"
    out = tmp_path / "out"
    run(["rsync", "-aHX", f"{dst}/", f"{out}/"])
    diff_r(src, out)
    assert_same_tree(src, out)
    assert getfattr_dump(src) == getfattr_dump(out)


def test_cp_a_special_tree(mnt, tmp_path, special_tree):
    src = special_tree
    dst = mnt / "c"
    run(["cp", "-a", str(src), str(dst)])
    assert_same_tree(src, dst)
    # a copy within the mount
    run(["cp", "-a", str(dst), str(mnt / "c2")])
    assert_same_tree(src, mnt / "c2")
    out = tmp_path / "out"
    run(["cp", "-a", str(dst), str(out)])
    assert_same_tree(src, out)
    assert getfattr_dump(src) == getfattr_dump(out)
