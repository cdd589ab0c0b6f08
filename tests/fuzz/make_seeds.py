#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/.

    tests/fuzz/make_seeds.py            rewrite the seeds named here
                                        (other files, e.g. regression inputs
                                        of fixed findings, are kept)

Each seed is a small, meaningful input: libFuzzer mutates from there, and the
replay tests (suite 'unit') run them all on every build. The encoders below
mirror the decoders in fuzz_xattr.c and fuzz_engine.c (their op tables and
argument bytes): change both together.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------
# fuzz_parse: the raw string
# --------------------------------------------------------------------------

PARSE = {
    "size-plain": "4096", "size-k": "64K", "size-m": "256M", "size-g": "10G",
    "size-t": "1T", "size-mb": "16MB", "size-lower": "16mb", "size-b": "100B",
    "size-none": "none", "size-NONE": "NONE", "size-zero": "0",
    "size-max": "18446744073709551615", "size-over": "18446744073709551616",
    "size-tb-over": "16777216T", "size-neg": "-1", "size-space": " 12",
    "size-plus": "+12", "size-frac": "1.5G", "size-bb": "1KBB",
    "size-q": "12Q", "size-empty": "", "size-lead0": "0007K",
    "regress-overflow-malformed": "99999999999999999999x",
    "regress-overflow-malformed-dur": "99999999999999999999q",
    "dur-plain": "60", "dur-s": "30s", "dur-m": "5m", "dur-h": "1h",
    "dur-d": "7d", "dur-upper": "1H", "dur-max": "9223372036",
    "dur-over": "9223372037", "dur-d-max": "106751d", "dur-d-over": "106752d",
    "dur-none": "none", "mode-abs": "absolute", "mode-sliding": "sliding",
    "mode-bad": "Absolute", "sync-fsync": "fsync", "sync-close": "close",
    "sync-never": "never", "sync-nul": "never\0x",
    "tag": "demo", "tag-colon": "a:b-c.d_e", "tag-plus": "a+b",
    "tag-64": "t" * 64, "tag-65": "t" * 65, "tag-comma": "a,b",
    "tag-utf8": "caf\u00e9", "tag-high": b"\xe9t\xff",
}

# --------------------------------------------------------------------------
# fuzz_options: config file, then the arguments, NUL-separated
# ("@M": a directory to mount on, "@S": a store path)
# --------------------------------------------------------------------------


def opts(conf, *args):
    return "\0".join((conf,) + args)


OPTIONS = {
    "minimal": opts("", "@M"),
    "store-mnt": opts("", "@S", "@M"),
    "all-opts": opts("", "-o", "ram_size=1G,ram_items=1000,ram_ttl=30m,"
                     "max_ram_item=4M,disk_size=50G,disk_items=none,ttl=1d,"
                     "ttl_mode=sliding,schema=v2,sync=close", "@S", "@M"),
    "fstab": opts("", "@S", "@M", "-o",
                  "rw,noauto,_netdev,x-systemd.automount,comment=x,"
                  "ram_size=1G,allow_other,default_permissions"),
    "joined-o": opts("", "-oram_size=16MB,sync", "-f", "@M"),
    "escapes": opts("", "-o", "store=/tmp/a\\,b,fsname=x\\,y", "@M"),
    "flags": opts("", "-fds", "--debug", "--foreground", "@M"),
    "check": opts("", "--check", "--fix", "@S"),
    "help": opts("", "--help"),
    "version": opts("", "-V"),
    "dashdash": opts("", "--", "-weird", "@M"),
    "errors-size": opts("", "-o", "ram_size=12Q", "@M"),
    "errors-range": opts("", "-o", "disk_size=99999999999999999999", "@M"),
    "errors-missing": opts("", "-o", "ttl", "@M"),
    "errors-mode": opts("", "-o", "ttl_mode=fixed", "@M"),
    "errors-sync": opts("", "-o", "sync=always", "@M"),
    "errors-schema": opts("", "-o", "schema=a b", "@M"),
    "errors-empty-store": opts("", "-o", "store=", "@M"),
    "errors-two-stores": opts("", "-o", "store=/x", "@S", "@M"),
    "errors-fix": opts("", "--fix", "@M"),
    "errors-args": opts("", "a", "b", "c"),
    "errors-unknown": opts("", "--bogus", "@M"),
    "errors-no-mnt": opts("", "-f"),
    "errors-o-last": opts("", "@M", "-o"),
    "errors-not-dir": opts("", "/etc/passwd"),
    "config": opts("[mount]\nram_size = 2G\nttl = 1h\nsync = never\n"
                   "[tag thumbs]\nttl = 10m\nram_ttl = 1m\n"
                   "[tag logs]\nttl = 7d\n; comment\n# comment\n",
                   "@M"),
    "config-wins": opts("[mount]\nram_size = 2G\nschema = v1\n",
                        "-o", "ram_size=3G", "@M"),
    "config-errors": opts("[mount]\nbogus = 1\n", "@M"),
    "config-section": opts("[other]\na = 1\n", "@M"),
    "config-outside": opts("a = 1\n", "@M"),
    "config-syntax": opts("[mount\nram_size\n", "@M"),
    "config-tag-bad": opts("[tag a b]\nttl = 1h\n", "@M"),
    "config-tag-opt": opts("[tag a]\nsize = 1\n", "@M"),
    "config-tag-64": opts("[tag " + "t" * 64 + "]\nttl=1s\n", "@M"),
    "config-store": opts("[mount]\nstore = rel/dir\n", "@M"),
    "config-config": opts("[mount]\nconfig = x\n", "@M"),
    "config-long-line": opts("[mount]\nschema = " + "v" * 300 + "\n", "@M"),
    "config-multiline": opts("[mount]\nttl = 1h\n  2h\n", "@M"),
}

# --------------------------------------------------------------------------
# fuzz_xattr: (op x target, name, [flags, length, value]) records
# --------------------------------------------------------------------------

X_TARGET = {"f": 0, "d": 1, "root": 2}
X_OP = {"set": 0, "get": 3, "remove": 4, "list": 5}
X_NAMES = ["ttl", "ttl_mode", "expires", "tags", "schema", "tier", "hash",
           "evict_tag", "flush", "expire", "reset_stats",
           # fixed names, as pick_name() lists them
           "tc-empty", "tc-TTL", "tc-ttl.", "tc-nope", "user.a", "user.b",
           "user.tiercache", "user.", "trusted.a", "security.a",
           "system.posix_acl_access", "", "user", "user-255", "user-256",
           "user+input", "tc+input"]


def x_op(op, target, name, value=None, flags=0, raw_name=b""):
    b = bytes([X_OP[op] + 6 * X_TARGET[target], X_NAMES.index(name)])
    if name in ("user+input", "tc+input"):
        b += bytes([len(raw_name)]) + raw_name
    if op == "set":
        if value == "64k":
            return b + bytes([flags, 254])
        if isinstance(value, str):
            value = value.encode()
        assert len(value) < 200
        b += bytes([flags, len(value)]) + value
    return b


def x_seeds():
    s = {}
    s["ttl-file"] = x_op("set", "f", "ttl", "1h") + x_op("get", "f", "expires")
    s["ttl-units"] = b"".join(x_op("set", "f", "ttl", v) for v in
                              ("90", "120s", "7d", "none", "0", "3600"))
    s["ttl-bad"] = b"".join(x_op("set", "f", "ttl", v) for v in
                            ("1H", "-1", "1.5h", "", "1h\0", "1h\0x"))
    s["ttl-huge"] = x_op("set", "f", "ttl", "7523372035") + \
        x_op("set", "f", "ttl", "7523372037")
    # Fixed findings, as regression inputs.
    s["regress-ttl-overflow"] = x_op("set", "f", "ttl", "9223372036")
    s["regress-expires-overflow"] = x_op("set", "f", "ttl", "7523372036") + \
        x_op("get", "f", "expires")
    s["ttl-dir"] = x_op("set", "d", "ttl", "1d") + x_op("set", "root",
                                                          "ttl", "30m")
    s["ttl-remove"] = (x_op("set", "f", "ttl", "5m") +
                       x_op("remove", "f", "ttl") + x_op("remove", "f", "ttl"))
    s["mode"] = b"".join(x_op("set", t, "ttl_mode", v) for t, v in
                         (("f", "sliding"), ("d", "absolute"),
                          ("root", "bogus"), ("f", "absolute")))
    s["tags"] = (x_op("set", "f", "tags", "demo,text") +
                 x_op("set", "f", "tags", "b,a,b,a") +
                 x_op("set", "f", "tags", "x:1,y-2,z.3,w_4") +
                 x_op("list", "f", "ttl"))
    s["tags-bad"] = b"".join(x_op("set", "f", "tags", v) for v in
                             (",", "a,", ",a", "a,,b", "a b", "a+b",
                              "t" * 65))
    s["tags-33"] = x_op("set", "f", "tags",
                        ",".join("t%d" % i for i in range(33))[:199])
    s["tags-dir"] = x_op("set", "d", "tags", "a") + x_op("set", "root",
                                                          "tags", "a")
    s["tags-empty"] = (x_op("set", "f", "tags", "a") +
                       x_op("set", "f", "tags", "") + x_op("get", "f", "tags"))
    s["schema"] = (x_op("set", "f", "schema", "v1.2+3") +
                   x_op("set", "d", "schema", "v2") +
                   x_op("set", "root", "schema", "v3") +
                   x_op("set", "f", "schema", "v:1") +
                   x_op("remove", "d", "schema"))
    s["readonly"] = b"".join(x_op("set", "f", n, "x") for n in
                             ("expires", "tier", "hash")) + \
        b"".join(x_op("remove", "f", n) for n in ("expires", "tier", "hash"))
    s["computed"] = b"".join(x_op("get", t, n) for t in ("f", "d") for n in
                             ("expires", "tier", "hash"))
    s["control"] = (x_op("set", "f", "tags", "gone") +
                    x_op("set", "root", "flush", "ram") +
                    x_op("get", "f", "tier") +
                    x_op("set", "root", "expire", "") +
                    x_op("set", "root", "reset_stats", "1") +
                    x_op("set", "root", "evict_tag", "gone") +
                    x_op("get", "f", "tags") + x_op("list", "f", "ttl"))
    s["control-flush"] = (x_op("set", "root", "flush", "everything") +
                          x_op("set", "root", "flush", "disk") +
                          x_op("set", "f", "ttl", "1h") +
                          x_op("set", "root", "flush", "all"))
    s["control-misplaced"] = (x_op("set", "f", "flush", "ram") +
                              x_op("set", "d", "evict_tag", "a") +
                              x_op("get", "root", "flush") +
                              x_op("remove", "root", "expire"))
    s["names"] = b"".join(x_op("set", "f", n, "v") for n in
                          ("tc-empty", "tc-TTL", "tc-ttl.", "tc-nope",
                           "user.tiercache", "user.", "trusted.a",
                           "security.a", "system.posix_acl_access", "",
                           "user", "user-255", "user-256"))
    s["user"] = (x_op("set", "f", "user.a", "one") +
                 x_op("set", "f", "user.a", "two", flags=1) +
                 x_op("set", "f", "user.b", "three", flags=2) +
                 x_op("set", "f", "user.a", "four", flags=2) +
                 x_op("set", "d", "user.b", "") +
                 x_op("set", "root", "user.a", "r") +
                 x_op("list", "root", "ttl") + x_op("remove", "f", "user.a") +
                 x_op("remove", "f", "user.a") + x_op("get", "d", "user.b"))
    s["user-big"] = (x_op("set", "f", "user.a", "64k") +
                     x_op("set", "f", "user.b", "64k", flags=0)[:-1] +
                     bytes([255]))
    s["user-input-name"] = (x_op("set", "f", "user+input", "v",
                                 raw_name=b"x.y") +
                            x_op("set", "f", "tc+input", "1h",
                                 raw_name=b"ttl") +
                            x_op("get", "f", "user+input",
                                 raw_name=b"x\0y"))
    s["dead-file"] = (x_op("set", "f", "user.a", "v") +
                      x_op("set", "root", "flush", "disk") +
                      x_op("get", "f", "user.a") +
                      x_op("set", "f", "ttl", "1h") +
                      x_op("remove", "f", "ttl") + x_op("list", "f", "ttl"))
    return s


# --------------------------------------------------------------------------
# fuzz_engine: opcode byte and arguments (ops[] in fuzz_engine.c)
# --------------------------------------------------------------------------

E_OPS = ["create"] * 3 + ["open"] * 3 + ["write"] * 5 + ["read"] * 3 + \
    ["truncate"] * 2 + ["flush", "fsync"] + ["release"] * 2 + \
    ["unlink"] + ["rename"] * 2 + ["link"] + ["mkdir"] * 2 + \
    ["rmdir", "readdir"] + ["xattr"] * 2 + \
    ["getattr", "hold", "forget", "mknod", "readlink", "reopen", "maintain",
     "control", "verify", "arm", "chmod", "ttl", "ttl", "maintain",
     "fallocate"]
# fallocate's modes, in the order of op_fallocate's table
F_MODES = ["alloc", "keep", "punch", "zero", "zero-keep", "punch-nokeep"]
E_PARENT = {"/": 0, "a": 3, "b": 4, "a/b": 5, "b/c": 6}
E_SPECIAL = {".stats": 240, "": 241, "x/y": 242, "long255": 243,
             "long256": 244}
RDONLY, WRONLY, RDWR, TRUNC, APPEND = 0, 1, 2, 4, 8


def op(name):
    return bytes([E_OPS.index(name)])


def parent(p):
    if isinstance(p, tuple):  # ("hold", slot)
        return bytes([7, p[1]])
    return bytes([E_PARENT[p]])


def name(n):
    if n in E_SPECIAL:
        return bytes([E_SPECIAL[n]])
    return bytes([ord(n) - ord("a")])


def entry(p, n=None):
    """A path (parent, name), or ("hold", slot)."""
    if p == "hold":
        return bytes([7 + 8 * n])
    return bytes([0]) + parent(p) + name(n)


def off(v):
    if v == "end":
        return bytes([0])
    if v in ("spill", "efbig", "huge", "neg"):
        return bytes([0xC0 | ["spill", "efbig", "huge", "neg"].index(v)])
    if v < 64:
        return bytes([0x40 | v])
    return bytes([0x80]) + struct.pack("<H", v)


def length(v):
    if v < 16:
        return bytes([v])
    if v < 256:
        return bytes([0x40, v])
    if v < 8192:
        return bytes([0x80]) + struct.pack("<H", v)
    assert v >= 65536 and (v - 65536) % 16 == 0
    return bytes([0xC0, (v - 65536) // 16])


def create(p, n, flags=WRONLY, slot=0):
    return op("create") + parent(p) + name(n) + bytes([flags, slot])


def open_(p, n, flags=RDONLY, slot=1):
    return op("open") + entry(p, n) + bytes([flags, slot])


def write_(slot, o, n, seed=1):
    return op("write") + bytes([slot]) + off(o) + length(n) + bytes([seed])


def read(slot, o, n):
    return op("read") + bytes([slot]) + off(o) + length(n)


def truncate(size, slot=None, p=None, n=None):
    b = op("truncate")
    b += bytes([1, slot]) if slot is not None else bytes([0]) + entry(p, n)
    if size == "efbig":
        return b + bytes([0xC1])
    if size == "spill":
        return b + bytes([0xC0])
    if size < 64:
        return b + bytes([size])
    return b + bytes([0x80]) + struct.pack("<H", size)


def fallocate(slot, mode, o, n):
    return op("fallocate") + bytes([slot, F_MODES.index(mode)]) + off(o) + \
        length(n)


def simple(o, *args):
    return op(o) + bytes(args)


def unlink(p, n):
    return op("unlink") + parent(p) + name(n)


def rename(p1, n1, p2, n2, flags=0):
    sel = {0: 0, 1: 3, 2: 4, 3: 6, 4: 7}[flags]
    return op("rename") + parent(p1) + name(n1) + parent(p2) + name(n2) + \
        bytes([sel])


def link(p, n, p2, n2):
    return op("link") + entry(p, n) + parent(p2) + name(n2)


def mkdir(p, n):
    return op("mkdir") + parent(p) + name(n)


def rmdir(p, n):
    if n in (".", ".."):
        return op("rmdir") + parent(p) + bytes([1 if n == "." else 2])
    return op("rmdir") + parent(p) + bytes([0]) + name(n)


def readdir(p, plus=False, chunk=1):
    return op("readdir") + parent(p) + bytes([int(plus) | (chunk - 1) << 1])


def xattr(kind, p, n, k=0, flags=0, vlen=3, seed=1):
    c = {"set": 0, "remove": 1, "get": 2}[kind] | k << 2 | flags << 4
    b = op("xattr") + bytes([c]) + entry(p, n)
    if kind == "set":
        b += bytes([vlen, seed])
    return b


STEPS = [0, 1, 2, 30, 61, 600, 7200, 86400]


def clock(seconds, maintain=False):
    """Move the clock by one of STEPS seconds, then maybe maintain."""
    return op("maintain") + bytes([STEPS.index(seconds) | 8 * maintain])


def ttl(p, n, value=None, mode=None, remove=False):
    """user.tiercache.ttl ("1", "60", "1h", "none") or ttl_mode."""
    if mode is not None or (remove and value is None):
        c = 4 | (1 if mode == "sliding" else 0)
    else:
        c = ["1", "60", "1h", "none"].index(value or "1")
    c |= 8 * remove
    return op("ttl") + bytes([c]) + entry(p, n)


def mknod(p, n, kind):
    kinds = {"dir": 0, "fifo": 1, "sock": 2, "reg": 3, "chr": 4, "blk": 5,
             "none": 6, "lnk": 7, "symlink": 8}
    b = op("mknod") + bytes([kinds[kind]]) + parent(p) + name(n)
    if kind == "symlink":
        b += bytes([3])
    return b


def symlink(p, n, target_sel=3):
    return op("mknod") + bytes([8]) + parent(p) + name(n) + \
        bytes([target_sel])


def e_seeds():
    s = {}
    put_a = create("/", "a") + write_(0, 0, 5) + simple("release", 0)
    s["put-get"] = put_a + open_("/", "a") + read(1, 0, 100) + \
        simple("release", 1)
    s["overwrite-trunc"] = put_a + open_("/", "a", WRONLY | TRUNC, 0) + \
        open_("/", "a", RDONLY, 1) + read(1, 0, 10) + write_(0, 0, 3, 7) + \
        read(1, 0, 10) + simple("release", 0) + read(1, 0, 10)
    s["append"] = put_a + open_("/", "a", WRONLY | APPEND, 0) + \
        write_(0, 0, 4, 2) + write_(0, 2, 4, 3) + simple("flush", 0) + \
        open_("/", "a", RDONLY, 2) + read(2, 0, 20)
    s["two-writers"] = put_a + open_("/", "a", RDWR, 0) + \
        open_("/", "a", RDWR, 1) + write_(0, 1, 3, 4) + write_(1, 10, 3, 5) + \
        simple("flush", 0) + simple("flush", 1) + read(0, 0, 20) + \
        simple("release", 0) + simple("flush", 1) + simple("release", 1)
    s["hole"] = create("/", "b", RDWR) + write_(0, 300, 5) + read(0, 0, 400) \
        + truncate(10, slot=0) + read(0, 0, 400) + truncate(200, slot=0) + \
        read(0, 0, 400)
    s["fsync-reader"] = put_a + open_("/", "a", RDWR, 0) + \
        open_("/", "a", RDONLY, 1) + write_(0, 0, 9, 3) + \
        simple("fsync", 1, 0) + simple("reopen", 0) + simple("verify")
    s["unlink-open"] = put_a + open_("/", "a", RDONLY, 1) + unlink("/", "a") + \
        read(1, 0, 10) + open_("/", "a") + simple("release", 1)
    s["unlink-writer"] = create("/", "c", RDWR) + write_(0, 0, 8) + \
        unlink("/", "c") + write_(0, 4, 8) + read(0, 0, 20) + \
        simple("release", 0)
    s["hold-unlinked"] = put_a + op("hold") + entry("/", "a") + bytes([0]) + \
        unlink("/", "a") + op("getattr") + entry("hold", 0) + \
        op("open") + entry("hold", 0) + bytes([RDWR, 1]) + \
        write_(1, 0, 3) + simple("release", 1) + \
        link("hold", 0, "/", "b") + simple("forget", 0) + \
        op("getattr") + entry("hold", 0)
    s["rename"] = put_a + create("/", "b") + write_(0, 0, 7, 9) + \
        simple("release", 0) + rename("/", "a", "/", "c") + \
        rename("/", "c", "/", "b", 1) + rename("/", "c", "/", "b") + \
        rename("/", "b", "/", "b") + readdir("/")
    s["rename-exchange"] = put_a + mkdir("/", "b") + create("b", "d") + \
        simple("release", 0) + rename("/", "a", "b", "d", 2) + \
        rename("/", "a", "/", "b", 2) + readdir("/") + readdir("b") + \
        rename("/", "a", "/", "e", 2) + rename("/", "a", "/", "b", 3) + \
        rename("/", "a", "/", "b", 4)
    s["rename-dirs"] = mkdir("/", "a") + mkdir("a", "b") + mkdir("/", "b") + \
        rename("/", "a", "a/b", "c") + rename("/", "a", "a", "x") + \
        rename("/", "b", "/", "a") + rename("a", "b", "/", "b") + \
        rename("/", "a", "/", "b") + op("getattr") + entry("/", "a") + \
        readdir("/") + rename("/", "b", "/", "c", 2)
    s["links"] = put_a + link("/", "a", "/", "b") + mkdir("/", "c") + \
        link("/", "a", "/", "c") + link("/", "c", "/", "d") + \
        unlink("/", "a") + open_("/", "b") + read(1, 0, 10) + \
        rename("/", "b", "/", "b") + unlink("/", "b") + readdir("/")
    s["dirs"] = mkdir("/", "a") + mkdir("a", "b") + create("a/b", "f") + \
        write_(0, 0, 30) + simple("release", 0) + rmdir("/", "a") + \
        rmdir("a", "b") + unlink("a/b", "f") + rmdir("a", "b") + \
        rmdir("/", ".") + rmdir("/", "..") + rmdir("/", "a") + \
        readdir("/", True, 2) + mkdir("/", "a") + unlink("/", "a")
    s["readdir-plus"] = b"".join(create("/", c) + simple("release", 0)
                                 for c in "abcdefgh") + \
        readdir("/", True, 1) + readdir("/", False, 3) + readdir("/", True, 4)
    s["large"] = create("/", "a", RDWR) + write_(0, 0, 65536 + 16 * 40) + \
        read(0, 60000, 8000 - 1) + simple("release", 0) + open_("/", "a") + \
        read(1, 0, 65536 + 16 * 255) + open_("/", "a", RDWR, 2) + \
        write_(2, 5, 3) + \
        read(1, 0, 65536 + 16 * 255)
    s["spill"] = create("/", "a", RDWR) + write_(0, 0, 100) + \
        truncate("spill", slot=0) + write_(0, "spill", 200) + \
        read(0, "spill", 300) + simple("release", 0) + simple("verify")
    s["errors"] = create("/", "a", RDONLY) + write_(0, 0, 4) + \
        create("/", "b", WRONLY, 1) + read(1, 0, 4) + \
        write_(1, "efbig", 4) + write_(1, "huge", 4) + write_(1, "neg", 4) + \
        read(0, "neg", 4) + truncate("efbig", slot=1) + \
        write_(1, 1, 4) + write_(1, 5, 0) + \
        simple("release", 1)
    s["names"] = b"".join(create("/", n) for n in
                          (".stats", "", "x/y", "long255", "long256")) + \
        b"".join(op("getattr") + entry("/", n) for n in
                 (".stats", "", "long255", "long256")) + \
        unlink("/", ".stats") + rename("/", ".stats", "/", "a") + \
        mkdir("/", ".stats") + mkdir("/", "long255") + readdir("/")
    s["special"] = mknod("/", "a", "fifo") + mknod("/", "b", "sock") + \
        mknod("/", "c", "chr") + mknod("/", "d", "none") + \
        mknod("/", "e", "reg") + mknod("/", "f", "lnk") + \
        symlink("/", "g") + symlink("/", "h", 250) + \
        symlink("/", "h", 251) + symlink("/", "h", 252) + \
        op("readlink") + entry("/", "g") + bytes([1]) + \
        op("readlink") + entry("/", "g") + bytes([2]) + \
        op("readlink") + entry("/", "a") + bytes([1]) + \
        open_("/", "a") + open_("/", "g") + truncate(3, p="/", n="a") + \
        link("/", "g", "/", "d") + readdir("/")
    s["xattr"] = put_a + xattr("set", "/", "a", 0) + \
        xattr("set", "/", "a", 0, 1) + xattr("set", "/", "a", 1, 2) + \
        xattr("set", "/", "a", 1, 0, 0) + xattr("get", "/", "a") + \
        xattr("remove", "/", "a", 0) + xattr("remove", "/", "a", 0) + \
        mkdir("/", "b") + xattr("set", "/", "b", 2, 0, 255) + \
        xattr("set", "/", "b", 2, 0, 200, 9) + simple("reopen", 0)
    s["reopen-dirty"] = put_a + open_("/", "a", RDWR, 0) + \
        write_(0, 2, 6, 5) + create("/", "b", RDWR, 1) + write_(1, 0, 3) + \
        op("hold") + entry("/", "b") + bytes([1]) + unlink("/", "b") + \
        simple("reopen", 0) + open_("/", "a", RDONLY, 2) + read(2, 0, 20) + \
        op("getattr") + entry("hold", 1) + simple("forget", 1)
    s["flush-tiers"] = put_a + create("/", "b", RDWR, 1) + \
        write_(1, 0, 6000) + simple("release", 1) + open_("/", "b", RDWR, 2) \
        + simple("control", 0) + read(2, 0, 7000) + clock(600, True) + \
        open_("/", "a", RDONLY, 3) + read(3, 0, 9) + simple("control", 1) + \
        read(2, 0, 7000) + write_(2, 0, 5) + simple("release", 2) + \
        readdir("/") + simple("verify")
    s["dedup"] = create("/", "a") + write_(0, 0, 50, 4) + \
        simple("release", 0) + create("/", "b") + write_(0, 0, 50, 4) + \
        simple("release", 0) + unlink("/", "a") + open_("/", "b") + \
        read(1, 0, 60) + simple("control", 0) + simple("release", 1) + \
        open_("/", "b", RDONLY, 2) + read(2, 0, 60) + simple("reopen", 0)
    s["many-ram"] = b"".join(create("/", c) + write_(0, 0, 3000, i) +
                             simple("release", 0)
                             for i, c in enumerate("abcdefgh")) + \
        b"".join(open_("/", c, RDONLY, 1) + read(1, 0, 3100)
                 for c in "abcdefgh") + clock(7200, True) + \
        simple("verify")
    s["enospc-flush"] = put_a + open_("/", "a", RDWR, 0) + \
        write_(0, 0, 9, 6) + simple("arm", 0) + simple("flush", 0) + \
        read(0, 0, 20) + open_("/", "a", RDONLY, 1) + read(1, 0, 20) + \
        simple("fsync", 0, 0) + simple("release", 0) + simple("verify")
    s["enospc-release"] = put_a + open_("/", "a", WRONLY | TRUNC, 0) + \
        write_(0, 0, 12, 8) + simple("arm", 0) + simple("release", 0) + \
        open_("/", "a", RDONLY, 1) + read(1, 0, 20) + simple("reopen", 0)
    s["enospc-twice"] = create("/", "b", RDWR) + write_(0, 0, 40) + \
        simple("arm", 1) + simple("fsync", 0, 1) + simple("flush", 0) + \
        simple("flush", 0) + simple("release", 0) + simple("verify")
    s["enospc-spill"] = create("/", "c", RDWR) + write_(0, 0, 100) + \
        simple("arm", 0) + truncate("spill", slot=0) + read(0, 0, 200) + \
        write_(0, "spill", 200) + simple("arm", 0) + \
        write_(0, "spill", 300) + read(0, "spill", 400) + \
        simple("release", 0)
    s["enospc-dedup"] = put_a + create("/", "b") + write_(0, 0, 5) + \
        simple("arm", 0) + simple("release", 0) + simple("verify")
    s["ttl-expire"] = put_a + ttl("/", "a", "1") + clock(2) + \
        readdir("/") + op("getattr") + entry("/", "a") + create("/", "a") + \
        simple("release", 0)
    s["ttl-sliding"] = put_a + ttl("/", "a", "60") + \
        ttl("/", "a", mode="sliding") + clock(30) + open_("/", "a") + \
        simple("release", 1) + clock(30) + clock(2) + \
        op("getattr") + entry("/", "a") + clock(61) + readdir("/") + \
        op("getattr") + entry("/", "a")
    s["ttl-dir"] = mkdir("/", "b") + ttl("/", "b", "1h") + \
        ttl("/", "b", mode="sliding") + create("b", "c") + \
        simple("release", 0) + xattr("get", "b", "c") + clock(600) + \
        open_("b", "c") + simple("release", 1) + clock(7200, True) + \
        readdir("b") + ttl("/", "b", remove=True) + create("b", "d") + \
        simple("release", 0) + clock(86400, True) + readdir("b")
    s["ttl-open-handle"] = put_a + ttl("/", "a", "1") + \
        open_("/", "a", RDWR, 1) + clock(2) + read(1, 0, 10) + \
        op("getattr") + entry("/", "a") + write_(1, 0, 3) + \
        simple("release", 1) + readdir("/") + simple("verify")
    s["ttl-rewrite"] = put_a + ttl("/", "a", "60") + clock(30) + \
        open_("/", "a", WRONLY, 0) + write_(0, 0, 2) + simple("release", 0) + \
        clock(30) + clock(2) + op("getattr") + entry("/", "a") + \
        clock(61, True) + readdir("/")
    s["ttl-none"] = put_a + ttl("/", "a", "1") + ttl("/", "a", "none") + \
        clock(86400, True) + op("getattr") + entry("/", "a") + \
        ttl("/", "a", remove=True) + ttl("/", "a", mode="absolute") + \
        ttl("/", "a", mode="absolute", remove=True) + \
        mknod("/", "b", "fifo") + ttl("/", "b", "60") + \
        ttl("/", "b", remove=True)
    s["ttl-expire-control"] = put_a + link("/", "a", "/", "b") + \
        ttl("/", "a", "1") + clock(2) + simple("control", 2) + readdir("/")
    s["ttl-link-rename"] = put_a + mkdir("/", "b") + \
        link("/", "a", "b", "c") + ttl("/", "a", "1") + clock(2) + \
        rename("b", "c", "/", "d") + readdir("/") + readdir("b") + \
        create("b", "c") + write_(0, 0, 3) + simple("release", 0)
    s["ttl-hold"] = put_a + op("hold") + entry("/", "a") + bytes([0]) + \
        ttl("/", "a", "1") + clock(2) + op("getattr") + entry("hold", 0) + \
        op("open") + entry("hold", 0) + bytes([RDONLY, 1]) + \
        simple("release", 1) + clock(2, True) + simple("forget", 0)
    s["ttl-reopen"] = put_a + ttl("/", "a", "60") + mkdir("/", "b") + \
        ttl("/", "b", "1h") + simple("reopen", 0) + create("b", "c") + \
        simple("release", 0) + clock(61) + simple("reopen", 0) + \
        readdir("/") + clock(7200, True)
    # Fixed findings, as regression inputs.
    s["regress-failed-truncate"] = put_a + simple("arm", 0) + \
        truncate(2, p="/", n="a") + open_("/", "a") + read(1, 0, 10)
    s["regress-zero-write-extends"] = create("/", "b", WRONLY, 1) + \
        write_(1, 100, 0)
    s["regress-zero-write-null"] = create("/", "b", WRONLY, 1) + \
        write_(1, 0, 0)
    s["chmod"] = put_a + mkdir("/", "b") + \
        op("chmod") + bytes([0]) + entry("/", "a") + \
        op("chmod") + bytes([3]) + entry("/", "b") + mkdir("b", "c") + \
        create("b", "d") + simple("release", 0) + symlink("b", "e") + \
        op("chmod") + bytes([7]) + entry("/", "b") + readdir("b") + \
        simple("reopen", 0) + op("getattr") + entry("b", "c")
    # Preallocated, then holes punched and zeroed across whole chunks
    # (4 KiB in the fuzzer) and parts of them, published and read back.
    s["fallocate"] = create("/", "a", RDWR, 0) + write_(0, 0, 8000) + \
        fallocate(0, "alloc", 0, 65536) + fallocate(0, "keep", 100, 65536) + \
        fallocate(0, "punch", 100, 65536) + simple("fsync", 0, 0) + \
        write_(0, 5000, 3000, 4) + fallocate(0, "zero", 6000, 65536 + 4000) + \
        fallocate(0, "zero-keep", 1, 5) + fallocate(0, "punch-nokeep", 0, 5) + \
        read(0, 0, 8000) + simple("release", 0) + open_("/", "a") + \
        read(1, 4000, 4000) + simple("release", 1)
    return s


def main():
    for n, v in PARSE.items():
        write("parse", n, v)
    for n, v in OPTIONS.items():
        write("options", n, v)
    for n, v in x_seeds().items():
        write("xattr", n, v)
    # fuzz_engine's first byte picks inline_max: 0 all contents in blob
    # files (the injected faults reach only those), 1 the default 64 KiB,
    # 2 100 bytes, 3 4 KiB.
    seeds = e_seeds()
    for n, v in seeds.items():
        write("engine", n, bytes([0 if n.startswith(("enospc",
                                                      "regress-failed"))
                                  else 1]) + v)
    # ... bits 2-3 the mount's ttl= (0, 1: none, 2: 60 s, 3: 1 h), bit 4
    # ttl_mode=sliding.
    for n, cfg in (("large", 0), ("dedup", 0), ("reopen-dirty", 0),
                   ("many-ram", 2), ("spill", 3), ("flush-tiers", 2),
                   ("put-get", 8 | 1), ("rename", 8 | 1),
                   ("ttl-sliding", 12 | 16 | 1), ("links", 12 | 16 | 1),
                   ("ttl-dir", 8 | 1), ("reopen-dirty", 12 | 1),
                   ("fallocate", 0)):
        write("engine", "%s-inline%d" % (n, cfg), bytes([cfg]) + seeds[n])
    return 0


if __name__ == "__main__":
    sys.exit(main())
