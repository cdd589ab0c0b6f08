# SPDX-License-Identifier: MIT
"""Ownership and permission checks with real non-root users (setpriv).

The mount needs -o allow_other for other users to enter it at all;
default_permissions is on then, so the kernel enforces mode bits. A mount by
root without allow_other admits root alone and runs without it: the daemon
answers access(2), the kernel still refuses to execute what has no x bit.
"""

import errno
import os
import stat
import subprocess

import pytest

from tcutil import (NOBODY, OTHER_USER, as_user, make_traversable, read_file, run,
                    super_options, write_file)


@pytest.fixture
def shared_mount(tc_mount, tmp_path):
    make_traversable(tmp_path)
    m = tc_mount(opts="allow_other")
    os.chmod(m.path, 0o755)
    shared = m.path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    return m.path, shared


def as_nobody(script, check=True):
    return run(as_user(NOBODY, ["sh", "-c", script]), check=check)


def as_other(script, check=True):
    return run(as_user(OTHER_USER, ["sh", "-c", script]), check=check)


def test_new_entries_belong_to_caller(shared_mount):
    _, shared = shared_mount
    as_nobody(f"cd '{shared}' && umask 022 && echo mine > f && mkdir d && ln -s f l "
              f"&& mkfifo p && touch d/inner")
    for name in ("f", "d", "l", "p", "d/inner"):
        st = os.lstat(shared / name)
        assert (st.st_uid, st.st_gid) == NOBODY, name
    assert stat.S_IMODE(os.stat(shared / "f").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(shared / "d").st_mode) == 0o755
    assert read_file(shared / "f") == b"mine\n"
    # python's open as that user, mode honoured with the umask
    as_nobody(f"umask 027; /usr/bin/python3 -c \"import os; os.close(os.open('{shared}/g', "
              f"os.O_CREAT | os.O_WRONLY, 0o666))\"")
    st = os.stat(shared / "g")
    assert (st.st_uid, st.st_gid) == NOBODY and stat.S_IMODE(st.st_mode) == 0o640


def test_mode_bits_refuse_others(shared_mount):
    _, shared = shared_mount
    f = shared / "private"
    as_nobody(f"echo secret > '{f}' && chmod 600 '{f}' && mkdir '{shared}/pdir' "
              f"&& chmod 700 '{shared}/pdir' && touch '{shared}/pdir/x'")
    # the owner can read and write it
    assert as_nobody(f"cat '{f}'").stdout == "secret\n"
    as_nobody(f"echo more >> '{f}'")
    # another user cannot read, write, list or change it
    for script in (f"cat '{f}'", f"echo x >> '{f}'", f"ls '{shared}/pdir'",
                   f"cat '{shared}/pdir/x'"):
        r = as_other(script, check=False)
        assert r.returncode != 0 and "Permission denied" in r.stderr, script
    for script in (f"chmod 666 '{f}'", f"chown 1234 '{f}'", f"rm -f '{f}'",
                   f"touch -d @0 '{f}'"):
        r = as_other(script, check=False)
        assert r.returncode != 0 and ("Operation not permitted" in r.stderr
                                      or "Permission denied" in r.stderr), script
    r = as_other(f"setfattr -n user.x -v y '{f}'", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # the owner cannot give it away
    r = as_nobody(f"chown 1234 '{f}'", check=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    # nothing changed; root still reads it
    st = os.stat(f)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == NOBODY[0]
    assert read_file(f) == b"secret\nmore\n"


def test_root_owned_files_protected(shared_mount):
    root, shared = shared_mount
    f = shared / "rootfile"
    write_file(f, b"root's\n")
    os.chmod(f, 0o644)
    assert as_nobody(f"cat '{f}'").stdout == "root's\n"
    for script in (f"echo x >> '{f}'", f"echo x > '{root}/toplevel'", f"mkdir '{root}/d'"):
        r = as_nobody(script, check=False)
        assert r.returncode != 0 and "Permission denied" in r.stderr, script
    r = as_nobody(f"rm -f '{f}'", check=False)  # sticky directory
    assert r.returncode != 0
    assert read_file(f) == b"root's\n"
    # user xattrs follow write permission
    r = as_nobody(f"setfattr -n user.x -v y '{f}'", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    as_nobody(f"touch '{shared}/own' && setfattr -n user.x -v y '{shared}/own'")
    assert os.getxattr(shared / "own", "user.x") == b"y"


def test_other_users_locked_out_without_allow_other(tc_mount, tmp_path):
    make_traversable(tmp_path)
    m = tc_mount()
    write_file(m.path / "f", b"x")
    os.chmod(m.path / "f", 0o644)
    r = run(as_user(NOBODY, ["cat", str(m.path / "f")]), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_root_only_mount_has_root_semantics(tc_mount, tmp_path):
    m = tc_mount()
    assert "default_permissions" not in super_options(m.path)
    f, script, d = m.path / "ro", m.path / "script", m.path / "locked"
    write_file(f, b"a")
    os.chmod(f, 0o444)
    write_file(f, b"root writes a read-only file")     # as on a local filesystem
    assert read_file(f) == b"root writes a read-only file"
    write_file(script, b"#!/bin/sh\necho ran\n")
    os.chmod(script, 0o644)
    d.mkdir()
    (d / "inner").write_bytes(b"i")
    os.chmod(d, 0)
    # access(2) reaches the daemon here: only a missing x bit refuses root.
    assert os.access(f, os.R_OK | os.W_OK)
    assert not os.access(script, os.X_OK)
    assert os.access(d, os.R_OK | os.W_OK | os.X_OK)
    assert sorted(os.listdir(d)) == ["inner"]
    with pytest.raises(PermissionError) as e:
        subprocess.run([str(script)], check=True)
    assert e.value.errno == errno.EACCES
    os.chmod(script, 0o100)
    assert os.access(script, os.X_OK)
    assert subprocess.run([str(script)], capture_output=True, check=True).stdout == b"ran\n"
    assert subprocess.run(["sh", "-c", f"cd '{d}' && cat inner"], capture_output=True,
                          check=True).stdout == b"i"
    assert os.access(m.path / ".stats", os.R_OK)
    assert not os.access(m.path / "missing", os.F_OK)


def test_default_permissions_when_asked_or_shared(tc_mount, tmp_path):
    make_traversable(tmp_path)
    m = tc_mount(opts="default_permissions")
    assert super_options(m.path).count("default_permissions") == 1
    m.stop()
    m = tc_mount(opts="allow_other", mnt=tmp_path / "mnt2")
    assert "default_permissions" in super_options(m.path)


def test_set_id_bits_cleared_as_the_kernel_does(shared_mount):
    """The filesystem clears set-ID bits itself (FUSE_HANDLE_KILLPRIV_V2):
    a write or a truncate by a user without CAP_FSETID clears set-user-ID,
    and set-group-ID where group execute is set; a chown clears them for
    anyone; root's writes keep them; set-group-ID without group execute
    stays."""
    _, shared = shared_mount
    names = ("w", "t", "sgid_noexec", "root_w", "chown")
    for n in names:
        write_file(shared / n, b"data")
    os.chown(shared / "w", *OTHER_USER)
    os.chown(shared / "t", *OTHER_USER)
    os.chmod(shared / "w", 0o6777)
    os.chmod(shared / "t", 0o6777)
    os.chmod(shared / "sgid_noexec", 0o2666)
    os.chmod(shared / "root_w", 0o6755)
    os.chmod(shared / "chown", 0o6755)
    as_nobody(f"printf more >> {shared / 'w'}")
    as_nobody(f"truncate -s 1 {shared / 't'}")
    as_nobody(f"printf more >> {shared / 'sgid_noexec'}")
    with open(shared / "root_w", "ab") as f:
        f.write(b"root")
    os.chown(shared / "chown", *OTHER_USER)
    modes = {n: stat.S_IMODE(os.stat(shared / n).st_mode) for n in names}
    assert modes == {"w": 0o777, "t": 0o777, "sgid_noexec": 0o2666,
                     "root_w": 0o6755, "chown": 0o755}
    assert read_file(shared / "w") == b"datamore"
    assert os.stat(shared / "t").st_size == 1
