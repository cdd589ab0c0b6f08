# SPDX-License-Identifier: MIT
"""Small helpers shared by the integration tests.

Nothing here mounts anything: the fixtures live in conftest.py. These are the
building blocks the tests use to drive real programs, wait on conditions with a
deadline (never a bare sleep), compare trees and read the .stats file.
"""

import ctypes
import ctypes.util
import errno
import hashlib
import os
import re
import stat
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

VALGRIND = os.environ.get("TC_VALGRIND", "") == "1"
VALGRIND_CMD = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full"]
# Everything slows down under valgrind (and somewhat under ASan): deadlines
# scale with this factor.
SLOW = 10 if VALGRIND else 1
MOUNT_TIMEOUT = 20  # seconds until the mount appears (times SLOW)
STOP_TIMEOUT = 30   # seconds for the daemon to exit after unmount (times SLOW)

NOBODY = (65534, 65534)
OTHER_USER = (1234, 1234)

XATTR_PREFIX = "user.tiercache."


def tc_bin():
    """The daemon under test: $TIERCACHEFS_BIN, else build/fs/tiercachefs."""
    p = os.environ.get("TIERCACHEFS_BIN") or str(REPO / "build" / "fs" / "tiercachefs")
    return os.path.abspath(p)


def tcmemo_bin():
    """The tcmemo under test: $TCMEMO_BIN, else build/scripts/tcmemo."""
    p = os.environ.get("TCMEMO_BIN") or str(REPO / "build" / "scripts" / "tcmemo")
    return os.path.abspath(p)


def tcswap_bin():
    """The tcswap under test: $TCSWAP_BIN, else build/scripts/tcswap."""
    p = os.environ.get("TCSWAP_BIN") or str(REPO / "build" / "scripts" / "tcswap")
    return os.path.abspath(p)


# cache_mode for every mount of the fixtures (conftest.py); "" = the default.
CACHE_MODE_ENV = os.environ.get("TC_CACHE_MODE", "")
_cache_mode = None


def cache_mode():
    """The cache_mode the fixtures' mounts run in: TC_CACHE_MODE, else the
    daemon's default as its --help states it."""
    global _cache_mode
    if _cache_mode is None:
        _cache_mode = CACHE_MODE_ENV
        if not _cache_mode:
            out = subprocess.run([tc_bin(), "--help"], capture_output=True,
                                 text=True).stdout
            m = re.search(r"cache_mode=MODE.*?default (kernel|daemon)", out, re.S)
            _cache_mode = m.group(1) if m else "daemon"
    return _cache_mode


def kernel_mode():
    return cache_mode() == "kernel"


def daemon_prefix():
    """What runs the daemon: valgrind under TC_VALGRIND=1, else nothing."""
    return VALGRIND_CMD if VALGRIND else []


def wait_until(pred, timeout, what, interval=0.01):
    """Poll pred() until it returns a true value or timeout seconds pass.

    Returns the true value; raises AssertionError naming what was awaited.
    The interval grows so a long wait does not spin.
    """
    end = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout * SLOW}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 2, 0.2)


def run(cmd, check=True, timeout=300, **kw):
    """Run a program, capture text output; on failure show its output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    p = subprocess.run(cmd, timeout=timeout * SLOW, **kw)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{cmd!r} exited {p.returncode}\nstdout: {p.stdout[:3000]!r}\n"
            f"stderr: {p.stderr[:3000]!r}")
    return p


def sh(script, check=True, **kw):
    return run(["sh", "-c", script], check=check, **kw)


def as_user(ids, cmd):
    """Prefix cmd so it runs as uid/gid ids with no supplementary groups."""
    uid, gid = ids
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]


def make_traversable(path):
    """Let other users reach path: o+x on it and on its pytest ancestors.

    pytest creates /tmp/pytest-of-root with mode 0700; tests that run
    programs as another user against a mount below it need to pass through.
    """
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        if str(d) in ("/", "/tmp"):
            break
        st = d.stat()
        os.chmod(d, stat.S_IMODE(st.st_mode) | 0o011)


def mounted_paths():
    """Mount points of the current namespace (from /proc/self/mountinfo)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp)
            out.add(mp)
    return out


def is_mounted(path):
    """True if path is a mount point, even a dead FUSE one (ENOTCONN)."""
    return os.path.abspath(path) in mounted_paths()


def fs_type(path):
    p = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == p:
                return fields[fields.index("-") + 1]
    return None


def expect_errno(err, fn, *args, **kw):
    """Call fn and assert it raises OSError with errno err."""
    try:
        fn(*args, **kw)
    except OSError as e:
        assert e.errno == err, (
            f"{fn.__name__}{args!r}: expected {errno.errorcode[err]}, "
            f"got {errno.errorcode.get(e.errno, e.errno)} ({e})")
        return e
    raise AssertionError(f"{fn.__name__}{args!r}: expected {errno.errorcode[err]}, got success")


def write_file(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pattern_bytes(n, seed=0):
    """n bytes that are cheap to make and differ at every 4 KiB page."""
    block = hashlib.sha256(str(seed).encode()).digest() * 128  # 4 KiB
    out = bytearray()
    i = 0
    while len(out) < n:
        out += i.to_bytes(8, "little") + block[8:]
        i += 1
    return bytes(out[:n])


def write_random_file(path, size, chunk=1 << 20):
    """Write size random bytes to path; returns their sha256 hex digest."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            b = os.urandom(min(chunk, left))
            f.write(b)
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# -- XXH3-128 through the system libxxhash (no Python module needed) --------

class _XXH128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


_xxh = None


def xxh128_hex(data):
    """XXH3-128 of data in canonical form (32 hex digits, high half first)."""
    global _xxh
    if _xxh is None:
        name = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
        _xxh = ctypes.CDLL(name)
        _xxh.XXH3_128bits.restype = _XXH128
        _xxh.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    r = _xxh.XXH3_128bits(data, len(data))
    return f"{r.high64:016x}{r.low64:016x}"


# -- renameat2 ---------------------------------------------------------------

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags):
    """renameat2(2) through libc; raises OSError like os.rename."""
    fn = _libc.renameat2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(old), None, str(new))


# -- xattrs ------------------------------------------------------------------

def user_xattrs(path, follow=False):
    """{name: value} of the user.* xattrs of path, minus user.tiercache.*."""
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return out
        raise
    for n in names:
        if n.startswith("user.") and not n.startswith(XATTR_PREFIX):
            out[n] = os.getxattr(path, n, follow_symlinks=follow)
    return out


def tc_get(path, name):
    """Value of user.tiercache.NAME as str."""
    return os.getxattr(path, XATTR_PREFIX + name).decode()


def tc_set(path, name, value):
    if isinstance(value, str):
        value = value.encode()
    os.setxattr(path, XATTR_PREFIX + name, value)


# -- tree comparison -----------------------------------------------------------

def snapshot(root, times=True, owners=True, dir_times=True, xattrs=True, skip=()):
    """Describe the tree below root as comparable data.

    Returns (entries, link_groups): entries maps each relative path to a
    tuple of what a faithful copy preserves (type, permission bits, owner,
    size, mtime in ns, link count, content digest or link target, user
    xattrs); link_groups is the set of groups of paths sharing one inode.
    The top directory itself is described under ".".
    """
    root = Path(root)
    entries = {}
    by_ino = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [None, *sorted(filenames), *dirnames]:
            if name is None:
                p = Path(dirpath)
            else:
                p = Path(dirpath) / name
                if p.is_dir() and not p.is_symlink():
                    continue  # described when os.walk enters it
            rel = str(p.relative_to(root))
            if rel in skip:
                continue
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            d = {"type": stat.filemode(st.st_mode)[0], "mode": oct(stat.S_IMODE(st.st_mode))}
            if owners:
                d["owner"] = (st.st_uid, st.st_gid)
            if stat.S_ISREG(kind):
                d["size"] = st.st_size
                d["sha256"] = sha256_file(p)
                d["nlink"] = st.st_nlink
                by_ino.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(kind):
                d["target"] = os.readlink(p)
            else:
                if not stat.S_ISDIR(kind):
                    d["nlink"] = st.st_nlink
                    by_ino.setdefault(st.st_ino, []).append(rel)
            if times and not stat.S_ISLNK(kind) and (dir_times or not stat.S_ISDIR(kind)):
                d["mtime_ns"] = st.st_mtime_ns
            if xattrs and not stat.S_ISLNK(kind):
                d["xattrs"] = user_xattrs(p)
            entries[rel] = d
    groups = {tuple(sorted(v)) for v in by_ino.values() if len(v) > 1}
    return entries, groups


def diff_snapshots(a, b):
    """Human-readable differences between two snapshot() results ('' if equal)."""
    ea, ga = a
    eb, gb = b
    lines = []
    for k in sorted(set(ea) | set(eb)):
        if k not in eb:
            lines.append(f"only in first: {k}")
        elif k not in ea:
            lines.append(f"only in second: {k}")
        elif ea[k] != eb[k]:
            diffs = {f: (ea[k].get(f), eb[k].get(f)) for f in set(ea[k]) | set(eb[k])
                     if ea[k].get(f) != eb[k].get(f)}
            lines.append(f"{k}: {diffs}")
    if ga != gb:
        lines.append(f"hard-link groups differ: {sorted(ga)} vs {sorted(gb)}")
    return "\n".join(lines[:50])


def make_special_tree(root):
    """A tree exercising what archivers must preserve.

    Hard links (three names across directories), relative, absolute and
    dangling symlinks, a symlink to a directory, FIFOs, empty files and
    directories, several modes (setuid, sticky, 0600, 0700 directory),
    several owners, fixed mtimes with nanoseconds, and user xattrs (binary,
    empty, 3000 bytes). Directory times are set last.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty_dir").mkdir()
    (root / "private").mkdir(mode=0o700)
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    write_file(root / "a" / "hello.txt", b"hello world\n")
    write_file(root / "a" / "b" / "data.bin", pattern_bytes(300_000, seed=1))
    write_file(root / "empty", b"")
    write_file(root / "private" / "secret", b"s3cret\n")
    os.chmod(root / "private" / "secret", 0o600)
    write_file(root / "a" / "b" / "c" / "tool", b"#!/bin/sh\necho hi\n")
    os.chmod(root / "a" / "b" / "c" / "tool", 0o4755)
    # hard links: three names, two directories
    write_file(root / "linked", b"shared content\n" * 100)
    os.link(root / "linked", root / "a" / "linked2")
    os.link(root / "linked", root / "a" / "b" / "linked3")
    # symlinks
    os.symlink("hello.txt", root / "a" / "rel_link")
    os.symlink("/etc/hostname", root / "abs_link")
    os.symlink("does/not/exist", root / "dangling")
    os.symlink("a/b", root / "dir_link")
    # FIFOs
    os.mkfifo(root / "fifo", 0o640)
    os.mkfifo(root / "a" / "fifo2", 0o600)
    # owners
    os.chown(root / "a" / "hello.txt", 1000, 1000)
    os.chown(root / "private", 65534, 65534)
    os.chown(root / "private" / "secret", 65534, 65534)
    os.chown(root / "fifo", 1234, 100)
    # xattrs
    os.setxattr(root / "a" / "hello.txt", "user.comment", b"greeting")
    os.setxattr(root / "a" / "hello.txt", "user.mime_type", b"text/plain")
    os.setxattr(root / "a" / "b" / "data.bin", "user.binary", bytes(range(256)))
    os.setxattr(root / "empty", "user.empty", b"")
    # (3000 bytes: ext4 sources cannot hold more than a block per value)
    os.setxattr(root / "linked", "user.big", pattern_bytes(3000, seed=2))
    os.setxattr(root / "a", "user.on_dir", b"dir value")
    # times: files first, then directories bottom-up
    t = 1_600_000_000_123_456_789
    for i, p in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        if p.is_symlink():
            continue
        os.utime(p, ns=(t + i * 1_000_000_007, t + i * 1_000_000_007))
    os.utime(root, ns=(t, t))
    return root


# -- .stats ----------------------------------------------------------------------

_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$")


def parse_metrics(text):
    """Prometheus text format -> {name: value}; label sets are summed."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        v = float(m.group(3))
        out[m.group(1)] = out.get(m.group(1), 0.0) + v
    return out


def read_stats(mnt):
    with open(Path(mnt) / ".stats", "r") as f:
        return parse_metrics(f.read())


# -- cache policy (test_policy_*.py) ------------------------------------------------

def tc_stats(mnt):
    """.stats as {short name: value}: "tiercache_" and "_total" dropped."""
    out = {}
    for k, v in read_stats(mnt).items():
        k = k.removeprefix("tiercache_").removesuffix("_total")
        out[k] = v
    return out


def wait_clock(t):
    """Wait until the wall clock (time.time()) reaches t.

    For lifetimes, which the daemon counts on the same clock: "just before the
    deadline" is a moment on the clock, not an event to wait for."""
    while True:
        left = t - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def write_config(path, text):
    """Write an INI config file for config=; returns its path."""
    Path(path).write_text(text)
    return Path(path)


def super_options(path):
    """The filesystem's own options of the mount at path (after " - " in
    /proc/self/mountinfo: where FUSE lists default_permissions)."""
    p = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == p:
                return fields[fields.index("-") + 3].split(",")
    raise AssertionError(f"{p} is not mounted")


# -- reliability tests (test_crash, test_fullfs, test_badinput, test_soak) -------------

def mount_count(path):
    """How many mounts are stacked on path (a dead FUSE mount counts)."""
    p = os.path.abspath(path)
    n = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            n += mp == p
    return n


def read_uncached(path):
    """Read path after dropping its pages from the kernel's page cache, so
    the daemon serves the read (not the kernel)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def try_write(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, fsync=False,
              chunk=1 << 16):
    """Write data to path with os-level calls.

    Returns None on success, else (step, errno) naming the call that failed:
    "open", "write", "fsync" or "close". The descriptor is always closed.
    """
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        return ("open", e.errno)
    failed = None
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:off + chunk])
        if fsync:
            os.fsync(fd)
    except OSError as e:
        failed = ("fsync" if fsync and off >= len(data) else "write", e.errno)
    try:
        os.close(fd)
    except OSError as e:
        failed = failed or ("close", e.errno)
    return failed


def store_layout_problems(store):
    """Names in a store other than index.db*, lock, reserve, blobs/XX/<30 hex>, tmp/.

    Returns a list of relative paths (empty when the layout is as the man page says and
    the man page describe it)."""
    store = Path(store)
    bad = []
    for p in store.iterdir():
        n = p.name
        if n in ("lock", "reserve", "blobs", "tmp") or re.fullmatch(r"index\.db(-wal|-shm|-journal)?", n):
            continue
        bad.append(n)
    blobs = store / "blobs"
    if blobs.is_dir():
        for dirpath, dirnames, filenames in os.walk(blobs):
            rel = os.path.relpath(dirpath, blobs)
            if rel == ".":
                bad += [f"blobs/{n}" for n in filenames]
                bad += [f"blobs/{d}" for d in dirnames if not re.fullmatch(r"[0-9a-f]{2}", d)]
                continue
            bad += [f"blobs/{rel}/{d}" for d in dirnames]
            bad += [f"blobs/{rel}/{n}" for n in filenames if not re.fullmatch(r"[0-9a-f]{30}", n)]
    return bad


def run_refused(cmd, mnt, env=None, timeout=20):
    """Run a daemon command line that must fail without mounting.

    Returns (exit status, combined output as str). Should it mount anyway,
    it is unmounted (and its PID killed if it hangs) and the status is
    reported as "mounted". Polls with a deadline; never leaves a mount.
    """
    import tempfile
    with tempfile.TemporaryFile("w+b") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, env=env)
        mounted = False
        try:
            end = time.monotonic() + timeout * SLOW
            delay = 0.002
            while p.poll() is None and time.monotonic() < end:
                if is_mounted(mnt):
                    mounted = True
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        finally:
            if is_mounted(mnt):
                mounted = True
                subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
            if is_mounted(mnt):
                subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
            try:
                p.wait(timeout=STOP_TIMEOUT * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.seek(0)
            out = log.read().decode(errors="replace")
    return ("mounted" if mounted else p.returncode), out


# -- self-describing values (test_crash, test_soak) ----------------------------------

VALUE_HEADER = 64


def tc_value(key, ver, n):
    """Version ver of key as a self-describing value: a 64-byte header naming
    key, version and payload length, then n bytes derived from key and ver."""
    head = f"TCV1 {key} {ver} {n}".encode().ljust(VALUE_HEADER - 1) + b"\n"
    return head + pattern_bytes(n, seed=f"{key}/{ver}")


def tc_parse_value(key, data):
    """(version, None) if data is a complete tc_value of key, else (None, why).

    Catches a short file, a mix of two versions, a zero-filled tail, a value
    of another key."""
    if len(data) < VALUE_HEADER:
        zero = " (all zero)" if data and not data.strip(b"\0") else ""
        return None, f"short: {len(data)} bytes{zero}"
    head = data[:VALUE_HEADER]
    f = head.split()
    if len(f) != 4 or f[0] != b"TCV1" or not head.endswith(b"\n"):
        return None, f"bad header {head[:40]!r}"
    if f[1].decode(errors="replace") != key:
        return None, f"header names key {f[1]!r}"
    ver = f[2].decode(errors="replace")
    try:
        n = int(f[3])
    except ValueError:
        return None, f"bad header {head[:40]!r}"
    if len(data) != VALUE_HEADER + n:
        return None, f"version {ver}: length {len(data)}, header says {VALUE_HEADER + n}"
    want = tc_value(key, ver, n)
    if data != want:
        at = next(i for i in range(len(data)) if data[i] != want[i])
        tail = " (zero-filled from there)" if not data[at:].strip(b"\0") else ""
        return None, f"version {ver}: payload differs from byte {at}{tail}"
    return ver, None


def fork_worker(fn, *args):
    """Run fn(*args) in a forked child (far cheaper than a new Python).

    The child exits with fn's return value (1 if it raised) and never
    returns into the caller's code. Returns the child's PID."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = fn(*args) or 0
        except BaseException as e:  # report; never unwind into pytest
            os.write(2, f"worker {os.getpid()}: {e!r}\n".encode())
        finally:
            os._exit(code)
    return pid


def reap(pids, timeout):
    """Wait for forked children with a deadline; kill (by PID) one that hangs.

    Returns their exit statuses in order ("hung (killed)" for a killed one)."""
    codes = {}

    def reaped():
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        return len(codes) == len(pids)

    try:
        wait_until(reaped, timeout, "worker processes to exit")
    finally:
        for pid in pids:
            if pid not in codes:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                codes[pid] = "hung (killed)"
    return [codes[p] for p in pids]
