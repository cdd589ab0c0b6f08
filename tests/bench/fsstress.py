# SPDX-License-Identifier: MIT
"""fsstress.py - stress-ng's filesystem stressors on a target, as bogo ops.

Each stressor runs alone (one instance, a bounded time, --verify, its files
under --temp-path in a fresh directory of the target) so that a target's
figure for one stressor is not shared with another; in CI mode all of them
run in one stress-ng at once to keep the smoke run short. The bogo ops are
read from the --yaml file stress-ng writes, and from its --metrics-brief
lines when the YAML has no entry. A stressor that fails (stress-ng exits
non-zero, times out or reports no metrics) counts 0 bogo ops and keeps its
error line: it never stops the run.

stress-ng is started in its own session and registered like the daemons, so
a run that dies leaves nothing the shell trap of scripts/bench.sh cannot
stop; on a timeout its whole process group (it and its workers, nothing else)
is killed.
"""

import os
import re
import shutil
import signal
import subprocess

# The stressors of issue 10 and their extra arguments. mmap works on
# anonymous memory unless told --mmap-file: we want the file in the mount.
# Its default 256 MiB mapping, msync'd, takes seconds per bogo op through
# FUSE (0 ops in 10 s on passthrough_ll): 16 MiB gives a count to compare.
STRESSORS = [("iomix", []), ("copy-file", []), ("sync-file", []),
             ("fallocate", []), ("mmap", ["--mmap-file", "--mmap-bytes", "16m"])]
GRACE = 60  # seconds past --timeout before stress-ng is killed


def available():
    """None when stress-ng can run, else why not."""
    return None if shutil.which("stress-ng") else "stress-ng is not installed"


def parse_yaml(text):
    """{stressor: bogo ops} from stress-ng's --yaml output (no YAML module
    needed: the metrics section is a flat list of "- stressor:" entries)."""
    out = {}
    name = None
    for line in text.splitlines():
        m = re.match(r"\s*-\s*stressor:\s*(\S+)", line)
        if m:
            name = m.group(1).strip("'\"")
            continue
        m = re.match(r"\s*bogo-ops:\s*([0-9.]+)", line)
        if m and name:
            out[name] = int(float(m.group(1)))
            name = None
    return out


def parse_brief(text):
    """{stressor: bogo ops} from --metrics-brief lines:
    "stress-ng: metrc: [PID] iomix   66536   2.02 ..." (older versions say
    "info:" instead of "metrc:")."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"stress-ng:\s+\w+:\s+\[\d+\]\s+([a-z][a-z0-9-]*)\s+(\d+)\s+[0-9.]+\s", line)
        if m and m.group(1) not in ("stressor",):
            out[m.group(1)] = int(m.group(2))
    return out


def error_line(text):
    """The most telling line of a failed run's output."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for key in ("fail", "error", "abort", "cannot", "not implemented", "skipped"):
        for l in reversed(lines):
            if key in l.lower():
                return l
    return lines[-1] if lines else "no output"


def _kill_group(pid):
    """SIGKILL the process group stress-ng leads (it and its workers)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(registry, workdir, tmp, stressors, secs, extra=()):
    """Run stress-ng once with the given (name, args) stressors, one
    instance each, for secs seconds, files under tmp (created fresh).
    @return {name: (bogo ops, error or None)}."""
    os.makedirs(tmp, exist_ok=True)
    yaml = os.path.join(workdir, "stress-ng.yaml")
    if os.path.exists(yaml):
        os.unlink(yaml)
    cmd = ["stress-ng"]
    for name, args in stressors:
        cmd += [f"--{name}", "1"] + args
    cmd += ["--timeout", f"{secs:g}s", "--temp-path", tmp, "--verify", "--metrics-brief",
            "--yaml", yaml] + list(extra)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    registry.add(proc.pid)
    err = None
    try:
        text, _ = proc.communicate(timeout=secs + GRACE)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        text, _ = proc.communicate()
        err = f"timed out after {secs + GRACE:g} s: killed"
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    if err is None and proc.returncode != 0:
        err = f"exit {proc.returncode}: {error_line(text)}"
    ops = {}
    try:
        with open(yaml) as f:
            ops = parse_yaml(f.read())
    except OSError:
        pass
    brief = parse_brief(text)
    out = {}
    for name, _ in stressors:
        n = ops.get(name, brief.get(name))
        if err is not None:
            out[name] = (0, err)
        elif n is None:
            out[name] = (0, f"no bogo ops reported: {error_line(text)}")
        else:
            out[name] = (n, None)
    shutil.rmtree(tmp, ignore_errors=True)
    return out
