# SPDX-License-Identifier: MIT
"""The store on disk: `tiercachefs --check [--fix]` (tiercachefs(8), SYNOPSIS) and
corrupt blobs giving EIO (tiercachefs(8), NOTES).

Blobs are found the way an administrator would: a blob holds exactly the
content of its entry, so the test writes unique content and looks for the
one file in the store that holds it.
"""

import errno
import os
from pathlib import Path

import pytest

from tcutil import expect_errno, read_file, read_stats, wait_until, write_file


def find_blob(store, content):
    hits = []
    for dirpath, _, files in os.walk(store):
        for name in files:
            p = Path(dirpath) / name
            if p.stat().st_size == len(content) and p.read_bytes() == content:
                hits.append(p)
    assert len(hits) == 1, f"expected one blob holding the content, found {hits}"
    return hits[0]


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))


@pytest.fixture
def used_store(tc_mount):
    """A store with a few entries, unmounted; returns (store, {name: content})."""
    m = tc_mount()
    # a and b are larger than the contents kept inside the index (64 KiB):
    # they have blob files to corrupt or remove; c lives in the index
    files = {"a": os.urandom(90_000), "b": os.urandom(70_000), "c": b"c content\n"}
    (m.path / "sub").mkdir()
    for n, data in files.items():
        write_file(m.path / "sub" / n, data)
    m.unmount()
    return m.store, files


def test_check_sound_store(used_store, tc_run):
    store, _ = used_store
    r = tc_run(["--check", str(store)], timeout=120)
    assert r.returncode == 0, r
    assert (r.stdout + r.stderr).strip(), "--check prints a summary"


def test_check_finds_corrupt_blob_and_fix_repairs(used_store, tc_run, tc_mount):
    store, files = used_store
    corrupt(find_blob(store, files["b"]))
    r = tc_run(["--check", str(store)], timeout=120)
    assert r.returncode == 1, r
    r = tc_run(["--check", "--fix", str(store)], timeout=120)
    assert r.returncode == 0, r
    r = tc_run(["--check", str(store)], timeout=120)
    assert r.returncode == 0, r
    m = tc_mount()
    assert not (m.path / "sub" / "b").exists()  # dropped: it could not be trusted
    assert read_file(m.path / "sub" / "a") == files["a"]
    assert read_file(m.path / "sub" / "c") == files["c"]


def test_check_finds_missing_blob(used_store, tc_run):
    store, files = used_store
    os.unlink(find_blob(store, files["a"]))
    r = tc_run(["--check", str(store)], timeout=120)
    assert r.returncode == 1, r
    r = tc_run(["--check", "--fix", str(store)], timeout=120)
    assert r.returncode == 0, r
    assert tc_run(["--check", str(store)], timeout=120).returncode == 0


def test_corrupt_blob_read_gives_eio(used_store, tc_mount, output_checker):
    store, files = used_store
    corrupt(find_blob(store, files["a"]))
    output_checker.allow(r"(?i)corrupt|hash mismatch|checksum|\bEIO\b|I/O error")
    m = tc_mount()
    s0 = read_stats(m.path)
    expect_errno(errno.EIO, read_file, m.path / "sub" / "a")
    s1 = read_stats(m.path)
    assert s1["tiercache_corruptions_total"] == s0["tiercache_corruptions_total"] + 1
    # the entry is dropped (the kernel's cached name is invalidated
    # asynchronously, tiercachefs(8)); the others are fine
    wait_until(lambda: not (m.path / "sub" / "a").exists(), 2,
               "the corrupt entry's name to go")
    assert read_file(m.path / "sub" / "b") == files["b"]


@pytest.mark.parametrize("damage", ["truncated", "garbage header"])
def test_damaged_index_refuses_to_mount(used_store, tc_run, tmp_path, damage):
    """A truncated index, or one that is not a database, is refused at mount
    with one line that points to --check (tiercachefs(8), NOTES, issue 5)."""
    store, _ = used_store
    idx = store / "index.db"
    data = idx.read_bytes()
    if damage == "truncated":
        idx.write_bytes(data[: len(data) // 2])
    else:
        idx.write_bytes(b"not a database at all" + data[22:])
    mnt = tmp_path / "mnt2"
    mnt.mkdir()
    r = tc_run(["-f", str(store), str(mnt)], timeout=60)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--check" in lines[0], r.stderr
    assert not os.path.ismount(mnt)
