# SPDX-License-Identifier: MIT
"""The .stats file (tiercachefs(8), STATISTICS): Prometheus text that promtool accepts,
the documented metrics, and counters that move with what programs do."""

import os
import shutil
import stat

import pytest

from tcutil import (parse_metrics, read_file, read_stats, run, tc_set,
                    write_file)

COUNTERS = ["gets", "ram_hits", "disk_hits", "misses", "puts", "deletes",
            "ram_evictions", "disk_evictions", "expirations", "schema_discards",
            "promotions", "corruptions", "read_bytes", "write_bytes"]
GAUGES = ["ram_items", "ram_bytes", "ram_limit_bytes", "disk_items", "disk_bytes",
          "disk_limit_bytes", "blob_bytes", "hit_ratio", "uptime_seconds"]


def test_cat_stats_has_every_metric(mnt):
    out = run(["cat", str(mnt / ".stats")]).stdout
    assert out.endswith("\n")
    m = parse_metrics(out)
    missing = [f"tiercache_{c}_total" for c in COUNTERS if f"tiercache_{c}_total" not in m]
    missing += [f"tiercache_{g}" for g in GAUGES if f"tiercache_{g}" not in m]
    assert not missing, f"missing metrics: {missing}"
    for c in COUNTERS:
        assert f"# TYPE tiercache_{c}_total counter" in out
    for g in GAUGES:
        assert f"# TYPE tiercache_{g} gauge" in out
    assert m["tiercache_hit_ratio"] == 0  # before any get
    assert m["tiercache_uptime_seconds"] >= 0
    st = os.stat(mnt / ".stats")
    assert stat.S_ISREG(st.st_mode)


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_promtool_accepts_stats(mnt):
    write_file(mnt / "f", b"x")
    read_file(mnt / "f")
    text = read_file(mnt / ".stats")
    r = run(["promtool", "check", "metrics"], input=text, text=False, check=False)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", \
        f"promtool: rc={r.returncode} {r.stdout!r} {r.stderr!r}"


def test_limits_reflect_options(tc_mount):
    m = tc_mount(opts="ram_size=8M,disk_size=3G")
    s = read_stats(m.path)
    assert s["tiercache_ram_limit_bytes"] == 8 << 20
    assert s["tiercache_disk_limit_bytes"] == 3 << 30


@pytest.mark.daemon_mode("counts the opens and reads the daemon sees; in cache_mode=kernel the kernel's caches serve repeats (test_kernel_mode.py)")
def test_counters_move(mnt):
    s0 = read_stats(mnt)
    data = os.urandom(10_000)
    write_file(mnt / "f", data)
    s1 = read_stats(mnt)
    assert s1["tiercache_puts_total"] > s0["tiercache_puts_total"]
    assert s1["tiercache_write_bytes_total"] >= s0["tiercache_write_bytes_total"] + 10_000
    assert s1["tiercache_disk_items"] == s0["tiercache_disk_items"] + 1
    assert s1["tiercache_disk_bytes"] == s0["tiercache_disk_bytes"] + 10_000
    assert s1["tiercache_blob_bytes"] >= s0["tiercache_blob_bytes"] + 10_000

    # a get: one open for reading
    assert read_file(mnt / "f") == data
    s2 = read_stats(mnt)
    assert s2["tiercache_gets_total"] == s1["tiercache_gets_total"] + 1
    hits = lambda s: s["tiercache_ram_hits_total"] + s["tiercache_disk_hits_total"]
    assert hits(s2) == hits(s1) + 1
    assert s2["tiercache_read_bytes_total"] >= s1["tiercache_read_bytes_total"] + 10_000

    # a miss: lookup of an absent name that is not then created
    assert not (mnt / "absent-name").exists()
    s3 = read_stats(mnt)
    assert s3["tiercache_misses_total"] >= s2["tiercache_misses_total"] + 1

    # a delete
    os.unlink(mnt / "f")
    s4 = read_stats(mnt)
    assert s4["tiercache_deletes_total"] >= s3["tiercache_deletes_total"] + 1
    assert s4["tiercache_disk_items"] == s0["tiercache_disk_items"]
    assert s4["tiercache_disk_bytes"] == s0["tiercache_disk_bytes"]

    # hit_ratio is (ram_hits + disk_hits) / (ram_hits + disk_hits + misses)
    h, mi = hits(s4), s4["tiercache_misses_total"]
    assert abs(s4["tiercache_hit_ratio"] - h / (h + mi)) < 1e-6


@pytest.mark.daemon_mode("counts the opens and reads the daemon sees; in cache_mode=kernel the kernel's caches serve repeats (test_kernel_mode.py)")
def test_ram_tier_gauges(tc_mount):
    m = tc_mount(opts="ram_size=64M")
    data = os.urandom(100_000)
    write_file(m.path / "f", data)
    read_file(m.path / "f")
    read_file(m.path / "f")
    s = read_stats(m.path)
    assert s["tiercache_ram_items"] >= 1
    assert s["tiercache_ram_bytes"] >= 100_000
    assert s["tiercache_ram_hits_total"] >= 1


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_duplicate_content_stored_once(mnt):
    s0 = read_stats(mnt)
    data = os.urandom(200_000)
    write_file(mnt / "a", data)
    write_file(mnt / "b", data)
    s1 = read_stats(mnt)
    assert s1["tiercache_disk_bytes"] - s0["tiercache_disk_bytes"] == 400_000
    assert s1["tiercache_blob_bytes"] - s0["tiercache_blob_bytes"] < 400_000


@pytest.mark.daemon_mode("expects a write published when close() returns; cache_mode=kernel publishes it at fsync, rename, a read of its computed attributes or about 2 s after its close (tiercachefs(8), CACHE MODES)")
def test_stats_regenerated_at_each_open(mnt):
    with open(mnt / ".stats", "rb") as held:
        first = held.read()
        write_file(mnt / "f", b"x" * 1000)
        held.seek(0)
        assert held.read() == first  # one open, one snapshot
    second = read_file(mnt / ".stats")
    assert parse_metrics(second.decode())["tiercache_puts_total"] > \
        parse_metrics(first.decode())["tiercache_puts_total"]


def test_reading_stats_is_not_a_get(mnt):
    s0 = read_stats(mnt)
    for _ in range(3):
        read_stats(mnt)
    s1 = read_stats(mnt)
    assert s1["tiercache_gets_total"] == s0["tiercache_gets_total"]


@pytest.mark.daemon_mode("counts the opens and reads the daemon sees; in cache_mode=kernel the kernel's caches serve repeats (test_kernel_mode.py)")
def test_reset_stats(mnt):
    write_file(mnt / "f", b"abc")
    read_file(mnt / "f")
    s0 = read_stats(mnt)
    assert s0["tiercache_puts_total"] > 0 and s0["tiercache_gets_total"] > 0
    tc_set(mnt, "reset_stats", "1")
    s1 = read_stats(mnt)
    for c in COUNTERS:
        assert s1[f"tiercache_{c}_total"] == 0, c
    assert s1["tiercache_disk_items"] == s0["tiercache_disk_items"]  # gauges stay
    assert s1["tiercache_hit_ratio"] == 0
