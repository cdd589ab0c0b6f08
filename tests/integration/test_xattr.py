# SPDX-License-Identifier: MIT
"""Extended attributes: the user.tiercache.* control attributes of
tiercachefs(8), EXTENDED ATTRIBUTES (names, validation and errnos; their
cache effects are tested where they land) and arbitrary user.* xattrs up to 64 KiB."""

import errno
import os
import re
import time

import pytest

from tcutil import (XATTR_PREFIX, expect_errno, pattern_bytes, run, tc_get,
                    tc_set, write_file, xxh128_hex)

P = XATTR_PREFIX

_DUR = re.compile(r"^(\d+)([smhd]?)$")


def duration_s(text):
    """Seconds of a duration as the daemon prints it back."""
    m = _DUR.match(text.strip())
    assert m, f"not a duration: {text!r}"
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


BAD_DURATIONS = ["", "abc", "-5", "5y", "1.5h", "h", "10 s", "s5", "1h30m",
                 "99999999999999999999999d"]


@pytest.fixture
def f(mnt):
    p = mnt / "file"
    write_file(p, b"some content\n")
    return p


@pytest.fixture
def d(mnt):
    p = mnt / "dir"
    p.mkdir()
    return p


def expect_invalid(path, name, values, unchanged):
    """Each malformed value gives EINVAL and leaves the attribute as it was."""
    for v in values:
        e = None
        try:
            tc_set(path, name, v)
        except OSError as exc:
            e = exc
        assert e is not None and e.errno == errno.EINVAL, \
            f"{name}={v!r}: expected EINVAL, got {e or 'success'}"
        assert unchanged(), f"{name} changed after rejected value {v!r}"


# -- ttl, ttl_mode, expires --------------------------------------------------------

@pytest.mark.parametrize("value,seconds", [("90", 90), ("90s", 90), ("15m", 900),
                                           ("2h", 7200), ("7d", 604800), ("1h", 3600)])
def test_ttl_on_file(f, value, seconds):
    tc_set(f, "ttl", value)
    assert duration_s(tc_get(f, "ttl")) == seconds


def test_ttl_none_removes_it(f):
    expect_errno(errno.ENODATA, os.getxattr, f, P + "ttl")
    tc_set(f, "ttl", "1h")
    tc_set(f, "ttl", "none")
    expect_errno(errno.ENODATA, os.getxattr, f, P + "ttl")
    tc_set(f, "ttl", "0")  # "never": accepted


def test_ttl_malformed(f, d):
    tc_set(f, "ttl", "1h")
    expect_invalid(f, "ttl", BAD_DURATIONS, lambda: duration_s(tc_get(f, "ttl")) == 3600)
    tc_set(d, "ttl", "10m")
    expect_invalid(d, "ttl", BAD_DURATIONS, lambda: duration_s(tc_get(d, "ttl")) == 600)


def test_ttl_on_dir(d):
    tc_set(d, "ttl", "3d")
    assert duration_s(tc_get(d, "ttl")) == 3 * 86400
    tc_set(d, "ttl", "none")
    expect_errno(errno.ENODATA, os.getxattr, d, P + "ttl")


def test_ttl_mode(f, d):
    for p in (f, d):
        for mode in ("sliding", "absolute"):
            tc_set(p, "ttl_mode", mode)
            assert tc_get(p, "ttl_mode") == mode
        expect_invalid(p, "ttl_mode", ["", "forever", "Sliding", "absolute,sliding", "1h"],
                       lambda: tc_get(p, "ttl_mode") == "absolute")


def test_expires_is_read_only(f):
    expect_errno(errno.ENODATA, os.getxattr, f, P + "expires")  # never expires
    expect_errno(errno.EPERM, os.setxattr, f, P + "expires", b"12345")
    tc_set(f, "ttl", "1h")
    expect_errno(errno.EPERM, os.setxattr, f, P + "expires", b"12345")


def test_expires_follows_ttl(f):
    now = time.time()
    tc_set(f, "ttl", "1h")
    exp = tc_get(f, "expires")
    assert re.fullmatch(r"\d+", exp), exp
    assert now + 3600 - 5 <= int(exp) <= time.time() + 3600 + 5
    tc_set(f, "ttl", "none")
    expect_errno(errno.ENODATA, os.getxattr, f, P + "expires")


# -- tags, schema -------------------------------------------------------------------

def test_tags(f):
    tc_set(f, "tags", "demo,text")
    assert tc_get(f, "tags").split(",") == ["demo", "text"]
    odd = "a.b:c-d_E9," + "T" * 64
    tc_set(f, "tags", odd)
    assert tc_get(f, "tags").split(",") == ["a.b:c-d_E9", "T" * 64]
    many = [f"t{i}" for i in range(32)]
    tc_set(f, "tags", ",".join(many))
    assert sorted(tc_get(f, "tags").split(",")) == sorted(many)


def test_tags_malformed(f):
    tc_set(f, "tags", "keep,these")
    bad = ["a b", "a,,b", ",a", "a,", "a/b", "x" * 65, "ok," + "x" * 65, "é",
           "tab\tbed", "semi;colon", ",".join(f"t{i}" for i in range(33))]
    expect_invalid(f, "tags", bad, lambda: tc_get(f, "tags").split(",") == ["keep", "these"])


def test_tags_via_setfattr(f):
    run(["setfattr", "-n", P + "tags", "-v", "alpha,beta", str(f)])
    out = run(["getfattr", "--only-values", "-n", P + "tags", str(f)]).stdout
    assert out.split(",") == ["alpha", "beta"]
    r = run(["setfattr", "-n", P + "tags", "-v", "bad tag", str(f)], check=False)
    assert r.returncode != 0 and "Invalid argument" in r.stderr


def test_schema_on_file(f):
    tc_set(f, "schema", "v1.2+build-3_x")
    assert tc_get(f, "schema") == "v1.2+build-3_x"
    tc_set(f, "schema", "S" * 64)
    assert tc_get(f, "schema") == "S" * 64
    tc_set(f, "schema", "v2")
    expect_invalid(f, "schema", ["", "a b", "a/b", "v:1", "x" * 65, "é", "v1,v2"],
                   lambda: tc_get(f, "schema") == "v2")


def test_schema_on_dir(d):
    tc_set(d, "schema", "v7")
    assert tc_get(d, "schema") == "v7"
    expect_invalid(d, "schema", ["", "a b", "x" * 65], lambda: tc_get(d, "schema") == "v7")


def test_schema_absent(f, d):
    expect_errno(errno.ENODATA, os.getxattr, f, P + "schema")
    expect_errno(errno.ENODATA, os.getxattr, d, P + "schema")
    expect_errno(errno.ENODATA, os.getxattr, f, P + "tags")


def test_new_file_takes_dir_schema(d):
    tc_set(d, "schema", "v3")
    write_file(d / "new", b"x")
    assert tc_get(d / "new", "schema") == "v3"
    assert (d / "new").read_bytes() == b"x"


# -- tier, hash ----------------------------------------------------------------------

def test_tier(f):
    assert tc_get(f, "tier") in ("ram", "disk")
    expect_errno(errno.EPERM, os.setxattr, f, P + "tier", b"ram")
    expect_errno(errno.EPERM, os.setxattr, f, P + "tier", b"disk")


def test_hash(mnt, f):
    h = tc_get(f, "hash")
    assert re.fullmatch(r"[0-9a-f]{32}", h), h
    assert h == xxh128_hex(b"some content\n")
    expect_errno(errno.EPERM, os.setxattr, f, P + "hash", h.encode())
    expect_errno(errno.EPERM, os.setxattr, f, P + "hash", b"0" * 32)
    data = pattern_bytes(3_000_000, seed=5)
    write_file(mnt / "big", data)
    write_file(mnt / "big2", data)
    assert tc_get(mnt / "big", "hash") == tc_get(mnt / "big2", "hash") == xxh128_hex(data)
    write_file(mnt / "empty", b"")
    assert tc_get(mnt / "empty", "hash") == xxh128_hex(b"")
    write_file(f, b"changed")
    assert tc_get(f, "hash") == xxh128_hex(b"changed")


# -- root controls -------------------------------------------------------------------

def test_root_controls_accept_valid_values(mnt):
    tc_set(mnt, "flush", "ram")
    tc_set(mnt, "expire", "1")
    tc_set(mnt, "reset_stats", "1")
    tc_set(mnt, "evict_tag", "nosuchtag")
    tc_set(mnt, "flush", "disk")
    tc_set(mnt, "flush", "all")


def test_root_controls_reject_malformed(mnt):
    for v in ("", "RAM", "everything", "ram,disk"):
        expect_errno(errno.EINVAL, os.setxattr, mnt, P + "flush", v.encode())
    for v in ("", "bad tag", "x" * 65, "a/b"):
        expect_errno(errno.EINVAL, os.setxattr, mnt, P + "evict_tag", v.encode())


def test_flush_ram_keeps_content(mnt, f):
    tc_set(mnt, "flush", "ram")
    assert f.read_bytes() == b"some content\n"


# -- listing -------------------------------------------------------------------------

def _listed_tc(path):
    return {n[len(P):] for n in os.listxattr(path) if n.startswith(P)}


def test_getfattr_lists_set_attrs(mnt, f):
    """getfattr -d lists what was set on the entry (ttl, tags, schema) and
    not the computed, read-only ones (tier, hash, expires), which stay
    readable by name: listing those would make rsync -aX and cp -a copy
    them out as plain xattrs and fail writing them back (the man page's
    deliberate departure from tiercachefs(8), EXTENDED ATTRIBUTES's wording)."""
    tc_set(f, "ttl", "1h")
    tc_set(f, "tags", "demo")
    tc_set(f, "schema", "v1")
    listed = _listed_tc(f)
    assert listed == {"ttl", "tags", "schema"}, listed
    for n in ("tier", "hash", "expires"):
        os.getxattr(f, P + n)
    r = run(["getfattr", "--absolute-names", "-d", str(f)])
    assert r.stderr == ""
    assert f'{P}ttl="1h"' in r.stdout
    assert f'{P}tags="demo"' in r.stdout
    assert f'{P}schema="v1"' in r.stdout
    assert f"{P}tier=" not in r.stdout and f"{P}hash=" not in r.stdout


@pytest.mark.parametrize("kind", ["fresh file", "root", "dir"])
def test_getfattr_d_is_clean(mnt, kind):
    """Listed names are all readable: getfattr -d prints no error, and the
    root's write-only controls are not listed."""
    p = {"root": mnt, "dir": mnt / "d", "fresh file": mnt / "f"}[kind]
    (mnt / "d").mkdir()
    write_file(mnt / "f", b"x")
    r = run(["getfattr", "-d", "-m", "-", str(p)])
    assert r.stderr == ""
    listed = _listed_tc(p)
    assert not listed & {"flush", "evict_tag", "expire", "reset_stats"}, listed
    for n in listed:
        os.getxattr(p, P + n)
    if kind == "fresh file":  # absent attributes are not listed
        assert "expires" not in listed and "ttl" not in listed


# -- other namespaces ------------------------------------------------------------------

@pytest.mark.parametrize("ns", ["trusted", "security", "system"])
def test_other_namespaces_not_supported(f, ns):
    name = f"{ns}.tiercachetest"
    expect_errno(errno.ENOTSUP, os.setxattr, f, name, b"v")
    expect_errno(errno.ENOTSUP, os.getxattr, f, name)
    r = run(["setfattr", "-n", name, "-v", "v", str(f)], check=False)
    assert r.returncode != 0 and "Operation not supported" in r.stderr
    r = run(["getfattr", "-n", name, str(f)], check=False)
    assert r.returncode != 0 and "Operation not supported" in r.stderr
    assert not any(n.startswith(ns + ".") for n in os.listxattr(f))


# -- arbitrary user.* xattrs --------------------------------------------------------------

def test_user_xattrs(mnt, f, d):
    big = pattern_bytes(65536, seed=9)
    os.setxattr(f, "user.big", big)
    assert os.getxattr(f, "user.big") == big
    os.setxattr(f, "user.empty", b"")
    assert os.getxattr(f, "user.empty") == b""
    os.setxattr(f, "user.bin", bytes(range(256)))
    assert os.getxattr(f, "user.bin") == bytes(range(256))
    for i in range(50):
        os.setxattr(f, f"user.n{i}", str(i).encode())
    names = set(os.listxattr(f))
    assert {"user.big", "user.empty", "user.bin"} | {f"user.n{i}" for i in range(50)} <= names
    # replace, create/replace flags, remove
    os.setxattr(f, "user.bin", b"short")
    assert os.getxattr(f, "user.bin") == b"short"
    expect_errno(errno.EEXIST, os.setxattr, f, "user.bin", b"x", os.XATTR_CREATE)
    expect_errno(errno.ENODATA, os.setxattr, f, "user.nope", b"x", os.XATTR_REPLACE)
    os.removexattr(f, "user.bin")
    expect_errno(errno.ENODATA, os.getxattr, f, "user.bin")
    expect_errno(errno.ENODATA, os.removexattr, f, "user.bin")
    assert "user.bin" not in os.listxattr(f)
    # too big is refused, the old value stays
    expect_errno(errno.E2BIG, os.setxattr, f, "user.big", big + b"!")
    assert os.getxattr(f, "user.big") == big
    # on directories too, and via the programs
    run(["setfattr", "-n", "user.color", "-v", "blue", str(d)])
    assert run(["getfattr", "--only-values", "-n", "user.color", str(d)]).stdout == "blue"
    out = run(["getfattr", "-d", str(d)]).stdout
    assert 'user.color="blue"' in out
    # content untouched by all this
    assert f.read_bytes() == b"some content\n"


def test_xattr_survives_content_rewrite_and_rename(mnt, f):
    os.setxattr(f, "user.keep", b"me")
    write_file(f, b"new content")
    assert os.getxattr(f, "user.keep") == b"me"
    os.rename(f, mnt / "renamed")
    assert os.getxattr(mnt / "renamed", "user.keep") == b"me"


def test_capabilities_asked_once_per_file(tc_mount, output_checker):
    """The kernel asks for security.capability before a write only once per
    file (the filesystem clears set-ID bits itself: FUSE_HANDLE_KILLPRIV_V2),
    not before every write(2): 50 writes to one file, one GETXATTR; and the
    store has no security.* attributes to give."""
    output_checker.allow(r"unique: \d+, (error|success)")
    m = tc_mount(args=("-d",))
    p = m.path / "many_writes"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x" * 4096)
        before = len(re.findall(r"opcode: GETXATTR", m.output()))
        for i in range(1, 50):
            os.pwrite(fd, b"y" * 4096, i * 4096)
    finally:
        os.close(fd)
    assert os.stat(p).st_size == 50 * 4096
    asked = len(re.findall(r"opcode: GETXATTR", m.output())) - before
    assert asked == 0, f"{asked} GETXATTRs for 49 more writes to one file"
    expect_errno(errno.EOPNOTSUPP, os.setxattr, p, "security.tiercache_test", b"1")
