# SPDX-License-Identifier: MIT
"""Fixtures that mount a real tiercachefs for the integration tests.

The daemon is TIERCACHEFS_BIN (scripts/test.sh and meson set it), else
build/fs/tiercachefs in the repository. Modelled on libfuse's test/conftest.py
and sshfs's tests:

  tc_mount        factory: tc_mount(opts=..., store=..., mnt=...) starts
                  `tiercachefs -f [-o opts] STORE MNT` under tmp_path, waits
                  for the mount (watching the process), returns a Mount.
                  Call it again after m.unmount() to remount the same store.
                  Teardown always unmounts (fusermount3 -u, then -uz), waits
                  for the daemon with a deadline, kills only that PID if it
                  hangs, and fails the test unless it exited 0.
  mnt             a default mount, as a pathlib.Path.
  output_checker  fails the test when a daemon's output shows an error or a
                  sanitizer/valgrind report; a test expecting a message
                  calls output_checker.allow(regex).

TC_VALGRIND=1 runs every daemon under valgrind (deadlines grow tenfold).

TC_CACHE_MODE=kernel|daemon adds cache_mode= to every tc_mount() that does
not name one (unset: the daemon's default). A test that only makes sense in
one mode is marked @pytest.mark.daemon_mode("why") or
@pytest.mark.kernel_mode("why") and skipped in the other, with that reason.
"""

import itertools
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tcutil import (CACHE_MODE_ENV, MOUNT_TIMEOUT, SLOW, STOP_TIMEOUT, VALGRIND, cache_mode,
                    daemon_prefix, is_mounted, mounted_paths, run, tc_bin)

# A line of daemon output matching one of these fails the test.
ERROR_PATTERNS = [re.compile(p) for p in (
    r"AddressSanitizer",
    r"LeakSanitizer",
    r"UndefinedBehaviorSanitizer",
    r"ThreadSanitizer",
    r"runtime error:",
    r"^==\d+==",                # valgrind -q and sanitizer report lines
    r"(?i)\berror\b",
    r"(?i)\bfatal\b",
    r"(?i)\bcritical\b",
    r"Assertion .* failed",
    r"(?i)segmentation fault",
    r"(?i)\bpanic\b",
)]


def pytest_configure(config):
    config.addinivalue_line("markers", "daemon_mode(why): only in cache_mode=daemon")
    config.addinivalue_line("markers", "kernel_mode(why): only in cache_mode=kernel")


def pytest_collection_modifyitems(config, items):
    # pytest-timeout: more time per test under valgrind.
    if VALGRIND:
        for item in items:
            item.add_marker(pytest.mark.timeout(300 * SLOW))
    mode = None
    for item in items:
        for want in ("daemon", "kernel"):
            mark = item.get_closest_marker(f"{want}_mode")
            if mark is None:
                continue
            mode = mode or cache_mode()
            if mode != want:
                why = mark.args[0] if mark.args else "mode-specific"
                item.add_marker(pytest.mark.skip(
                    reason=f"cache_mode={want} only: {why}"))


class OutputChecker:
    """Scans daemon logs for errors and sanitizer reports."""

    def __init__(self):
        self.logs = []
        self.allowed = []

    def add(self, path):
        self.logs.append(Path(path))

    def allow(self, regex):
        """Lines matching regex are expected (e.g. a test provoking EIO)."""
        self.allowed.append(re.compile(regex))

    def problems(self):
        found = []
        for log in self.logs:
            if not log.exists():
                continue
            for line in log.read_text(errors="replace").splitlines():
                if any(a.search(line) for a in self.allowed):
                    continue
                if any(p.search(line) for p in ERROR_PATTERNS):
                    found.append(f"{log.name}: {line}")
        return found


@pytest.fixture
def output_checker():
    checker = OutputChecker()
    yield checker
    problems = checker.problems()
    if problems:
        pytest.fail("daemon output shows errors:\n" + "\n".join(problems[:40]), pytrace=False)


class Mount:
    """One tiercachefs daemon running in the foreground on one mount point."""

    def __init__(self, cmd, mnt, store, log, env):
        self.cmd = cmd
        self.mnt = Path(mnt)
        self.store = store
        self.log_path = Path(log)
        self.env = env
        self.proc = None
        self.rc = None
        self.rc_checked = False

    @property
    def path(self):
        return self.mnt

    @property
    def pid(self):
        return self.proc.pid

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env)
        end = time.monotonic() + MOUNT_TIMEOUT * SLOW
        delay = 0.005
        while not os.path.ismount(self.mnt):
            rc = self.proc.poll()
            if rc is not None:
                self.rc = rc
                self.rc_checked = True
                pytest.fail(f"daemon exited {rc} before mounting: {self.cmd}\n{self.output()}",
                            pytrace=False)
            if time.monotonic() > end:
                self.stop()
                self.rc_checked = True
                pytest.fail(f"no mount after {MOUNT_TIMEOUT * SLOW}s: {self.cmd}\n{self.output()}",
                            pytrace=False)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return self

    def _unmount_quietly(self):
        if not is_mounted(self.mnt):
            return
        r = subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True, text=True)
        if r.returncode != 0 or is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True, text=True)

    def _wait(self):
        """Wait for the daemon; kill that PID (only) if it hangs."""
        try:
            self.rc = self.proc.wait(timeout=STOP_TIMEOUT * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._unmount_quietly()
            self.rc = "hung (killed)"
            raise AssertionError(
                f"daemon {self.proc.pid} did not exit within {STOP_TIMEOUT * SLOW}s of "
                f"unmount; killed\n{self.output()}")
        return self.rc

    def stop(self):
        """Unmount (fusermount3 -u, then -uz) and wait; returns the exit status."""
        if self.rc is not None:
            self._unmount_quietly()
            return self.rc
        self._unmount_quietly()
        return self._wait()

    def unmount(self):
        """Unmount and assert the daemon exited 0."""
        rc = self.stop()
        self.rc_checked = True
        assert rc == 0, f"daemon exited {rc}\n{self.output()}"
        assert not is_mounted(self.mnt)

    def kill(self, sig):
        """Send sig to the daemon (only its PID), wait; returns exit status.

        The mount is left as the daemon left it (teardown cleans up)."""
        os.kill(self.proc.pid, sig)
        rc = self._wait()
        self.rc_checked = True
        return rc


@pytest.fixture
def tc_mount(tmp_path, output_checker):
    """Factory mounting tiercachefs; see the module docstring."""
    mounts = []
    seq = itertools.count()

    def start(opts=None, store=None, mnt=None, args=(), env=None):
        """opts: str or list of -o options; store: path, or False to omit it."""
        if not os.access(tc_bin(), os.X_OK):
            pytest.fail(f"no tiercachefs binary at {tc_bin()} (set TIERCACHEFS_BIN)",
                        pytrace=False)
        if store is None:
            store = tmp_path / "store"
        if mnt is None:
            mnt = tmp_path / "mnt"
        Path(mnt).mkdir(parents=True, exist_ok=True)
        cmd = [*daemon_prefix(), tc_bin(), "-f", *args]
        if opts and not isinstance(opts, str):
            opts = ",".join(opts)
        if CACHE_MODE_ENV and "cache_mode=" not in (opts or ""):
            opts = f"{opts},cache_mode={CACHE_MODE_ENV}" if opts else \
                f"cache_mode={CACHE_MODE_ENV}"
        if opts:
            cmd += ["-o", opts]
        if store is not False:
            cmd.append(str(store))
        cmd.append(str(mnt))
        log = tmp_path / f"daemon-{next(seq)}.log"
        output_checker.add(log)
        m = Mount(cmd, mnt, store, log, env)
        mounts.append(m)
        return m.start()

    yield start

    failures = []
    for m in reversed(mounts):
        if m.proc is None:
            continue
        try:
            rc = m.stop()
        except AssertionError as e:
            failures.append(str(e))
            continue
        if not m.rc_checked and rc != 0:
            failures.append(f"daemon {m.pid} exited {rc}: {m.cmd}\n{m.output()}")
        if is_mounted(m.mnt):
            failures.append(f"{m.mnt} still mounted after teardown")
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@pytest.fixture
def mnt(tc_mount):
    """A mounted tiercachefs with default options, as a Path."""
    return tc_mount().path


@pytest.fixture
def tc_run():
    """Run the tiercachefs binary itself (CLI tests), not as a mount."""

    def go(args, **kw):
        return run([*daemon_prefix(), tc_bin(), *args], check=False, **kw)

    return go


@pytest.fixture(autouse=True)
def _no_leftover_mounts(tmp_path):
    """Belt and braces: after teardown nothing under tmp_path is mounted."""
    yield
    left = [p for p in _mounts_under(tmp_path)]
    for p in left:
        subprocess.run(["fusermount3", "-uz", p], capture_output=True)
    assert not left, f"left mounted: {left}"


def _mounts_under(d):
    d = os.path.abspath(d) + "/"
    return sorted(p for p in mounted_paths() if p.startswith(d))
