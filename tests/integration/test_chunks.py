# SPDX-License-Identifier: MIT
"""Large contents in chunks (tiercachefs(8), STORE): a change costs the
chunks it touched, identical chunks are stored once across files and
versions, cp inside the mount shares chunks (copy_file_range), and every
chunk read from disk is verified.

The store's chunk size is 1 MiB. blob_bytes in .stats is the physical size
of the blob directory, so sharing shows there; the daemon's own write
volume (/proc/PID/io wchar: every byte it wrote to blobs, temporary files
and the index) shows what a change cost.
"""

import errno
import hashlib
import os
import random
import subprocess
from pathlib import Path

import pytest

from tcutil import read_uncached, tc_set, tc_stats, wait_until

MIB = 1 << 20
SIZE = 64 * MIB


def daemon_wchar(m):
    for line in Path(f"/proc/{m.pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/PID/io")


def write_big(path, data, fsync=True):
    with open(path, "wb") as f:
        for off in range(0, len(data), MIB):
            f.write(data[off:off + MIB])
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(MIB):
            h.update(b)
    return h.hexdigest()


def blob_bytes(mnt):
    return tc_stats(mnt)["blob_bytes"]


def find_chunk_blob(store, chunk):
    hits = []
    for dirpath, _, files in os.walk(Path(store) / "blobs"):
        for name in files:
            p = Path(dirpath) / name
            if p.stat().st_size == len(chunk) and p.read_bytes() == chunk:
                hits.append(p)
    assert len(hits) == 1, f"expected one blob holding the chunk, found {hits}"
    return hits[0]


def test_cp_inside_the_mount_shares_chunks(tc_mount):
    m = tc_mount()
    data = os.urandom(SIZE)
    write_big(m.path / "src", data)
    before = blob_bytes(m.path)
    assert before >= SIZE
    w0 = daemon_wchar(m)
    r = subprocess.run(["cp", str(m.path / "src"), str(m.path / "copy")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # identical contents would share blobs anyway: what shows that cp did
    # not copy bytes is that the daemon did not write them
    written = daemon_wchar(m) - w0
    assert written < 4 * MIB, f"cp of 64 MiB inside the mount made the daemon write {written}"
    assert digest(m.path / "copy") == hashlib.sha256(data).hexdigest()
    # publish it now (cache_mode=kernel publishes a closed file later)
    fd = os.open(m.path / "copy", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    st = tc_stats(m.path)
    assert st["blob_bytes"] == before, \
        f"cp inside the mount stored the bytes again: blob_bytes {before} -> {st['blob_bytes']}"
    assert st["disk_bytes"] >= 2 * SIZE

    # the copy is its own file: a change to it leaves the source alone and
    # stores one new chunk
    with open(m.path / "copy", "r+b") as f:
        f.seek(5 * MIB + 123)
        f.write(b"changed")
        f.flush()
        os.fsync(f.fileno())
    grown = blob_bytes(m.path) - before
    assert 0 < grown <= MIB, f"a 7-byte change in the copy stored {grown} new bytes"
    assert read_uncached(m.path / "src") == data
    changed = bytearray(data)
    changed[5 * MIB + 123:5 * MIB + 130] = b"changed"
    tc_set(m.path, "flush", "ram")
    assert read_uncached(m.path / "copy") == bytes(changed)
    m.unmount()


def test_identical_chunks_are_stored_once(tc_mount):
    m = tc_mount()
    data = os.urandom(8 * MIB)
    write_big(m.path / "a", data)
    one = blob_bytes(m.path)
    write_big(m.path / "b", data)
    assert blob_bytes(m.path) == one, "a second file with the same content stored it again"
    # a version that differs in one chunk adds that chunk only
    other = bytearray(data)
    other[3 * MIB + 7] ^= 0xFF
    write_big(m.path / "c", bytes(other))
    assert blob_bytes(m.path) - one == MIB
    os.unlink(m.path / "a")
    os.unlink(m.path / "b")
    # the shared chunks stay while c holds them
    tc_set(m.path, "flush", "ram")
    assert read_uncached(m.path / "c") == bytes(other)
    os.unlink(m.path / "c")
    wait_until(lambda: blob_bytes(m.path) == 0, 10, "the chunks to be reclaimed")
    m.unmount()


def test_random_write_and_fsync_costs_the_chunk(tc_mount):
    """4 KiB written at a random offset of a 64 MiB file, then fsync: the
    daemon writes about one chunk, not the file; the result survives a
    remount."""
    m = tc_mount()
    model = bytearray(os.urandom(SIZE))
    write_big(m.path / "big", model)
    rnd = random.Random(7)
    n = 24
    w0 = daemon_wchar(m)
    fd = os.open(m.path / "big", os.O_RDWR)
    try:
        for _ in range(n):
            off = rnd.randrange(0, SIZE - 4096)
            block = os.urandom(4096)
            assert os.pwrite(fd, block, off) == 4096
            os.fsync(fd)
            model[off:off + 4096] = block
    finally:
        os.close(fd)
    per_fsync = (daemon_wchar(m) - w0) / n
    print(f"\ndaemon bytes written per 4 KiB write + fsync in a 64 MiB file: {per_fsync:.0f}")
    assert per_fsync < 4 * MIB, f"each 4 KiB change cost {per_fsync:.0f} bytes of writes"
    assert blob_bytes(m.path) <= SIZE + 2 * MIB, "replaced chunks were not reclaimed"
    m.unmount()
    m = tc_mount()
    assert digest(m.path / "big") == hashlib.sha256(model).hexdigest()
    m.unmount()


def test_corrupt_chunk_of_a_large_file_gives_eio(tc_mount, output_checker):
    output_checker.allow(r"(?i)corrupt|hash mismatch|\bEIO\b|I/O error")
    m = tc_mount()
    data = os.urandom(SIZE)
    write_big(m.path / "big", data)
    (m.path / "other").write_bytes(b"other\n")
    m.unmount()
    bad = 37
    blob = find_chunk_blob(m.store, data[bad * MIB:(bad + 1) * MIB])
    raw = bytearray(blob.read_bytes())
    raw[MIB // 2] ^= 0x01  # same length, one bit
    os.chmod(blob, 0o600)
    blob.write_bytes(bytes(raw))

    m = tc_mount()
    before = tc_stats(m.path)["corruptions"]
    fd = os.open(m.path / "big", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        # chunks before the damaged one are served
        assert os.pread(fd, MIB, 0) == data[:MIB]
        with pytest.raises(OSError) as e:
            for off in range(0, SIZE, MIB):
                got = os.pread(fd, MIB, off)
                assert got == data[off:off + MIB], f"wrong bytes served at {off}"
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert tc_stats(m.path)["corruptions"] == before + 1
    # the entry is dropped, as for a small corrupt blob; others are intact
    wait_until(lambda: not (m.path / "big").exists(), 10, "the corrupt entry to be dropped")
    assert (m.path / "other").read_bytes() == b"other\n"
    m.unmount()


def bdi_readahead_kb(mnt):
    """read_ahead_kb of the mount at mnt (its device in mountinfo)."""
    p = os.path.abspath(mnt)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].replace("\\040", " ") == p:
                dev = fields[2]
    return int(Path(f"/sys/class/bdi/{dev}/read_ahead_kb").read_text())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may raise readahead")
@pytest.mark.parametrize("where", ["mnt", "mount point with spaces"])
def test_mount_reads_ahead_four_chunks(tc_mount, tmp_path, where):
    # The kernel gives a FUSE mount 128 KiB; the daemon raises it to four
    # READs' worth, 4 MiB (the mount point is found in mountinfo, whose
    # escapes it undoes); a cold sequential read returns the right bytes.
    m = tc_mount(mnt=tmp_path / where)
    assert bdi_readahead_kb(m.path) == 4096
    data = random.Random(5).randbytes(8 * MIB)
    write_big(m.path / "big", data)
    assert read_uncached(m.path / "big") == data
