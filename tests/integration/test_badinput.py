# SPDX-License-Identifier: MIT
"""Bad input everywhere a user can type something, and the security
properties a cache on a shared machine needs (tiercachefs(8)).

Each bad input must give the errno the man page gives, or exit non-zero with one clear
line naming the problem, and change nothing: content, attributes and the
store are compared before and after. Tests loop over their inputs and
report every one that misbehaves, not only the first.

  * mount options (via argv, bytes included): overflow, negative, empty,
    huge, unknown suffix, non-UTF-8, junk; durations likewise; unknown options
  * config files: each kind of bad line, named as FILE:LINE
  * user.tiercache.* values: empty, embedded NUL, non-UTF-8, trailing
    newline, too many / too long tags, bad characters, read-only attributes
  * user.* xattrs: a value of 64 KiB + 1, names at the limit, more names
    than a listing can hold
  * names of 255 and 256 bytes (odd bytes too), symlink targets at PATH_MAX,
    a path ~4000 bytes deep and deeper than PATH_MAX through directory fds
  * the reserved /.stats
  * security: store mode 0700 whatever the umask, default_permissions,
    namespaces outside user., key names that try to reach outside the store
"""

import errno
import os
import shutil
import stat
from pathlib import Path

import pytest

from tcutil import kernel_mode
from tcutil import (NOBODY, XATTR_PREFIX, as_user, daemon_prefix, expect_errno, fs_type,
                    make_traversable, pattern_bytes, read_file, read_stats, renameat2, run,
                    run_refused, store_layout_problems, super_options, tc_bin, tc_get,
                    tc_set, write_file)

P = XATTR_PREFIX


def errname(e):
    return errno.errorcode.get(e, str(e))


# -- mount options -------------------------------------------------------------------------

SIZE_BAD = ["", "-1", "-0", "+1", "18446744073709551616", "99999999999999999999999",
            "16777216T", "18014398509481984K", "1Q", "1KiB", "1.5G", " 1G", "1G ", "0x10",
            "1e6", "M", "1MM", "1 M", b"1\xffM", b"\xff", "\uff11M"]
COUNT_BAD = ["", "-1", "18446744073709551616", "99999999999999999999999", "1.5", "lots",
             "0x10", " 1", "1 ", b"\xff", b"1\xff", "\uff11"]
DURATION_BAD = ["", "-5", "-0", "+5", "5y", "1.5h", "h", "10 s", "1h30m", "s5",
                "18446744073709551616s", "99999999999999999999999d", b"1\xffh", b"\xff",
                "\uff11h"]
BAD_OPTIONS = {
    "ram_size": SIZE_BAD, "max_ram_item": SIZE_BAD, "disk_size": SIZE_BAD,
    "ram_items": COUNT_BAD, "disk_items": COUNT_BAD,
    "ram_ttl": DURATION_BAD, "ttl": DURATION_BAD,
    "ttl_mode": ["", "forever", "absolute ", "Sliding", b"absolute\xff", b"\xff"],
    "sync": ["", "sometimes", "fsync ", "FSYNC", b"fsync\xff", b"\xff"],
    "schema": ["", "a b", "x" * 65, "a/b", "v:1", "\u00e9", b"v\xff"],
    "store": [""],
    "config": ["", "/nonexistent/tc.ini", b"/nonexistent/\xff.ini", "DIR"],
}


def as_bytes(v):
    return v if isinstance(v, bytes) else v.encode()


def refused_cleanly(tmp_path, opt, must_name, env=None):
    """Run the daemon with -o opt; returns a problem description or None."""
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    store = tmp_path / "store-never-created"
    cmd = [*[as_bytes(a) for a in daemon_prefix()], as_bytes(tc_bin()), b"-f", b"-o", opt,
           as_bytes(str(store)), as_bytes(str(mnt))]
    rc, out = run_refused(cmd, mnt, env=env)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if rc == "mounted" or rc == 0:
        return f"-o {opt!r}: accepted ({rc})"
    if len(lines) != 1:
        return f"-o {opt!r}: rc {rc}, {len(lines)} lines instead of one: {out!r}"
    if must_name not in lines[0]:
        return f"-o {opt!r}: rc {rc}, the line does not name {must_name!r}: {lines[0]!r}"
    if store.exists():
        return f"-o {opt!r}: refused but the store {store} was created"
    return None


@pytest.mark.parametrize("name", sorted(BAD_OPTIONS))
def test_bad_mount_option_values(tmp_path, name):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"))
    problems = []
    for v in BAD_OPTIONS[name]:
        if v == "DIR":
            v = str(tmp_path)  # a directory, not a file
        problems.append(refused_cleanly(tmp_path, as_bytes(name) + b"=" + as_bytes(v), name,
                                        env))
    problems = [p for p in problems if p]
    assert not problems, f"{len(problems)} of {len(BAD_OPTIONS[name])} bad values of " \
        f"{name} mishandled:\n" + "\n".join(problems)
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()


def test_option_value_with_newline_gives_one_line(tmp_path):
    """The message quotes the value; a newline in it must not split the line."""
    problems = [refused_cleanly(tmp_path, opt, name) for opt, name in
                [(b"ram_size=1M\n", "ram_size"), (b"ttl=1h\n", "ttl"),
                 (b"sync=fsync\nx", "sync"), (b"schema=v1\n", "schema")]]
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)


def test_unknown_and_malformed_options(tmp_path):
    cases = [(b"bogus=1", "bogus"), (b"bogus", "bogus"), (b"ram_sizee=1M", "ram_sizee"),
             (b"RAM_SIZE=1M", "RAM_SIZE"), (b"ram_size", "ram_size"),
             (b"ram_size=1M=2", "ram_size"), (b"\xff=1", "=1")]
    problems = [refused_cleanly(tmp_path, opt, name) for opt, name in cases]
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)


def test_boundary_option_values_accepted(tc_mount):
    """The largest values that fit are limits, not errors."""
    m = tc_mount(opts=["ram_size=16777215T", "disk_size=18446744073709551615",
                       "ram_items=18446744073709551615", "disk_items=18446744073709551615",
                       "max_ram_item=16777215T", "ttl=106751d", "ram_ttl=106751d"])
    write_file(m.path / "f", b"boundary")
    assert read_file(m.path / "f") == b"boundary"
    s = read_stats(m.path)
    assert s["tiercache_ram_limit_bytes"] == float(16777215 << 40)
    assert s["tiercache_disk_limit_bytes"] == float(18446744073709551615)
    os.statvfs(m.path)


def long_dir(base, length):
    """A directory path of exactly length bytes below base (components <= 200)."""
    parts, left = [], length - len(str(base))
    while left > 0:
        c = min(200, left - 1) or 1
        parts.append("x" * c)
        left -= c + 1
    p = os.path.join(str(base), *parts)
    assert len(p) == length, (len(p), length)
    return Path(p)


def test_long_store_path(tc_mount, tmp_path):
    """Store paths that SQLite's unix VFS can open (under 512 bytes with the
    index's name) work; longer ones are refused with one line saying so,
    not with a false "corrupt index"."""
    store = long_dir(tmp_path, 460) / "store"
    assert len(str(store)) < 499
    m = tc_mount(store=store)
    write_file(m.path / "f", b"long store path")
    m.unmount()
    m = tc_mount(store=store)
    assert read_file(m.path / "f") == b"long store path"
    m.unmount()
    for length in (1000, 3000):
        store = long_dir(tmp_path, length) / "store"
        mnt = tmp_path / f"mnt{length}"
        mnt.mkdir()
        r = run([tc_bin(), "-f", str(store), str(mnt)], check=False, timeout=30)
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "store path too long" in lines[0], r.stderr
        assert not os.path.ismount(mnt)


def test_config_file_long_value(tc_mount, tmp_path):
    """A store path of 300 bytes (which works on the command line) also
    works in the config file."""
    store = long_dir(tmp_path, 300) / "store"
    m = tc_mount(store=store)
    write_file(m.path / "f", b"x")
    m.unmount()
    conf = tmp_path / "tc.ini"
    conf.write_text(f"[mount]\nstore = {store}\n")
    m = tc_mount(opts=f"config={conf}", store=False)
    assert read_file(m.path / "f") == b"x"


# -- config files ------------------------------------------------------------------------

HEAD = b"# tiercachefs test config\n[mount]\nram_size = 1M\n"   # lines 1-3
CONFIG_BAD = [  # (content after HEAD, the line number the message must name)
    (b"ram_size\n", 4),
    (b"= 1M\n", 4),
    (b"bogus = 1\n", 4),
    (b"ram_size = lots\n", 4),
    (b"ram_size =\n", 4),
    (b"ttl =   \n", 4),
    (b"ram_size = 1\xffM\n", 4),
    (b"r\xffm_size = 1M\n", 4),
    (b"ram_size = 18446744073709551616\n", 4),
    (b"ttl = 99999999999999999999999d\n", 4),
    (b"ttl_mode = forever\n", 4),
    (b"sync = sometimes\n", 4),
    (b"ram_items = -1\n", 4),
    (b"[mount\n", 4),
    (b"[tag ok]\nram_size = 1M\n", 5),
    (b"[tag ok]\nttl = 5y\n", 5),
    (b"[tag ok]\nram_ttl =\n", 5),
    (b"ram_size = " + b"1" * 100_000 + b"\n", 4),
    (b"# " + b"c" * 100_000 + b"\nbogus = 1\n", (4, 5)),  # too long, or the bad line after it
    (b"\n\n\n\nbogus = 1\n", 8),
]
# A bad section header is the line to name, whether or not keys follow it.
CONFIG_BAD_SECTIONS = [
    (b"[bogus]\nx = 1\n", 4),
    (b"[bogus]\n", 4),
    (b"[tag a b]\nttl = 1h\n", 4),
    (b"[tag a b]\n", 4),
    (b"[tag " + b"x" * 65 + b"]\nttl = 1h\n", 4),
    (b"[tag \xff]\nttl = 1h\n", 4),
    (b"[tag]\nttl = 1h\n", 4),
]
# A NUL byte must not silently cut a line short.
CONFIG_NUL = [
    (b"ram_size = 1M\x00junk\n", 4),
    (b"[tag ok]\nttl = 1h\x00junk\n", 5),
    (b"bog\x00us = 1\n", 4),
]


def config_problems(tmp_path, cases):
    problems = []
    for i, (tail, line) in enumerate(cases):
        conf = tmp_path / f"c{i}.ini"
        conf.write_bytes(HEAD + tail)
        wheres = [f"{conf}:{n}" for n in (line if isinstance(line, tuple) else (line,))]
        mnt = tmp_path / "mnt"
        mnt.mkdir(exist_ok=True)
        store = tmp_path / f"store-never-created-{i}"
        rc, out = run_refused([*daemon_prefix(), tc_bin(), "-f", "-o", f"config={conf}",
                               str(store), str(mnt)], mnt)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        show = tail[:60] + (b"..." if len(tail) > 60 else b"")
        if rc == "mounted" or rc == 0:
            problems.append(f"{show!r}: accepted")
        elif len(lines) != 1:
            problems.append(f"{show!r}: {len(lines)} lines: {out[:300]!r}")
        elif not any(w + ":" in lines[0] or lines[0].endswith(w) for w in wheres):
            problems.append(f"{show!r}: does not name {' or '.join(wheres)}: "
                            f"{lines[0][:300]!r}")
        elif store.exists():
            problems.append(f"{show!r}: refused but the store was created")
    return problems


@pytest.mark.parametrize("cases", ["lines", "sections", "nul"])
def test_config_file_bad(tmp_path, cases):
    cases = {"lines": CONFIG_BAD, "sections": CONFIG_BAD_SECTIONS, "nul": CONFIG_NUL}[cases]
    problems = config_problems(tmp_path, cases)
    assert not problems, f"{len(problems)} of {len(cases)} bad config files mishandled " \
        f"(after the 3 lines {HEAD!r}):\n" + "\n".join(problems)


# -- xattr values ----------------------------------------------------------------------------

@pytest.fixture
def entry(mnt):
    """A file with content, user.* xattrs and every settable cache attribute."""
    f = mnt / "entry"
    write_file(f, b"entry content\n")
    os.setxattr(f, "user.note", b"note")
    tc_set(f, "ttl", "2h")
    tc_set(f, "ttl_mode", "absolute")
    tc_set(f, "tags", "a,b")
    tc_set(f, "schema", "v1")
    return f


def state(path):
    """Everything a rejected xattr write must leave as it was."""
    st = os.stat(path)
    out = {"mtime": st.st_mtime_ns, "mode": st.st_mode, "size": st.st_size}
    if stat.S_ISREG(st.st_mode) and path.name != ".stats":
        out["content"] = read_file(path)
    for n in sorted(os.listxattr(path)):
        out[n] = os.getxattr(path, n)
    for n in ("ttl", "ttl_mode", "tags", "schema", "expires", "hash"):
        try:
            out[P + n] = os.getxattr(path, P + n)
        except OSError as e:
            out[P + n] = errname(e.errno)
    return out


def expect_rejected(path, cases):
    """cases: (xattr name, value, expected errno names or None for removal)."""
    problems = []
    before = state(path)
    for name, value, want in cases:
        try:
            if value is None:
                os.removexattr(path, name)
            else:
                os.setxattr(path, name, value)
            got = "success"
        except OSError as e:
            got = errname(e.errno)
        shown = "remove" if value is None else (value if len(value) < 80
                                                else value[:40] + b"...%d bytes" % len(value))
        if got not in want:
            problems.append(f"{name} {shown!r}: {got}, expected {'/'.join(want)}")
        after = state(path)
        if after != before:
            diff = {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                    if before.get(k) != after.get(k)}
            problems.append(f"{name} {shown!r}: changed {diff}")
            before = after
    return problems


# (one trailing NUL is accepted on purpose: some tools include the terminator)
INVALID_DURATIONS = [b"", b"1h\x00x", b"\x001h", b"1h\x00\x00", b"1\xffh", b"\xff", b"5y", b"-1",
                     b"18446744073709551616s", b"1h ", b" 1h", b"1h\n", "\uff11h".encode()]
INVALID_TAGS = [b",".join(b"t%d" % i for i in range(33)), b"x" * 65, b"ok," + b"y" * 65,
                b"a b", b"a/b", b"a\x00b", b"a,b\x00\x00", b"\x00a", b"a,\xff", "\u00e9".encode(),
                b"a,,b", b",a", b"a,", b"a\n", b"a;b", b"*", b"a b," * 40]
INVALID_SCHEMAS = [b"", b"x" * 65, b"v 1", b"v\x00\x00", b"v\x00w", b"\x00v", b"\xff", b"v1\n",
                   b"a/b", "\u00e9".encode(), b"v1,v2"]
INVALID_MODES = [b"", b"sliding\x00\x00", b"slid\x00ing", b"\x00", b"\xff", b"absolute\n",
                 b"absolute ", b"Absolute", b"sliding,absolute"]


def test_malformed_cache_xattrs_on_file(entry):
    EINVAL = ("EINVAL",)
    cases = [(P + "ttl", v, EINVAL) for v in INVALID_DURATIONS]
    cases += [(P + "ttl_mode", v, EINVAL) for v in INVALID_MODES]
    cases += [(P + "tags", v, EINVAL) for v in INVALID_TAGS]
    cases += [(P + "schema", v, EINVAL) for v in INVALID_SCHEMAS]
    # read-only attributes: writing (or removing) them is EPERM
    EPERM = ("EPERM",)
    cases += [(P + "expires", v, EPERM) for v in (b"", b"123", b"99999999999", b"\xff")]
    cases += [(P + "tier", v, EPERM) for v in (b"ram", b"disk", b"", b"\x00")]
    cases += [(P + "hash", v, EPERM) for v in (b"0" * 32, b"", b"\xff" * 32)]
    cases += [(P + n, None, EPERM) for n in ("expires", "tier", "hash")]
    # other namespaces
    ENOTSUP = ("ENOTSUP", "EOPNOTSUPP")
    cases += [(ns + ".x", b"v", ENOTSUP) for ns in ("trusted", "security", "system")]
    # user.* values beyond 64 KiB: the kernel or the daemon refuses
    cases += [("user.note", pattern_bytes(65537, seed=3), ("E2BIG", "ENOSPC"))]
    cases += [("user.big", pattern_bytes(1 << 20, seed=3), ("E2BIG", "ENOSPC"))]
    problems = expect_rejected(entry, cases)
    assert not problems, f"{len(problems)} of {len(cases)} bad xattr writes mishandled:\n" + \
        "\n".join(problems)


def test_empty_tags_value(entry):
    """The man page: tags are each 1-64 characters; an empty value either is EINVAL
    (changing nothing) or removes the tags, like ttl=none removes the TTL."""
    try:
        os.setxattr(entry, P + "tags", b"")
    except OSError as e:
        assert e.errno == errno.EINVAL, e
        assert tc_get(entry, "tags") == "a,b"
        return
    expect_errno(errno.ENODATA, os.getxattr, entry, P + "tags")


def test_malformed_cache_xattrs_on_dir(mnt):
    d = mnt / "dir"
    d.mkdir()
    tc_set(d, "ttl", "10m")
    tc_set(d, "schema", "v2")
    tc_set(d, "ttl_mode", "sliding")
    EINVAL = ("EINVAL",)
    cases = [(P + "ttl", v, EINVAL) for v in INVALID_DURATIONS]
    cases += [(P + "ttl_mode", v, EINVAL) for v in INVALID_MODES]
    cases += [(P + "schema", v, EINVAL) for v in INVALID_SCHEMAS]
    problems = expect_rejected(d, cases)
    assert not problems, "\n".join(problems)


def test_malformed_root_controls(mnt):
    write_file(mnt / "kept", b"kept")
    tc_set(mnt / "kept", "tags", "t1")
    EINVAL = ("EINVAL",)
    cases = [(P + "flush", v, EINVAL) for v in (b"", b"ram\x00\x00", b"ra\x00m", b"\x00ram",
                                                  b"ram\n", b"\xff", b"RAM", b"ram,disk", b"all ")]
    cases += [(P + "evict_tag", v, EINVAL) for v in (b"", b"t1\x00\x00", b"t\x001", b"\xff",
                                                      b"x" * 65, b"a b", b"t1,t2", b"t1\n")]
    problems = []
    for name, value, want in cases:
        try:
            os.setxattr(mnt, name, value)
            got = "success"
        except OSError as e:
            got = errname(e.errno)
        if got not in want:
            problems.append(f"{name} {value[:40]!r}: {got}, expected EINVAL")
        if not (mnt / "kept").exists() or read_file(mnt / "kept") != b"kept":
            problems.append(f"{name} {value[:40]!r}: the entry is gone")
            write_file(mnt / "kept", b"kept")
            tc_set(mnt / "kept", "tags", "t1")
    assert not problems, "\n".join(problems)


def test_user_xattr_names_and_count(mnt):
    """Names up to 255 bytes work; a file never gets more xattrs than a
    listing can return (64 KiB of names), or cp -a / rsync -aX break on it:
    setxattr must refuse first (ENOSPC or E2BIG, as ext4 and xfs do)."""
    f = mnt / "many"
    write_file(f, b"many xattrs")
    longest = "user." + "n" * 250
    os.setxattr(f, longest, b"v")
    assert os.getxattr(f, longest) == b"v" and longest in os.listxattr(f)
    expect_errno(errno.ERANGE, os.setxattr, f, longest + "x", b"v")  # the kernel's limit
    refused = None
    for i in range(300):  # 300 x 256 bytes of names > 64 KiB
        try:
            os.setxattr(f, f"user.{i:03d}" + "m" * 246, b"v")
        except OSError as e:
            refused = (i, errname(e.errno))
            break
    try:
        names = os.listxattr(f)
        listed = None
    except OSError as e:
        listed = errname(e.errno)
    assert listed is None, (
        f"after {refused[0] if refused else 300} long user.* names were accepted, "
        f"listxattr fails with {listed}: getfattr -d, cp -a and rsync -aX cannot copy the file")
    if refused:
        assert refused[1] in ("ENOSPC", "E2BIG"), refused
    assert longest in names
    r = run(["getfattr", "-d", "--absolute-names", str(f)], check=False)
    assert r.returncode == 0, r.stderr
    assert read_file(f) == b"many xattrs"


# -- names and paths ----------------------------------------------------------------------------

def test_names_at_the_limit(mnt):
    d = mnt / "names"
    d.mkdir()
    db = os.fsencode(d)
    names = [b"a" * 255, b"\xff" * 255, bytes(range(1, 47)) + bytes(range(48, 256)) + b"x",
             "\u00e9".encode() * 127 + b"z", b"\n" * 255, b"." * 255]
    assert all(len(n) == 255 for n in names)
    for i, n in enumerate(names):
        write_file(db + b"/" + n, b"content %d" % i)
    got = sorted(os.listdir(db))
    assert got == sorted(names), "names listed differ"
    for i, n in enumerate(names):
        assert read_file(db + b"/" + n) == b"content %d" % i
    long = [n + b"x" for n in names[:2]] + [b"y" * 4096]
    for n in long:
        p = db + b"/" + n
        for fn, args in [(os.open, (p, os.O_CREAT | os.O_WRONLY, 0o644)), (os.mkdir, (p,)),
                         (os.symlink, (b"t", p)), (os.mkfifo, (p,)),
                         (os.rename, (db + b"/" + names[0], p)),
                         (os.link, (db + b"/" + names[0], p)),
                         (os.setxattr, (p, "user.x", b"v"))]:
            expect_errno(errno.ENAMETOOLONG, fn, *args)
    assert sorted(os.listdir(db)) == sorted(names), "a refused name changed the directory"
    for i, n in enumerate(names):
        os.rename(db + b"/" + n, db + b"/" + names[(i + 1) % len(names)][:200] + b"%d" % i)
    for n in os.listdir(db):
        os.unlink(db + b"/" + n)
    assert os.listdir(db) == []


def test_symlink_targets_at_path_max(tc_mount):
    m = tc_mount()
    target = (("t" * 254 + "/") * 17)[:4095]
    assert len(target) == 4095
    os.symlink(target, m.path / "max")
    expect_errno(errno.ENAMETOOLONG, os.symlink, target + "x", m.path / "over")
    assert not os.path.lexists(m.path / "over")
    m.unmount()
    m = tc_mount()
    assert os.readlink(m.path / "max") == target


def test_deep_paths(tc_mount):
    """A path ~4000 bytes long through nested directories, then deeper than
    PATH_MAX through directory descriptors; create, write, read, remount,
    remove."""
    m = tc_mount()
    base = str(m.path)
    levels = 16
    comp = "d" * ((4000 - len(base) - 150) // levels - 1)
    deep = os.path.join(base, *[comp] * levels)
    os.makedirs(deep)
    leaf = os.path.join(deep, "f" * (4000 - len(deep) - 1))
    assert len(leaf) == 4000 and len(comp) <= 255 and len(os.path.basename(leaf)) <= 255
    data = pattern_bytes(100_000, seed="deep")
    write_file(leaf, data)
    assert read_file(leaf) == data
    expect_errno(errno.ENAMETOOLONG, os.open, os.path.join(deep, "e" * 200, "f" * 200),
                 os.O_CREAT | os.O_WRONLY, 0o644)
    # beyond PATH_MAX, relative to a directory descriptor
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    fds = [fd]
    try:
        for _ in range(10):
            os.mkdir(comp, dir_fd=fd)
            fd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            fds.append(fd)
        wfd = os.open("bottom", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
        os.write(wfd, b"below PATH_MAX")
        os.close(wfd)
        rfd = os.open("bottom", os.O_RDONLY, dir_fd=fd)
        assert os.read(rfd, 100) == b"below PATH_MAX"
        os.close(rfd)
    finally:
        for x in fds:
            os.close(x)
    m.unmount()
    m = tc_mount()
    assert read_file(leaf) == data
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    fds = [fd]
    try:
        for _ in range(10):
            fd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            fds.append(fd)
        rfd = os.open("bottom", os.O_RDONLY, dir_fd=fd)
        assert os.read(rfd, 100) == b"below PATH_MAX"
        os.close(rfd)
    finally:
        for x in fds:
            os.close(x)
    shutil.rmtree(os.path.join(base, comp))  # fd-based: works below PATH_MAX
    assert set(os.listdir(m.path)) <= {".stats", ".tags"}
    st = read_stats(m.path)
    assert st["tiercache_disk_items"] == 0, st


# -- the reserved .stats -----------------------------------------------------------------------

def test_stats_reserved_against_every_kind_of_write(mnt):
    s = mnt / ".stats"
    write_file(mnt / "x", b"x")
    os.mkdir(mnt / "xd")
    before = {k: v for k, v in state(s).items() if k != "mtime"}
    cases = [
        ("symlink", (os.symlink, "x", s), ("EEXIST", "EPERM")),
        ("mkfifo", (os.mkfifo, s), ("EEXIST", "EPERM")),
        ("mkdir", (os.mkdir, s), ("EEXIST", "EPERM")),
        ("link to it", (os.link, mnt / "x", s), ("EEXIST", "EPERM")),
        ("link from it", (os.link, s, mnt / "y"), ("EPERM",)),
        ("rename over it", (os.rename, mnt / "x", s), ("EPERM",)),
        ("rename dir over it", (os.rename, mnt / "xd", s), ("EPERM", "ENOTDIR")),
        ("rename away", (os.rename, s, mnt / "moved"), ("EPERM",)),
        ("exchange", (renameat2, mnt / "x", s, 2), ("EPERM",)),
        ("noreplace", (renameat2, mnt / "x", s, 1), ("EEXIST", "EPERM")),
        ("unlink", (os.unlink, s), ("EPERM",)),
        ("rmdir", (os.rmdir, s), ("ENOTDIR", "EPERM")),
        ("truncate", (os.truncate, s, 0), ("EPERM",)),
        # cache_mode=kernel: no open reaches the daemon (see test_namespace)
        ("open O_WRONLY", (os.open, s, os.O_WRONLY),
         ("EPERM", "success") if kernel_mode() else ("EPERM",)),
        ("open O_CREAT|O_EXCL", (os.open, s, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644),
         ("EEXIST", "EPERM")),
        ("chmod", (os.chmod, s, 0o666), ("EPERM",)),
        ("chown", (os.chown, s, 1234, 1234), ("EPERM",)),
        ("utime", (os.utime, s, (1, 1)), ("EPERM",)),
        ("setxattr user.x", (os.setxattr, s, "user.x", b"1"), ("EPERM",)),
        ("setxattr ttl", (os.setxattr, s, P + "ttl", b"1h"), ("EPERM",)),
        ("setxattr tags", (os.setxattr, s, P + "tags", b"a"), ("EPERM",)),
    ]
    problems = []
    for what, (fn, *args), want in cases:
        try:
            r = fn(*args)
            if isinstance(r, int):
                os.close(r)
            got = "success"
        except OSError as e:
            got = errname(e.errno)
        if got not in want:
            problems.append(f"{what}: {got}, expected {'/'.join(want)}")
    after = {k: v for k, v in state(s).items() if k != "mtime"}
    after.pop("content", None), before.pop("content", None)
    assert s.is_file() and b"tiercache_gets_total" in read_file(s)
    assert read_file(mnt / "x") == b"x" and (mnt / "xd").is_dir()
    assert not os.path.lexists(mnt / "moved") and not os.path.lexists(mnt / "y")
    assert not problems, f"{len(problems)} of {len(cases)}:\n" + "\n".join(problems)
    assert {k: v for k, v in after.items() if k not in ("size",)} == \
        {k: v for k, v in before.items() if k not in ("size",)}


# -- security ------------------------------------------------------------------------------------

def test_store_private_whatever_the_umask(tc_mount, tmp_path):
    old = os.umask(0)
    try:
        m = tc_mount(store=tmp_path / "a" / "store")
    finally:
        os.umask(old)
    write_file(m.path / "f", b"secret")
    m.unmount()
    store = m.store
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    loose = []
    for dirpath, dirnames, filenames in os.walk(store):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            mode = stat.S_IMODE(os.lstat(p).st_mode)
            if mode & 0o002:
                loose.append(f"{os.path.relpath(p, store)} {oct(mode)}")
    assert not loose, f"world-writable in the store: {loose[:10]}"


def test_default_permissions_with_allow_other(tc_mount, tmp_path):
    make_traversable(tmp_path)
    m = tc_mount(opts="allow_other")
    os.chmod(m.path, 0o755)
    assert "default_permissions" in super_options(m.path)
    assert fs_type(m.path).startswith("fuse")
    write_file(m.path / "private", b"root only")
    os.chmod(m.path / "private", 0o600)
    write_file(m.path / "public", b"everyone reads")
    os.chmod(m.path / "public", 0o644)
    r = run(as_user(NOBODY, ["cat", str(m.path / "private")]), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = run(as_user(NOBODY, ["cat", str(m.path / "public")]))
    assert r.stdout == "everyone reads"
    r = run(as_user(NOBODY, ["sh", "-c", f"echo x >> '{m.path / 'public'}'"]), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = run(as_user(NOBODY, ["setfattr", "-n", P + "ttl", "-v", "1s", str(m.path / "public")]),
            check=False)
    assert r.returncode != 0, "another user changed the TTL of root's 0644 file"
    r = run(as_user(NOBODY, ["touch", str(m.path / "new")]), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    assert read_file(m.path / "public") == b"everyone reads"
    assert not os.path.lexists(m.path / "new")
    expect_errno(errno.ENODATA, os.getxattr, m.path / "public", P + "ttl")


ODD_NAMES = ["...", "..a", "a..", ".. ", " ..", "index.db", "index.db-wal", "index.db-shm",
             "lock", "blobs", "tmp", "-", "--check", "\\", "..\\..\\x", "%2e%2e%2f", "~",
             "$HOME", "$(id)", "`id`", "*", "?", "\n", "\t", "\x01\x7f", "CON", "nul",
             "a" * 255]
ODD_BYTES = [b"\xff\xfe", b"..\xff", b"\xc0\xae\xc0\xae", b"\xe2\x80\xae"]


def test_key_names_stay_inside_the_store(tc_mount, tmp_path):
    m = tc_mount()
    before_outside = sorted(os.listdir(tmp_path))
    root = os.fsencode(m.path)
    (m.path / "sub").mkdir()
    names = [os.fsencode(n) for n in ODD_NAMES] + ODD_BYTES
    for i, n in enumerate(names):
        for d in (root, root + b"/sub"):
            write_file(d + b"/" + n, b"odd %d" % i)
            os.setxattr(d + b"/" + n, "user.n", n)
        os.link(root + b"/" + n, root + b"/sub/" + n[:240] + b".link")
        os.symlink(b"../" * 40 + b"etc/passwd", root + b"/sub/" + n[:240] + b".sym")
    for n in (b"..", b"."):
        expect_errno(errno.EEXIST, os.mkdir, root + b"/" + n)
    os.symlink("/etc/shadow", m.path / "abs")
    os.rename(m.path / "sub", m.path / "..sub")
    for i, n in enumerate(names):
        assert read_file(root + b"/..sub/" + n) == b"odd %d" % i
        assert os.getxattr(root + b"/..sub/" + n, "user.n") == n
    m.unmount()
    assert sorted(os.listdir(tmp_path)) == before_outside, "something appeared beside the store"
    bad = store_layout_problems(m.store)
    links = [os.path.join(dp, n) for dp, dn, fn in os.walk(m.store) for n in dn + fn
             if os.path.islink(os.path.join(dp, n))]
    assert not bad and not links, f"store holds unexpected names: {bad[:10]} symlinks {links}"
    r = run([tc_bin(), "--check", str(m.store)], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    m = tc_mount()
    assert os.readlink(m.path / "abs") == "/etc/shadow"
    assert read_file(root + b"/..sub/" + ODD_BYTES[0]) == b"odd %d" % len(ODD_NAMES)
