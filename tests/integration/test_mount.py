# SPDX-License-Identifier: MIT
"""Mounting, remounting, the command line and signals (tiercachefs(8): SYNOPSIS, Mount options)."""

import os
import re
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tcutil import (REPO, SLOW, STOP_TIMEOUT, VALGRIND, daemon_prefix, tc_bin, diff_snapshots,
                    fs_type, is_mounted, make_special_tree, pattern_bytes, read_file,
                    read_stats, run, snapshot, tc_get, tc_set, wait_until,
                    write_file)


def fill_store(root):
    """Write a bit of everything below root; returns what to compare later."""
    tree = make_special_tree(root / "t")
    big = pattern_bytes(20 << 20, seed=11)  # beyond max_ram_item
    write_file(root / "big", big)
    write_file(root / "tagged", b"tagged content")
    tc_set(root / "tagged", "tags", "one,two")
    tc_set(root / "tagged", "schema", "v9")
    tc_set(root / "tagged", "ttl_mode", "sliding")
    tc_set(root / "tagged", "ttl", "2d")
    return tree


def test_remount_keeps_everything(tc_mount):
    m = tc_mount()
    fill_store(m.path)
    before = snapshot(m.path / "t")
    inos = {p: os.lstat(m.path / "t" / p).st_ino for p in ("linked", "a/hello.txt")}
    big_before = read_file(m.path / "big")
    m.unmount()
    m2 = tc_mount()
    after = snapshot(m2.path / "t")
    d = diff_snapshots(before, after)
    assert not d, f"changed across remount:\n{d}"
    assert read_file(m2.path / "big") == big_before
    assert {p: os.lstat(m2.path / "t" / p).st_ino for p in inos} == inos
    t = m2.path / "tagged"
    assert read_file(t) == b"tagged content"
    assert tc_get(t, "tags").split(",") == ["one", "two"]
    assert tc_get(t, "schema") == "v9"
    assert tc_get(t, "ttl_mode") == "sliding"
    assert tc_get(t, "ttl") in ("2d", "172800", "172800s", "48h", "2880m")
    # and it keeps working: write after remount, remount again elsewhere
    write_file(m2.path / "after", b"later")
    m2.unmount()
    m3 = tc_mount(mnt=m2.path.parent / "other-mnt")
    assert read_file(m3.path / "after") == b"later"
    assert not diff_snapshots(before, snapshot(m3.path / "t"))


def test_store_option_and_created_mode(tc_mount, tmp_path):
    store = tmp_path / "newstore"
    m = tc_mount(opts=f"store={store}", store=False)
    write_file(m.path / "f", b"via store=")
    m.unmount()
    assert store.is_dir()
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    m = tc_mount(store=store)
    assert read_file(m.path / "f") == b"via store="


def test_default_store_xdg(tc_mount, tmp_path):
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    env = dict(os.environ, XDG_CACHE_HOME=str(xdg))
    m = tc_mount(store=False, env=env)
    write_file(m.path / "f", b"xdg")
    m.unmount()
    store = xdg / "tiercachefs"
    assert store.is_dir() and stat.S_IMODE(store.stat().st_mode) == 0o700
    assert len(list(store.iterdir())) > 0


def test_default_store_home(tc_mount, tmp_path):
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    env["HOME"] = str(home)
    m = tc_mount(store=False, env=env)
    write_file(m.path / "f", b"home")
    m.unmount()
    store = home / ".cache" / "tiercachefs"
    assert store.is_dir() and stat.S_IMODE(store.stat().st_mode) == 0o700


def test_every_option_accepted(tc_mount, tmp_path):
    conf = tmp_path / "tc.ini"
    conf.write_text("[mount]\nram_items=50\nttl_mode=absolute\n\n"
                    "[tag demo]\nttl=10m\nram_ttl=1m\n")
    opts = ["ram_size=512K", "ram_ttl=30m", "max_ram_item=1M", "disk_size=2T",
            "disk_items=1000", "ttl=none", "schema=v1", "sync=close", f"config={conf}"]
    m = tc_mount(opts=opts)
    write_file(m.path / "f", b"x")
    tc_set(m.path / "f", "tags", "demo")
    assert read_file(m.path / "f") == b"x"
    s = read_stats(m.path)
    assert s["tiercache_ram_limit_bytes"] == 512 << 10
    assert s["tiercache_disk_limit_bytes"] == 2 << 40
    m.unmount()


@pytest.mark.parametrize("opts", ["sync=fsync", "sync=never", "ttl=1h,ttl_mode=sliding",
                                  "ram_size=0,ram_items=0,disk_items=0", "ram_ttl=none"])
def test_option_values(tc_mount, opts):
    m = tc_mount(opts=opts)
    write_file(m.path / "f", b"x")
    with open(m.path / "f", "rb+") as fh:
        os.fsync(fh.fileno())
    assert read_file(m.path / "f") == b"x"


def test_single_threaded_and_debug(tc_mount, tmp_path, output_checker):
    m = tc_mount(args=["-s"])
    write_file(m.path / "f", b"single")
    m.unmount()
    # -d prints every request; replies carrying an errno are not our errors
    output_checker.allow(r"^\s*unique: \d+, error: -?\d+")
    m = tc_mount(args=["-d"])
    assert read_file(m.path / "f") == b"single"


# -- fstab / mount(8) --------------------------------------------------------------------

def _pids_of(store, mnt):
    """PIDs of processes running tiercachefs on store and mnt (ours only)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if any(a.endswith("tiercachefs") for a in args[:2]) and str(store) in args \
                and str(mnt) in args:
            out.append(int(d.name))
    return out


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    st = Path(f"/proc/{pid}/stat")
    try:
        return st.read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def _stop_background(mnt, pids, how):
    """Unmount a daemon started by a mount helper; wait for its PID to go."""
    try:
        if is_mounted(mnt):
            run(how + [str(mnt)])
        assert not is_mounted(mnt)
        for pid in pids:
            wait_until(lambda: _gone(pid), 30, f"daemon {pid} to exit after {how[0]}")
    finally:
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
        for pid in pids:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(VALGRIND, reason="the mount helper starts the plain binary")
def test_fstab_style_mount(tmp_path):
    """What mount(8) does for an fstab line of type fuse.tiercachefs.

    mount(8) resets PATH before it runs /sbin/mount.fuse3 (which then runs
    `tiercachefs` found in PATH), so a binary outside the system PATH is
    mounted two ways: mount.fuse3 exactly as mount(8) invokes it for type
    fuse.tiercachefs, with the binary's directory on PATH; and mount(8)
    itself with type fuse and the PROGRAM#SOURCE form.
    """
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, PATH=os.path.dirname(tc_bin()) + ":" + os.environ["PATH"])
    pids = []
    try:
        run(["/sbin/mount.fuse3", str(store), str(mnt), "-t", "tiercachefs",
             "-o", "rw,ram_size=1M,disk_size=1G"], env=env)
        assert is_mounted(mnt)
        assert fs_type(mnt).startswith("fuse")
        pids = wait_until(lambda: _pids_of(store, mnt), 10, "the daemon's PID")
        assert len(pids) == 1
        write_file(mnt / "f", b"fstab")
        assert read_file(mnt / "f") == b"fstab"
        s = read_stats(mnt)
        assert s["tiercache_ram_limit_bytes"] == 1 << 20
        assert s["tiercache_disk_limit_bytes"] == 1 << 30
    finally:
        _stop_background(mnt, pids, ["fusermount3", "-u"])
    pids = []
    try:
        run(["mount", "-t", "fuse", "-o", "ram_size=2M", f"{tc_bin()}#{store}", str(mnt)])
        assert is_mounted(mnt)
        pids = wait_until(lambda: _pids_of(store, mnt), 10, "the daemon's PID")
        assert read_file(mnt / "f") == b"fstab"
        assert read_stats(mnt)["tiercache_ram_limit_bytes"] == 2 << 20
    finally:
        _stop_background(mnt, pids, ["umount"])


# -- a store in use ------------------------------------------------------------------

def run_expect_failure(cmd, mnt, env=None, timeout=20):
    """Run a daemon command that must fail; clean up if it mounted anyway.

    Returns (returncode, combined output). Fails at once if mnt gets mounted.
    """
    with tempfile.TemporaryFile("w+") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, text=True, env=env)
        mounted = False
        try:
            end = time.monotonic() + timeout * SLOW
            delay = 0.005
            while p.poll() is None:
                if is_mounted(mnt):
                    mounted = True
                    break
                if time.monotonic() > end:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        finally:
            if is_mounted(mnt):
                subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
            if is_mounted(mnt):
                subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
            try:
                p.wait(timeout=STOP_TIMEOUT * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.seek(0)
            out = log.read()
        assert not mounted, f"{cmd} mounted although it must fail: {out}"
        assert p.returncode is not None
        return p.returncode, out


def one_line(out):
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {out!r}"
    return lines[0]


def test_second_mount_of_store_refused(tc_mount, tmp_path):
    m = tc_mount()
    write_file(m.path / "f", b"first")
    mnt2 = tmp_path / "mnt2"
    mnt2.mkdir()
    rc, out = run_expect_failure([*daemon_prefix(), tc_bin(), "-f", str(m.store), str(mnt2)],
                                 mnt2)
    assert rc != 0
    assert not is_mounted(mnt2)
    line = one_line(out)
    assert re.search(r"(?i)lock|in use|busy|already", line), line
    # the first mount is untouched
    assert read_file(m.path / "f") == b"first"
    write_file(m.path / "g", b"still works")
    assert read_file(m.path / "g") == b"still works"


@pytest.mark.skipif(VALGRIND, reason="the background daemon is not traced")
def test_second_mount_refused_in_background_mode(tc_mount, tmp_path):
    """Without -f the refusal must still reach the caller's exit status."""
    m = tc_mount()
    mnt2 = tmp_path / "mnt2"
    mnt2.mkdir()
    rc, out = run_expect_failure([tc_bin(), str(m.store), str(mnt2)], mnt2)
    assert rc != 0, f"exit 0 although the store is locked: {out!r}"
    assert not is_mounted(mnt2)
    assert re.search(r"(?i)lock|in use|busy|already", out), out


# -- signals ---------------------------------------------------------------------------

def test_sigterm_loses_nothing_closed(tc_mount):
    m = tc_mount()
    write_file(m.path / "a", b"closed a")
    (m.path / "d").mkdir()
    big = pattern_bytes(3 << 20, seed=4)
    write_file(m.path / "d" / "b", big)
    os.setxattr(m.path / "d" / "b", "user.note", b"kept")
    tc_set(m.path / "a", "tags", "x")
    os.symlink("a", m.path / "l")
    held = open(m.path / "open", "wb")
    held.write(b"never closed")
    held.flush()
    rc = m.kill(signal.SIGTERM)
    mounted_after = is_mounted(m.path)
    try:
        held.close()
    except OSError:
        pass
    assert rc >= 0, f"daemon died of signal {-rc} instead of shutting down on SIGTERM"
    assert not mounted_after, "the daemon left its mount behind after SIGTERM"
    m2 = tc_mount()
    assert read_file(m2.path / "a") == b"closed a"
    assert read_file(m2.path / "d" / "b") == big
    assert os.getxattr(m2.path / "d" / "b", "user.note") == b"kept"
    assert tc_get(m2.path / "a", "tags") == "x"
    assert os.readlink(m2.path / "l") == "a"
    if (m2.path / "open").exists():
        assert read_file(m2.path / "open") in (b"", b"never closed")


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_sigkill_keeps_closed_files(tc_mount):
    """With sync=close a crash (SIGKILL) loses nothing closed, renames
    included, and frees the store's lock."""
    m = tc_mount(opts="sync=close")
    data = pattern_bytes(1 << 20, seed=6)
    write_file(m.path / "f", data)
    write_file(m.path / "g", b"small")
    os.rename(m.path / "g", m.path / "h")
    # A rename is durable once its directory is synced.
    fd = os.open(m.path, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    rc = m.kill(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    subprocess.run(["fusermount3", "-uz", str(m.path)], capture_output=True)
    m2 = tc_mount()
    assert read_file(m2.path / "f") == data
    assert read_file(m2.path / "h") == b"small"
    assert not (m2.path / "g").exists()


# -- command line -------------------------------------------------------------------------

@pytest.mark.parametrize("opt,name", [
    ("ram_size=12Q", "ram_size"),
    ("disk_size=10X", "disk_size"),
    ("max_ram_item=-1", "max_ram_item"),
    ("ram_items=lots", "ram_items"),
    ("disk_items=-3", "disk_items"),
    ("ram_ttl=soon", "ram_ttl"),
    ("ttl=5y", "ttl"),
    ("ttl_mode=forever", "ttl_mode"),
    ("sync=sometimes", "sync"),
    ("schema=a b", "schema"),
    ("config=/nonexistent/tc.ini", "config"),
])
def test_bad_option_value(tmp_path, opt, name):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rc, out = run_expect_failure([*daemon_prefix(), tc_bin(), "-f", "-o", opt,
                                  str(tmp_path / "store"), str(mnt)], mnt)
    assert rc != 0
    line = one_line(out)
    assert name in line, line
    assert not is_mounted(mnt)


def test_bad_config_file_content(tmp_path):
    conf = tmp_path / "bad.ini"
    conf.write_text("[mount]\nram_size=lots\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rc, out = run_expect_failure([*daemon_prefix(), tc_bin(), "-f", "-o", f"config={conf}",
                                  str(tmp_path / "store"), str(mnt)], mnt)
    assert rc != 0
    assert "ram_size" in one_line(out)


def test_unusable_store(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_bytes(b"not a directory")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    for store in (blocker / "store", blocker):
        rc, out = run_expect_failure([*daemon_prefix(), tc_bin(), "-f", str(store), str(mnt)],
                                     mnt)
        assert rc != 0
        line = one_line(out)
        assert str(store) in line or "store" in line, line


def test_missing_mountpoint(tmp_path):
    mnt = tmp_path / "nonexistent"
    rc, out = run_expect_failure([*daemon_prefix(), tc_bin(), "-f", str(tmp_path / "store"),
                                  str(mnt)], mnt)
    assert rc != 0 and out.strip()


def test_no_mountpoint(tmp_path, tc_run):
    r = tc_run([], cwd=tmp_path, timeout=20)
    assert r.returncode != 0
    assert (r.stdout + r.stderr).strip()


def test_help(tc_run):
    r = tc_run(["--help"], timeout=20)
    assert r.returncode == 0, r
    out = r.stdout + r.stderr
    assert re.search(r"(?i)usage", out)
    for word in ("ram_size", "disk_size", "ttl", "--check"):
        assert word in out, word


def test_version(tc_run):
    r = tc_run(["--version"], timeout=20)
    assert r.returncode == 0, r
    version = re.search(r"version:\s*'([^']+)'", (REPO / "meson.build").read_text()).group(1)
    assert version in r.stdout + r.stderr
