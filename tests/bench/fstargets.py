# SPDX-License-Identifier: MIT
"""fstargets.py - the filesystems the benchmark compares, mounted fresh.

Each target gives a directory, .root, where fsphases.py runs the same code.
start() mounts it under the work directory (scripts/bench.sh made it with
mktemp -d) and raises Skip with one line when the tool is missing or refuses;
stop() unmounts it and returns the problems seen (a daemon that did not exit
0, a lazy unmount). Every daemon is started in the foreground as a child of
this process, so we know its PID and its exit status; the PIDs also go to
WORKDIR/pids, which the EXIT trap of scripts/bench.sh reads to clean up when
this process dies without running its own cleanup.

Whether a path is mounted is read from /proc/self/mountinfo, never by
touching the path: a stat of a hung FUSE mount would hang the benchmark.

  tmpfs      a tmpfs mounted here
  plain      a directory on the work directory's filesystem (the root fs)
  bindfs     Debian's bindfs (pass-through FUSE) over a tmpfs mounted here
  rclone     rclone mount of a local directory, --vfs-cache-mode full
  passthrough_ll  libfuse's low-level example (Debian's libfuse3-dev ships
             its source), compiled here at run time, over a tmpfs: the FUSE
             reference peer
  tc-MODE    tiercachefs -f -o cache_mode=MODE, its store in the work
             directory; skipped with a line when the binary refuses the mode
  tc         tiercachefs -f as it is (no cache_mode), when the binary knows
             no mode or --tc-modes says so
"""

import gzip
import os
import re
import shutil
import subprocess
import time

MOUNT_TIMEOUT = 30  # seconds for a mount to appear
STOP_TIMEOUT = 120  # seconds for a daemon to exit after its unmount
LAZY_STOP_TIMEOUT = 10  # the same after a lazy unmount
IDLE_TIMEOUT = 15   # longest wait for a daemon's background work after a phase


class Skip(Exception):
    """The target cannot be measured here (tool missing, option refused)."""


class Failure(Exception):
    """The target broke: did not mount, died, or gave wrong data."""


def _unescape(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounted(path):
    """True when path is a mount point (from mountinfo; path not touched)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if _unescape(line.split(" ")[4]) == path:
                return True
    return False


def mounts_below(top):
    """Mount points at or below top, deepest first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape(line.split(" ")[4])
            if mp == top or mp.startswith(top + "/"):
                found.append(mp)
    return sorted(set(found), key=len, reverse=True)


def fstype_of(path):
    """Filesystem type and source of the filesystem holding path."""
    r = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", path],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return " ".join(r.stdout.split()) or "unknown"


def last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


class Registry:
    """PIDs we started, written down for the shell trap (one per line)."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "pids")

    def add(self, pid):
        with open(self.path, "a") as f:
            f.write(f"{pid}\n")


def close_fds_below(top):
    """Close our file descriptors open on files below top: an interrupted
    phase may leave one, which would keep its mount busy."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(top + "/"):
                os.close(int(fd))
        except OSError:
            pass


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                        "tcbench", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise Skip(f"cannot mount a tmpfs: {r.stdout.strip()}")


def umount_tmpfs(path):
    problems = []
    if not mounted(path):
        return problems
    if subprocess.run(["umount", path], stderr=subprocess.DEVNULL).returncode:
        subprocess.run(["umount", "-l", path])
        problems.append(f"{path}: needed a lazy umount")
    return problems


class Daemon:
    """A FUSE daemon run in the foreground; knows its PID and exit status."""

    def __init__(self, registry, cmd, mnt, log, env=None, timeout=MOUNT_TIMEOUT):
        self.registry = registry
        self.timeout = timeout  # for the mount, and for the exit after unmount
        self.cmd = cmd
        self.mnt = mnt
        self.log = log
        self.env = env
        self.proc = None
        self.mount_seconds = None

    def start(self, ready=None):
        """Start and wait for the mount; ready(mnt), if given, must then
        succeed too (e.g. a stat through the mount). Sets mount_seconds."""
        os.makedirs(self.mnt, exist_ok=True)
        with open(self.log, "ab") as logf:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        self.registry.add(self.proc.pid)
        deadline = time.monotonic() + self.timeout
        while not mounted(self.mnt):
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                return rc, last_line(self.log)
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                raise Failure(f"{os.path.basename(self.cmd[0])}: not mounted after "
                              f"{self.timeout} s")
            time.sleep(0.0005)
        if ready:
            ready(self.mnt)
        self.mount_seconds = time.perf_counter() - t0
        return None, None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Unmount and reap. @return (exit status or None, problems)."""
        problems = []
        if self.proc is None:
            return None, problems
        if mounted(self.mnt):
            for attempt in range(10):
                r = subprocess.run(["fusermount3", "-u", self.mnt],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if r.returncode == 0 or not mounted(self.mnt):
                    break
                time.sleep(0.2 * (attempt + 1))
            else:
                subprocess.run(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
                problems.append("busy: needed fusermount3 -uz")
        # After a lazy unmount the daemon lives as long as a file is open
        # in it: do not wait long.
        timeout = LAZY_STOP_TIMEOUT if problems else max(STOP_TIMEOUT, self.timeout)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            problems.append(f"did not exit within {timeout} s after unmount; killed")
        self.proc = None
        return rc, problems

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, all threads

    def wait_idle(self, timeout=IDLE_TIMEOUT):
        """Wait until the daemon uses < 5% of a CPU over 200 ms."""
        deadline = time.monotonic() + timeout
        hz = os.sysconf("SC_CLK_TCK")
        try:
            prev = self.cpu_ticks()
            while time.monotonic() < deadline:
                time.sleep(0.2)
                cur = self.cpu_ticks()
                if (cur - prev) / hz < 0.01:
                    return
                prev = cur
        except (OSError, AttributeError):
            pass

    def vm_hwm(self):
        """Peak RSS of the daemon in bytes (VmHWM), or None."""
        if not self.alive():
            return None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None


class Target:
    name = ""
    desc = ""
    is_tc = False

    def __init__(self, ctx):
        self.ctx = ctx
        self.root = None

    def start(self):
        raise NotImplementedError

    def stop(self):
        return []

    def problem(self):
        """A one-line problem if the target broke meanwhile (daemon died)."""
        return None

    def stats(self):
        return None

    def quiesce(self):
        """Wait until background work of this target (a daemon uploading or
        sweeping) is over, so it does not slow the next target's phase."""


class TmpfsTarget(Target):
    name = "tmpfs"
    desc = "a tmpfs mounted for the run"

    def start(self):
        self.root = os.path.join(self.ctx.workdir, "mnt", "tmpfs")
        mount_tmpfs(self.root, self.ctx.tmpfs_size)

    def stop(self):
        return umount_tmpfs(self.root) if self.root else []


class PlainTarget(Target):
    def __init__(self, ctx, name="plain"):
        super().__init__(ctx)
        self.name = name
        self.desc = f"a directory on the root filesystem ({fstype_of(ctx.workdir)})"

    def start(self):
        self.root = os.path.join(self.ctx.workdir, self.name)
        os.makedirs(self.root, exist_ok=True)

    def stop(self):
        shutil.rmtree(self.root, ignore_errors=True)
        return []


class FuseTarget(Target):
    """Common part of the FUSE targets: one daemon, mounted on .root."""
    tool = ""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.daemon = None

    def command(self, mnt):
        raise NotImplementedError

    def env(self):
        return None

    def prepare(self):
        pass

    def refused(self, rc, line):
        raise Failure(f"{self.tool} exited {rc} before mounting: {line}")

    def start(self):
        if not shutil.which(self.tool):
            raise Skip(f"{self.tool} is not installed")
        self.prepare()
        mnt = os.path.join(self.ctx.workdir, "mnt", self.name)
        log = os.path.join(self.ctx.workdir, f"{self.name}.log")
        self.daemon = Daemon(self.ctx.registry, self.command(mnt), mnt, log, self.env())
        rc, line = self.daemon.start()
        if rc is not None:
            self.daemon = None
            self.refused(rc, line)
        self.root = mnt

    def quiesce(self):
        if self.daemon is not None:
            self.daemon.wait_idle()

    def problem(self):
        if self.daemon is not None and not self.daemon.alive():
            return f"{self.tool} died: {last_line(self.daemon.log)}"
        return None

    def stop(self):
        if self.daemon is None:
            return []
        rc, problems = self.daemon.stop()
        self.daemon = None
        if rc not in (0, None):
            problems.append(f"{self.tool} exited {rc}: {last_line(os.path.join(self.ctx.workdir, self.name + '.log'))}")
        return problems


class BindfsTarget(FuseTarget):
    name = "bindfs"
    tool = "bindfs"
    desc = "bindfs (Debian, default options) over a tmpfs"

    def prepare(self):
        self.back = os.path.join(self.ctx.workdir, "bindfs-back")
        mount_tmpfs(self.back, self.ctx.tmpfs_size)

    def command(self, mnt):
        return ["bindfs", "-f", self.back, mnt]

    def stop(self):
        problems = super().stop()
        return problems + umount_tmpfs(os.path.join(self.ctx.workdir, "bindfs-back"))


class RcloneTarget(FuseTarget):
    name = "rclone"
    tool = "rclone"
    desc = "rclone mount of a local directory on the root fs, --vfs-cache-mode full"

    def prepare(self):
        w = self.ctx.workdir
        self.remote = os.path.join(w, "rclone-remote")
        self.cache = os.path.join(w, "rclone-cache")
        os.makedirs(self.remote, exist_ok=True)
        os.makedirs(self.cache, exist_ok=True)
        # An empty config: a local path needs no remote definition.
        open(os.path.join(w, "rclone.conf"), "a").close()

    def env(self):
        e = dict(os.environ)
        e["RCLONE_CONFIG"] = os.path.join(self.ctx.workdir, "rclone.conf")
        return e

    def command(self, mnt):
        return ["rclone", "mount", self.remote, mnt, "--vfs-cache-mode", "full",
                "--cache-dir", self.cache]


# Where Debian's libfuse3-dev puts libfuse's examples (they may be gzipped).
EXAMPLES_DIR = "/usr/share/doc/libfuse3-dev/examples"
# What libfuse's meson defines on Linux for passthrough_ll: without them it
# answers fallocate with EOPNOTSUPP and has no copy_file_range.
PTLL_DEFINES = ["-DHAVE_FALLOCATE", "-DHAVE_POSIX_FALLOCATE", "-DHAVE_COPY_FILE_RANGE"]


def _example_source(name, dest):
    """Copy EXAMPLES_DIR/name (or name.gz, uncompressed) to dest; Skip when
    neither exists."""
    src = os.path.join(EXAMPLES_DIR, name)
    if os.path.exists(src):
        shutil.copyfile(src, dest)
    elif os.path.exists(src + ".gz"):
        with gzip.open(src + ".gz", "rb") as f, open(dest, "wb") as g:
            shutil.copyfileobj(f, g)
    else:
        raise Skip(f"{src} (or .gz) not found: install libfuse3-dev")


def build_passthrough_ll(workdir):
    """Compile libfuse's passthrough_ll example into workdir/ptll/ once per
    run. @return the binary's path. Raises Skip with the reason when the
    source, the compiler or the fuse3 headers are missing or it fails."""
    out = os.path.join(workdir, "ptll")
    binary = os.path.join(out, "passthrough_ll")
    if os.access(binary, os.X_OK):
        return binary
    os.makedirs(out, exist_ok=True)
    src = os.path.join(out, "passthrough_ll.c")
    _example_source("passthrough_ll.c", src)
    _example_source("passthrough_helpers.h", os.path.join(out, "passthrough_helpers.h"))
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise Skip("no C compiler to build passthrough_ll")
    r = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise Skip(f"pkg-config fuse3: {r.stdout.strip() or 'failed'}")
    cmd = [cc, "-O2", "-Wall"] + PTLL_DEFINES + ["-o", binary, src] + r.stdout.split()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        raise Skip("cannot compile passthrough_ll: " + (lines[-1] if lines else "cc failed"))
    return binary


class PtllTarget(FuseTarget):
    """libfuse's passthrough_ll over a tmpfs: the FUSE reference peer."""
    name = "passthrough_ll"
    tool = "passthrough_ll"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.back = os.path.join(ctx.workdir, "ptll-back")
        opts = ctx.ptll_opts
        self.desc = ("libfuse's passthrough_ll example (libfuse3-dev, compiled here with -O2 "
                     f"{' '.join(PTLL_DEFINES)}), -o source=a tmpfs" +
                     (f",{opts}" if opts else " (its defaults: cache=auto, timeout=1 s, "
                      "no writeback), multi-threaded"))

    def start(self):
        self.binary = build_passthrough_ll(self.ctx.workdir)
        mount_tmpfs(self.back, self.ctx.tmpfs_size)
        mnt = os.path.join(self.ctx.workdir, "mnt", self.name)
        opts = f"source={self.back}" + (f",{self.ctx.ptll_opts}" if self.ctx.ptll_opts else "")
        log = os.path.join(self.ctx.workdir, f"{self.name}.log")
        self.daemon = Daemon(self.ctx.registry, [self.binary, "-f", "-o", opts, mnt], mnt, log)
        try:
            rc, line = self.daemon.start()
        except Failure:
            umount_tmpfs(self.back)
            raise
        if rc is not None:
            self.daemon = None
            umount_tmpfs(self.back)
            raise Failure(f"passthrough_ll exited {rc} before mounting: {line}")
        self.root = mnt

    def stop(self):
        problems = super().stop()
        return problems + umount_tmpfs(self.back)


def refused_option(line):
    """True when a daemon's last line says it did not know an option."""
    low = line.lower()
    return "unknown option" in low or "cache_mode" in low


class TcTarget(FuseTarget):
    """tiercachefs, -f in the background, store on the root filesystem."""
    name = "tc"
    tool = "tiercachefs"
    is_tc = True

    def __init__(self, ctx, name="tc", opts="", mode=None):
        super().__init__(ctx)
        self.name = name
        self.mode = mode  # the cache_mode= value, None for the daemon as it is
        self.opts = opts
        self.store = os.path.join(ctx.workdir, f"{name}-store")
        self.timeout = MOUNT_TIMEOUT  # the scale phase allows more
        self.desc = "tiercachefs " + (f"-o {opts}" if opts else "(default options)")

    def start(self):
        if not os.access(self.ctx.tc_bin, os.X_OK):
            raise Failure(f"no tiercachefs binary at {self.ctx.tc_bin}")
        mnt = os.path.join(self.ctx.workdir, "mnt", self.name)
        self.daemon = self.make_daemon(mnt)
        rc, line = self.daemon.start()
        if rc is not None:
            self.daemon = None
            if self.mode and refused_option(line):
                raise Skip(f"tiercachefs refused -o cache_mode={self.mode} ({line})")
            raise Failure(f"tiercachefs exited {rc} before mounting: {line}")
        self.root = mnt

    def make_daemon(self, mnt):
        cmd = [self.ctx.tc_bin, "-f"]
        if self.opts:
            cmd += ["-o", self.opts]
        cmd += [self.store, mnt]
        return Daemon(self.ctx.registry, cmd, mnt,
                      os.path.join(self.ctx.workdir, f"{self.name}.log"),
                      timeout=self.timeout)

    def stats(self):
        """The tiercache_* counters of .stats, as a dict of floats."""
        out = {}
        with open(os.path.join(self.root, ".stats")) as f:
            for line in f:
                if line.startswith("tiercache_"):
                    k, _, v = line.partition(" ")
                    try:
                        out[k[len("tiercache_"):]] = float(v)
                    except ValueError:
                        pass
        return out


def make_targets(ctx, names):
    """Target objects for the given names, in the given order."""
    out = []
    for n in names:
        if n == "tmpfs":
            out.append(TmpfsTarget(ctx))
        elif n == "plain":
            out.append(PlainTarget(ctx))
        elif n == "bindfs":
            out.append(BindfsTarget(ctx))
        elif n == "rclone":
            out.append(RcloneTarget(ctx))
        elif n == "passthrough_ll":
            out.append(PtllTarget(ctx))
        elif n == "tc":
            out.append(tc_target(ctx, None))
        elif n.startswith("tc-"):
            out.append(tc_target(ctx, n[3:]))
    return out


def tc_target(ctx, mode, name=None, extra=""):
    """A tiercachefs target: -o cache_mode=MODE (None: the daemon as it is)
    plus --tc-opts and extra options, named tc-MODE or tc."""
    opts = [o for o in (f"cache_mode={mode}" if mode else "", ctx.tc_opts, extra) if o]
    return TcTarget(ctx, name or (f"tc-{mode}" if mode else "tc"), ",".join(opts), mode)
