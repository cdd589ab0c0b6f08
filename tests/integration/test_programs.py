# SPDX-License-Identifier: MIT
"""Everyday programs working in the mount as on a local disk (tiercachefs(8), DESCRIPTION:
"archives, build tools and test suites behave as on a local disk"):
mmap, a compiler and make, git, SQLite, and fio verifying what it wrote."""

import mmap
import os
import shutil
import sqlite3

import pytest

from tcutil import XATTR_PREFIX, pattern_bytes, read_file, run, tc_get, tc_set, write_file


def test_mmap_read_and_shared_write(mnt):
    f = mnt / "mapped"
    data = pattern_bytes(3 * 4096 + 100, seed=8)
    write_file(f, data)
    with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) as m:
        assert m[:] == data
    with open(f, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as m:
        m[4096:4101] = b"HELLO"
        m.flush()
    expect = bytearray(data)
    expect[4096:4101] = b"HELLO"
    assert read_file(f) == bytes(expect)


@pytest.mark.skipif(not shutil.which("gcc") or not shutil.which("make"), reason="no gcc/make")
def test_compile_and_run(mnt):
    src = mnt / "proj"
    src.mkdir()
    (src / "hello.c").write_text('#include <stdio.h>\n#include "msg.h"\n'
                                 'int main(void) { puts(MSG); return 0; }\n')
    (src / "msg.h").write_text('#define MSG "built in a cache"\n')
    (src / "Makefile").write_text("hello: hello.o\n\t$(CC) -o $@ $^\n"
                                  "hello.o: hello.c msg.h\n\t$(CC) -c -o $@ $<\n")
    run(["make", "-C", str(src)])
    assert run([str(src / "hello")]).stdout == "built in a cache\n"
    # make sees nothing to do, then rebuilds after a header change
    again = run(["make", "-C", str(src)]).stdout
    assert "is up to date" in again or "Nothing to be done" in again, again
    os.utime(src / "hello.o", (1_000_000_000, 1_000_000_000))
    (src / "msg.h").write_text('#define MSG "rebuilt"\n')
    run(["make", "-C", str(src)])
    assert run([str(src / "hello")]).stdout == "rebuilt\n"


@pytest.mark.skipif(not shutil.which("git"), reason="no git")
def test_git_repository(mnt):
    repo = mnt / "repo"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
               GIT_CONFIG_NOSYSTEM="1", HOME=str(mnt))
    g = lambda *a: run(["git", "-C", str(repo), *a], env=env)
    run(["git", "init", "-q", str(repo)], env=env)
    for i in range(20):
        (repo / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    g("add", ".")
    g("commit", "-q", "-m", "first")
    (repo / "f3.txt").write_text("changed\n")
    g("commit", "-q", "-am", "second")
    g("gc", "-q")
    g("fsck", "--strict")
    assert g("log", "--oneline").stdout.count("\n") == 2
    g("checkout", "-q", "HEAD~1", "--", "f3.txt")
    assert (repo / "f3.txt").read_text() == "file 3\n" * 4


def test_sqlite_database(mnt):
    db = mnt / "data.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    for batch in range(10):
        with con:
            con.executemany("INSERT INTO t VALUES (?, ?)",
                            [(batch * 1000 + i, "x" * (i % 300)) for i in range(1000)])
    con.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 10_000
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    # and with the rollback journal, through the sqlite3 program
    if shutil.which("sqlite3"):
        db2 = mnt / "journal.db"
        run(["sqlite3", str(db2), "CREATE TABLE a(x); INSERT INTO a VALUES (1),(2),(3);"])
        assert run(["sqlite3", str(db2), "SELECT sum(x) FROM a;"]).stdout.strip() == "6"


@pytest.mark.skipif(not shutil.which("fio"), reason="no fio")
def test_fio_verify(mnt, tmp_path):
    """Two fio jobs doing random writes with checksums, then verifying."""
    out = run(["fio", "--name=tc", f"--directory={mnt}", "--size=16M", "--numjobs=2",
               "--rw=randwrite", "--bsrange=4k-64k", "--ioengine=psync",
               "--verify=crc32c", "--verify_fatal=1", "--do_verify=1",
               "--group_reporting", "--output-format=terse"], timeout=300,
              cwd=tmp_path)  # fio writes its verify state files in cwd
    assert out.returncode == 0
    # the files stay valid after fio closed them
    run(["fio", "--name=tc", f"--directory={mnt}", "--size=16M", "--numjobs=2",
         "--rw=randwrite", "--bsrange=4k-64k", "--ioengine=psync", "--verify=crc32c",
         "--verify_only", "--verify_fatal=1", "--output-format=terse"], timeout=300,
        cwd=tmp_path)


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_rsync_within_mount_keeps_cache_attrs(mnt, tmp_path):
    """Copies made with rsync -aX / cp -a carry the user-set cache attributes:
    inside the mount, out to a local disk, and back in."""
    src = mnt / "src"
    src.mkdir()
    write_file(src / "a", b"alpha")
    write_file(src / "b", b"beta")
    tc_set(src / "a", "tags", "one,two")
    tc_set(src / "a", "ttl", "2d")
    tc_set(src / "b", "schema", "v4")
    os.setxattr(src / "b", "user.plain", b"p")

    def check(root, where):
        assert read_file(root / "a") == b"alpha", where
        assert tc_get(root / "a", "tags") == "one,two", where
        assert tc_get(root / "b", "schema") == "v4", where
        assert os.getxattr(root / "b", "user.plain") == b"p", where

    run(["rsync", "-aX", f"{src}/", f"{mnt}/copy/"])
    check(mnt / "copy", "rsync within the mount")
    run(["cp", "-a", str(src), str(mnt / "cpcopy")])
    check(mnt / "cpcopy", "cp -a within the mount")
    local = tmp_path / "local"
    run(["rsync", "-aX", f"{src}/", f"{local}/"])
    assert os.getxattr(local / "a", XATTR_PREFIX + "tags") == b"one,two"
    run(["rsync", "-aX", f"{local}/", f"{mnt}/back/"])
    check(mnt / "back", "rsync back in")
