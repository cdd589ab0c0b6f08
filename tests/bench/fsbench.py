#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""fsbench.py - the filesystem benchmark of issues 6, 10 and 11, driven by
scripts/bench.sh.

Mounts every target fresh under WORKDIR (fstargets.py), runs the same phases
on each in interleaved rounds (for round: for phase group: for target, the
target order rotating every round so no target always runs first), and hands
the figures of every round to fsreport.py, which prints markdown tables with
medians and spreads, the ratios of each tiercachefs mode to each peer (libfuse's
passthrough_ll is the FUSE reference), the daemon's .stats counters per step,
and the goals of issues 10 and 11 with PASS/MISS. With --scale it also
measures tiercachefs (and a plain directory) with a small and a large number
of entries in the store, all of them held by the kernel: create and hot-read
rates, mount time and the daemon's peak RSS.

tiercachefs runs once per cache mode (--tc-modes): tc-kernel with -o
cache_mode=kernel and tc-daemon with -o cache_mode=daemon. A binary that
refuses the option is measured as it is, as "tc".

The driver is Python on purpose: every target runs the same os.* calls, so a
ratio compares filesystems, not tools. The price is ~1 us of interpreter per
call, which caps the fastest targets (tmpfs) and so understates how far a
FUSE filesystem is behind them on the hottest paths.

Exit status: 0, or 1 when tiercachefs (any mode) failed to mount, failed a
phase, died or exited non-zero; 2 for a usage error. A peer that fails is
shown as FAIL and does not change the status, nor does a stress-ng stressor
that fails (it counts 0 bogo ops and its error is shown). Progress goes to
stderr, the report to stdout (and to --out DIR as bench.md and bench.json).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsphases  # noqa: E402
import fsreport  # noqa: E402
import fsstress  # noqa: E402
import fstargets  # noqa: E402
from fsreport import count_label, fmt_value, log  # noqa: E402
from fstargets import Failure, Skip  # noqa: E402

PEERS = ["tmpfs", "plain", "bindfs", "rclone", "passthrough_ll"]
ALL_TARGETS = PEERS + ["tc", "diskcache"]
MODES = ("kernel", "daemon")
GROUP_ORDER = ("small", "large", "fsync", "python", "cp", "stress")
MiB = 1 << 20
SCALE_TIMEOUT = 1800  # seconds a big store may take to mount or to unmount
# Directories a phase leaves in a target's root: removed after a failure.
PHASE_DIRS = ("small", "large", "fsync", "pyvalues", "diskcache", "cp", "stress")
# stress-ng sizes of --quick and --ci: with the defaults (1 GiB for iomix,
# sync-file and fallocate) a 2 s run counts 0 or 1 bogo
# ops of the slow stressors, and CI, where all run at once, would need 4 GiB.
# copy-file refuses less than 128 MiB.
SMALL_STRESS_ARGS = ["--iomix-bytes", "16m", "--sync-file-bytes", "16m", "--fallocate-bytes",
                  "16m", "--copy-file-bytes", "128m"]

PRESETS = {
    "full": dict(files=20000, dirs=100, file_size=4096, large_mib=1024, rand_mib=256,
                 rand_secs=5.0, fsync_big_mib=64, fsync_small_mib=1, fsync_secs=5.0,
                 values=10000, value_size=1024, cp_mib=1024, stress_secs=10.0, rounds=3,
                 scale_entries=1000000, scale_base=10000, scale_ops=10000,
                 scale_entry_size=1024),
    "quick": dict(files=1000, dirs=10, file_size=4096, large_mib=32, rand_mib=16,
                  rand_secs=0.5, fsync_big_mib=64, fsync_small_mib=1, fsync_secs=1.0,
                  values=500, value_size=1024, cp_mib=64, stress_secs=2.0, rounds=1,
                  scale_entries=20000, scale_base=2000, scale_ops=1000,
                  scale_entry_size=1024),
    "ci": dict(files=200, dirs=10, file_size=4096, large_mib=8, rand_mib=4,
               rand_secs=0.2, fsync_big_mib=8, fsync_small_mib=1, fsync_secs=0.2,
               values=200, value_size=1024, cp_mib=8, stress_secs=1.0, rounds=1,
               scale_entries=2000, scale_base=200, scale_ops=100,
               scale_entry_size=1024),
}


def is_tc(name):
    return name == "tc" or name.startswith("tc-")


class Bench:
    def __init__(self, args, p, mode):
        self.args = args
        self.p = p
        self.mode = mode         # full, quick or ci
        self.workdir = args.workdir
        self.registry = fstargets.Registry(args.workdir)
        self.tc_bin = args.tc_bin
        self.tc_opts = args.tc_opts
        self.ptll_opts = args.ptll_opts
        need = (p.large_mib + p.rand_mib + 2 * p.cp_mib + p.fsync_big_mib) * MiB + \
            2 * p.files * max(p.file_size, 4096)
        # + 4 GiB for stress-ng's files (iomix writes 1 GiB by default); a
        # tmpfs limit costs nothing until used.
        self.tmpfs_size = f"{need // MiB + 4096 + 512}m"
        self.notes = []          # lines for the report header
        self.tc_failures = []    # any entry makes the exit status 1
        self.results = {}        # group -> workload -> target -> {round: value}
        self.failures = {}       # (group, target) -> message: the phase stopped
        self.step_failures = {}  # (group, target, workload) -> a step's check failed
        self.stress_errors = {}  # (target, stressor) -> error of the last failed run
        self.counters = {}       # (group, target) -> workload -> deltas (last round)
        self.targets = []        # mounted targets, in order
        self.started = []        # (name, desc) of every target that was mounted
        self.skipped = {}        # target name -> reason
        self.tc_modes = []       # cache_mode of each mounted tc target (None: as is)
        self.scale = None
        self.drop_failed = None

    def note(self, line):
        self.notes.append(line)
        log(line)

    def drop_caches(self):
        os.sync()
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError as e:
            if not self.drop_failed:
                self.drop_failed = str(e)
                self.note(f"cannot drop caches ({e}): the 'cold' figures are warm")

    # --- targets -----------------------------------------------------------

    def start_one(self, t):
        """Mount t; True on success. A Skip or a failure is noted."""
        try:
            t.start()
        except Skip as e:
            self.skipped[t.name] = str(e)
            self.note(f"skipped {t.name}: {e}")
            return False
        except Failure as e:
            self.skipped[t.name] = f"FAILED to mount: {e}"
            self.note(f"{t.name} failed to mount: {e}")
            if t.is_tc:
                self.tc_failures.append(f"{t.name}: mount: {e}")
            return False
        log(f"mounted {t.name}: {t.desc} on {t.root}")
        self.targets.append(t)
        self.started.append((t.name, t.desc))
        if t.is_tc:
            self.tc_modes.append(t.mode)
        return True

    def start_targets(self):
        for name in [n for n in PEERS if n in self.args.targets]:
            self.start_one(fstargets.make_targets(self, [name])[0])
        if "tc" not in self.args.targets:
            return
        modes = self.args.tc_modes
        auto = modes == ["auto"]
        if auto:
            modes = list(MODES)
        refused = []
        for m in modes:
            t = fstargets.tc_target(self, None if m == "asis" else m)
            if not self.start_one(t) and "refused" in self.skipped.get(t.name, ""):
                refused.append(t.name)
        if auto and refused == [f"tc-{m}" for m in MODES]:
            # A binary without cache_mode: not a skip, the daemon as it is.
            for n in refused:
                del self.skipped[n]
            self.notes = [n for n in self.notes
                          if not any(n.startswith(f"skipped {r}:") for r in refused)]
            self.note("this tiercachefs refuses -o cache_mode=: measured as it is, as "
                      "'tc' (--tc-modes)")
            self.start_one(fstargets.tc_target(self, None))

    def stop_targets(self):
        for t in reversed(self.targets):
            try:
                problems = t.stop()
            except Exception as e:  # keep stopping the others
                problems = [f"stop: {e}"]
            for pr in problems:
                self.note(f"{t.name}: {pr}")
                if t.is_tc:
                    self.tc_failures.append(f"{t.name}: {pr}")
        self.targets = []

    # --- phases ------------------------------------------------------------

    def group_targets(self, group, targets):
        """The targets a group runs on, in order."""
        if group == "stress":
            want = self.args.stress_targets
            if want != ["all"]:
                targets = [t for t in targets
                           if t.name in want or (t.is_tc and "tc" in want)]
        return targets

    def phase_fn(self, group, target):
        p = self.p
        if group == "small":
            return lambda root, rnd, rec: fsphases.small_files(root, p, rnd, rec)
        if group == "large":
            return lambda root, rnd, rec: fsphases.large_files(root, p, rnd, rec,
                                                              self.drop_caches)
        if group == "fsync":
            return lambda root, rnd, rec: fsphases.rand_fsync(root, p, rnd, rec)
        if group == "cp":
            return lambda root, rnd, rec: fsphases.cp_big(root, p, rnd, rec, target.quiesce)
        if group == "stress":
            return lambda root, rnd, rec: self.stress(target, rec)
        if target.name == "diskcache":
            return lambda root, rnd, rec: fsphases.py_diskcache(root, p, rnd, rec)
        return lambda root, rnd, rec: fsphases.py_values(root, p, rnd, rec)

    def stress(self, target, rec):
        """stress-ng's stressors on target, one after another (all at once in
        CI mode); a failed stressor counts 0 and keeps its error."""
        tmp = os.path.join(target.root, "stress")
        extra = self.args.stress_opts.split()
        batches = [[s] for s in fsstress.STRESSORS]
        if self.mode == "ci":
            batches = [fsstress.STRESSORS]
        if self.mode != "full":
            extra = SMALL_STRESS_ARGS + extra
        for batch in batches:
            res = fsstress.run(self.registry, self.workdir, tmp, batch, self.p.stress_secs,
                               extra)
            for name, (ops, err) in res.items():
                rec.values[name] = ops
                if err:
                    self.stress_errors[(target.name, name)] = err
                    log(f"  {target.name} stress-ng {name}: {err}")
            problem = target.problem()
            if problem:
                raise Failure(problem)
            target.quiesce()

    def run_one(self, group, target, rnd):
        key = (group, target.name)
        if key in self.failures:
            return
        rec = fsphases.Recorder(target)
        t0 = time.perf_counter()
        try:
            self.phase_fn(group, target)(target.root, rnd, rec)
            problem = target.problem()
            if problem:
                raise Failure(problem)
            target.quiesce()
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            problem = target.problem()
            if problem and problem not in msg:
                msg += f" ({problem})"
            self.failures[key] = msg
            log(f"  {target.name} {group}: FAILED: {msg}")
            if self.args.verbose:
                traceback.print_exc()
            if target.is_tc:
                self.tc_failures.append(f"{target.name} {group}: {msg}")
            # The steps measured before the failure stand.
            self.keep(group, target, rnd, rec)
            if problem is None:
                # Leftovers of the failed phase must not slow the other phases.
                for sub in PHASE_DIRS:
                    subprocess.run(["rm", "-rf", "--one-file-system",
                                    os.path.join(target.root, sub)],
                                   stderr=subprocess.DEVNULL)
            return
        self.keep(group, target, rnd, rec)
        log(f"  {target.name:14s} {group:6s} {time.perf_counter() - t0:6.1f} s  " +
            "  ".join(f"{w}={fmt_value(v)}" for w, v in rec.values.items()))

    def keep(self, group, target, rnd, rec):
        """File the figures of one round of one group on one target, and the
        steps whose checks failed."""
        for w, msg in rec.failed.items():
            self.step_failures[(group, target.name, w)] = msg
            log(f"  {target.name} {group} {w}: FAILED: {msg}")
            if target.is_tc:
                self.tc_failures.append(f"{target.name} {group} {w}: {msg}")
        g = self.results.setdefault(group, {})
        for w, v in rec.values.items():
            g.setdefault(w, {}).setdefault(target.name, {})[rnd] = v
        if group == "fsync" and rec.values.get("fsync_small") and "fsync_big" in rec.values:
            g.setdefault("fsync_ratio", {}).setdefault(target.name, {})[rnd] = \
                rec.values["fsync_big"] / rec.values["fsync_small"]
        if rec.counters:
            self.counters[(group, target.name)] = rec.counters

    def run_rounds(self):
        groups = [g for g in GROUP_ORDER if g in self.args.groups]
        if "stress" in groups and fsstress.available():
            why = fsstress.available()
            self.note(f"stress-ng phase skipped: {why}")
            self.skipped["stress-ng"] = why
            groups.remove("stress")
        diskcache = None
        if "python" in groups and "diskcache" in self.args.targets:
            diskcache = self.diskcache_target()
        for rnd in range(1, self.p.rounds + 1):
            for group in groups:
                order = self.group_targets(group, list(self.targets))
                if group == "python" and diskcache:
                    order.append(diskcache)
                k = (rnd - 1) % len(order) if order else 0
                order = order[k:] + order[:k]
                log(f"round {rnd}/{self.p.rounds}: {group}")
                for t in order:
                    self.run_one(group, t, rnd)

    def diskcache_target(self):
        try:
            import diskcache
        except ImportError:
            self.skipped["diskcache"] = "python3-diskcache is not installed"
            self.note("skipped diskcache: python3-diskcache is not installed")
            return None
        plain = next((t for t in self.targets if t.name == "plain"), None)
        t = fstargets.Target(self)
        t.name = "diskcache"
        t.desc = f"python-diskcache {diskcache.__version__} Cache, directory on the root fs"
        if plain:
            t.root = plain.root
        else:
            t.root = os.path.join(self.workdir, "diskcache-dir")
            os.makedirs(t.root, exist_ok=True)
        self.started.append((t.name, t.desc))
        return t

    # --- scale -------------------------------------------------------------

    def scale_modes(self):
        """cache_mode values to try for the scale phase, best first: the
        first mode measured in the rounds, else --tc-modes."""
        if self.tc_modes:
            return [self.tc_modes[0]]
        modes = self.args.tc_modes
        if modes == ["auto"]:
            return list(MODES) + [None]
        return [None if m == "asis" else m for m in modes]

    def start_scale_tc(self, name):
        """Mount a tiercachefs for the scale phase with ram_size, in the
        first mode the binary accepts. @return the target; raises like
        start()."""
        extra = f"ram_size={self.args.scale_ram_size}"
        err = None
        for m in self.scale_modes():
            t = fstargets.tc_target(self, m, name=name, extra=extra)
            t.timeout = SCALE_TIMEOUT
            try:
                t.start()
                return t
            except Skip as e:
                err = e
        raise err or Skip("no cache mode to try")

    def run_scale(self):
        p = self.p
        sizes = [p.scale_base, p.scale_entries]
        sp = types.SimpleNamespace(**vars(p))
        sp.files = p.scale_ops
        sp.dirs = min(100, max(1, p.scale_ops // 100))
        sp.file_size = 4096
        insts = []  # (kind, size, target)
        sc = {"sizes": sizes, "values": {}, "mount": {}, "hwm": {}, "ram_limit": {},
              "populate": {}, "stat_all": {}, "failures": {}, "skipped": {}, "desc": {}}
        self.scale = sc
        for kind in [k for k in ("tc", "plain") if k in self.args.scale_targets]:
            for n in sizes:
                name = f"{kind}-scale-{count_label(n)}"
                try:
                    if kind == "tc":
                        t = self.start_scale_tc(name)
                    else:
                        t = fstargets.PlainTarget(self, name)
                        t.start()
                except (Skip, Failure) as e:
                    sc["skipped"][name] = str(e)
                    self.note(f"scale: {name}: {e}")
                    if kind == "tc":
                        self.tc_failures.append(f"{name}: mount: {e}")
                    continue
                sc["desc"][name] = t.desc
                insts.append((kind, n, t))
                self.targets.append(t)

        def progress(t, n):
            if n < 100000:
                return None
            return lambda i, s: log(f"  {t.name}: {i:,} entries, {i / s:,.0f}/s")

        for kind, n, t in insts:
            log(f"scale: populating {t.name} with {n:,} entries of {p.scale_entry_size} B")
            try:
                secs = fsphases.populate(t.root, n, p.scale_entry_size,
                                         self.args.populate_jobs, progress(t, n))
                sc["populate"][t.name] = n / secs
                log(f"  {t.name}: {n:,} entries in {secs:.1f} s ({n / secs:,.0f}/s)")
                # A stat of every entry: the kernel now holds all the names
                # (dentries and inodes), and so does the daemon.
                secs = fsphases.stat_all(t.root, n)
                sc["stat_all"][t.name] = n / secs
                log(f"  {t.name}: stat of all {n:,} entries in {secs:.1f} s")
            except Exception as e:
                self.scale_fail(t, f"populate: {type(e).__name__}: {e}")

        for rnd in range(1, p.rounds + 1):
            log(f"scale round {rnd}/{p.rounds}")
            for kind, n, t in insts:
                if t.name in sc["failures"]:
                    continue
                rec = fsphases.Recorder(t)
                try:
                    fsphases.small_files(t.root, sp, 1000 + rnd, rec)
                    if t.problem():
                        raise Failure(t.problem())
                    if rec.failed:
                        raise Failure("; ".join(rec.failed.values()))
                except Exception as e:
                    self.scale_fail(t, f"{type(e).__name__}: {e}")
                    continue
                for w, v in rec.values.items():
                    sc["values"].setdefault(w, {}).setdefault(t.name, []).append(v)
                log(f"  {t.name:16s} " + "  ".join(f"{w}={fmt_value(v)}"
                                                    for w, v in rec.values.items()))

        for kind, n, t in insts:
            if kind != "tc" or t.name in sc["failures"]:
                continue
            sc["hwm"][t.name] = t.daemon.vm_hwm()
            try:
                sc["ram_limit"][t.name] = t.stats().get("ram_limit_bytes")
            except OSError as e:
                self.scale_fail(t, f".stats: {e}")

        # Mount time: unmount, mount again (page cache warm), then again
        # after dropping caches (cold), with a stat of the last entry.
        for rnd in range(1, p.rounds + 1):
            for kind, n, t in insts:
                if kind != "tc" or t.name in sc["failures"]:
                    continue
                last = fsphases.populate_path("", n - 1).lstrip("/")
                for mode in ("warm", "cold"):
                    rc, problems = t.daemon.stop()
                    if rc != 0 or problems:
                        self.scale_fail(t, f"unmount: exit {rc} {' '.join(problems)}")
                        break
                    if mode == "cold":
                        self.drop_caches()
                    rc, line = t.daemon.start(
                        ready=lambda m: os.stat(os.path.join(m, last)))
                    if rc is not None:
                        t.daemon.proc = None
                        self.scale_fail(t, f"remount: exited {rc}: {line}")
                        break
                    sc["mount"].setdefault(mode, {}).setdefault(t.name, []).append(
                        t.daemon.mount_seconds)
                    log(f"  {t.name}: mount ({mode}) {t.daemon.mount_seconds:.3f} s")

    def scale_fail(self, t, msg):
        self.scale["failures"][t.name] = msg
        self.note(f"scale: {t.name}: FAILED: {msg}")
        if t.is_tc:
            self.tc_failures.append(f"{t.name}: {msg}")


def git_commit(top):
    try:
        c = subprocess.run(["git", "-C", top, "describe", "--always", "--dirty"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True).stdout.strip()
        return c or "unknown"
    except OSError:
        return "unknown"


def loadavg():
    """Load average and the CPU pressure (PSI some avg60): how shared the
    machine was."""
    with open("/proc/loadavg") as f:
        s = " ".join(f.read().split()[:3])
    try:
        with open("/proc/pressure/cpu") as f:
            psi = f.readline().split()[2].partition("=")[2]
        s += f" (CPU pressure {psi}%)"
    except (OSError, IndexError):
        pass
    return s


def split_list(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="scripts/bench.sh",
        description="Benchmark tiercachefs against tmpfs, a plain directory, bindfs, "
                    "rclone mount, libfuse's passthrough_ll and python-diskcache "
                    "(issues 6, 10, 11).")
    ap.add_argument("--workdir", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--tc-bin", required=True, help="the tiercachefs binary to measure")
    ap.add_argument("--quick", action="store_true",
                    help="small counts, 1 round (a couple of minutes)")
    ap.add_argument("--ci", action="store_true",
                    help="tiny counts, 1 round: checks that every phase runs; exit 1 "
                         "if tiercachefs fails one")
    ap.add_argument("--scale", action="store_true",
                    help="also the scale phase (populates 1,000,000 entries: long)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS),
                    help="comma-separated subset of: %(default)s (tc: every mode of "
                         "--tc-modes)")
    ap.add_argument("--groups", default=",".join(GROUP_ORDER),
                    help="phase groups to run (default %(default)s; '' for none, "
                         "e.g. with --scale)")
    ap.add_argument("--tc-modes", default="auto",
                    help="tiercachefs targets: comma-separated cache_mode values, each a "
                         "target tc-MODE (-o cache_mode=MODE), or 'asis' for the daemon "
                         "without the option (target tc). Default auto: kernel,daemon "
                         "when the binary accepts cache_mode, else asis. A mode the "
                         "binary refuses is skipped with a line")
    ap.add_argument("--tc-opts", default="",
                    help="extra -o options for every tiercachefs mount")
    ap.add_argument("--ptll-opts", default="",
                    help="extra -o options for passthrough_ll (besides source=)")
    ap.add_argument("--files", type=int, help="small files (default 20000)")
    ap.add_argument("--dirs", type=int, help="directories for them (default 100)")
    ap.add_argument("--file-size", type=int, help="small file size in bytes (default 4096)")
    ap.add_argument("--large-mib", type=int, help="sequential file size in MiB (default 1024)")
    ap.add_argument("--rand-mib", type=int, help="random-read file size in MiB (default 256)")
    ap.add_argument("--rand-secs", type=float, help="random-read duration (default 5)")
    ap.add_argument("--fsync-big-mib", type=int,
                    help="big file of the random fsync phase, MiB (default 64)")
    ap.add_argument("--fsync-small-mib", type=int,
                    help="small file of the random fsync phase, MiB (default 1)")
    ap.add_argument("--fsync-secs", type=float,
                    help="duration of each random fsync run (default 5; quick 1)")
    ap.add_argument("--values", type=int, help="Python values (default 10000)")
    ap.add_argument("--value-size", type=int, help="Python value size (default 1024)")
    ap.add_argument("--cp-mib", type=int,
                    help="file copied with cp inside the mount, MiB (default 1024; quick 64)")
    ap.add_argument("--stress-secs", type=float,
                    help="seconds per stress-ng stressor (default 10; quick 2)")
    ap.add_argument("--stress-targets", default="tmpfs,plain,passthrough_ll,tc",
                    help="targets of the stress-ng phase (default %(default)s; 'all')")
    ap.add_argument("--stress-opts", default="",
                    help="extra stress-ng arguments, e.g. '--iomix-bytes 256m'")
    ap.add_argument("--scale-entries", type=int, help="large store (default 1000000)")
    ap.add_argument("--scale-base", type=int, help="small store (default 10000)")
    ap.add_argument("--scale-ops", type=int, help="files created/read per scale round "
                                                  "(default 10000)")
    ap.add_argument("--scale-entry-size", type=int, help="populated entry size (default 1024)")
    ap.add_argument("--scale-ram-size", default="256M",
                    help="ram_size= of the scale phase's tiercachefs (default %(default)s)")
    ap.add_argument("--populate-jobs", type=int, default=2,
                    help="processes populating the scale stores (default %(default)s)")
    ap.add_argument("--scale-targets", default="tc,plain",
                    help="scale phase targets: tc, plain (default %(default)s)")
    ap.add_argument("--out", help="also write bench.md and bench.json into this directory")
    ap.add_argument("--verbose", action="store_true", help="tracebacks of failures")
    a = ap.parse_args(argv)
    a.targets = split_list(a.targets)
    a.groups = split_list(a.groups)
    a.scale_targets = split_list(a.scale_targets)
    a.stress_targets = split_list(a.stress_targets)
    a.tc_modes = split_list(a.tc_modes) or ["auto"]
    bad = [t for t in a.targets if t not in ALL_TARGETS]
    bad += [g for g in a.groups if g not in GROUP_ORDER]
    bad += [t for t in a.scale_targets if t not in ("tc", "plain")]
    bad += [t for t in a.stress_targets if t not in ALL_TARGETS + ["all"] and not is_tc(t)]
    bad += [m for m in a.tc_modes if "," in m or not m.replace("_", "").isalnum()]
    if bad:
        ap.error(f"unknown target, group or mode: {', '.join(bad)}")
    if "auto" in a.tc_modes and len(a.tc_modes) > 1:
        ap.error("--tc-modes auto stands alone")
    mode = "ci" if a.ci else ("quick" if a.quick else "full")
    p = dict(PRESETS[mode])
    for k in p:
        v = getattr(a, k, None)
        if v is not None:
            p[k] = v
    if p["rounds"] < 1 or p["files"] < 1 or p["dirs"] < 1 or p["values"] < 1 or \
            p["large_mib"] < 1 or p["rand_mib"] < 1 or p["scale_base"] < 1 or \
            p["fsync_big_mib"] < 1 or p["fsync_small_mib"] < 1 or p["cp_mib"] < 1 or \
            p["stress_secs"] <= 0 or p["fsync_secs"] <= 0 or \
            p["scale_entries"] <= p["scale_base"] or p["scale_entry_size"] < 8:
        ap.error("counts must be positive (and --scale-entries > --scale-base)")
    return a, types.SimpleNamespace(**p), mode


def main(argv):
    args, p, mode = parse_args(argv)
    args.workdir = os.path.realpath(args.workdir)
    b = Bench(args, p, mode)
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": git_commit(top),
            "kernel": platform.release(), "cpus": os.cpu_count(), "mode": mode,
            "load_start": loadavg(), "tc_bin": args.tc_bin}
    t_start = time.perf_counter()
    try:
        if args.groups:
            b.start_targets()
            if not any(t.is_tc for t in b.targets):
                b.note("no tiercachefs target is mounted")
        b.run_rounds()
        if args.scale:
            b.run_scale()
    except KeyboardInterrupt:
        b.note("interrupted")
        b.tc_failures.append("interrupted")
        fstargets.close_fds_below(os.path.join(args.workdir, "mnt"))
    finally:
        b.stop_targets()
    meta["load_end"] = loadavg()
    meta["seconds"] = round(time.perf_counter() - t_start, 1)
    out = fsreport.report(b, meta)
    out.append(f"Run time {meta['seconds']:.0f} s.")
    if b.tc_failures:
        out.append("")
        out.append("tiercachefs FAILED: " + "; ".join(b.tc_failures))
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench.md"), "w") as f:
            f.write(text)
        with open(os.path.join(args.out, "bench.json"), "w") as f:
            json.dump({"meta": meta, "params": vars(p), "results": b.results,
                       "failures": {f"{g}/{t}": m for (g, t), m in b.failures.items()},
                       "step_failures": {f"{g}/{t}/{w}": m
                                         for (g, t, w), m in b.step_failures.items()},
                       "stress_errors": {f"{t}/{s}": m
                                         for (t, s), m in b.stress_errors.items()},
                       "counters": {f"{g}/{t}": c for (g, t), c in b.counters.items()},
                       "scale": b.scale, "skipped": b.skipped,
                       "tc_failures": b.tc_failures}, f, indent=1)
    return 1 if b.tc_failures else 0


if __name__ == "__main__":
    import signal

    def on_term(signum, frame):
        raise KeyboardInterrupt()

    # SIGTERM (timeout, the shell trap) unwinds like Ctrl-C, so mounts go.
    signal.signal(signal.SIGTERM, on_term)
    sys.exit(main(sys.argv[1:]))
