# SPDX-License-Identifier: MIT
"""What README.md and tiercachefs.8 say, checked against the daemon.

One test per statement, so a test fails when the code and the documentation
part ways:

  --check               leftover temporary files are listed, not counted:
                        exit 0
  ttl attribute         0 and none remove the entry's own ttl (they do not
                        mean "never"); setting ttl, ttl_mode or tags restarts
                        the lifetime from that moment
  .stats                disk_evictions counts evict_tag and flush removals;
                        ram_items/ram_bytes count distinct contents; the
                        HELP texts say so; flush keeps directories
  writers               uncoordinated writers of one file mix; a temporary
                        name renamed over the key is atomic for readers
  rename                RENAME_NOREPLACE, RENAME_EXCHANGE; RENAME_WHITEOUT is
                        EINVAL
  df -i                 counts items (regular files, hard links once)
  command line          -h/--help, -V/--version, -f/--foreground,
                        -d/--debug/-o debug, sizes such as 16MB and the
                        values refused
  systemd               scripts/tiercachefs@.service and the man page's
                        mount unit pass systemd-analyze verify; the service's
                        ExecStartPre/ExecStart/ExecStop lines mount and
                        unmount
  README                stands on its own

Eviction ties broken by name are the engine's (tests/unit/test_policy.c,
test_disk_lru_ties_by_name): through the mount no two entries get the same
access time.
"""

import errno
import math
import os
import re
import shlex
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Mount
from tcutil import (REPO, RENAME_EXCHANGE, RENAME_NOREPLACE, SLOW, XATTR_PREFIX,
                    daemon_prefix, expect_errno, fork_worker, is_mounted, read_file, reap,
                    renameat2, run, run_refused, tc_bin, tc_get, tc_parse_value, tc_set,
                    tc_stats, tc_value, wait_clock, write_file)

RENAME_WHITEOUT = 4


def expires(path):
    return int(tc_get(path, "expires"))


def assert_deadline(path, ttl, t0, t1):
    """expires is a lifetime of ttl seconds counted between t0 and t1."""
    e = expires(path)
    assert math.ceil(t0 + ttl) <= e <= math.ceil(t1 + ttl), \
        f"{path.name}: expires {e}, expected a {ttl}s lifetime from {t0:.2f}..{t1:.2f}"


# -- --check ----------------------------------------------------------------------

def test_check_lists_temp_files_but_exits_0(tc_mount, tc_run):
    m = tc_mount()
    write_file(m.path / "f", b"kept")
    m.unmount()
    (Path(m.store) / "tmp" / "leftover.1").write_bytes(b"half-written content")
    r = tc_run(["--check", str(m.store)], timeout=120)
    assert r.returncode == 0, r
    out = r.stdout + r.stderr
    assert re.search(r"temporary files\s+1\b", out), out
    assert "store is sound" in out
    # --fix removes it and the store stays sound
    r = tc_run(["--check", "--fix", str(m.store)], timeout=120)
    assert r.returncode == 0, r
    assert not (Path(m.store) / "tmp" / "leftover.1").exists()
    # a real problem still exits 1
    m = tc_mount()
    write_file(m.path / "big", os.urandom(100_000))  # past the inline size: a blob
    m.unmount()
    blobs = [p for p in (Path(m.store) / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    blobs[0].unlink()
    r = tc_run(["--check", str(m.store)], timeout=120)
    assert r.returncode == 1, r


# -- the ttl attribute ----------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "none"])
def test_ttl_zero_and_none_remove_own_ttl(tc_mount, value):
    m = tc_mount(opts="ttl=1h")
    f = m.path / "f"
    write_file(f, b"x")
    tc_set(f, "ttl", "5m")
    t0 = time.time()
    tc_set(f, "ttl", value)
    t1 = time.time()
    expect_errno(errno.ENODATA, os.getxattr, f, XATTR_PREFIX + "ttl")
    assert_deadline(f, 3600, t0, t1)  # the mount's default again, not "never"
    # below a directory with a ttl, the directory's
    d = m.path / "d"
    d.mkdir()
    tc_set(d, "ttl", "10m")
    g = d / "g"
    write_file(g, b"y")
    tc_set(g, "ttl", "1m")
    t0 = time.time()
    tc_set(g, "ttl", value)
    t1 = time.time()
    assert_deadline(g, 600, t0, t1)
    # and on a mount without a default ttl the entry no longer expires
    m.unmount()
    m = tc_mount()
    h = m.path / "h"
    write_file(h, b"z")
    tc_set(h, "ttl", "1h")
    tc_set(h, "ttl", value)
    expect_errno(errno.ENODATA, os.getxattr, h, XATTR_PREFIX + "expires")


def test_setting_ttl_restarts_the_lifetime(mnt):
    f = mnt / "f"
    write_file(f, b"x")
    t0 = time.time()
    tc_set(f, "ttl", "100")
    t1 = time.time()
    assert_deadline(f, 100, t0, t1)
    first = expires(f)
    wait_clock(t1 + 1.2)
    # the same ttl again: counted from now, not from the first setting
    t0 = time.time()
    tc_set(f, "ttl", "100")
    t1 = time.time()
    assert_deadline(f, 100, t0, t1)
    assert expires(f) > first
    # so do ttl_mode and tags
    for name, value in (("ttl_mode", "absolute"), ("tags", "t1")):
        before = expires(f)
        wait_clock(t1 + 1.2)
        t0 = time.time()
        tc_set(f, name, value)
        t1 = time.time()
        assert_deadline(f, 100, t0, t1)
        assert expires(f) > before, name
    # reading does not (absolute mode)
    before = expires(f)
    wait_clock(t1 + 1.2)
    assert read_file(f) == b"x"
    assert expires(f) == before


# -- .stats --------------------------------------------------------------------------

def test_disk_evictions_count_evict_tag_and_flush(mnt):
    base = tc_stats(mnt)
    for n in ("a", "b", "c"):
        write_file(mnt / n, n.encode())
        tc_set(mnt / n, "tags", "t")
    write_file(mnt / "d", b"d")
    tc_set(mnt, "evict_tag", "t")
    s = tc_stats(mnt)
    assert s["disk_evictions"] - base["disk_evictions"] == 3
    assert s["deletes"] == base["deletes"]
    assert sorted(os.listdir(mnt)) == [".stats", ".tags", "d"]
    # flush=disk removes every non-directory entry: d, e, a symlink, a FIFO
    (mnt / "dir").mkdir()
    tc_set(mnt / "dir", "ttl", "1h")
    write_file(mnt / "dir" / "e", b"e")
    os.symlink("d", mnt / "l")
    os.mkfifo(mnt / "p")
    tc_set(mnt, "flush", "disk")
    s = tc_stats(mnt)
    assert s["disk_evictions"] - base["disk_evictions"] == 3 + 4
    assert sorted(os.listdir(mnt)) == [".stats", ".tags", "dir"]
    assert os.listdir(mnt / "dir") == []
    assert tc_get(mnt / "dir", "ttl") == "1h"  # directories and their settings stay


def test_ram_items_count_distinct_contents(mnt):
    same = b"one content, two names\n" * 40
    other = b"another content\n" * 10
    base = tc_stats(mnt)
    assert base["ram_items"] == 0 and base["ram_bytes"] == 0
    write_file(mnt / "x", same)
    write_file(mnt / "y", same)
    write_file(mnt / "z", other)
    for n in ("x", "y", "z"):
        read_file(mnt / n)
        assert tc_get(mnt / n, "tier") == "ram"
    s = tc_stats(mnt)
    assert s["ram_items"] == 2
    assert s["ram_bytes"] == len(same) + len(other)
    assert s["disk_items"] == 3  # the disk tier counts names' entries


def test_stats_help_texts(mnt):
    text = read_file(mnt / ".stats").decode()
    helps = dict(re.findall(r"^# HELP tiercache_(\w+) (.*)$", text, re.M))
    assert "evict_tag" in helps["disk_evictions_total"]
    assert "flush" in helps["disk_evictions_total"]
    for g in ("ram_items", "ram_bytes"):
        assert "distinct contents" in helps[g].lower(), helps[g]


# -- writers and renames ---------------------------------------------------------------

def test_uncoordinated_writers_mix(mnt):
    f = mnt / "shared"
    write_file(f, b"")
    a = os.open(f, os.O_WRONLY)
    b = os.open(f, os.O_WRONLY)
    try:
        os.pwrite(a, b"A" * 8192, 0)
        os.pwrite(b, b"B" * 4096, 2048)
    finally:
        os.close(a)
        os.close(b)
    assert read_file(f) == b"A" * 2048 + b"B" * 4096 + b"A" * 2048


def _renamer(mnt, who, n):
    key = mnt / "key"
    for i in range(n):
        tmp = mnt / f".key.{who}.tmp"
        data = tc_value("key", f"{who}-{i}", 1000 + (i * 7919) % 60000)
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.rename(tmp, key)
    write_file(mnt / f"done.{who}", b"")
    return 0


def test_temp_name_and_rename_is_atomic_for_readers(mnt):
    write_file(mnt / "key", tc_value("key", "start", 100))
    n = 150
    pids = [fork_worker(_renamer, mnt, w, n) for w in ("w1", "w2")]
    seen = set()
    try:
        deadline = time.monotonic() + 120 * SLOW
        while not all((mnt / f"done.{w}").exists() for w in ("w1", "w2")):
            assert time.monotonic() < deadline, "writers did not finish"
            ver, why = tc_parse_value("key", read_file(mnt / "key"))
            assert ver is not None, f"a reader saw a mix: {why}"
            seen.add(ver)
    finally:
        assert reap(pids, 120) == [0, 0]
    ver, why = tc_parse_value("key", read_file(mnt / "key"))
    assert ver in (f"w1-{n - 1}", f"w2-{n - 1}"), why
    assert len(seen) > 1


def test_rename_flags(mnt):
    write_file(mnt / "a", b"A")
    write_file(mnt / "b", b"B")
    (mnt / "d").mkdir()
    write_file(mnt / "d" / "inner", b"I")
    expect_errno(errno.EEXIST, renameat2, mnt / "a", mnt / "b", RENAME_NOREPLACE)
    renameat2(mnt / "a", mnt / "c", RENAME_NOREPLACE)
    assert read_file(mnt / "c") == b"A" and not (mnt / "a").exists()
    renameat2(mnt / "b", mnt / "c", RENAME_EXCHANGE)
    assert read_file(mnt / "b") == b"A" and read_file(mnt / "c") == b"B"
    renameat2(mnt / "c", mnt / "d", RENAME_EXCHANGE)  # a file and a directory
    assert read_file(mnt / "d") == b"B" and read_file(mnt / "c" / "inner") == b"I"
    expect_errno(errno.ENOENT, renameat2, mnt / "b", mnt / "nothing", RENAME_EXCHANGE)
    expect_errno(errno.EINVAL, renameat2, mnt / "b", mnt / "e", RENAME_WHITEOUT)
    expect_errno(errno.EINVAL, renameat2, mnt / "b", mnt / "e",
                 RENAME_NOREPLACE | RENAME_EXCHANGE)
    assert read_file(mnt / "b") == b"A" and not (mnt / "e").exists()


def test_df_inodes_count_items(tc_mount, tmp_path):
    m = tc_mount(opts="disk_items=100")
    for n in ("f1", "f2", "f3"):
        write_file(m.path / n, n.encode())
    os.link(m.path / "f1", m.path / "f1.link")   # one item, two names
    (m.path / "dir").mkdir()
    os.symlink("f1", m.path / "sym")
    os.mkfifo(m.path / "fifo")
    os.mknod(m.path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    out = run(["df", "--output=itotal,iused,iavail", str(m.path)]).stdout.split()
    assert out[-3:] == ["100", "3", "97"], out
    # df -i: Filesystem Inodes IUsed IFree IUse% Mounted on
    out = run(["df", "-i", str(m.path)]).stdout.splitlines()[-1].split()
    assert out[1:4] == ["100", "3", "97"], out
    m.unmount()
    m = tc_mount(store=tmp_path / "store2", mnt=tmp_path / "mnt2")
    write_file(m.path / "only", b"x")
    st = os.statvfs(m.path)
    assert st.f_ffree == 4294967295 and st.f_files - st.f_ffree == 1


# -- the command line ------------------------------------------------------------------

def test_short_help_and_version_flags(tc_run):
    for short, long in (("-h", "--help"), ("-V", "--version")):
        a, b = tc_run([short], timeout=20), tc_run([long], timeout=20)
        assert a.returncode == b.returncode == 0, (a, b)
        assert a.stdout + a.stderr == b.stdout + b.stderr and (a.stdout + a.stderr).strip()
    help_text = tc_run(["--help"], timeout=20).stdout
    for flag in ("-h, --help", "-V, --version"):
        assert flag in help_text


def start_exact(cmd, mnt, tmp_path, output_checker, name):
    """Start a daemon with exactly cmd (no -f added); returns the Mount."""
    log = tmp_path / f"{name}.log"
    output_checker.add(log)
    Path(mnt).mkdir(parents=True, exist_ok=True)
    return Mount(cmd, mnt, None, log, None).start()


@pytest.mark.parametrize("flags", [["--foreground"], ["--debug"], ["-o", "debug"]])
def test_foreground_and_debug_long_forms(tmp_path, output_checker, flags):
    mnt = tmp_path / "mnt"
    cmd = [*daemon_prefix(), tc_bin(), *flags, str(tmp_path / "store"), str(mnt)]
    m = start_exact(cmd, mnt, tmp_path, output_checker, "exact")
    try:
        write_file(mnt / "f", b"x")
        # still our process serving it: it did not detach
        assert m.proc.poll() is None
        assert read_file(mnt / "f") == b"x"
    finally:
        m.stop()
    assert m.rc == 0, m.output()
    m.rc_checked = True
    if flags != ["--foreground"]:
        output_checker.allow(r"^\s*unique: \d+, error: -?\d+")
        assert re.search(r"unique: \d+", m.output()), "debug output shows requests"
    else:
        assert "unique:" not in m.output()


def test_command_line_forms(tmp_path, output_checker):
    """Combined short flags, -o given twice, a \\, inside a value, and the
    positional arguments before the options (as mount.fuse3 passes them)."""
    mnt = tmp_path / "mnt"
    store = tmp_path / "a,b"
    cmd = [*daemon_prefix(), tc_bin(), str(mnt), "-fs", "-o",
           "store=" + str(store).replace(",", "\\,") + ",ram_size=1M", "-o", "disk_size=2G"]
    m = start_exact(cmd, mnt, tmp_path, output_checker, "forms")
    try:
        s = tc_stats(mnt)
        assert s["ram_limit_bytes"] == 1 << 20 and s["disk_limit_bytes"] == 2 << 30
        assert (store / "index.db").exists()
        assert m.proc.poll() is None  # -f of -fs: still in the foreground
    finally:
        m.stop()
    assert m.rc == 0, m.output()
    m.rc_checked = True


# (value, bytes): every form the size parser takes
SIZES = [("16M", 16 << 20), ("16m", 16 << 20), ("16MB", 16 << 20), ("16mb", 16 << 20),
         ("16777216", 16 << 20), ("512K", 512 << 10), ("512kB", 512 << 10), ("3G", 3 << 30),
         ("2t", 2 << 40), ("100B", 100), ("none", 0), ("NONE", 0), ("0", 0)]


def test_size_forms_accepted(tc_mount, tmp_path):
    # one mount per pair of values keeps it short
    for k in range(0, len(SIZES), 2):
        pair = SIZES[k:k + 2]
        opts = [f"ram_size={pair[0][0]}"]
        if len(pair) > 1:
            opts.append(f"disk_size={pair[1][0]}")
        m = tc_mount(opts=opts, store=tmp_path / f"s{k}", mnt=tmp_path / f"m{k}")
        s = tc_stats(m.path)
        assert s["ram_limit_bytes"] == pair[0][1], opts
        if len(pair) > 1:
            assert s["disk_limit_bytes"] == pair[1][1], opts
        m.unmount()
    # counts take the same suffixes
    m = tc_mount(opts="disk_items=2K", store=tmp_path / "items", mnt=tmp_path / "mi")
    assert os.statvfs(m.path).f_files == 2048


@pytest.mark.parametrize("opt,value,what", [
    ("ram_size", "1.5G", "invalid size"), ("ram_size", "16 M", "invalid size"),
    ("ram_size", "16MiB", "invalid size"), ("ram_size", "16P", "invalid size"),
    ("ram_size", "-1", "invalid size"), ("ram_size", "16BB", "invalid size"),
    ("disk_items", "1.5K", "invalid number"), ("ram_ttl", "1H", "invalid duration"),
    ("ttl", "1.5h", "invalid duration"), ("ttl", "1hB", "invalid duration"),
    ("ttl", "1w", "invalid duration"), ("ram_ttl", "10 s", "invalid duration"),
])
def test_forms_refused(tmp_path, opt, value, what):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rc, out = run_refused([tc_bin(), "-f", "-o", f"{opt}={value}", str(tmp_path / "s"),
                           str(mnt)], mnt)
    assert rc == 1, out
    assert f"{opt}: {what} '{value}'" in out, out
    assert len(out.strip().splitlines()) == 1, out


@pytest.mark.parametrize("value,secs", [("90", 90), ("90s", 90), ("2m", 120), ("3h", 3 * 3600),
                                        ("2d", 2 * 86400)])
def test_duration_forms(tc_mount, value, secs):
    m = tc_mount(opts=f"ttl={value}")
    t0 = time.time()
    write_file(m.path / "f", b"x")
    t1 = time.time()
    assert_deadline(m.path / "f", secs, t0, t1)


# -- systemd -----------------------------------------------------------------------------

UNIT = REPO / "scripts" / "tiercachefs@.service"


def unit_lines(key):
    return [ln.split("=", 1)[1] for ln in UNIT.read_text().splitlines()
            if ln.startswith(key + "=")]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path):
    # the unit as installed, with the binary under test in ExecStart
    text = UNIT.read_text()
    binary = shlex.split(unit_lines("ExecStart")[0])[0]
    d = tmp_path / "units"
    d.mkdir()
    (d / UNIT.name).write_text(text.replace(binary, tc_bin()))
    r = run(["systemd-analyze", "verify", "--man=no", str(d / "tiercachefs@mnt-cache.service")],
            check=False, cwd=d)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_mount_unit_of_man_page_verifies(tmp_path):
    man = (REPO / "tiercachefs.8").read_text()
    after = man.split("mnt\\-cache.mount", 1)[1]
    block = after.split(".EX\n", 1)[1].split(".EE\n", 1)[0].replace("\\-", "-")
    assert "Type=fuse.tiercachefs" in block and "Where=/mnt/cache" in block
    d = tmp_path / "units"
    d.mkdir()
    (d / "mnt-cache.mount").write_text(block)
    r = run(["systemd-analyze", "verify", "--man=no", str(d / "mnt-cache.mount")],
            check=False, cwd=d)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r


def expand(arg, spec):
    return re.sub(r"%([a-zA-Z%])", lambda mo: spec.get(mo.group(1), mo.group(0)), arg)


def test_systemd_unit_command_lines(tmp_path, output_checker):
    """ExecStartPre, ExecStart and ExecStop, with the specifiers expanded as
    systemd would for a mount point under tmp_path: the daemon's option
    parser accepts ExecStart, it mounts, and ExecStop unmounts it cleanly."""
    mnt = tmp_path / "mnt" / "cache"
    spec = {"f": str(mnt), "i": "test-instance", "C": str(tmp_path / "cache"), "%": "%"}
    (tmp_path / "cache").mkdir()
    for line in unit_lines("ExecStartPre"):
        ignore = line.startswith("-")
        r = run([expand(a, spec) for a in shlex.split(line.lstrip("-"))], check=not ignore)
        assert ignore or r.returncode == 0
    assert mnt.is_dir()
    start = [expand(a, spec) for a in shlex.split(unit_lines("ExecStart")[0])]
    assert os.path.basename(start[0]) == "tiercachefs" and "-f" in start
    m = start_exact([*daemon_prefix(), tc_bin(), *start[1:]], mnt, tmp_path, output_checker,
                    "unit")
    try:
        assert "allow_other" in open("/proc/self/mountinfo").read().split(str(mnt))[1] \
            .splitlines()[0]
        write_file(mnt / "f", b"from the unit")
        assert (tmp_path / "cache" / "tiercachefs" / "test-instance" / "index.db").exists()
        run([expand(a, spec) for a in shlex.split(unit_lines("ExecStop")[0])])
        m.proc.wait(timeout=30 * SLOW)
    finally:
        m.stop()
    assert m.rc == 0, m.output()
    m.rc_checked = True
    assert not is_mounted(mnt)


# -- the README --------------------------------------------------------------------------

def test_readme_stands_on_its_own():
    text = (REPO / "README.md").read_text()
    for pat in (r"project's notes", r"\bissue \d+", r"\bnotes\b.*\bsee\b", r"SPEC"):
        assert not re.search(pat, text), pat
    # what it documents of the command line is what --help lists
    for flag in ("--foreground", "--debug", "-h", "-V", "16MB", "RENAME_NOREPLACE",
                 "RENAME_EXCHANGE", "df -i", "allow_other", "user_allow_other"):
        assert flag in text, flag
