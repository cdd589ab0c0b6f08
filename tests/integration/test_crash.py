# SPDX-License-Identifier: MIT
"""Crash consistency: SIGKILL the daemon under a write load, again and again
(tiercachefs(8), DESCRIPTION "published atomically", section 6 durability).

Each cycle mounts the store, forks TC_CRASH_WRITERS writer processes that
overwrite a fixed set of keys (truncating first, or writing over the old
value and truncating after: values of several MiB span chunks), replace
them by rename and delete them,
kills the daemon with SIGKILL at a random moment, clears the dead mount
with `fusermount3 -uz`, runs `tiercachefs --check`, remounts and verifies
every key:

  * a key holds exactly one complete value that some writer wrote: every
    value is self-describing (a 64-byte header naming key, version and
    payload length, then a payload derived from key and version), so a mix
    of two versions, a short file or a zero-filled tail is caught;
  * nothing acknowledged as durable is lost: a writer records (key, version)
    as durable in its log, outside the mount, only once fsync(2) returned
    (with sync=close: once close(2) returned; a rename or delete once the
    directory's fsync returned). After the crash the key must hold a state
    written by an operation that had not completed before the durable one
    started: that version, a later or concurrent one, or a later delete.

Writers log every operation with CLOCK_MONOTONIC times (shared by all
processes): "S" before it starts, "E" when it returned, "D" when it became
durable. Concurrent in-place rewrites of one key would legitimately mix on
any filesystem, so they hold a per-key flock on a file outside the mount;
renames and deletes race freely.

Environment (CI-sized defaults):
  TC_CRASH_CYCLES   kill/remount cycles (50)
  TC_CRASH_WRITERS  writer processes per cycle (4)
  TC_CRASH_KEYS     keys (24, a third of them in a subdirectory)
  TC_CRASH_LOAD     the kill lands uniformly in [0.1, LOAD] s of load (1.0)
  TC_CRASH_SEED     random seed (default: random; printed for replay)
"""

import errno
import pytest
import fcntl
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

from tcutil import (SLOW, VALUE_HEADER, daemon_prefix, fork_worker, is_mounted, mount_count,
                    read_file, reap, run, tc_bin, tc_parse_value, tc_value, wait_until,
                    write_file)

HEADER = VALUE_HEADER
# errnos a writer sees once the daemon is gone
GONE = (errno.ENOTCONN, errno.ECONNABORTED)
value_bytes = tc_value
parse_value = tc_parse_value


def key_names(nkeys):
    return [f"k{i:02d}" if i % 3 else f"sub/k{i:02d}" for i in range(nkeys)]


# -- the writer process ------------------------------------------------------------------

# Values up to several MiB: contents are stored in 1 MiB chunks, and an
# overwrite in place replaces the chunks of the old value one by one.
SIZES = [0, 1, 100, 4095, 4096, 12_295, 65_536, 200_000, 1 << 20, 2_300_001, 4_500_000]


def writer_main(argv):
    mnt, logpath, lockdir, w, cycle, nkeys, sync, seed = argv
    mnt, lockdir, w, cycle, nkeys = Path(mnt), Path(lockdir), int(w), int(cycle), int(nkeys)
    rnd = random.Random(int(seed))
    keys = key_names(nkeys)
    locks = {k: os.open(lockdir / k.replace("/", "_"), os.O_CREAT | os.O_RDWR, 0o600)
             for k in keys}
    log = os.open(logpath, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def note(*fields):
        os.write(log, (" ".join(str(x) for x in fields) + "\n").encode())

    def now():
        return time.monotonic_ns()

    def fsync_dir(path):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_chunks(fd, data):
        off = 0
        while off < len(data):
            n = min(len(data) - off, rnd.choice([HEADER, 4096, 65536, 1 << 20]))
            off += os.write(fd, data[off:off + n])

    note("R", now())
    deadline = time.monotonic() + 60  # never outlive a broken test
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        ver = f"{cycle}.{w}.{seq}"
        key = rnd.choice(keys)
        op = rnd.choices(["inplace", "overwrite", "rename", "delete"], weights=[3, 2, 4, 1])[0]
        want_sync = rnd.random() < 0.5
        path = mnt / key
        try:
            note("S", op, key, ver, now())
            if op in ("inplace", "overwrite"):
                # inplace: O_TRUNC then the new value; overwrite: the new
                # value over the old one, then ftruncate to its length
                fcntl.flock(locks[key], fcntl.LOCK_EX)
                try:
                    flags = os.O_WRONLY | (os.O_TRUNC if op == "inplace" else 0)
                    try:
                        fd = os.open(path, flags)
                    except FileNotFoundError:
                        note("E", op, key, ver, now(), "noent")
                        continue
                    try:
                        data = value_bytes(key, ver, rnd.choice(SIZES))
                        write_chunks(fd, data)
                        if op == "overwrite":
                            os.ftruncate(fd, len(data))
                        if want_sync and sync == "fsync":
                            os.fsync(fd)
                            note("D", op, key, ver, now())
                    finally:
                        os.close(fd)
                    if sync == "close":
                        note("D", op, key, ver, now())
                finally:
                    fcntl.flock(locks[key], fcntl.LOCK_UN)
            elif op == "rename":
                tmp = mnt / f"tmp.{w}.{seq}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    write_chunks(fd, value_bytes(key, ver, rnd.choice(SIZES)))
                    if want_sync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, path)
                if want_sync and sync != "never":
                    fsync_dir(path.parent)
                    fsync_dir(mnt)
                    note("D", op, key, ver, now())
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    note("E", op, key, ver, now(), "noent")
                    continue
                if want_sync and sync != "never":
                    fsync_dir(path.parent)
                    note("D", op, key, ver, now())
            note("E", op, key, ver, now(), "ok")
        except OSError as e:
            note("X", op, key, ver, now(), errno.errorcode.get(e.errno, e.errno))
            if e.errno in GONE:
                return 0
    return 0


# -- the test -----------------------------------------------------------------------------

CYCLES = int(os.environ.get("TC_CRASH_CYCLES", "50"))
WRITERS = int(os.environ.get("TC_CRASH_WRITERS", "4"))
NKEYS = int(os.environ.get("TC_CRASH_KEYS", "24"))
LOAD = float(os.environ.get("TC_CRASH_LOAD", "1.0"))
NEVER = -(1 << 62)  # time of the state a cycle starts from
FOREVER = 1 << 62   # end of an operation the crash interrupted


class Op:
    __slots__ = ("kind", "key", "ver", "s", "e", "d", "result")

    def __init__(self, kind, key, ver, s):
        self.kind, self.key, self.ver, self.s = kind, key, ver, s
        self.e, self.d, self.result = FOREVER, None, None


def read_logs(paths, kill_ns):
    """Operations per key, and errors writers met while the daemon was alive."""
    ops, errors = {}, []
    for p in paths:
        byver = {}
        for line in Path(p).read_text().splitlines():
            f = line.split()
            if f[0] == "R":
                continue
            kind, key, ver, t = f[1], f[2], f[3], int(f[4])
            if f[0] == "S":
                byver[ver] = op = Op(kind, key, ver, t)
                ops.setdefault(key, []).append(op)
            elif f[0] == "E":
                byver[ver].e, byver[ver].result = t, f[5]
            elif f[0] == "D":
                byver[ver].d = t
            elif f[0] == "X":
                byver[ver].result = f[5]
                if t < kill_ns and f[5] not in ("ENOTCONN", "ECONNABORTED"):
                    errors.append(f"{p.name}: {line}")
    return ops, errors


def explains(op, state):
    """Can op (its effect, as far as it got) leave the key in state?"""
    if state is None:
        return op.kind == "delete" and op.result != "noent"
    return op.kind in ("inplace", "overwrite", "rename") and op.ver == state and \
        op.result != "noent"


def judge(key, state, initial, ops):
    """Check the state found after the crash against the writers' log.

    state/initial: version string, or None for an absent key. Returns
    (bad reason or None, a completed write was lost although not durable).
    """
    cands = [op for op in ops if explains(op, state)]
    if state == initial:
        start = Op("initial", key, initial, NEVER)
        start.e = NEVER
        cands.append(start)
    if not cands:
        return f"holds {state or 'nothing'}, which no writer wrote or deleted", False
    durable = [op for op in ops if op.d is not None]
    done = [op for op in ops if op.e != FOREVER and op.result == "ok"]

    def ok_against(required):
        return any(all(c is r or c.e >= r.s for r in required) for c in cands)

    if not ok_against(durable):
        missed = [r for r in durable if not any(c is r or c.e >= r.s for c in cands)]
        r = max(missed, key=lambda o: o.d)
        return (f"holds {state or 'nothing'} but {r.kind} {r.ver} was acknowledged durable "
                f"and nothing later touched the key"), False
    return None, not ok_against(done)


def scan(mnt, keys):
    """{key: version or None}, {key: why it is bad}, {tmp name: why bad}."""
    states, bad, badtmp = {}, {}, {}
    for k in keys:
        try:
            with open(mnt / k, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            states[k] = None
            continue
        except OSError as e:
            bad[k] = f"read: {e}"
            states[k] = "?"
            continue
        ver, why = parse_value(k, data)
        states[k] = ver
        if why:
            bad[k] = why
            states[k] = "?"
    expected = {"sub"} | {k for k in keys if "/" not in k}
    for name in sorted(os.listdir(mnt)):
        if name in expected or name in (".stats", ".tags"):
            continue
        p = mnt / name
        if name.startswith("tmp."):
            data = p.read_bytes()
            if data:
                key = data[5:HEADER].split(b" ")[0].decode(errors="replace")
                _, why = parse_value(key, data)
                if why:
                    badtmp[name] = why
            os.unlink(p)  # the next cycle starts clean
        else:
            badtmp[name] = "unexpected name"
    extra = set(os.listdir(mnt / "sub")) - {k.split("/")[1] for k in keys if "/" in k}
    for name in extra:
        badtmp["sub/" + name] = "unexpected name"
    return states, bad, badtmp


def check_store(store):
    r = run([tc_bin(), "--check", str(store)], check=False, timeout=120)
    return r.returncode, (r.stdout + r.stderr).strip()


def check_counts(out):
    """{problem: count} from the summary `--check` prints (non-zero ones)."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^\s+([a-z][a-z ]*[a-z])\s+(\d+)$", line)
        if m and int(m.group(2)):
            found[m.group(1)] = int(m.group(2))
    return found


def sync_mode(cycle):
    """Mostly the default; every fifth cycle sync=close, every fifth sync=never."""
    return {3: "close", 4: "never"}.get(cycle % 5, "fsync")


def test_sigkill_under_write_load(tc_mount, tmp_path):
    crash_cycles(tc_mount, tmp_path, CYCLES)


def crash_cycles(tc_mount, tmp_path, cycles, opts=""):
    """The crash cycles, each mount with -o sync=...,OPTS (test_kernel_mode
    runs them in cache_mode=kernel whatever TC_CACHE_MODE says)."""
    CYCLES = cycles
    extra = f",{opts}" if opts else ""
    seed = int(os.environ.get("TC_CRASH_SEED") or random.randrange(1 << 30))
    rnd = random.Random(seed)
    keys = key_names(NKEYS)
    logs = tmp_path / "logs"
    locks = tmp_path / "locks"
    logs.mkdir()
    locks.mkdir()
    states = {k: None for k in keys}
    totals = dict(started=0, completed=0, durable=0, lost_undurable=0, writer_errors=0)
    bad_keys, bad_tmp, check_fail, errors = [], [], [], []
    kill_after = []
    phase = dict(mount=0.0, load=0.0, check=0.0, verify=0.0)
    t0 = time.monotonic()

    m = tc_mount(opts=opts or None)
    (m.path / "sub").mkdir()
    for cycle in range(CYCLES):
        sync = sync_mode(cycle)
        if cycle:
            t = time.monotonic()
            m = tc_mount(opts=f"sync={sync}{extra}")
            phase["mount"] += time.monotonic() - t
        paths = [logs / f"c{cycle}.w{w}" for w in range(WRITERS)]
        writers = [fork_worker(writer_main, [str(m.path), str(paths[w]), str(locks), str(w),
                                             str(cycle), str(NKEYS), sync,
                                             str(rnd.randrange(1 << 30))])
                   for w in range(WRITERS)]
        try:
            wait_until(lambda: all(p.exists() and p.read_text().startswith("R")
                                   for p in paths), 30, "the writers to start")
            t_load = time.monotonic()
            delay = rnd.uniform(0.1, LOAD)
            kill_after.append(delay)
            # the fault's random moment (not a synchronisation)
            time.sleep(delay * SLOW)
            kill_ns = time.monotonic_ns()
            rc = m.kill(signal.SIGKILL)
        finally:
            codes = reap(writers, 30)
        phase["load"] += time.monotonic() - t_load
        assert rc == -signal.SIGKILL, f"cycle {cycle}: daemon exited {rc} before the kill"
        assert all(c == 0 for c in codes), f"cycle {cycle}: writer exit statuses {codes}"

        # the dead mount: ENOTCONN until fusermount3 -uz clears it
        assert is_mounted(m.path), f"cycle {cycle}: no mount left after SIGKILL"
        try:
            os.listdir(m.path)  # (a stat may be answered from the attribute cache)
            stat_err = None
        except OSError as e:
            stat_err = e.errno
        assert stat_err == errno.ENOTCONN, \
            f"cycle {cycle}: listing the dead mount gave {stat_err}, expected ENOTCONN"
        run(["fusermount3", "-uz", str(m.path)])
        assert not is_mounted(m.path)

        t = time.monotonic()
        rc, out = check_store(m.store)
        phase["check"] += time.monotonic() - t
        if rc != 0:
            check_fail.append((cycle, rc, out))

        t = time.monotonic()
        m = tc_mount(opts=f"sync={sync}{extra}")
        phase["mount"] += time.monotonic() - t
        t = time.monotonic()
        found, bad, badtmp = scan(m.path, keys)
        ops, errs = read_logs(paths, kill_ns)
        errors += [f"cycle {cycle}: {e}" for e in errs]
        for k in keys:
            kops = ops.get(k, [])
            totals["started"] += len(kops)
            totals["completed"] += sum(op.e != FOREVER for op in kops)
            totals["durable"] += sum(op.d is not None for op in kops)
            if k in bad:
                bad_keys.append(f"cycle {cycle} ({sync}) {k}: {bad[k]}")
                continue
            why, lost = judge(k, found[k], states[k], kops)
            if why:
                bad_keys.append(f"cycle {cycle} ({sync}) {k}: {why}")
            totals["lost_undurable"] += lost
        bad_tmp += [f"cycle {cycle}: {n}: {why}" for n, why in badtmp.items()]
        states = {k: (None if found[k] == "?" else found[k]) for k in keys}
        for k in bad:  # start the next cycle from a sound value
            (m.path / k).unlink(missing_ok=True)
        m.unmount()
        phase["verify"] += time.monotonic() - t

    rc, out = check_store(m.store)
    elapsed = time.monotonic() - t0
    print(f"\ncrash cycles: {CYCLES} in {elapsed:.1f}s ({elapsed / max(CYCLES, 1):.2f}s each), "
          f"seed {seed}, {WRITERS} writers, {NKEYS} keys; kill after "
          f"{min(kill_after):.2f}-{max(kill_after):.2f}s of load; ops started "
          f"{totals['started']}, completed {totals['completed']}, durable "
          f"{totals['durable']}; keys whose completed-but-undurable write was lost: "
          f"{totals['lost_undurable']}; bad keys {len(bad_keys)}; bad temp names "
          f"{len(bad_tmp)}; --check failures {len(check_fail)}; final --check rc {rc}; seconds in "
          + ", ".join(f"{k} {v:.1f}" for k, v in phase.items()))
    problems = []
    if bad_keys:
        problems.append(f"{len(bad_keys)} bad keys (seed {seed}):\n  " +
                        "\n  ".join(bad_keys[:30]))
    if bad_tmp:
        problems.append(f"{len(bad_tmp)} bad temporary files:\n  " + "\n  ".join(bad_tmp[:20]))
    if check_fail:
        tally = {}
        for _, _, cout in check_fail:
            for k, v in check_counts(cout).items():
                tally[k] = tally.get(k, 0) + 1
        print("--check problems after SIGKILL (cycles with each): " +
              ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())))
        c, crc, cout = check_fail[0]
        problems.append(f"`tiercachefs --check STORE` after SIGKILL exited non-zero in "
                        f"{len(check_fail)} of {CYCLES} cycles; first (cycle {c}, rc {crc}):\n"
                        f"{cout}")
    if rc != 0:
        problems.append(f"`tiercachefs --check STORE` after the last clean unmount: rc {rc}\n"
                        f"{out}")
    if errors:
        problems.append("errors while the daemon was alive:\n  " + "\n  ".join(errors[:20]))
    assert not problems, "\n".join(problems)



# -- the dead mount a SIGKILL leaves ------------------------------------------------------

@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_dead_mount_after_sigkill(tc_mount):
    """After SIGKILL the mount point is a dead FUSE mount (ENOTCONN) until
    `fusermount3 -u` (or -uz) clears it; then the store mounts again with
    everything synced before the kill."""
    m = tc_mount()
    with open(m.path / "f", "wb") as f:
        f.write(b"before the kill")
        f.flush()
        os.fsync(f.fileno())
    assert m.kill(signal.SIGKILL) == -signal.SIGKILL
    assert is_mounted(m.path)
    for fn in (os.listdir, os.statvfs):
        try:
            fn(m.path)
            got = "success"
        except OSError as e:
            got = errno.errorcode.get(e.errno, e.errno)
        assert got == "ENOTCONN", f"{fn.__name__} of the dead mount: {got}, expected ENOTCONN"
    run(["fusermount3", "-u", str(m.path)])
    assert not is_mounted(m.path)
    m2 = tc_mount()
    assert read_file(m2.path / "f") == b"before the kill"
    assert mount_count(m2.path) == 1


def test_mount_over_dead_mount(tc_mount, tmp_path):
    """Starting tiercachefs on the dead mount a crash left, without clearing it.

    tiercachefs(8), SYNOPSIS: command-line errors exit non-zero with one clear line
    naming the problem. Acceptable: refuse with one line that names the
    mount point and says what is wrong with it (a dead/stale mount, not
    connected, clear it with fusermount3 -u), or clear it and mount.
    Not acceptable: a misleading reason, or a mount stacked over the dead
    one that is still there (ENOTCONN) after the new daemon unmounts.
    Whether the daemon should clear a stale mount itself is the lead's call."""
    m = tc_mount()
    write_file(m.path / "f", b"kept")
    assert m.kill(signal.SIGKILL) == -signal.SIGKILL
    assert mount_count(m.path) == 1
    log = tmp_path / "over-dead.log"
    cmd = [*daemon_prefix(), tc_bin(), "-f", str(m.store), str(m.path)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or mount_count(m.path) != 1 or
                   os.path.ismount(m.path), 20, "the daemon to mount or refuse")
        if proc.poll() is not None:
            text = log.read_text(errors="replace").strip()
            assert proc.returncode != 0, f"exited 0 without mounting: {text!r}"
            lines = [ln for ln in text.splitlines() if ln.strip()]
            assert len(lines) == 1 and str(m.path) in lines[0], \
                f"refusal should be one line naming {m.path}: {text!r}"
            assert re.search(r"(?i)stale|not connected|ENOTCONN|dead|fusermount",
                             lines[0].replace(str(m.path), "")), \
                f"refused with a reason that does not name the problem (a dead FUSE mount, " \
                f"ENOTCONN): {lines[0]!r}"
            return
        wait_until(lambda: os.path.ismount(m.path), 20, "the new mount to answer")
        stacked = mount_count(m.path)
        assert read_file(m.path / "f") == b"kept"
        run(["fusermount3", "-u", str(m.path)])
        assert proc.wait(timeout=30) == 0
        left = mount_count(m.path)
        assert stacked == 1 and left == 0, (
            f"mounted over the dead mount ({stacked} mounts stacked); after a clean unmount "
            f"{left} dead mount(s) remain at {m.path}")
    finally:
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-u", str(m.path)], capture_output=True)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for _ in range(4):
            if not is_mounted(m.path):
                break
            subprocess.run(["fusermount3", "-uz", str(m.path)], capture_output=True)
