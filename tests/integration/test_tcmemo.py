# SPDX-License-Identifier: MIT
"""tcmemo and tcswap (SPEC section 10, tcmemo(1)) against a real mount.

Every tcmemo test counts the runs of its command through a side-effect file
outside the mount: a command built by counted() appends a line to it before
doing its work, so "computed once" and "replayed without running" are
observable. The binaries are TCMEMO_BIN and TCSWAP_BIN (tcutil.tcmemo_bin(),
tcutil.tcswap_bin()). Concurrency and kills are synchronised on conditions
with deadlines: the runs blocked on a lock are read from /proc/locks, a
command holds its run open until the test creates a file.
"""

import errno
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tcutil import (SLOW, XATTR_PREFIX, expect_errno, fork_worker, pattern_bytes, read_file,
                    reap, tc_get, tc_parse_value, tc_value, tcmemo_bin, tcswap_bin, wait_until,
                    write_file)

RUN_TIMEOUT = 60  # seconds for one tcmemo run (times SLOW)


def memo(mnt, *args, input=None, stdin=None, env=None, cwd=None, stderr=subprocess.PIPE):
    """Run `tcmemo -C mnt ARGS...`; stdin is /dev/null unless input or stdin
    is given. Returns the CompletedProcess (bytes)."""
    if input is None and stdin is None:
        stdin = subprocess.DEVNULL
    return subprocess.run([tcmemo_bin(), "-C", str(mnt), *map(str, args)], input=input,
                          stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, env=env,
                          cwd=cwd, timeout=RUN_TIMEOUT * SLOW)


def counted(side, script, *args):
    """A command that appends a line to side, then runs the sh script; its
    positional parameters $1... are args."""
    return ["sh", "-c", 'echo x >> "$0"; ' + script, str(side), *map(str, args)]


def runs(side):
    """How many times a counted() command ran."""
    try:
        return len(Path(side).read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def entry_of(mnt, *args, env=None, cwd=None):
    """Where tcmemo stores the result of these arguments (stdin /dev/null)."""
    p = memo(mnt, "--path", *args, env=env, cwd=cwd)
    assert p.returncode == 0, p.stderr
    return Path(p.stdout.decode().strip())


def lock_of(entry):
    return entry.parent.parent / "tmp" / (entry.name + ".lock")


def one_line_error(p, *words):
    """p failed with exit status 2 and one 'tcmemo: ...' line naming words."""
    err = p.stderr.decode()
    assert p.returncode == 2, (p.returncode, err)
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("tcmemo: "), err
    for w in words:
        assert w in err, (w, err)
    assert p.stdout == b""


def blocked_on(path):
    """How many flock requests are waiting for the file at path (/proc/locks
    lists a blocked request as '-> FLOCK ...')."""
    st = os.stat(path)
    dev_ino = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        return sum(1 for line in f if "->" in line.split()[:2] and dev_ino in line.split())


# -- hits, replay ---------------------------------------------------------------


def test_hit_replays_without_running(mnt, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, "echo out; echo err >&2")
    first = memo(mnt, "--", *cmd)
    second = memo(mnt, "--", *cmd)
    assert (first.returncode, first.stdout, first.stderr) == (0, b"out\n", b"err\n")
    assert (second.returncode, second.stdout, second.stderr) == (0, b"out\n", b"err\n")
    assert runs(side) == 1
    entry = entry_of(mnt, "--", *cmd)
    assert entry.is_file()
    assert entry.parent.parent == mnt / ".tcmemo"


# Writes the files argv[1] and argv[2] to stdout and stderr in alternating
# chunks of varied sizes, then exits with status argv[3].
GEN = r"""
import os, sys
data = [open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()]
pos = [0, 0]
sizes = [1, 255, 4096, 65536, 100000, 7, 131072, 3]
k = 0
while pos[0] < len(data[0]) or pos[1] < len(data[1]):
    for s in (0, 1):
        n = sizes[k % len(sizes)]
        k += 1
        chunk = memoryview(data[s])[pos[s]:pos[s] + n]
        pos[s] += len(chunk)
        while chunk:
            chunk = chunk[os.write(1 + s, chunk):]
sys.exit(int(sys.argv[3]))
"""


@pytest.mark.parametrize("status", [0, 5])
def test_replay_is_byte_exact(mnt, tmp_path, status):
    """All 256 byte values and a few MiB on each stream, interleaved; the
    exit status too (5 with --cache-failures)."""
    out = bytes(range(256)) * 16 + pattern_bytes(3 << 20, seed=1) + b"\0\n\r\xff"
    err = bytes(range(255, -1, -1)) * 16 + pattern_bytes(1 << 20, seed=2)
    write_file(tmp_path / "out.bin", out)
    write_file(tmp_path / "err.bin", err)
    side = tmp_path / "side"
    cmd = counted(side, f'exec {shlex.quote(sys.executable)} -c "$1" "$2" "$3" "$4"',
                  GEN, tmp_path / "out.bin", tmp_path / "err.bin", status)
    opts = ["--cache-failures"] if status else []
    for _ in range(2):
        p = memo(mnt, *opts, "--", *cmd)
        assert p.returncode == status
        assert p.stdout == out
        assert p.stderr == err
    assert runs(side) == 1


def test_replay_keeps_the_order_of_the_streams(mnt, tmp_path):
    """With stdout and stderr on one file, a hit writes what the miss wrote,
    in the same order."""
    side = tmp_path / "side"
    cmd = counted(side, "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done")
    miss = memo(mnt, "--", *cmd, stderr=subprocess.STDOUT)
    hit = memo(mnt, "--", *cmd, stderr=subprocess.STDOUT)
    assert runs(side) == 1
    assert miss.returncode == hit.returncode == 0
    assert sorted(miss.stdout.splitlines()) == sorted(
        [f"out{i}".encode() for i in range(1, 6)] + [f"err{i}".encode() for i in range(1, 6)])
    assert hit.stdout == miss.stdout


# -- what the key is made of ------------------------------------------------------


def test_stdin_is_part_of_the_key(mnt, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, "cat")
    assert memo(mnt, "--", *cmd, input=b"alpha").stdout == b"alpha"
    assert memo(mnt, "--", *cmd, input=b"beta").stdout == b"beta"
    assert memo(mnt, "--", *cmd, input=b"alpha").stdout == b"alpha"
    assert runs(side) == 2
    # Large piped input reaches the command whole.
    big = pattern_bytes(3 << 20, seed=3)
    assert memo(mnt, "--", *cmd, input=big).stdout == big
    assert runs(side) == 3
    # A regular file as stdin: hashed, then given to the command from its start.
    f = tmp_path / "input"
    write_file(f, b"from a file\n")
    for _ in range(2):
        with open(f, "rb") as fh:
            assert memo(mnt, "--", *cmd, stdin=fh).stdout == b"from a file\n"
    assert runs(side) == 4
    # The same bytes through a pipe are the same key.
    assert memo(mnt, "--", *cmd, input=b"from a file\n").stdout == b"from a file\n"
    assert runs(side) == 4


def test_terminal_stdin_is_not_read(mnt, tmp_path):
    """A terminal on stdin is left to the command (tcmemo does not wait for
    it to end) and enters the key as "a terminal"."""
    side = tmp_path / "side"
    cmd = counted(side, '[ -t 0 ] && echo stdin is a terminal')
    primary, secondary = os.openpty()
    try:
        for _ in range(2):
            p = memo(mnt, "--", *cmd, stdin=secondary)
            assert (p.returncode, p.stdout) == (0, b"stdin is a terminal\n")
    finally:
        os.close(primary)
        os.close(secondary)
    assert runs(side) == 1
    # Not the same key as an empty stdin.
    assert memo(mnt, "--", *cmd).returncode == 1
    assert runs(side) == 2


def test_files_are_part_of_the_key(mnt, tmp_path):
    side = tmp_path / "side"
    src = tmp_path / "input.txt"
    cmd = counted(side, 'cat "$1"', src)
    for content, total in ((b"v1\n", 1), (b"v2\n", 2), (b"v1\n", 2), (b"v2\n", 2)):
        write_file(src, content)
        p = memo(mnt, "-f", src, "--", *cmd)
        assert (p.returncode, p.stdout) == (0, content)
        assert runs(side) == total
    # Without -f the file's contents are not looked at: a new key, then hits
    # whatever the file holds.
    write_file(src, b"v3\n")
    assert memo(mnt, "--", *cmd).stdout == b"v3\n"
    write_file(src, b"v4\n")
    assert memo(mnt, "--", *cmd).stdout == b"v3\n"
    assert runs(side) == 3


def test_named_variables_are_part_of_the_key(mnt, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, 'echo "${MODE-unset}"')
    base = {k: v for k, v in os.environ.items() if k != "MODE"}
    cases = [
        ({}, b"unset\n", 1),
        ({"MODE": ""}, b"\n", 2),          # set but empty is not unset
        ({"MODE": "a"}, b"a\n", 3),
        ({"MODE": "b"}, b"b\n", 4),
        ({"MODE": "a"}, b"a\n", 4),
        ({"MODE": "a", "OTHER": "changed"}, b"a\n", 4),
        ({}, b"unset\n", 4),
    ]
    for extra, out, total in cases:
        p = memo(mnt, "-e", "MODE", "--", *cmd, env={**base, **extra})
        assert (p.returncode, p.stdout) == (0, out), extra
        assert runs(side) == total, extra


def test_unnamed_variables_are_not_part_of_the_key(mnt, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, 'echo "$OTHER"')
    first = memo(mnt, "--", *cmd, env={**os.environ, "OTHER": "one"})
    second = memo(mnt, "--", *cmd, env={**os.environ, "OTHER": "two"})
    assert first.stdout == second.stdout == b"one\n"
    assert runs(side) == 1


def test_arguments_order_and_boundaries_matter(mnt, tmp_path):
    side = tmp_path / "side"
    argsets = [("a", "b"), ("b", "a"), ("ab",), ("a", "", "b"), ("a b",), ("a", "b")]
    outs = []
    for args in argsets:
        p = memo(mnt, "--", *counted(side, 'printf "[%s]" "$@"', *args))
        assert p.returncode == 0
        outs.append(p.stdout)
    assert outs == [b"[a][b]", b"[b][a]", b"[ab]", b"[a][][b]", b"[a b]", b"[a][b]"]
    assert runs(side) == 5


def test_working_directory_is_part_of_the_key(mnt, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, "pwd")
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    assert memo(mnt, "--", *cmd, cwd=d1).stdout == f"{d1}\n".encode()
    assert memo(mnt, "--", *cmd, cwd=d2).stdout == f"{d2}\n".encode()
    assert memo(mnt, "--", *cmd, cwd=d1).stdout == f"{d1}\n".encode()
    assert runs(side) == 2


# -- concurrency, kills ---------------------------------------------------------------


def test_concurrent_runs_compute_once(mnt, tmp_path):
    """8 runs of one key: one computes (held until all 7 others are blocked
    on the key's lock), all 8 print its output."""
    side, go = tmp_path / "counter", tmp_path / "go"
    cmd = counted(side, 'while [ ! -e "$1" ]; do sleep 0.01; done; echo out', go)
    entry = entry_of(mnt, "--", *cmd)
    procs = [subprocess.Popen([tcmemo_bin(), "-C", str(mnt), "--", *cmd],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(8)]
    try:
        wait_until(lambda: runs(side) == 1, 30, "the first run to start")
        wait_until(lambda: blocked_on(lock_of(entry)) == 7, 30, "7 runs waiting on the lock")
        assert runs(side) == 1
        go.touch()
        results = [p.communicate(timeout=RUN_TIMEOUT * SLOW) for p in procs]
    finally:
        go.touch()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * 8
    assert results == [(b"out\n", b"")] * 8
    assert runs(side) == 1
    assert entry.is_file()
    assert not lock_of(entry).exists()


def test_lock_wait_times_out_and_runs_uncached(mnt, tmp_path):
    side, go = tmp_path / "side", tmp_path / "go"
    cmd = counted(side, 'while [ ! -e "$1" ]; do sleep 0.01; done; echo out', go)
    entry = entry_of(mnt, "--", *cmd)
    holder = subprocess.Popen([tcmemo_bin(), "-C", str(mnt), "--", *cmd],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    waiter = None
    try:
        wait_until(lambda: runs(side) == 1, 30, "the first run to start")
        waiter = subprocess.Popen([tcmemo_bin(), "-C", str(mnt), "-w", "1s", "--", *cmd],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        # It gives up after 1s and runs the command itself, which waits for go.
        wait_until(lambda: runs(side) == 2, 30, "the waiter to give up and run")
        go.touch()
        out, err = waiter.communicate(timeout=RUN_TIMEOUT * SLOW)
        assert waiter.returncode == 0
        assert out == b"out\n"
        assert b"running uncached" in err and err.count(b"\n") == 1, err
        assert holder.communicate(timeout=RUN_TIMEOUT * SLOW) == (b"out\n", b"")
    finally:
        go.touch()
        for p in (holder, waiter):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert entry.is_file()
    assert memo(mnt, "--", *cmd).stdout == b"out\n"
    assert runs(side) == 2


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_run_leaves_no_entry(mnt, tmp_path):
    side, pidf, hold = tmp_path / "side", tmp_path / "pid", tmp_path / "hold"
    out = tmp_path / "out"
    cmd = counted(side, 'echo $$ > "$1"; echo partial; if [ -e "$2" ]; then exec sleep 600; fi',
                  pidf, hold)
    entry = entry_of(mnt, "--", *cmd)
    hold.touch()
    child = None
    with open(out, "wb") as f:
        p = subprocess.Popen([tcmemo_bin(), "-C", str(mnt), "--", *cmd],
                             stdin=subprocess.DEVNULL, stdout=f, stderr=f)
    try:
        # Mid-way: the command ran and tcmemo passed its first line through.
        wait_until(lambda: read_file(out) == b"partial\n", 30, "the first line to pass through")
        child = int(pidf.read_text())
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=30 * SLOW) == -signal.SIGKILL
        # The command is told (SIGTERM) that nobody collects its output.
        wait_until(lambda: not _alive(child), 30, "the orphaned command to exit")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
    assert not entry.exists()
    tmp = mnt / ".tcmemo" / "tmp"
    assert sorted(os.listdir(tmp)), "the killed run left nothing to clean"
    # The next miss of any key sweeps what killed runs left.
    assert memo(mnt, "--", "echo", "another key").stdout == b"another key\n"
    assert os.listdir(tmp) == []
    # The next run of the killed key computes and stores it.
    hold.unlink()
    p = memo(mnt, "--", *cmd)
    assert (p.returncode, p.stdout) == (0, b"partial\n")
    assert runs(side) == 2
    assert entry.is_file()
    assert memo(mnt, "--", *cmd).stdout == b"partial\n"
    assert runs(side) == 2


@pytest.mark.parametrize("damage", ["truncate", "empty", "header", "extend"])
def test_damaged_entry_is_computed_again(mnt, tmp_path, damage):
    """An entry that does not parse is a miss: recomputed (once, with one
    warning) and replaced; never replayed."""
    side = tmp_path / "side"
    cmd = counted(side, "printf 'line1\\nline2\\n'; echo err >&2")
    assert memo(mnt, "--", *cmd).stdout == b"line1\nline2\n"
    entry = entry_of(mnt, "--", *cmd)
    data = read_file(entry)
    damaged = {"truncate": data[:-1], "empty": b"", "header": b"X" + data[1:],
               "extend": data + b"\0"}[damage]
    write_file(entry, damaged)
    p = memo(mnt, "--", *cmd)
    assert (p.returncode, p.stdout) == (0, b"line1\nline2\n")
    assert p.stderr.startswith(b"err\n") or p.stderr.endswith(b"err\n")
    assert b"damaged" in p.stderr and p.stderr.count(b"\n") == 2, p.stderr
    assert runs(side) == 2
    assert read_file(entry) == data
    p = memo(mnt, "--", *cmd)
    assert (p.stdout, p.stderr) == (b"line1\nline2\n", b"err\n")
    assert runs(side) == 2


# -- lifetimes, tags, failures ----------------------------------------------------------


def test_ttl_expires_the_result(mnt, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, "echo v")
    assert memo(mnt, "-t", "1s", "--", *cmd).stdout == b"v\n"
    entry = entry_of(mnt, "--", *cmd)
    assert tc_get(entry, "ttl") == "1s"
    wait_until(lambda: not entry.exists(), 20, "the result to expire")
    assert memo(mnt, "-t", "1h", "--", *cmd).stdout == b"v\n"
    assert runs(side) == 2
    assert tc_get(entry, "ttl") == "1h"
    assert memo(mnt, "--", *cmd).stdout == b"v\n"
    assert runs(side) == 2
    # Without -t the entry carries no ttl of its own.
    other = counted(side, "echo w")
    memo(mnt, "--", *other)
    expect_errno(errno.ENODATA, os.getxattr, entry_of(mnt, "--", *other), XATTR_PREFIX + "ttl")


def test_tags_and_evict_tag_drop_a_family(mnt, tmp_path):
    sa, sb, sc = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a, b, c = counted(sa, "echo a"), counted(sb, "echo b"), counted(sc, "echo c")
    assert memo(mnt, "-g", "family", "-g", "x,y", "--", *a).returncode == 0
    assert memo(mnt, "-g", "family", "--", *b).returncode == 0
    assert memo(mnt, "-g", "keep", "--", *c).returncode == 0
    ea, eb, ec = entry_of(mnt, "--", *a), entry_of(mnt, "--", *b), entry_of(mnt, "--", *c)
    assert tc_get(ea, "tags") == "family,x,y"
    assert tc_get(eb, "tags") == "family"
    os.setxattr(mnt, XATTR_PREFIX + "evict_tag", b"family")
    wait_until(lambda: not ea.exists() and not eb.exists(), 20, "the family to be evicted")
    assert ec.exists()
    for cmd, side, out, total in ((a, sa, b"a\n", 2), (b, sb, b"b\n", 2), (c, sc, b"c\n", 1)):
        assert memo(mnt, "--", *cmd).stdout == out
        assert runs(side) == total


def test_failures_are_cached_only_when_asked(mnt, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, "echo partial; echo failing >&2; exit 3")
    for total in (1, 2):
        p = memo(mnt, "--", *cmd)
        assert (p.returncode, p.stdout, p.stderr) == (3, b"partial\n", b"failing\n")
        assert runs(side) == total
    assert not entry_of(mnt, "--", *cmd).exists()
    for _ in range(2):
        p = memo(mnt, "--cache-failures", "--", *cmd)
        assert (p.returncode, p.stdout, p.stderr) == (3, b"partial\n", b"failing\n")
        assert runs(side) == 3
    # Once stored, a failure replays without the option too.
    assert memo(mnt, "--", *cmd).returncode == 3
    assert runs(side) == 3


def test_command_killed_by_a_signal_is_not_cached(mnt, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, "echo before; kill -TERM $$")
    for total in (1, 2):
        p = memo(mnt, "--", *cmd)
        # tcmemo dies of the command's signal, after passing its output on.
        assert p.returncode == -signal.SIGTERM
        assert p.stdout == b"before\n"
        assert runs(side) == total
    assert not entry_of(mnt, "--", *cmd).exists()


@pytest.mark.parametrize("script", [
    "seq 1 1000000",                                     # dies of SIGPIPE
    "trap '' PIPE; seq 1 1000000 2>/dev/null; exit 0",  # ignores it, exits 0
])
def test_a_cut_stdout_is_not_cached(mnt, tmp_path, script):
    """`tcmemo ... | head -n 1`: the command sees its stdout closed, as
    without tcmemo, and the partial output is not stored, even when the
    command exits 0."""
    side = tmp_path / "side"
    cmd = counted(side, script)
    line = " ".join(shlex.quote(str(a)) for a in [tcmemo_bin(), "-C", mnt, "--", *cmd])
    p = subprocess.run(["sh", "-c", line + " | head -n 1"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=RUN_TIMEOUT * SLOW)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"1\n", b"")
    assert runs(side) == 1
    assert not entry_of(mnt, "--", *cmd).exists()
    full = b"".join(b"%d\n" % i for i in range(1, 1000001))
    for _ in range(2):
        assert memo(mnt, "--", *cmd).stdout == full
    assert runs(side) == 2


def test_command_that_cannot_run(mnt, tmp_path):
    p = memo(mnt, "--", str(tmp_path / "no-such-program"))
    assert p.returncode == 127
    assert p.stderr.decode().startswith("tcmemo: ") and p.stderr.count(b"\n") == 1
    p = memo(mnt, "--", str(tmp_path))  # a directory
    assert p.returncode == 126
    assert p.stderr.count(b"\n") == 1
    assert not (mnt / ".tcmemo").exists() or all(
        d.name == "tmp" for d in (mnt / ".tcmemo").iterdir())


# -- usage and refusals ------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    ([], ["no command"]),
    (["--"], ["no command"]),
    (["--bogus", "--", "true"], ["unknown option", "--bogus"]),
    (["-x", "--", "true"], ["unknown option", "-x"]),
    (["-t"], ["-t", "needs an argument"]),
    (["-t", "soon", "--", "true"], ["-t", "soon"]),
    (["-g", "bad tag", "--", "true"], ["-g", "bad tag"]),
    (["-g", ",".join(f"t{i}" for i in range(33)), "--", "true"], ["more than 32 tags"]),
    (["-e", "A=B", "--", "true"], ["-e", "A=B"]),
    (["-w", "forever", "--", "true"], ["-w", "forever"]),
    (["-f", "/nonexistent/input", "--", "true"], ["/nonexistent/input", "No such file"]),
    (["-f", "/", "--", "true"], ["is a directory"]),
])
def test_bad_usage(mnt, tmp_path, args, words):
    side = tmp_path / "side"
    argv = []
    for a in args:
        argv += counted(side, "true") if a == "true" else [a]
    p = memo(mnt, *argv)
    one_line_error(p, *words)
    assert runs(side) == 0


def test_refuses_what_is_not_a_writable_tiercachefs(mnt, tc_mount, tmp_path):
    side = tmp_path / "side"
    cmd = counted(side, "echo ran")
    plain = tmp_path / "plain"
    plain.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(memo(plain, "--", *cmd), "not a tiercachefs mount")
    one_line_error(memo(tmp_path / "missing", "--", *cmd), "No such file")
    one_line_error(memo(afile, "--", *cmd), "not a directory")
    ro = tc_mount(opts="ro", store=tmp_path / "rostore", mnt=tmp_path / "ro").path
    one_line_error(memo(ro, "--", *cmd), "read-only")
    # No -C and no $TCMEMO_DIR.
    env = {k: v for k, v in os.environ.items() if k != "TCMEMO_DIR"}
    p = subprocess.run([tcmemo_bin(), "--", *cmd], stdin=subprocess.DEVNULL,
                       capture_output=True, env=env, timeout=RUN_TIMEOUT * SLOW)
    one_line_error(p, "TCMEMO_DIR")
    assert runs(side) == 0
    # $TCMEMO_DIR is the default mount; a subdirectory of a mount works too.
    sub = mnt / "sub"
    sub.mkdir()
    p = subprocess.run([tcmemo_bin(), "--", *cmd], stdin=subprocess.DEVNULL,
                       capture_output=True, env={**env, "TCMEMO_DIR": str(sub)},
                       timeout=RUN_TIMEOUT * SLOW)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"ran\n", b"")
    assert (sub / ".tcmemo").is_dir()


def test_help_and_version(tmp_path):
    for opt in ("-h", "--help"):
        p = subprocess.run([tcmemo_bin(), opt], capture_output=True, timeout=30)
        assert p.returncode == 0 and p.stdout.startswith(b"Usage: tcmemo"), p
    for opt in ("-V", "--version"):
        p = subprocess.run([tcmemo_bin(), opt], capture_output=True, timeout=30)
        assert p.returncode == 0 and p.stdout.startswith(b"tcmemo "), p
    p = subprocess.run([tcswap_bin(), "--help"], capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith(b"Usage: tcswap"), p
    p = subprocess.run([tcswap_bin(), "-V"], capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith(b"tcswap "), p


# -- tcswap ---------------------------------------------------------------------------------


def swap(*args):
    return subprocess.run([tcswap_bin(), *map(str, args)], capture_output=True, timeout=30)


def test_tcswap_usage_and_errors(mnt):
    for args in ([], ["a"], ["a", "b", "c"], ["--bogus", "a", "b"]):
        p = swap(*args)
        err = p.stderr.decode()
        assert p.returncode == 2, (args, err)
        assert err.startswith("tcswap: ") and err.count("\n") == 1, err
    write_file(mnt / "present", b"x")
    p = swap(mnt / "absent", mnt / "present")
    assert p.returncode == 1
    assert p.stderr.decode().count("\n") == 1 and "absent" in p.stderr.decode()
    assert read_file(mnt / "present") == b"x"


def test_tcswap_exchanges_a_file_and_a_directory(mnt):
    write_file(mnt / "a", b"file a\n")
    (mnt / "b").mkdir()
    write_file(mnt / "b" / "inner", b"inner\n")
    p = swap(mnt / "a", mnt / "b")
    assert (p.returncode, p.stderr) == (0, b"")
    assert read_file(mnt / "b") == b"file a\n"
    assert read_file(mnt / "a" / "inner") == b"inner\n"


NKEYS = 16
KEYS = [f"k{i:02d}" for i in range(NKEYS)]


def _write_set(d, ver):
    d.mkdir()
    for i, k in enumerate(KEYS):
        write_file(d / k, tc_value(k, ver, 1000 + 700 * i))


def _read_set(live):
    """Read every file of the directory live names now, through one
    descriptor of it: {name: version} or raises with what was wrong."""
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = sorted(os.listdir(fd))
        got = {}
        for n in names:
            f = os.open(n, os.O_RDONLY, dir_fd=fd)
            try:
                chunks = []
                while b := os.read(f, 1 << 16):
                    chunks.append(b)
            finally:
                os.close(f)
            ver, why = tc_parse_value(n, b"".join(chunks))
            if why:
                raise AssertionError(f"{n}: {why}")
            got[n] = ver
    finally:
        os.close(fd)
    if names != KEYS:
        raise AssertionError(f"names {names}")
    if len(set(got.values())) != 1:
        raise AssertionError(f"a mix of sets: {got}")
    return next(iter(got.values()))


def _reader(live, seen, stop):
    """Forked: read whole sets until stop exists; report the last version
    and how many versions were seen in seen (replaced atomically)."""
    versions = []
    while not os.path.exists(stop):
        try:
            v = _read_set(live)
        except (AssertionError, OSError) as e:
            Path(str(seen) + ".bad").write_text(f"reader: {e!r}")
            return 1
        if not versions or versions[-1] != v:
            versions.append(v)
        Path(str(seen) + ".new").write_text(f"{v} {len(versions)}")
        os.rename(str(seen) + ".new", seen)
    return 0


def _prober(live, seen, stop):
    """Forked: open the live directory by path and list it, as fast as it
    can, until stop exists: it must always be there and hold a whole set
    of names (a swap done as several renames has a moment without it)."""
    probes = 0
    while not os.path.exists(stop):
        try:
            fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
            try:
                names = sorted(os.listdir(fd))
            finally:
                os.close(fd)
            if names != KEYS:
                raise AssertionError(f"names {names}")
        except (AssertionError, OSError) as e:
            Path(str(seen) + ".bad").write_text(f"prober, after {probes} probes: {e!r}")
            return 1
        probes += 1
    Path(str(seen) + ".probes").write_text(str(probes))
    return 0


def test_tcswap_publishes_a_set_whole_under_readers(mnt, tmp_path):
    """Readers read every key of the live directory again and again, or
    just open and list it; a writer builds each new set in a staging
    directory and swaps it in. Each set a reader reads is entirely one
    version, and the live directory is never missing."""
    live, seen, stop = mnt / "live", tmp_path / "seen", tmp_path / "stop"
    bad = Path(str(seen) + ".bad")
    _write_set(live, "0")
    rounds = 100
    pids = [fork_worker(_reader, live, seen, stop), fork_worker(_prober, live, seen, stop)]
    try:
        wait_until(lambda: seen.exists(), 30, "the reader's first whole set")
        for v in range(1, rounds + 1):
            if bad.exists():
                break
            stage = mnt / f"stage{v}"
            _write_set(stage, str(v))
            p = swap(stage, live)
            assert (p.returncode, p.stderr) == (0, b""), p.stderr
            # The old set is now under the staging name, whole.
            assert _read_set(stage) == str(v - 1)
        wait_until(lambda: seen.read_text().split()[0] == str(rounds) or bad.exists(), 30,
                   "the reader to see the last set")
    finally:
        stop.touch()
        codes = reap(pids, 60)
    assert not bad.exists(), bad.read_text()
    assert codes == [0, 0]
    assert int(seen.read_text().split()[1]) >= 2
