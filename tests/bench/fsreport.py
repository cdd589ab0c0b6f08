# SPDX-License-Identifier: MIT
"""fsreport.py - the markdown report of the filesystem benchmark.

fsbench.py runs the rounds and keeps every figure per round; this file only
reads them (a Bench object) and formats. Every figure is shown as the median
over the rounds with its spread, "median (min–max)", when there was more than
one round, and every table says how many rounds it holds. A ratio of two
targets is the median of the per-round ratios (the rounds are interleaved,
so a round's two figures were measured minutes apart at most), with the
min–max of those ratios.

Sections: one table per phase group (figures, then the ratios of each
tiercachefs mode to every peer, libfuse's passthrough_ll being the FUSE
reference), the cp and scale tables, the .stats counters the daemon saw, the
goals of issues 10 and 11 with PASS/MISS, and a compact summary.
"""

import statistics
import sys

MiB = 1 << 20

# Phase groups: (key, label, unit); labels are formatted with the params.
GROUPS = {
    "small": [("create", "create+write+close", "ops/s"),
              ("stat", "stat", "ops/s"),
              ("read1", "open+read+close, 1st pass", "ops/s"),
              ("read2", "open+read+close, 2nd pass (hot)", "ops/s"),
              ("chmod", "chmod", "ops/s"),
              ("utime", "utimens (os.utime)", "ops/s"),
              ("rename", "rename in the same directory", "ops/s"),
              ("unlink", "unlink", "ops/s")],
    "large": [("write", "seq write, 1 MiB writes + fsync", "MiB/s"),
              ("read_cold", "seq read cold (after drop_caches)", "MiB/s"),
              ("read_hot", "seq read hot", "MiB/s"),
              ("rand", "4 KiB random reads (pread)", "ops/s")],
    "fsync": [("fsync_big", "4 KiB pwrite+fsync, random offsets, {fsync_big_mib} MiB file",
               "ops/s"),
              ("fsync_small", "the same in a {fsync_small_mib} MiB file", "ops/s"),
              ("fsync_ratio", "{fsync_big_mib} MiB / {fsync_small_mib} MiB", "×")],
    "python": [("set", "set: write a value as a file / Cache.set", "ops/s"),
               ("get", "get: read it back / Cache.get", "ops/s")],
    "stress": [(s, f"stress-ng --{s}", "bogo ops")
               for s in ("iomix", "copy-file", "sync-file", "fallocate", "mmap")],
}
SCALE_ROWS = [("create", "create+write+close 4 KiB", "ops/s"),
              ("stat", "stat", "ops/s"),
              ("read2", "open+read+close, 2nd pass (hot)", "ops/s"),
              ("unlink", "unlink", "ops/s")]
RSS_LIMIT = 320 * MiB  # issue 10: 1,000,000 names held, ram_size=256M


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def is_tc(name):
    return name == "tc" or name.startswith("tc-")


def count_label(n):
    if n >= 1000000 and n % 1000000 == 0:
        return f"{n // 1000000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _sig(x):
    """x >= 0 with about 3 significant digits, no exponent."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}" if x >= 0.01 else f"{x:.2g}"


def fmt_value(v):
    """204k, 5.10k, 43.2, 1.23M; integers below 1000 as they are."""
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    a = abs(v)
    sign = "-" if v < 0 else ""
    if a < 1000 and float(v).is_integer():
        return str(int(v))
    if a >= 1e6:
        return sign + _sig(a / 1e6) + "M"
    if a >= 1e3:
        return sign + _sig(a / 1e3) + "k"
    return sign + _sig(a)


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


def spread(vals, fmt):
    """"median (min–max)" of vals, or just the value for one round."""
    if not vals:
        return "—"
    m = fmt(median(vals))
    if len(vals) == 1:
        return m
    return f"{m} ({fmt(min(vals)).rstrip('×')}–{fmt(max(vals))})"


def round_ratios(a, c):
    """Per-round ratios a/c of two lists holding one figure per round, in
    round order; the ratio of the medians when the lists differ in length."""
    if len(a) == len(c):
        return [x / y for x, y in zip(a, c) if x and y]
    return [median(a) / median(c)] if median(a) and median(c) else []


class Report:
    def __init__(self, b, meta):
        self.b = b
        self.p = b.p
        self.meta = meta
        self.rounds = b.p.rounds
        self.tcs = [n for n, _ in b.started if is_tc(n)]

    # --- figures -----------------------------------------------------------

    def vals(self, group, w, target):
        """{round: value} of one workload on one target; the steps before a
        failure keep their figures."""
        return self.b.results.get(group, {}).get(w, {}).get(target, {})

    def med(self, group, w, target):
        return median(list(self.vals(group, w, target).values()))

    def ratios(self, group, w, a, c):
        """Per-round ratios a/c over the rounds both have (c > 0)."""
        va, vc = self.vals(group, w, a), self.vals(group, w, c)
        return [va[r] / vc[r] for r in va if r in vc and vc[r]]

    def ratio(self, group, w, a, c):
        return median(self.ratios(group, w, a, c))

    def cell(self, group, w, target, fmt=fmt_value):
        """The figure, or FAIL for a step the failure of the group on this
        target left unmeasured (in any round)."""
        vals = self.vals(group, w, target)
        if (group, target, w) in self.b.step_failures or \
                ((group, target) in self.b.failures and len(vals) < self.rounds):
            return "FAIL" if not vals else spread(list(vals.values()), fmt) + " (FAIL)"
        return spread(list(vals.values()), fmt)

    def rcell(self, group, w, a, c):
        return spread(self.ratios(group, w, a, c), fmt_ratio)

    def names(self, group):
        """Targets that ran (or failed) the group, in the order started."""
        g = self.b.results.get(group, {})
        return [n for n, _ in self.b.started
                if any(n in per for per in g.values()) or (group, n) in self.b.failures]

    def rounds_line(self, out):
        if self.rounds > 1:
            out.append(f"{self.rounds} interleaved rounds; a cell is the median (min–max) "
                       "over them, a ratio the median (min–max) of the per-round ratios.")
        else:
            out.append("1 round: each cell is a single measurement, there is no spread "
                       "(use --rounds N).")
        out.append("")

    # --- tables ------------------------------------------------------------

    def table(self, out, group, title):
        names = self.names(group)
        if not names:
            return
        rows = [(w, lbl.format(**vars(self.p)), u) for w, lbl, u in GROUPS[group]]
        out.append(f"### {title}")
        out.append("")
        out.append("| workload | unit | " + " | ".join(names) + " |")
        out.append("|---|---|" + "---:|" * len(names))
        for w, label, unit in rows:
            fmt = fmt_ratio if unit == "×" else fmt_value
            out.append(f"| {label} | {unit} | " +
                       " | ".join(self.cell(group, w, n, fmt) for n in names) + " |")
        out.append("")
        self.ratio_table(out, group, names, rows)
        for n in names:
            if (group, n) in self.b.failures:
                out.append(f"FAIL {n}: {self.b.failures[(group, n)]}  ")
        for (g, n, w), msg in self.b.step_failures.items():
            if g == group:
                out.append(f"FAIL {n} {w}: {msg}  ")
        if group == "stress":
            for (n, s), err in sorted(self.b.stress_errors.items()):
                out.append(f"stress-ng --{s} on {n}: {err} (counted as 0)  ")
        self.rounds_line(out)

    def ratio_table(self, out, group, names, rows):
        tcs = [n for n in names if is_tc(n)]
        if not tcs:
            return
        cols = [n for n in names if not is_tc(n)] + (tcs if len(tcs) > 1 else [])
        if not cols:
            return
        out.append("| workload | mode | " + " | ".join(f"/{c}" for c in cols) + " |")
        out.append("|---|---|" + "---:|" * len(cols))
        for w, label, unit in rows:
            if unit == "×":  # already a ratio
                continue
            for m in tcs:
                cells = ["" if c == m else self.rcell(group, w, m, c) for c in cols]
                out.append(f"| {label} | {m} | " + " | ".join(cells) + " |")
        out.append("")

    def cp_table(self, out):
        names = self.names("cp")
        if not names:
            return
        out.append(f"### cp of a {self.p.cp_mib:,} MiB file inside the mount "
                   "(`cp big big2`, coreutils tries copy_file_range)")
        out.append("")
        ptll = "passthrough_ll" if "passthrough_ll" in names else None
        head = "| target | seconds | MiB/s | tiercache_blob_bytes before → after | growth |"
        if ptll:
            head += " time / passthrough_ll's |"
        out.append(head)
        out.append("|---|---:|---:|---|---:|" + ("---:|" if ptll else ""))
        for n in names:
            if ("cp", n) in self.b.failures:
                out.append(f"| {n} | FAIL | | | |" + (" |" if ptll else ""))
                continue
            secs = list(self.vals("cp", "cp", n).values())
            rate = spread([self.p.cp_mib / s for s in secs if s > 0], fmt_value)
            blob, grow = "", ""
            before = self.vals("cp", "cp_blob_before", n)
            after = self.vals("cp", "cp_blob_after", n)
            if before:
                last = max(before)
                blob = f"{fmt_bytes(before[last])} → {fmt_bytes(after.get(last))}"
                g = [after[r] - before[r] for r in before if after.get(r) is not None]
                grow = f"{max(g) / MiB:+,.1f} MiB (worst round)" if g else "—"
            row = f"| {n} | {spread(secs, lambda x: f'{x:.3f}')} | {rate} | {blob} | {grow} |"
            if ptll:
                row += f" {self.rcell('cp', 'cp', n, ptll) if n != ptll else ''} |"
            out.append(row)
        out.append("")
        for n in names:
            if ("cp", n) in self.b.failures:
                out.append(f"FAIL {n}: {self.b.failures[('cp', n)]}  ")
        self.rounds_line(out)

    def counters_table(self, out):
        rows = []
        cnames = ("gets", "ram_hits", "disk_hits", "misses", "puts", "deletes", "promotions")
        for group in GROUPS:
            for m in self.tcs:
                c = self.b.counters.get((group, m))
                if not c:
                    continue
                labels = {w: l.format(**vars(self.p)) for w, l, _ in GROUPS[group]}
                for w, d in c.items():
                    rows.append(f"| {m} | {group}: {labels.get(w, w)} | {d['ops']:,} | " +
                                " | ".join(f"{int(d[k]):,}" for k in cnames) + " |")
        if not rows:
            return
        out.append("### What the tiercachefs daemon saw (.stats deltas per step, last round)")
        out.append("")
        out.append("ops = opens/operations the step issued (MiB for sequential I/O, "
                   "preads for random reads); gets = opens for reading the daemon saw.")
        out.append("")
        out.append("| mode | step | ops | " + " | ".join(cnames) + " |")
        out.append("|---|---|---:|" + "---:|" * len(cnames))
        out.extend(rows)
        out.append("")

    def scale_table(self, out):
        sc = self.b.scale
        if sc is None:
            return
        small, big = (count_label(n) for n in sc["sizes"])
        kinds = [k for k in ("tc", "plain") if k in self.b.args.scale_targets]
        out.append(f"### Scale: {self.p.scale_ops:,} new 4 KiB files with "
                   f"{sc['sizes'][0]:,} vs {sc['sizes'][1]:,} entries of "
                   f"{self.p.scale_entry_size} B already there, all held by the kernel")
        out.append("")
        for n, d in sc["desc"].items():
            out.append(f"- {n}: {d}  ")
        out.append("")
        head = []
        for k in kinds:
            head += [f"{k} @{small}", f"{k} @{big}", f"{k} {big}/{small}"]
        out.append("| workload | unit | " + " | ".join(head) + " |")
        out.append("|---|---|" + "---:|" * len(head))

        def trio(get, fmt=fmt_value, lower_better=False):
            cells = []
            for k in kinds:
                a, c = get(f"{k}-scale-{small}"), get(f"{k}-scale-{big}")
                cells += [spread(a, fmt), spread(c, fmt),
                          spread(round_ratios(c, a), fmt_ratio)]
            return cells

        for w, label, unit in SCALE_ROWS:
            cells = trio(lambda n: sc["values"].get(w, {}).get(n, []))
            out.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
        cells = trio(lambda n: [sc["stat_all"][n]] if n in sc["stat_all"] else [])
        out.append("| stat of every populated entry (once, after populating) | ops/s | " +
                   " | ".join(cells) + " |")
        if "tc" in kinds:
            pad = [""] * (len(head) - 3)
            for mode in ("warm", "cold"):
                cells = trio(lambda n: sc["mount"].get(mode, {}).get(n, []),
                             lambda x: f"{x:.3f}")[:3]
                out.append(f"| mount until a stat of an entry works ({mode}) | s | " +
                           " | ".join(cells + pad) + " |")
            a, c = sc["hwm"].get(f"tc-scale-{small}"), sc["hwm"].get(f"tc-scale-{big}")
            lim = sc["ram_limit"].get(f"tc-scale-{big}")
            out.append(f"| daemon peak RSS (VmHWM), ram_size {fmt_bytes(lim)} | MiB | " +
                       " | ".join([fmt_bytes(a), fmt_bytes(c),
                                   fmt_ratio(c / a if a and c else None)] + pad) + " |")
            pops = ", ".join(f"{n}: {v:,.0f} entries/s" for n, v in sc["populate"].items())
            out.append("")
            out.append(f"Populating (not part of the figures): {pops}.")
        for n, msg in list(sc["failures"].items()) + list(sc["skipped"].items()):
            out.append(f"FAIL {n}: {msg}  ")
        out.append("")
        self.rounds_line(out)

    # --- goals -------------------------------------------------------------

    def goal_ratio(self, group, w, peer, thr, extra=None):
        """A goal cell builder: tc/peer ratio >= thr."""
        def f(m):
            x = self.ratio(group, w, m, peer)
            if x is None:
                if (group, m) in self.b.failures or (group, m, w) in self.b.step_failures:
                    return "FAIL", None
                if (group, peer) in self.b.failures:
                    return f"{peer} FAILED", None
                return "not measured", None
            txt = self.rcell(group, w, m, peer)
            if extra:
                txt += extra(m)
            return txt, x >= thr
        return f

    def goal_rows(self):
        """(issue, goal, want, modes it applies to or None for all, fn(mode)
        -> (measured text, ok or None))."""
        P = "passthrough_ll"
        p = self.p
        G = []
        G.append((10, f"{p.file_size // 1024} KiB create+write+close", f"≥ 1.2× {P}", None,
                  self.goal_ratio("small", "create", P, 1.2)))
        for w, lbl in (("unlink", "unlink"), ("chmod", "chmod"), ("utime", "utimens"),
                       ("rename", "rename")):
            G.append((10, lbl, f"≥ 1.2× {P}", None, self.goal_ratio("small", w, P, 1.2)))

        def vs_dc(m):
            x = self.ratio("python", "set", m, "diskcache")
            return f"; {fmt_ratio(x)} diskcache's" if x is not None else ""
        G.append((10, f"Python {p.value_size // 1024} KiB values as files: set",
                  f"≥ 1.2× {P}", None, self.goal_ratio("python", "set", P, 1.2, vs_dc)))

        def fsync(m):
            v = list(self.vals("fsync", "fsync_ratio", m).values())
            if not v:
                return ("FAIL" if ("fsync", m) in self.b.failures else "not measured"), None
            return spread(v, fmt_ratio), median(v) >= 0.5
        G.append((10, f"4 KiB write+fsync at random offsets, {p.fsync_big_mib} MiB file",
                  f"≥ 0.5× the same in a {p.fsync_small_mib} MiB file", None, fsync))
        for s, _, _ in GROUPS["stress"]:
            G.append((10, f"stress-ng {s} (bogo ops)", f"≥ {P}'s", None, self.stress_goal(s)))
        G.append((10, f"cp of a {p.cp_mib:,} MiB file inside the mount", "≤ 0.1 s", None,
                  self.cp_time_goal))
        G.append((10, "… and tiercache_blob_bytes", "does not grow", None, self.cp_blob_goal))
        sm = self.scale_mode_name()
        big = count_label(p.scale_entries)
        G.append((10, f"peak RSS, {big} names held by the kernel, ram_size="
                  f"{self.b.args.scale_ram_size}", "≤ 320 MiB", [sm], self.rss_goal))
        G.append((10, f"mount of the {big} store (warm / cold)", "< 1 s", [sm],
                  self.mount_goal))
        for w, lbl in (("create", "create"), ("read2", "hot read")):
            G.append((10, f"{lbl} at {big} entries vs {count_label(p.scale_base)}", "≥ 0.8×",
                      [sm], self.scale_ratio_goal(w)))
        K, D = ["tc-kernel", "tc"], ["tc-daemon", "tc"]
        G.append((11, f"kernel mode: hot {p.file_size // 1024} KiB open+read+close",
                  "≥ 0.8× tmpfs", K, self.goal_ratio("small", "read2", "tmpfs", 0.8)))
        G.append((11, "kernel mode: stat right after the writes", "≥ 0.5× tmpfs", K,
                  self.goal_ratio("small", "stat", "tmpfs", 0.5)))
        G.append((11, "kernel mode: Python values as files, get", "≥ 0.8× diskcache's get",
                  K, self.goal_ratio("python", "get", "diskcache", 0.8)))
        if "tc-daemon" in self.tcs:
            G.append((11, "kernel mode: Python values as files, set",
                      "≥ 1.0× tc-daemon's (no slower)", ["tc-kernel"],
                      self.goal_ratio("python", "set", "tc-daemon", 1.0)))
        G.append((11, "kernel mode: seq read hot", "≥ 0.8× tmpfs", K,
                  self.goal_ratio("large", "read_hot", "tmpfs", 0.8)))
        G.append((11, "kernel mode: seq read cold", "≥ 0.8× plain dir", K,
                  self.goal_ratio("large", "read_cold", "plain", 0.8)))
        G.append((11, "daemon mode: hot open+read+close", f"≥ 3× {P}", D,
                  self.goal_ratio("small", "read2", P, 3.0)))
        return G

    def stress_goal(self, s):
        def f(m):
            a = self.med("stress", s, m)
            c = self.med("stress", s, "passthrough_ll")
            if a is None or c is None:
                return ("FAIL" if ("stress", m) in self.b.failures else "not measured"), None
            err = self.b.stress_errors.get((m, s))
            txt = f"{fmt_value(a)} vs {fmt_value(c)}"
            if c:
                txt += f" ({self.rcell('stress', s, m, 'passthrough_ll')})"
            if err:
                txt += "; failed: " + err[:80]
            return txt, (a >= c and a > 0) if (a or c) else None
        return f

    def cp_time_goal(self, m):
        v = list(self.vals("cp", "cp", m).values())
        if not v:
            return ("FAIL" if ("cp", m) in self.b.failures else "not measured"), None
        return spread(v, lambda x: f"{x:.3f} s"), median(v) <= 0.1

    def cp_blob_goal(self, m):
        b, a = self.vals("cp", "cp_blob_before", m), self.vals("cp", "cp_blob_after", m)
        g = [a[r] - b[r] for r in b if r in a and a[r] is not None and b[r] is not None]
        if not g:
            return "not measured", None
        return f"grew {max(g) / MiB:+,.1f} MiB (worst round)", max(g) <= 0

    def scale_mode_name(self):
        """The target name of the mode the scale phase ran in (tc-MODE, or
        tc for the daemon as it is), None when it did not run."""
        sc = self.b.scale
        if not sc:
            return None
        for n, d in sc["desc"].items():
            if n.startswith("tc-scale"):
                opts = d.partition("-o ")[2].split(",")
                modes = [o.partition("=")[2] for o in opts if o.startswith("cache_mode=")]
                return f"tc-{modes[0]}" if modes else "tc"
        return None

    def scale_big(self):
        return f"tc-scale-{count_label(self.b.scale['sizes'][1])}"

    def rss_goal(self, m):
        hwm = self.b.scale["hwm"].get(self.scale_big())
        if not hwm:
            return "not measured", None
        return fmt_bytes(hwm), hwm <= RSS_LIMIT

    def mount_goal(self, m):
        mt = self.b.scale["mount"]
        warm = mt.get("warm", {}).get(self.scale_big(), [])
        cold = mt.get("cold", {}).get(self.scale_big(), [])
        if not warm or not cold:
            return "not measured", None
        f = lambda x: f"{x:.3f}"
        return f"{spread(warm, f)} s / {spread(cold, f)} s", max(median(warm),
                                                                 median(cold)) < 1.0

    def scale_ratio_goal(self, w):
        def f(m):
            sc = self.b.scale
            small = f"tc-scale-{count_label(sc['sizes'][0])}"
            a = sc["values"].get(w, {}).get(self.scale_big(), [])
            c = sc["values"].get(w, {}).get(small, [])
            r = round_ratios(a, c)
            if not r:
                return "not measured", None
            return (f"{spread(r, fmt_ratio)} ({fmt_value(median(a))} vs "
                    f"{fmt_value(median(c))} ops/s)", median(r) >= 0.8)
        return f

    def goals(self, out):
        sm = self.scale_mode_name()
        cols = list(self.tcs) or [sm or "tc"]
        if sm and sm not in cols:
            cols.append(sm)
        out.append("### Goals (issues 10 and 11)")
        out.append("")
        out.append("Each cell: the measured value (median, min–max over the rounds) and "
                   "PASS/MISS; empty where the goal is about another mode." +
                   (" `tc` is the daemon as it is (it knows no cache_mode): the goals of "
                    "both modes are measured on it." if "tc" in cols else ""))
        out.append("")
        out.append("| issue | workload | goal | " + " | ".join(cols) + " |")
        out.append("|---|---|---|" + "---|" * len(cols))
        scale_rows = self.b.scale is None
        for issue, goal, want, modes, fn in self.goal_rows():
            cells = []
            for m in cols:
                if modes is not None and None in modes:
                    # A scale goal, and no scale phase ran.
                    cells.append("not run (needs --scale)" if scale_rows else "not measured")
                    continue
                if modes is not None and m not in modes:
                    cells.append("")
                    continue
                if modes is None and m not in self.tcs:
                    cells.append("not measured")
                    continue
                txt, ok = fn(m)
                res = "" if ok is None else (" **PASS**" if ok else " **MISS**")
                cells.append(txt + res)
            out.append(f"| {issue} | {goal} | {want} | " + " | ".join(cells) + " |")
        out.append("")
        if not self.b.scale:
            out.append("The scale goals need `--scale`.")
            out.append("")

    # --- summary -----------------------------------------------------------

    def summary(self, out):
        """One compact table of the main workloads, medians only."""
        p = self.p
        rows = [("small", "create", f"{p.file_size // 1024} KiB create+write+close"),
                ("small", "stat", "stat"),
                ("small", "read2", f"{p.file_size // 1024} KiB open+read+close, hot"),
                ("small", "chmod", "chmod"), ("small", "utime", "utimens"),
                ("small", "rename", "rename"), ("small", "unlink", "unlink"),
                ("large", "write", f"{p.large_mib:,} MiB seq write + fsync"),
                ("large", "read_cold", "seq read, cold"),
                ("large", "read_hot", "seq read, hot"),
                ("large", "rand", "4 KiB random read"),
                ("fsync", "fsync_big", f"4 KiB write+fsync, {p.fsync_big_mib} MiB file"),
                ("python", "set", f"Python {p.value_size // 1024} KiB values: set"),
                ("python", "get", f"Python {p.value_size // 1024} KiB values: get")]
        rows = [r for r in rows if r[0] in self.b.results]
        names = [n for n, _ in self.b.started]
        if not rows or not self.tcs:
            return
        units = {w: u for g in GROUPS.values() for w, _, u in g}
        ref = "passthrough_ll" if "passthrough_ll" in names else None
        rcols = [m for m in self.tcs if ref]
        out.append("### Summary (medians)")
        out.append("")
        out.append("| workload | unit | " + " | ".join(names) + " | " +
                   " | ".join(f"{m}/{ref}" for m in rcols) + " |")
        out.append("|---|---|" + "---:|" * (len(names) + len(rcols)))
        for g, w, label in rows:
            cells = ["FAIL" if "FAIL" in self.cell(g, w, n) else fmt_value(self.med(g, w, n))
                     for n in names]
            cells = [c if not (n == "diskcache" and g != "python") else "—"
                     for c, n in zip(cells, names)]
            cells += [fmt_ratio(self.ratio(g, w, m, ref)) for m in rcols]
            out.append(f"| {label} | {units[w]} | " + " | ".join(cells) + " |")
        out.append("")

    # --- all ---------------------------------------------------------------

    def header(self, out):
        meta, p = self.meta, self.p
        out += ["## tiercachefs benchmark", ""]
        out.append(f"{meta['date']}, commit {meta['commit']}, Linux {meta['kernel']}, "
                   f"{meta['cpus']} CPUs, load average {meta['load_start']} at start, "
                   f"{meta['load_end']} at end; mode {meta['mode']}, {p.rounds} round(s).")
        out.append("")
        out.append("Figures are measured with one Python process doing os.* calls per file "
                   "(stress-ng and cp are their own programs). They are noisy when the "
                   "machine is shared with other jobs: compare the ratios within one run, "
                   "not absolute figures across runs.")
        if meta["mode"] == "ci":
            out.append("")
            out.append("CI mode: tiny counts, only checks that every phase runs on every "
                       "target; the figures and PASS/MISS mean nothing.")
        out.append("")
        for n, desc in self.b.started:
            out.append(f"- **{n}**: {desc}  ")
        for n, why in self.b.skipped.items():
            out.append(f"- {n}: skipped: {why}  ")
        for n in self.b.notes:
            if not n.startswith("skipped "):
                out.append(f"- note: {n}  ")
        out.append("")

    def render(self):
        p = self.p
        out = []
        self.header(out)
        titles = {
            "small": f"Small files: {p.files:,} files of {p.file_size:,} B in {p.dirs} "
                     "directories",
            "large": f"Large files: {p.large_mib:,} MiB sequential; random 4 KiB reads over "
                     f"{p.rand_mib} MiB for {p.rand_secs:g} s",
            "fsync": f"Random fsync: 4 KiB pwrite + fsync at random offsets for "
                     f"{p.fsync_secs:g} s, {p.fsync_big_mib} MiB vs {p.fsync_small_mib} MiB "
                     "file",
            "python": f"Python: {p.values:,} values of {p.value_size:,} B as files vs "
                      "diskcache",
            "stress": f"stress-ng {self.stress_how()}",
        }
        for g in ("small", "large", "fsync", "python"):
            self.table(out, g, titles[g])
        self.cp_table(out)
        self.table(out, "stress", titles["stress"])
        self.scale_table(out)
        self.counters_table(out)
        self.goals(out)
        self.summary(out)
        return out

    def stress_how(self):
        b = self.b
        how = (f"(one instance of each stressor, {b.p.stress_secs:g} s, --verify, "
               "--temp-path in the mount, mmap with --mmap-file --mmap-bytes 16m")
        if b.mode == "ci":
            how += "; CI mode: all stressors at once"
        else:
            how += "; one stressor at a time"
        if b.mode == "full":
            how += ", stress-ng's default sizes otherwise"
        else:
            how += ", files of 16 MiB (copy-file 128 MiB)"
        if b.args.stress_opts:
            how += f"; plus {b.args.stress_opts}"
        return how + "): bogo ops"


def report(b, meta):
    """The report's markdown lines for the Bench b and the run's meta."""
    return Report(b, meta).render()
