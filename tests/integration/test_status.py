"""What is cached, and is it right: `hollowfs status`, the root's
user.hollowfs.stats xattr, `hollowfs verify [--repair]`, and the daemon's
one line per completed file (issue 11, "Visibility").

Each test mounts a tree served by scripts/testserver.py (or the fake Hub
for files with a published sha256), reads part of it, and looks at the
result through a live mount and through the cache folder alone.
"""

import ctypes
import ctypes.util
import fcntl
import json
import os
import re
import struct
import subprocess
import threading
import time

import pytest

from conftest import (HOLLOWFS, MiB, cached_at_least, cached_bytes,
                      chunks_xattr, file_gets, getxattr_str, make_tree,
                      served_spans, settled_log)

CHUNK = 1 * MiB
OPTS = ["chunk_size=1M", "readahead=0"]
TREE = {"a.bin": 3 * MiB + 5, "dir/b.bin": 2 * MiB, "dir/c.txt": 1000}


def hollowfs(*args, timeout=60):
    return subprocess.run([str(HOLLOWFS), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def read_at(path, off, length):
    with open(path, "rb", buffering=0) as f:
        f.seek(off)
        return f.read(length)


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def stats(mnt):
    return json.loads(getxattr_str(mnt, "user.hollowfs.stats"))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    make_tree(root, TREE)
    return root


def status_json(*args):
    r = hollowfs("status", "--json", *args)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return json.loads(r.stdout)


def rows_of(doc):
    """{path: (size, cached, chunks_done, chunks)} of every snapshot."""
    return {f["path"]: (f["size"], f["cached"], f["chunks_done"],
                        f["chunks"])
            for s in doc["snapshots"] for f in s["files"]}


def check_text(out, rows):
    """Every file has its row: path, size, cached, bar and percentage."""
    for path, (size, cached, _, _) in rows.items():
        line = [ln for ln in out.splitlines()
                if ln.split() and ln.split()[0] == path]
        assert len(line) == 1, (path, out)
        pct = 100 if cached >= size else cached * 100 // size
        assert re.search(r"\[[#.]{20}\]\s+%d%%$" % pct, line[0]), line[0]
    total = sum(r[0] for r in rows.values())
    cached = sum(r[1] for r in rows.values())
    line = [ln for ln in out.splitlines() if "TOTAL" in ln]
    assert len(line) == 1, out
    assert line[0].split()[:3] == ["TOTAL", str(len(rows)), "files"], out
    pct = 100 if cached >= total else cached * 100 // total
    assert line[0].endswith(f"{pct:3d}%"), out


def test_status_of_a_partly_cached_tree_mounted_and_not(
        server, make_mount, tree, tmp_path):
    srv = server(tree)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    # dir/b.bin whole, one byte of a.bin (its first chunk), c.txt never.
    assert read_all(m.path("dir/b.bin")) == (tree / "dir/b.bin").read_bytes()
    assert read_at(m.path("a.bin"), 0, 1) == (tree / "a.bin").read_bytes()[:1]
    want = {
        "a.bin": (TREE["a.bin"], CHUNK, 1, 4),
        "dir/b.bin": (2 * MiB, 2 * MiB, 2, 2),
        "dir/c.txt": (1000, 0, 0, 1),
    }
    for p, (size, cached, done, n) in want.items():
        assert cached_at_least(m.path(p), cached) == cached, p
        assert chunks_xattr(m.path(p)) == (done, n), p

    live = status_json(m.mnt)
    assert rows_of(live) == want
    assert live["mountpoint"] == str(m.mnt)
    assert live["cache"] == str(m.cache)
    assert [s["source"] for s in live["snapshots"]] == [srv.url + "/"]
    assert live["blobs"] == []
    assert live["total"] == {"files": 3, "size": sum(TREE.values()),
                             "cached": 3 * MiB}
    lv = live["live"]
    assert lv["connections_max"] == 16
    assert lv["connections_in_use"] == 0
    assert lv["queued"] == {"demand": 0, "readahead": 0, "background": 0}
    assert lv["fetch_rate"] == 0  # nothing is being fetched
    assert lv["bytes_fetched"] >= 3 * MiB

    r = hollowfs("status", m.mnt)
    assert r.returncode == 0, r.stderr
    check_text(r.stdout, want)
    assert f"mounted at {m.mnt}, cache {m.cache}" in r.stdout
    assert "fetching 0 B/s, 0 of 16 connections in use, chunks queued: " \
        "0 demand, 0 readahead, 0 background, 0 in flight" in r.stdout
    m.umount()

    # The cache alone says the same (the sidecars saved at unmount).
    offline = status_json("-o", f"cache={m.cache}")
    # Without a sidecar (nothing of it ever cached) the chunk count is
    # not known: 0.
    assert rows_of(offline) == dict(want, **{"dir/c.txt": (1000, 0, 0, 0)})
    assert offline["mountpoint"] is None and offline["live"] is None
    assert offline["total"] == live["total"]
    r = hollowfs("status", "-o", f"cache={m.cache}")
    assert r.returncode == 0, r.stderr
    check_text(r.stdout, want)
    assert f"{srv.url}/ @ " in r.stdout


def test_status_names_blobs_no_snapshot_names(server, make_mount, tree):
    srv = server(tree)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    read_all(m.path("dir/b.bin"))
    hexname = getxattr_str(m.path("dir/b.bin"), "user.hollowfs.blob")
    m.umount()
    for snap in (m.cache / "snapshots").glob("*/*.json"):
        snap.unlink()
    doc = status_json("-o", f"cache={m.cache}")
    assert doc["snapshots"] == []
    blobs = {b["blob"]: b for b in doc["blobs"]}
    assert blobs[hexname]["size"] == 2 * MiB
    assert blobs[hexname]["cached"] == 2 * MiB


def test_status_errors(hollowfs_bin, tmp_path):
    r = hollowfs("status", "-o", f"cache={tmp_path / 'none'}")
    assert r.returncode == 1
    assert r.stderr == f"hollowfs: no cache at '{tmp_path / 'none'}'\n"
    assert not (tmp_path / "none").exists()
    r = hollowfs("status", tmp_path)
    assert r.returncode == 1
    assert r.stderr == (f"hollowfs: '{tmp_path}' is not the root of a "
                        f"hollowfs mount\n")
    r = hollowfs("status", tmp_path, "-o", f"cache={tmp_path}")
    assert r.returncode == 2
    assert "not both" in r.stderr
    r = hollowfs("verify", "--json")
    assert r.returncode == 2
    assert "unexpected argument '--json'" in r.stderr
    for cmd in ("status", "verify"):
        r = hollowfs(cmd, "--help")
        assert r.returncode == 0
        assert r.stdout.startswith(f"usage: hollowfs {cmd} [MOUNTPOINT | ")


def test_stats_xattr_counters_move(server, make_mount, tree):
    # 1 MiB/s: a.bin takes about 3 s, long enough to be seen working.
    srv = server(tree, faults={"/a.bin": {"rate": 1 * MiB}})
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    assert "user.hollowfs.stats" in os.listxattr(m.mnt)
    s0 = stats(m.mnt)
    assert s0["format"] == 1
    assert s0["source"] == srv.url + "/"
    assert s0["cache"] == str(m.cache)
    assert (s0["files"], s0["bytes"]) == (3, sum(TREE.values()))
    # The listing's requests are counted; nothing else happened yet.
    for k in ("bytes_fetched", "bytes_served", "bytes_from_cache", "reads",
              "retries", "errors", "read_errors", "inflight"):
        assert s0[k] == 0, k

    data = (tree / "dir/b.bin").read_bytes()
    assert read_all(m.path("dir/b.bin")) == data
    s1 = stats(m.mnt)
    assert s1["bytes_fetched"] == 2 * MiB
    assert s1["bytes_served"] == 2 * MiB
    assert s1["requests"] > s0["requests"]
    assert s1["reads"] >= 1
    assert s1["bytes_from_cache"] < 2 * MiB  # it had to be fetched

    # Out of the kernel's page cache, a read of cached chunks reaches the
    # daemon and is answered from the cache at once, fetching nothing.
    with open(m.path("dir/b.bin"), "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        assert f.read() == data
    s2 = stats(m.mnt)
    assert s2["bytes_fetched"] == s1["bytes_fetched"]
    hits = s2["bytes_from_cache"] - s1["bytes_from_cache"]
    assert 0 < hits <= 2 * MiB
    assert s2["bytes_served"] - s1["bytes_served"] == hits
    assert s2["reads"] > s1["reads"]

    # While a.bin trickles in: a connection in use, chunks in flight.
    reader = threading.Thread(target=read_all, args=(m.path("a.bin"),))
    reader.start()
    seen = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = stats(m.mnt)
        if s["connections"]["in_use"] >= 1 and s["inflight"] >= 1:
            seen = s
            break
        time.sleep(0.05)
    # status measures the rate over a second of it.
    live = status_json(m.mnt)["live"] if seen else None
    reader.join(timeout=30)
    assert seen, "no transfer seen in the stats"
    assert live["fetch_rate"] > 0, live
    s3 = stats(m.mnt)
    assert s3["bytes_fetched"] == 2 * MiB + TREE["a.bin"]
    assert s3["connections"]["in_use"] == 0
    assert s3["inflight"] == 0
    assert s3["errors"] == 0
    m.umount()


def test_daemon_logs_each_completed_file(server, make_mount, tree):
    srv = server(tree)
    m = make_mount()
    m.start(srv.url + "/", OPTS)  # info level: no debug= needed
    read_all(m.path("dir/b.bin"))
    read_at(m.path("a.bin"), 0, 1)  # not complete: no line
    m.umount()
    lines = [ln for ln in m.log_lines() if " complete: " in ln]
    assert len(lines) == 1, lines
    assert re.search(r"'dir/b\.bin' complete: 2\.0 MiB in \d+\.\d{3} s "
                     r"\([\d.]+ [KMG]?i?B/s\), not verified \(no published "
                     r"hash\)", lines[0]), lines[0]


def blob_data(m, rel):
    hexname = getxattr_str(m.path(rel), "user.hollowfs.blob")
    return m.cache / "blobs" / hexname[:2] / hexname


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))


def test_verify_finds_and_repairs_a_corrupt_chunk(server, make_mount, tree):
    srv = server(tree)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    for p in TREE:
        assert read_all(m.path(p)) == (tree / p).read_bytes()
    data_a = blob_data(m, "a.bin")
    m.umount()

    r = hollowfs("verify", "-o", f"cache={m.cache}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ("checked 7 chunks of 3 files, 0 whole files "
                        "against its hash: all good\n")

    flip(data_a, CHUNK + 10)
    r = hollowfs("verify", "-o", f"cache={m.cache}")
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        f"'a.bin': chunk 1 (bytes {CHUNK}-{2 * CHUNK - 1}) does not "
        f"match its sum",
        "checked 7 chunks of 3 files, 0 whole files against its hash: "
        "1 bad chunk, 0 corrupt files, 0 errors; 0 chunks dropped, "
        "0 left in use"]
    r = hollowfs("verify", "--repair", "-o", f"cache={m.cache}")
    assert r.returncode == 1
    assert r.stdout.splitlines()[0].endswith("does not match its sum: "
                                             "dropped")
    assert "1 chunk dropped" in r.stdout
    r = hollowfs("verify", "-o", f"cache={m.cache}")
    assert r.returncode == 0, r.stdout
    assert r.stdout.startswith("checked 6 chunks of 3 files")

    t0 = time.time()
    m.start(srv.url + "/", OPTS)
    assert chunks_xattr(m.path("a.bin")) == (3, 4)
    assert read_all(m.path("a.bin")) == (tree / "a.bin").read_bytes()
    again = served_spans(file_gets(settled_log(srv), "/a.bin", since=t0))
    assert again == [(CHUNK, 2 * CHUNK)], again
    m.umount()


def ofd_lock(path, byte):
    """An OFD write lock on one byte of path, as a fetching hollowfs
    process holds it: returns the fd (closing it releases the lock)."""
    fd = os.open(path, os.O_RDWR)
    arg = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
    fcntl.fcntl(fd, getattr(fcntl, "F_OFD_SETLK", 37), arg)
    return fd


def test_verify_repair_leaves_a_chunk_another_process_holds(
        server, make_mount, tree):
    srv = server(tree)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    read_all(m.path("dir/b.bin"))
    data = blob_data(m, "dir/b.bin")
    m.umount()
    flip(data, 3)
    fd = ofd_lock(str(data) + ".lock", 0)
    try:
        r = hollowfs("verify", "--repair", "-o", f"cache={m.cache}")
    finally:
        os.close(fd)
    assert r.returncode == 1
    assert r.stdout.splitlines()[0] == (
        f"'dir/b.bin': chunk 0 (bytes 0-{CHUNK - 1}) does not match its "
        f"sum: in use by another process, left alone")
    assert "0 chunks dropped, 1 left in use" in r.stdout
    r = hollowfs("verify", "--repair", "-o", f"cache={m.cache}")
    assert r.returncode == 1
    assert "1 chunk dropped, 0 left in use" in r.stdout
    r = hollowfs("verify", "-o", f"cache={m.cache}")
    assert r.returncode == 0, r.stdout


def test_verify_of_a_mountpoint(server, make_mount, tree):
    srv = server(tree)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    read_all(m.path("dir/b.bin"))
    # The saver records the chunks in the sidecar within about a second.
    deadline = time.monotonic() + 20
    while True:
        r = hollowfs("verify", m.mnt)
        assert r.returncode == 0, r.stdout + r.stderr
        if r.stdout.startswith("checked 2 ") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.stdout == ("checked 2 chunks of 1 file, 0 whole files "
                        "against its hash: all good\n")
    m.umount()


# ---- a file with a published hash (the fake Hub) -------------------------

def xxh3_64(data):
    name = ctypes.util.find_library("xxhash")
    if not name:
        pytest.skip("libxxhash not found for ctypes")
    lib = ctypes.CDLL(name)
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    h = lib.XXH3_64bits(data, len(data))
    return h or 1  # cache_chunk_sum: 0 means "no entry"


def test_verify_finds_and_repairs_a_corrupt_file(hub, make_mount, tmp_path):
    weights = os.urandom(2 * MiB + 100)
    hub.repo("acme/tiny", {"model.safetensors": weights,
                           "config.json": b"{}"})
    srv = hub.start()
    env = {"HF_TOKEN": None, "HF_ENDPOINT": None, "HF_HUB_OFFLINE": None,
           "HF_HOME": str(tmp_path / "hf-home")}
    opts = [f"endpoint={srv.url}", "chunk_size=1M", "readahead=0"]
    m = make_mount()
    m.start("hf://acme/tiny", opts, env=env)
    assert read_all(m.path("model.safetensors")) == weights
    data = blob_data(m, "model.safetensors")
    m.umount()
    # Its completion is logged once its hash said it is good.
    done = [ln for ln in m.log_lines() if " complete: " in ln]
    assert len(done) == 1, done
    assert re.search(r"'model\.safetensors' complete: 2\.0 MiB in .* s "
                     r"\(.*/s\), verified sha256$", done[0]), done[0]

    cache = f"cache={m.cache},endpoint={srv.url}"
    r = hollowfs("verify", "-o", cache)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 whole file against its hash: all good" in r.stdout

    # Bytes that match their chunk sums but not the file's sha256: what a
    # server sending wrong bytes leaves, and only the hash can tell.
    flip(data, 5)
    chunk0 = open(data, "rb").read(CHUNK)
    sums = str(data) + ".sums"
    with open(sums, "r+b") as f:
        f.write(xxh3_64(chunk0).to_bytes(8, "little"))
    r = hollowfs("verify", "-o", cache)
    assert r.returncode == 1
    assert re.match(r"'model\.safetensors': sha256 is [0-9a-f]{64}, "
                    r"expected [0-9a-f]{64}\n", r.stdout), r.stdout
    assert "0 bad chunks, 1 corrupt file" in r.stdout
    r = hollowfs("verify", "--repair", "-o", cache)
    assert r.returncode == 1
    assert r.stdout.splitlines()[0].endswith(": dropped")
    assert "3 chunks dropped" in r.stdout
    r = hollowfs("verify", "-o", cache)
    assert r.returncode == 0, r.stdout
    assert not os.path.exists(str(data) + ".verified")

    m.start("hf://acme/tiny", opts, env=env)
    assert chunks_xattr(m.path("model.safetensors")) == (0, 3)
    assert read_all(m.path("model.safetensors")) == weights
    m.umount()
