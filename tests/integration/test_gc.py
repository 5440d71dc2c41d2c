"""`hollowfs gc` (issue 10): pruning a cache to a size beside a live mount,
removing orphaned blob files, stale temporary files and snapshots no ref
names, --dry-run, and `hollowfs status` of the cache afterwards.

Each test mounts a tree served by scripts/testserver.py with a cache in
tmp_path, and runs the gc command on that cache.
"""

import json
import os
import re
import subprocess
import time

from conftest import (HOLLOWFS, MiB, bytes_served, getxattr_str, make_tree,
                      settled_log)

OPTS = ["chunk_size=1M", "readahead=0"]
TREE = {"a.bin": 8 * MiB, "b.bin": 3 * MiB + 7, "dir/c.bin": 2 * MiB}


def hollowfs(*args, timeout=120):
    return subprocess.run([str(HOLLOWFS), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def gc(cache, *args):
    r = hollowfs("gc", "-o", f"cache={cache}", *args)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.stdout


def table(out):
    """{kind: (count, size text)} and the total line of gc's output."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(blobs|orphan files|temporary files|snapshots)"
                     r"\s+(\d+)\s+(\S+ \S+)$", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), m.group(3))
    total = [ln for ln in out.splitlines()
             if ln.startswith(("freed ", "would free "))]
    assert len(rows) == 4 and len(total) == 1, out
    return rows, total[0]


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def cache_files(cache):
    """{relative path: (size, allocated bytes)} of every file."""
    out = {}
    for dirpath, _, names in os.walk(cache):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, cache)] = (st.st_size,
                                              st.st_blocks * 512)
    return out


def blob_of(m, rel):
    return getxattr_str(m.path(rel), "user.hollowfs.blob")


def data_file(cache, hexname):
    return cache / "blobs" / hexname[:2] / hexname


def fill(srv, make_mount, tree, name="fill"):
    """Mounts, reads every file whole, unmounts: a cache of three
    complete blobs that no process has open. Returns their names."""
    m = make_mount(name)
    m.start(srv.url + "/", OPTS)
    names = {}
    for rel in TREE:
        assert read_all(m.path(rel)) == (tree / rel).read_bytes(), rel
        names[rel] = blob_of(m, rel)
    m.umount()
    return m.cache, names


def test_gc_beside_a_mount_reading(server, make_mount, tmp_path):
    tree = tmp_path / "root"
    make_tree(tree, TREE)
    srv = server(tree)
    cache, names = fill(srv, make_mount, tree)
    for h in names.values():
        assert data_file(cache, h).exists()

    m = make_mount("reader")
    m.start(srv.url + "/", OPTS)
    want = (tree / "a.bin").read_bytes()
    with open(m.path("a.bin"), "rb") as f:
        got = f.read(2 * MiB + 3)
        # a.bin is open in the mount: its blob is in use.
        out = gc(cache, "--max", "0")
        rows, total = table(out)
        assert rows["blobs"][0] == 2, out
        assert "kept 1 blob in use" in total, out
        assert data_file(cache, names["a.bin"]).exists()
        assert (data_file(cache, names["a.bin"]).stat().st_blocks * 512
                >= 8 * MiB)
        assert not data_file(cache, names["b.bin"]).exists()
        assert not data_file(cache, names["dir/c.bin"]).exists()
        for sfx in (".state", ".sums", ".lock"):
            p = data_file(cache, names["b.bin"]).with_name(
                names["b.bin"] + sfx)
            assert not p.exists(), p
        # The read goes on, byte-exact.
        got += f.read()
    assert got == want
    # Evicted blobs are fetched again when read, byte-exact.
    since = time.time()
    assert read_all(m.path("b.bin")) == (tree / "b.bin").read_bytes()
    assert data_file(cache, names["b.bin"]).exists()
    again = bytes_served(settled_log(srv), "/b.bin", since)
    print("bytes of b.bin fetched again after gc:", again)
    assert again >= TREE["b.bin"]
    m.umount()

    # Nothing in use now: --max 0 empties the blobs.
    out = gc(cache, "--max", "0")
    rows, total = table(out)
    assert rows["blobs"][0] == 2, out  # a.bin and b.bin
    assert "kept 0 blobs in use" in total
    assert "cache 0 B in 0 blobs" in total, out
    assert not any(p.startswith("blobs/") for p in cache_files(cache))

    # status of the cache after gc: every file known, nothing cached.
    r = hollowfs("status", "--json", "-o", f"cache={cache}")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    files = {f["path"]: f for s in doc["snapshots"] for f in s["files"]}
    assert set(files) == set(TREE)
    assert all(f["cached"] == 0 for f in files.values()), files


def age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_gc_orphans_tmp_snapshots_and_dry_run(server, make_mount, tmp_path):
    tree = tmp_path / "root"
    make_tree(tree, TREE)
    srv = server(tree)
    cache, names = fill(srv, make_mount, tree)

    # An orphan: c.bin's data file is gone, its other files stay.
    c = data_file(cache, names["dir/c.bin"])
    os.unlink(c)
    orphans = [p for p in c.parent.iterdir()
               if p.name.startswith(names["dir/c.bin"] + ".")]
    assert len(orphans) >= 3, orphans
    # Temporary files of killed writers: two stale, one fresh.
    a = data_file(cache, names["a.bin"])
    stale = [a.with_name(a.name + ".state.tmp.00000000deadbeef")]
    snapdirs = list((cache / "snapshots").iterdir())
    assert len(snapdirs) == 1
    snaps = list(snapdirs[0].glob("*.json"))
    assert len(snaps) == 1
    stale.append(snapdirs[0] / (snaps[0].name + ".tmp.00000000cafe0000"))
    fresh = a.with_name(a.name + ".state.tmp.00000000feedf00d")
    for p in stale + [fresh]:
        p.write_bytes(b"x" * 5000)
    for p in stale:
        age(p, 600)
    # An older snapshot no ref names (a revision mounted before).
    old_snap = snapdirs[0] / "older%2Drevision.json"
    old_snap.write_bytes(snaps[0].read_bytes())
    age(old_snap, 7200)
    age(snaps[0], 3600)  # still the newest: kept though no longer young

    before = cache_files(cache)
    out = gc(cache, "--dry-run")
    rows, total = table(out)
    assert rows["orphan files"][0] == len(orphans), out
    assert rows["temporary files"][0] == 2, out
    assert rows["snapshots"][0] == 1, out
    assert rows["blobs"][0] == 0, out  # no size asked, disk not full
    assert total.startswith("would free ") and "dry run" in total
    assert cache_files(cache) == before  # nothing removed

    out = gc(cache)
    rows, total = table(out)
    assert rows["orphan files"][0] == len(orphans), out
    assert rows["temporary files"][0] == 2, out
    assert rows["snapshots"][0] == 1, out
    after = cache_files(cache)
    for p in orphans + stale + [old_snap]:
        assert not p.exists(), p
    assert fresh.exists()
    assert snaps[0].exists()
    assert data_file(cache, names["a.bin"]).exists()
    assert data_file(cache, names["b.bin"]).exists()
    assert len(before) - len(after) == len(orphans) + 3

    # A dry run of --max 0 says it would free both blobs, removes none.
    out = gc(cache, "--max", "0", "--dry-run")
    rows, total = table(out)
    assert rows["blobs"][0] == 2, out
    assert cache_files(cache) == after

    # The snapshot kept still serves an offline remount.
    m = make_mount("offline")
    m.start(srv.url + "/", OPTS + ["offline"])
    assert read_all(m.path("a.bin")) == (tree / "a.bin").read_bytes()
    assert sorted(os.listdir(m.path())) == ["a.bin", "b.bin", "dir"]
    m.umount()


def test_gc_bad_usage():
    for args in (["--max"], ["--max", "12Q"], ["--bogus"],
                 ["-o", "nope=1"], ["-o", "cache="], ["somewhere"]):
        r = hollowfs("gc", *args)
        assert r.returncode == 2, (args, r)
        assert r.stdout == ""
        assert len(r.stderr.splitlines()) == 1, (args, r.stderr)
    r = hollowfs("gc", "--help")
    assert r.returncode == 0 and "--max SIZE" in r.stdout
