#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""fsbench.py - the filesystem benchmark of issue 6, driven by scripts/bench.sh.

Mounts every target fresh under WORKDIR (fstargets.py), runs the same phases
on each in interleaved rounds (for round: for phase group: for target, the
target order rotating every round so no target always runs first), and prints
markdown tables of ops/s and MiB/s (medians over the rounds) with each
target's ratio to tmpfs and tiercachefs's ratio to each target, the daemon's
.stats counters per step, and the goals of the issue with PASS/MISS. With
--scale it also measures tiercachefs (and a plain directory) with a small and
a large number of entries in the store: create and hot-read rates, mount time
and the daemon's peak RSS.

The driver is Python on purpose: every target runs the same os.* calls, so a
ratio compares filesystems, not tools. The price is ~1 us of interpreter per
call, which caps the fastest targets (tmpfs) and so understates how far a
FUSE filesystem is behind them on the hottest paths.

Exit status: 0, or 1 when tiercachefs (any mode) failed to mount, failed a
phase, died or exited non-zero; 2 for a usage error. A peer that fails is
shown as FAIL and does not change the status. Progress goes to stderr, the
report to stdout (and to --out DIR as bench.md and bench.json).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsphases  # noqa: E402
import fstargets  # noqa: E402
from fstargets import Failure, Skip  # noqa: E402

ALL_TARGETS = ["tmpfs", "plain", "bindfs", "rclone", "tc", "tc-kc"]
TC_MODES = ("tc", "tc-kc")
MiB = 1 << 20
SCALE_TIMEOUT = 1800  # seconds a big store may take to mount or to unmount

PRESETS = {
    "full": dict(files=20000, dirs=100, file_size=4096, large_mib=1024, rand_mib=256,
                 rand_secs=5.0, values=10000, value_size=1024, rounds=3,
                 scale_entries=1000000, scale_base=10000, scale_ops=10000,
                 scale_entry_size=1024),
    "quick": dict(files=1000, dirs=10, file_size=4096, large_mib=32, rand_mib=16,
                  rand_secs=0.5, values=500, value_size=1024, rounds=1,
                  scale_entries=20000, scale_base=2000, scale_ops=1000,
                  scale_entry_size=1024),
    "ci": dict(files=200, dirs=10, file_size=4096, large_mib=8, rand_mib=4,
               rand_secs=0.2, values=200, value_size=1024, rounds=1,
               scale_entries=2000, scale_base=200, scale_ops=100,
               scale_entry_size=1024),
}

# Phase groups: (key, workloads as (key, label, unit)).
GROUPS = {
    "small": [("create", "create+write+close", "ops/s"),
              ("stat", "stat", "ops/s"),
              ("read1", "open+read+close, 1st pass", "ops/s"),
              ("read2", "open+read+close, 2nd pass (hot)", "ops/s"),
              ("unlink", "unlink", "ops/s")],
    "large": [("write", "seq write, 1 MiB writes + fsync", "MiB/s"),
              ("read_cold", "seq read cold (after drop_caches)", "MiB/s"),
              ("read_hot", "seq read hot", "MiB/s"),
              ("rand", "4 KiB random reads (pread)", "ops/s")],
    "python": [("set", "set: write a value as a file / Cache.set", "ops/s"),
               ("get", "get: read it back / Cache.get", "ops/s")],
}
SCALE_ROWS = [("create", "create+write+close 4 KiB", "ops/s"),
              ("stat", "stat", "ops/s"),
              ("read2", "open+read+close, 2nd pass (hot)", "ops/s"),
              ("unlink", "unlink", "ops/s")]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def count_label(n):
    if n >= 1000000 and n % 1000000 == 0:
        return f"{n // 1000000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def fmt_value(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_ratio(r):
    if r is None:
        return "—"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.3f}×"


def fmt_bytes(b):
    return "—" if b is None else f"{b / MiB:,.0f} MiB"


def median(vals):
    return statistics.median(vals) if vals else None


class Bench:
    def __init__(self, args, p):
        self.args = args
        self.p = p
        self.workdir = args.workdir
        self.registry = fstargets.Registry(args.workdir)
        self.tc_bin = args.tc_bin
        self.tc_opts = args.tc_opts
        self.kc_opts = args.tc_kernel_cache
        need = (p.large_mib + p.rand_mib) * MiB + 2 * p.files * max(p.file_size, 4096)
        self.tmpfs_size = f"{max(1024, need // MiB + 512)}m"
        self.notes = []          # lines for the report header
        self.tc_failures = []    # any entry makes the exit status 1
        self.results = {}        # group -> workload -> target -> [values]
        self.failures = {}       # (group, target) -> message
        self.counters = {}       # (group, target) -> workload -> deltas (last round)
        self.targets = []        # mounted targets, in order
        self.started = []        # (name, desc) of every target that was mounted
        self.skipped = {}        # target name -> reason
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

    def start_targets(self):
        names = [n for n in ALL_TARGETS if n in self.args.targets]
        if "tc-kc" in names and not self.kc_opts:
            self.skipped["tc-kc"] = "kernel-caching mode disabled (--tc-kernel-cache=off)"
            log(f"skipped tc-kc: {self.skipped['tc-kc']}")
        for t in fstargets.make_targets(self, names):
            try:
                t.start()
            except Skip as e:
                self.skipped[t.name] = str(e)
                self.note(f"skipped {t.name}: {e}")
                continue
            except Failure as e:
                self.skipped[t.name] = f"FAILED to mount: {e}"
                self.note(f"{t.name} failed to mount: {e}")
                if t.is_tc:
                    self.tc_failures.append(f"{t.name}: mount: {e}")
                continue
            log(f"mounted {t.name}: {t.desc} on {t.root}")
            self.targets.append(t)
            self.started.append((t.name, t.desc))

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

    def phase_fn(self, group, target):
        if group == "small":
            return lambda root, rnd, rec: fsphases.small_files(root, self.p, rnd, rec)
        if group == "large":
            return lambda root, rnd, rec: fsphases.large_files(root, self.p, rnd, rec,
                                                              self.drop_caches)
        if target.name == "diskcache":
            return lambda root, rnd, rec: fsphases.py_diskcache(root, self.p, rnd, rec)
        return lambda root, rnd, rec: fsphases.py_values(root, self.p, rnd, rec)

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
            if problem is None:
                # Leftovers of the failed phase must not slow the other phases.
                for sub in ("small", "large", "pyvalues", "diskcache"):
                    subprocess.run(["rm", "-rf", "--one-file-system",
                                    os.path.join(target.root, sub)],
                                   stderr=subprocess.DEVNULL)
            return
        g = self.results.setdefault(group, {})
        for w, v in rec.values.items():
            g.setdefault(w, {}).setdefault(target.name, []).append(v)
        if rec.counters:
            self.counters[key] = rec.counters
        log(f"  {target.name:8s} {group:6s} {time.perf_counter() - t0:6.1f} s  " +
            "  ".join(f"{w}={fmt_value(v)}" for w, v in rec.values.items()))

    def run_rounds(self):
        groups = [g for g in ("small", "large", "python") if g in self.args.groups]
        diskcache = None
        if "python" in groups and "diskcache" in self.args.targets:
            diskcache = self.diskcache_target()
        for rnd in range(1, self.p.rounds + 1):
            for group in groups:
                order = list(self.targets)
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
        return t

    # --- scale -------------------------------------------------------------

    def run_scale(self):
        p = self.p
        sizes = [p.scale_base, p.scale_entries]
        sp = types.SimpleNamespace(**vars(p))
        sp.files = p.scale_ops
        sp.dirs = min(100, max(1, p.scale_ops // 100))
        sp.file_size = 4096
        insts = []  # (kind, size, target)
        sc = {"sizes": sizes, "values": {}, "mount": {}, "hwm": {}, "ram_limit": {},
              "populate": {}, "failures": {}, "skipped": {}}
        self.scale = sc
        for kind in [k for k in ("tc", "plain") if k in self.args.scale_targets]:
            for n in sizes:
                name = f"{kind}-scale-{count_label(n)}"
                if kind == "tc":
                    t = fstargets.TcTarget(self, name, self.tc_opts)
                    t.timeout = SCALE_TIMEOUT
                else:
                    t = fstargets.PlainTarget(self, name)
                try:
                    t.start()
                except (Skip, Failure) as e:
                    sc["skipped"][name] = str(e)
                    self.note(f"scale: {name}: {e}")
                    if kind == "tc":
                        self.tc_failures.append(f"{name}: mount: {e}")
                    continue
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

    # --- report ------------------------------------------------------------

    def med(self, group, workload, target):
        return median(self.results.get(group, {}).get(workload, {}).get(target, []))

    def group_targets(self, group):
        names = [n for n, _ in self.started]
        if group == "python" and ("diskcache" in self.args.targets and
                                  "diskcache" not in self.skipped):
            names.append("diskcache")
        return names

    def cell(self, group, workload, target):
        if (group, target) in self.failures:
            vals = self.results.get(group, {}).get(workload, {}).get(target)
            return "FAIL" if not vals else fmt_value(median(vals)) + " (FAIL)"
        return fmt_value(self.med(group, workload, target))

    def table(self, out, group, title):
        names = self.group_targets(group)
        if not names:
            return
        rows = GROUPS[group]
        out.append(f"### {title}")
        out.append("")
        out.append("| workload | unit | " + " | ".join(names) + " |")
        out.append("|---|---|" + "---:|" * len(names))
        spread = 0.0
        for w, label, unit in rows:
            cells = [self.cell(group, w, n) for n in names]
            out.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
            for n in names:
                vals = self.results.get(group, {}).get(w, {}).get(n, [])
                if len(vals) > 1 and median(vals) > 0:
                    spread = max(spread, (max(vals) - min(vals)) / median(vals))
        out.append("")
        cols = [(n, "tmpfs") for n in names if n != "tmpfs" and "tmpfs" in names]
        for m in TC_MODES:
            if m in names:
                cols += [(m, n) for n in names if n not in TC_MODES and n != "tmpfs"]
        if cols:
            out.append("| workload | " + " | ".join(f"{a}/{b}" for a, b in cols) + " |")
            out.append("|---|" + "---:|" * len(cols))
            for w, label, unit in rows:
                cells = [fmt_ratio(self.ratio(group, w, a, b)) for a, b in cols]
                out.append(f"| {label} | " + " | ".join(cells) + " |")
            out.append("")
        fails = [f"{n}: {self.failures[(group, n)]}" for n in names
                 if (group, n) in self.failures]
        for f in fails:
            out.append(f"FAIL {f}  ")
        if self.p.rounds > 1:
            out.append(f"Medians of {self.p.rounds} rounds; the widest spread "
                       f"(max−min)/median of a cell is {spread * 100:.0f}%.")
            out.append("")

    def ratio(self, group, w, a, b):
        va, vb = self.med(group, w, a), self.med(group, w, b)
        if va is None or vb is None or vb == 0 or (group, a) in self.failures or \
                (group, b) in self.failures:
            return None
        return va / vb

    def counters_table(self, out):
        rows = []
        for group in ("small", "large", "python"):
            for m in TC_MODES:
                c = self.counters.get((group, m))
                if not c:
                    continue
                labels = {w: l for w, l, _ in GROUPS[group]}
                for w, d in c.items():
                    rows.append(f"| {m} | {group}: {labels.get(w, w)} | {d['ops']:,} | " +
                                " | ".join(f"{int(d[k]):,}" for k in fsphases.COUNTERS) + " |")
        if not rows:
            return
        out.append("### What the tiercachefs daemon saw (.stats deltas per step, last round)")
        out.append("")
        out.append("ops = opens/operations the step issued (MiB for sequential I/O, "
                   "preads for random reads); gets = opens for reading the daemon saw.")
        out.append("")
        out.append("| mode | step | ops | " + " | ".join(fsphases.COUNTERS) + " |")
        out.append("|---|---|---:|" + "---:|" * len(fsphases.COUNTERS))
        out.extend(rows)
        out.append("")

    def goals(self, out):
        G = []  # (goal, target text, measured text, ok or None)
        kc = "tc-kc" if "tc-kc" in [n for n, _ in self.started] else None

        def r(group, w, a, b):
            return self.ratio(group, w, a, b)

        def also_kc(group, w, b):
            if not kc:
                return ""
            x = r(group, w, kc, b)
            return f" (tc-kc {fmt_ratio(x)})" if x is not None else ""

        def row(goal, want, x, thr, extra="", op=">="):
            ok = None if x is None else (x >= thr if op == ">=" else x < thr)
            G.append((goal, want, fmt_ratio(x) + extra, ok))

        c = self.counters.get(("small", "tc"), {}).get("read2")
        seen = ""
        if c:
            seen = (f"; daemon saw {int(c['gets']):,} gets for {c['ops']:,} opens"
                    + ("" if int(c["gets"]) == c["ops"] else " (NOT every open)"))
        row("hot 4 KiB read, every open seen by the daemon", "≥ 3× bindfs",
            r("small", "read2", "tc", "bindfs"), 3.0, seen)
        if kc:
            c = self.counters.get(("small", kc), {}).get("read2")
            seen = (f"; daemon saw {int(c['gets']):,} gets for {c['ops']:,} opens"
                    if c else "")
            row("same with kernel caching", "≥ 0.5× tmpfs",
                r("small", "read2", kc, "tmpfs"), 0.5, seen)
        else:
            G.append(("same with kernel caching", "≥ 0.5× tmpfs",
                      "not measured: " + self.skipped.get("tc-kc", "tc-kc not selected"), None))
        row("stat of cached entries", "≥ 0.5× tmpfs", r("small", "stat", "tc", "tmpfs"),
            0.5, also_kc("small", "stat", "tmpfs"))
        row("4 KiB create+write+close", "≥ 1.0× plain dir",
            r("small", "create", "tc", "plain"), 1.0, also_kc("small", "create", "plain"))
        row(f"{self.p.large_mib:,} MiB seq write + fsync", "≥ 0.9× plain dir",
            r("large", "write", "tc", "plain"), 0.9, also_kc("large", "write", "plain"))
        row("seq read hot", "≥ 0.8× tmpfs", r("large", "read_hot", "tc", "tmpfs"), 0.8,
            also_kc("large", "read_hot", "tmpfs"))
        row("seq read cold", "≥ 0.8× plain dir", r("large", "read_cold", "tc", "plain"),
            0.8, also_kc("large", "read_cold", "plain"))
        pm = kc or "tc"
        note = "" if kc else " (default mode: no kernel-caching mode)"
        row(f"Python values as files vs diskcache: set ({pm})", "≥ 1.0×",
            r("python", "set", pm, "diskcache"), 1.0, note)
        row(f"Python values as files vs diskcache: get ({pm})", "≥ 0.5×",
            r("python", "get", pm, "diskcache"), 0.5, note)
        worst = None
        for w in ("create", "stat", "read2", "unlink"):
            x = r("small", w, "tc", "rclone")
            if x is not None and (worst is None or x < worst[0]):
                worst = (x, w)
        if worst:
            row("every small-file phase vs rclone", "≥ 5×", worst[0], 5.0,
                f" (lowest: {worst[1]})")
        else:
            G.append(("every small-file phase vs rclone", "≥ 5×", "not measured", None))
        self.scale_goals(G)

        out.append("### Goals (issue 6)")
        out.append("")
        out.append("| goal | target | measured (tc/peer) | result |")
        out.append("|---|---|---|---|")
        for goal, want, meas, ok in G:
            res = "—" if ok is None else ("PASS" if ok else "MISS")
            out.append(f"| {goal} | {want} | {meas} | {res} |")
        out.append("")

    def scale_goals(self, G):
        sc = self.scale
        if sc is None:
            G.append(("1,000,000 vs 10,000 entries", "create and hot read ≥ 0.8×; mount < 1 s; "
                      "peak RSS ≤ ram_size + 64 MiB", "not run (needs --scale)", None))
            return
        small, big = (f"tc-scale-{count_label(n)}" for n in sc["sizes"])
        lbl = f"{count_label(sc['sizes'][1])} vs {count_label(sc['sizes'][0])} entries"
        for w, what in (("create", "create"), ("read2", "hot read")):
            a = median(sc["values"].get(w, {}).get(big, []))
            b = median(sc["values"].get(w, {}).get(small, []))
            x = a / b if a and b else None
            G.append((f"{lbl}: {what}", "≥ 0.8×", fmt_ratio(x),
                      None if x is None else x >= 0.8))
        warm = median(sc["mount"].get("warm", {}).get(big, []))
        cold = median(sc["mount"].get("cold", {}).get(big, []))
        worst = max([m for m in (warm, cold) if m is not None], default=None)
        G.append((f"mount with {count_label(sc['sizes'][1])} entries", "< 1 s",
                  "—" if worst is None else f"warm {warm:.3f} s / cold {cold:.3f} s",
                  None if worst is None else worst < 1.0))
        hwm, lim = sc["hwm"].get(big), sc["ram_limit"].get(big)
        G.append((f"peak RSS with {count_label(sc['sizes'][1])} entries",
                  "≤ ram_size + 64 MiB",
                  f"{fmt_bytes(hwm)} (ram_size {fmt_bytes(lim)})",
                  None if not hwm or not lim else hwm <= lim + 64 * MiB))

    def scale_table(self, out):
        sc = self.scale
        if sc is None:
            return
        small, big = (count_label(n) for n in sc["sizes"])
        kinds = [k for k in ("tc", "plain") if k in self.args.scale_targets]
        out.append(f"### Scale: {self.p.scale_ops:,} new 4 KiB files with "
                   f"{sc['sizes'][0]:,} vs {sc['sizes'][1]:,} entries of "
                   f"{self.p.scale_entry_size} B already there")
        out.append("")
        head = []
        for k in kinds:
            head += [f"{k} @{small}", f"{k} @{big}", f"{k} {big}/{small}"]
        out.append("| workload | unit | " + " | ".join(head) + " |")
        out.append("|---|---|" + "---:|" * len(head))
        for w, label, unit in SCALE_ROWS:
            cells = []
            for k in kinds:
                a = median(sc["values"].get(w, {}).get(f"{k}-scale-{small}", []))
                b = median(sc["values"].get(w, {}).get(f"{k}-scale-{big}", []))
                cells += [fmt_value(a), fmt_value(b), fmt_ratio(b / a if a and b else None)]
            out.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
        if "tc" in kinds:
            pad = [""] * (len(head) - 3)
            for mode in ("warm", "cold"):
                a = median(sc["mount"].get(mode, {}).get(f"tc-scale-{small}", []))
                b = median(sc["mount"].get(mode, {}).get(f"tc-scale-{big}", []))
                cells = ["—" if a is None else f"{a:.3f}", "—" if b is None else f"{b:.3f}",
                         fmt_ratio(b / a if a and b else None)]
                out.append(f"| mount until a stat of an entry works ({mode}) | s | " +
                           " | ".join(cells + pad) + " |")
            a, b = sc["hwm"].get(f"tc-scale-{small}"), sc["hwm"].get(f"tc-scale-{big}")
            lim = sc["ram_limit"].get(f"tc-scale-{big}")
            out.append(f"| daemon peak RSS (VmHWM), ram_size {fmt_bytes(lim)} | MiB | "
                       + " | ".join([fmt_bytes(a), fmt_bytes(b),
                                     fmt_ratio(b / a if a and b else None)] + pad) + " |")
            pops = ", ".join(f"{n}: {v:,.0f} entries/s" for n, v in sc["populate"].items())
            out.append("")
            out.append(f"Populating (not part of the figures): {pops}.")
        for n, msg in list(sc["failures"].items()) + list(sc["skipped"].items()):
            out.append(f"FAIL {n}: {msg}  ")
        out.append("")

    def summary(self, out):
        """One compact table of the main workloads, for the README."""
        rows = [("small", "create", f"{self.p.file_size // 1024} KiB create+write+close"),
                ("small", "stat", "stat"),
                ("small", "read2", f"{self.p.file_size // 1024} KiB open+read+close, hot"),
                ("small", "unlink", "unlink"),
                ("large", "write", f"{self.p.large_mib:,} MiB seq write + fsync"),
                ("large", "read_cold", "seq read, cold"),
                ("large", "read_hot", "seq read, hot"),
                ("large", "rand", "4 KiB random read"),
                ("python", "set", f"Python {self.p.value_size // 1024} KiB values: set"),
                ("python", "get", f"Python {self.p.value_size // 1024} KiB values: get")]
        rows = [r for r in rows if r[0] in self.results]
        names = self.group_targets("python" if "python" in self.results else "small")
        if not rows or "tc" not in names:
            return
        units = {w: u for g in GROUPS.values() for w, _, u in g}
        peers = [n for n in names if n not in TC_MODES]
        out.append("### Summary")
        out.append("")
        out.append("| workload | unit | " + " | ".join(names) + " | " +
                   " | ".join(f"tc/{n}" for n in peers) + " |")
        out.append("|---|---|" + "---:|" * (len(names) + len(peers)))
        for g, w, label in rows:
            cells = [self.cell(g, w, n) if (g == "python" or n != "diskcache") else "—"
                     for n in names]
            cells += [fmt_ratio(self.ratio(g, w, "tc", n)) for n in peers]
            out.append(f"| {label} | {units[w]} | " + " | ".join(cells) + " |")
        out.append("")

    def report(self, meta):
        p = self.p
        out = ["## tiercachefs benchmark", ""]
        out.append(f"{meta['date']}, commit {meta['commit']}, Linux {meta['kernel']}, "
                   f"{meta['cpus']} CPUs, load average {meta['load_start']} at start, "
                   f"{meta['load_end']} at end; mode {meta['mode']}, {p.rounds} round(s).")
        out.append("")
        out.append("Figures are medians over interleaved rounds, measured with one Python "
                   "process doing os.* calls per file. They are noisy when the machine is "
                   "shared with other jobs: compare the ratios within one run, not absolute "
                   "figures across runs.")
        if meta["mode"] == "ci":
            out.append("")
            out.append("CI mode: tiny counts, only checks that every phase runs on every "
                       "target; the figures and PASS/MISS mean nothing.")
        out.append("")
        for n, desc in self.started:
            out.append(f"- **{n}**: {desc}  ")
        if "diskcache" in self.group_targets("python"):
            import diskcache
            out.append(f"- **diskcache**: python-diskcache {diskcache.__version__} "
                       "Cache.set/get, directory on the root fs  ")
        for n, why in self.skipped.items():
            out.append(f"- {n}: skipped: {why}  ")
        for n in self.notes:
            if not n.startswith("skipped "):
                out.append(f"- note: {n}  ")
        out.append("")
        if "small" in self.results or any(g == "small" for g, _ in self.failures):
            self.table(out, "small", f"Small files: {p.files:,} files of {p.file_size:,} B "
                       f"in {p.dirs} directories")
        if "large" in self.results or any(g == "large" for g, _ in self.failures):
            self.table(out, "large", f"Large files: {p.large_mib:,} MiB sequential; "
                       f"random 4 KiB reads over {p.rand_mib} MiB for {p.rand_secs:g} s")
        if "python" in self.results or any(g == "python" for g, _ in self.failures):
            self.table(out, "python", f"Python: {p.values:,} values of {p.value_size:,} B "
                       "as files vs diskcache")
        self.scale_table(out)
        self.counters_table(out)
        self.goals(out)
        self.summary(out)
        return out


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


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="scripts/bench.sh",
        description="Benchmark tiercachefs against tmpfs, a plain directory, bindfs, "
                    "rclone mount and python-diskcache (issue 6).")
    ap.add_argument("--workdir", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--tc-bin", required=True, help="the tiercachefs binary to measure")
    ap.add_argument("--quick", action="store_true",
                    help="small counts, 1 round (well under a minute)")
    ap.add_argument("--ci", action="store_true",
                    help="tiny counts, 1 round: checks that every phase runs; exit 1 "
                         "if tiercachefs fails one")
    ap.add_argument("--scale", action="store_true",
                    help="also the scale phase (populates 1,000,000 entries: long)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS + ["diskcache"]),
                    help="comma-separated subset of: %(default)s")
    ap.add_argument("--groups", default="small,large,python",
                    help="phase groups to run (default %(default)s; '' for none, "
                         "e.g. with --scale)")
    ap.add_argument("--files", type=int, help="small files (default 20000)")
    ap.add_argument("--dirs", type=int, help="directories for them (default 100)")
    ap.add_argument("--file-size", type=int, help="small file size in bytes (default 4096)")
    ap.add_argument("--large-mib", type=int, help="sequential file size in MiB (default 1024)")
    ap.add_argument("--rand-mib", type=int, help="random-read file size in MiB (default 256)")
    ap.add_argument("--rand-secs", type=float, help="random-read duration (default 5)")
    ap.add_argument("--values", type=int, help="Python values (default 10000)")
    ap.add_argument("--value-size", type=int, help="Python value size (default 1024)")
    ap.add_argument("--scale-entries", type=int, help="large store (default 1000000)")
    ap.add_argument("--scale-base", type=int, help="small store (default 10000)")
    ap.add_argument("--scale-ops", type=int, help="files created/read per scale round "
                                                  "(default 10000)")
    ap.add_argument("--scale-entry-size", type=int, help="populated entry size (default 1024)")
    ap.add_argument("--populate-jobs", type=int, default=2,
                    help="processes populating the scale stores (default %(default)s)")
    ap.add_argument("--scale-targets", default="tc,plain",
                    help="scale phase targets: tc, plain (default %(default)s)")
    ap.add_argument("--tc-opts", default="",
                    help="extra -o options for every tiercachefs mount")
    ap.add_argument("--tc-kernel-cache", nargs="?", const="kernel_cache",
                    default="kernel_cache", metavar="OPTS",
                    help="-o options of the kernel-caching mode (tc-kc), default "
                         "kernel_cache; 'off' disables the mode. Skipped with a line "
                         "when the binary refuses the option")
    ap.add_argument("--out", help="also write bench.md and bench.json into this directory")
    ap.add_argument("--verbose", action="store_true", help="tracebacks of failures")
    a = ap.parse_args(argv)
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    a.groups = [g.strip() for g in a.groups.split(",") if g.strip()]
    a.scale_targets = [t.strip() for t in a.scale_targets.split(",") if t.strip()]
    bad = [t for t in a.targets if t not in ALL_TARGETS + ["diskcache"]]
    bad += [g for g in a.groups if g not in GROUPS]
    bad += [t for t in a.scale_targets if t not in ("tc", "plain")]
    if bad:
        ap.error(f"unknown target or group: {', '.join(bad)}")
    if a.tc_kernel_cache in ("off", "none", "no", ""):
        a.tc_kernel_cache = None
    mode = "ci" if a.ci else ("quick" if a.quick else "full")
    p = dict(PRESETS[mode])
    for k in p:
        v = getattr(a, k, None)
        if v is not None:
            p[k] = v
    if p["rounds"] < 1 or p["files"] < 1 or p["dirs"] < 1 or p["values"] < 1 or \
            p["large_mib"] < 1 or p["rand_mib"] < 1 or p["scale_base"] < 1 or \
            p["scale_entries"] <= p["scale_base"] or p["scale_entry_size"] < 8:
        ap.error("counts must be positive (and --scale-entries > --scale-base)")
    return a, types.SimpleNamespace(**p), mode


def main(argv):
    args, p, mode = parse_args(argv)
    args.workdir = os.path.realpath(args.workdir)
    b = Bench(args, p)
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
    out = b.report(meta)
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
