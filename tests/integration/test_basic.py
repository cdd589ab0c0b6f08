# SPDX-License-Identifier: MIT
"""Files through real programs: cp, cat, cmp, dd, shells, python I/O."""

import collections
import errno
import os
import random
import re
import subprocess
import sys

import pytest

from tcutil import (SLOW, pattern_bytes, read_file, run, sha256_file, sh,
                    write_file, write_random_file)


@pytest.mark.parametrize("size", [0, 1, 13, 4095, 4096, 4097, 65539, 1 << 20, 5_000_001])
def test_cp_cat_cmp(mnt, tmp_path, size):
    src = tmp_path / "src"
    data = pattern_bytes(size, seed=size)
    write_file(src, data)
    dst = mnt / f"file{size}"
    run(["cp", str(src), str(dst)])
    assert os.stat(dst).st_size == size
    run(["cmp", str(src), str(dst)])
    assert run(["cat", str(dst)], text=False).stdout == data
    back = tmp_path / "back"
    run(["cp", str(dst), str(back)])
    run(["cmp", str(src), str(back)])


def test_large_file(mnt, tmp_path):
    """100 MiB + a bit: far beyond max_ram_item, served from disk only."""
    size = 100 * (1 << 20) + 4321
    src = tmp_path / "big"
    digest = write_random_file(src, size)
    dst = mnt / "big"
    run(["cp", str(src), str(dst)])
    assert os.stat(dst).st_size == size
    run(["cmp", str(src), str(dst)])
    assert sha256_file(dst) == digest
    sh(f"cat '{dst}' > '{tmp_path}/big.out'")
    run(["cmp", str(src), str(tmp_path / "big.out")])
    # overwrite in place with other content of the same size
    os.unlink(src)
    os.unlink(tmp_path / "big.out")
    digest2 = write_random_file(src, size)
    run(["cp", str(src), str(dst)])
    assert sha256_file(dst) == digest2


def test_file_larger_than_disk_size_is_efbig(tc_mount):
    """tiercachefs(8), NOTES: a single file larger than disk_size fails with EFBIG."""
    m = tc_mount(opts="disk_size=1M")
    fd = os.open(m.path / "huge", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        chunk = b"y" * 65536
        with pytest.raises(OSError) as e:
            for _ in range(64):  # 4 MiB
                os.write(fd, chunk)
        assert e.value.errno == errno.EFBIG
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert os.stat(m.path / "huge").st_size <= 1 << 20
    write_file(m.path / "fits", b"z" * 1000)  # the mount keeps working
    assert read_file(m.path / "fits") == b"z" * 1000


def test_overwrite_truncates(mnt):
    f = mnt / "f"
    write_file(f, b"a rather long first content\n" * 100)
    sh(f"echo short > '{f}'")
    assert read_file(f) == b"short\n"
    assert os.stat(f).st_size == 6


def _dd_write(src_bytes, tmp_path, dst, offset, notrunc=True):
    chunk = tmp_path / "chunk"
    write_file(chunk, src_bytes)
    conv = ["conv=notrunc"] if notrunc else []
    run(["dd", f"if={chunk}", f"of={dst}", "bs=65536", f"seek={offset}",
         "oflag=seek_bytes", "status=none", *conv])


def test_dd_offsets(mnt, tmp_path):
    f = mnt / "dd"
    model = bytearray(pattern_bytes(1 << 20, seed=7))
    write_file(f, model)
    writes = [(0, 100), (4095, 2), (4096, 4096), (500_000, 70_000), ((1 << 20) - 10, 10),
              (1 << 20, 5000), (3 << 20, 10)]
    for i, (off, n) in enumerate(writes):
        data = pattern_bytes(n, seed=1000 + i)[::-1]
        _dd_write(data, tmp_path, f, off)
        if off > len(model):
            model += bytes(off - len(model))  # a hole reads as zeros
        model[off:off + n] = data
        assert os.stat(f).st_size == len(model), f"size after dd at {off}"
    assert read_file(f) == bytes(model)
    # dd reads at offsets
    for skip, count in [(0, 1), (3, 2), (700, 5), (767, 1)]:
        out = run(["dd", f"if={f}", "bs=4096", f"skip={skip}", f"count={count}", "status=none"],
                  text=False).stdout
        assert out == bytes(model[skip * 4096:(skip + count) * 4096])
    # without conv=notrunc dd truncates: same result as on local disk
    local = tmp_path / "local"
    write_file(local, model)
    for target in (f, local):
        _dd_write(b"tail", tmp_path, target, 1000, notrunc=False)
    assert read_file(f) == read_file(local)
    assert len(read_file(f)) == 1004


APPEND_LINE = re.compile(r"^(A|B)-(\d+)-x{60}$")


def test_concurrent_shell_appends(mnt):
    """Two shells appending with >> at once: every line there, none torn."""
    f = mnt / "log"
    n = 300
    script = ('i=0; while [ $i -lt {n} ]; do echo "{tag}-$i-' + "x" * 60
              + '" >> "{f}"; i=$((i+1)); done')
    procs = [subprocess.Popen(["sh", "-c", script.format(n=n, tag=t, f=f)]) for t in "AB"]
    for p in procs:
        assert p.wait(timeout=300 * SLOW) == 0
    lines = read_file(f).decode().split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    bad = [l for l in lines if not APPEND_LINE.match(l)]
    assert not bad, f"torn lines: {bad[:5]}"
    counts = collections.Counter(lines)
    assert len(lines) == 2 * n and len(counts) == 2 * n, \
        f"{len(lines)} lines, {len(counts)} distinct, expected {2 * n}"
    for t in "AB":  # each writer's lines in its own order
        seq = [int(APPEND_LINE.match(l).group(2)) for l in lines if l.startswith(t)]
        assert seq == list(range(n))


def test_concurrent_fd_appends(mnt):
    """Two processes each holding an O_APPEND fd and writing at once."""
    f = mnt / "log2"
    write_file(f, b"")
    n = 2000
    code = ("import os,sys\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
            "for i in range(int(sys.argv[3])):\n"
            "    os.write(fd, ('%s-%d-' % (sys.argv[2], i) + 'x' * 60 + '\\n').encode())\n"
            "os.close(fd)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(f), t, str(n)]) for t in "AB"]
    for p in procs:
        assert p.wait(timeout=300 * SLOW) == 0
    lines = read_file(f).decode().split("\n")[:-1]
    bad = [l for l in lines if not APPEND_LINE.match(l)]
    assert not bad, f"torn lines: {bad[:5]}"
    assert len(lines) == 2 * n and len(set(lines)) == 2 * n
    for t in "AB":
        seq = [int(APPEND_LINE.match(l).group(2)) for l in lines if l.startswith(t)]
        assert seq == list(range(n))


def test_python_file_api(mnt):
    f = mnt / "py"
    with open(f, "w+b") as fh:
        fh.write(b"0123456789")
        fh.seek(3)
        fh.write(b"abc")
        fh.seek(0)
        assert fh.read() == b"012abc6789"
        fh.seek(20)
        fh.write(b"Z")
        assert fh.tell() == 21
        fh.seek(0)
        assert fh.read() == b"012abc6789" + bytes(10) + b"Z"
        fh.truncate(5)
        fh.seek(0, os.SEEK_END)
        assert fh.tell() == 5
    assert read_file(f) == b"012ab"
    with open(f, "ab") as fh:
        fh.write(b"++")
    with open(f, "r+b") as fh:
        assert fh.read(2) == b"01"
        fh.write(b"__")
    assert read_file(f) == b"01__b++"
    with open(f, "rt") as fh:
        assert fh.readline() == "01__b++"
    with pytest.raises(FileExistsError):
        open(f, "xb")
    with pytest.raises(FileNotFoundError):
        open(mnt / "absent", "rb")


def test_read_sees_write_from_other_fd(mnt):
    """POSIX visibility: a read after a write sees it, from any fd, before close."""
    f = mnt / "vis"
    write_file(f, b"old content")
    wfd = os.open(f, os.O_RDWR)
    rfd = os.open(f, os.O_RDONLY)
    try:
        os.pwrite(wfd, b"NEW", 0)
        assert os.pread(rfd, 100, 0) == b"NEW content"
        os.pwrite(wfd, b"!" * 5000, 11)
        assert os.fstat(rfd).st_size == 5011
        assert os.pread(rfd, 6000, 0) == b"NEW content" + b"!" * 5000
        rfd2 = os.open(f, os.O_RDONLY)
        assert os.pread(rfd2, 6000, 0) == b"NEW content" + b"!" * 5000
        os.close(rfd2)
    finally:
        os.close(wfd)
        os.close(rfd)
    assert read_file(f) == b"NEW content" + b"!" * 5000


def test_random_io_matches_local_file(mnt, tmp_path):
    """Random pwrite/pread/ftruncate on the mount and on local disk agree."""
    rnd = random.Random(1234)
    local = os.open(tmp_path / "model", os.O_RDWR | os.O_CREAT, 0o644)
    remote = os.open(mnt / "rand", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for step in range(300):
            op = rnd.random()
            size = os.fstat(local).st_size
            if op < 0.5:
                off = rnd.randrange(0, size + 70_000)
                data = os.urandom(rnd.choice([1, 7, 512, 4096, 10_000, 150_000]))
                assert os.pwrite(remote, data, off) == len(data)
                os.pwrite(local, data, off)
            elif op < 0.85:
                off = rnd.randrange(0, size + 10)
                n = rnd.choice([1, 100, 4096, 65536, 300_000])
                assert os.pread(remote, n, off) == os.pread(local, n, off), f"step {step}"
            elif op < 0.95:
                n = rnd.randrange(0, size + 50_000)
                os.ftruncate(remote, n)
                os.ftruncate(local, n)
            else:
                os.fsync(remote)
            assert os.fstat(remote).st_size == os.fstat(local).st_size, f"step {step}"
    finally:
        os.close(remote)
        os.close(local)
    assert read_file(mnt / "rand") == read_file(tmp_path / "model")


def test_rename_over_open_file(mnt):
    f = mnt / "target"
    write_file(f, b"old content " * 1000)
    with open(f, "rb") as old:
        write_file(mnt / "new", b"new content")
        os.rename(mnt / "new", f)
        assert not (mnt / "new").exists()
        assert read_file(f) == b"new content"
        assert old.read() == b"old content " * 1000
    assert read_file(f) == b"new content"


def test_unlink_open_file(mnt):
    f = mnt / "doomed"
    data = pattern_bytes(2_000_000, seed=3)
    write_file(f, data)
    fd = os.open(f, os.O_RDWR)
    try:
        os.unlink(f)
        assert not f.exists()
        assert "doomed" not in os.listdir(mnt)
        assert os.fstat(fd).st_nlink == 0
        assert os.pread(fd, len(data) + 10, 0) == data
        os.pwrite(fd, b"more", len(data))
        assert os.pread(fd, 10, len(data) - 2) == data[-2:] + b"more"
        # a new file of that name is a new, empty file
        write_file(f, b"")
        assert read_file(f) == b""
        assert os.pread(fd, 4, len(data)) == b"more"
    finally:
        os.close(fd)
    assert read_file(f) == b""
