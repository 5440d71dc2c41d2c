"""The background fill (issue 11 "Background fill"): -o prefetch=none|open|
all, folder-order prefetch, user.hollowfs.prefetch, hollowfs prefetch
[--wait], -o prefetch_rate, and demand reads during a saturating fill.

Timing assertions are loose (a noisy 2-core machine, sanitizer builds);
the exact numbers are printed (pytest -s shows them)."""

import os
import subprocess
import time

import pytest

from conftest import (HOLLOWFS, MiB, KiB, cached_bytes, file_gets,
                      make_tree, settled_log, sha256_file)

# Time bounds of a rate measured on the plain build only.
plain_only = pytest.mark.skipif(
    os.environ.get("HOLLOWFS_SANITIZE", "none") not in ("", "none"),
    reason="a rate measurement: on the plain build")


def wait_cached(paths, timeout_s, what="the fill"):
    """Waits until every path is cached whole; returns the seconds it
    took. Fails listing the files still short."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    while True:
        short = [p for p in paths
                 if cached_bytes(p) < os.stat(p).st_size]
        if not short:
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not complete in {timeout_s} s: "
                        f"{len(short)} files short, e.g. {short[:3]} "
                        f"({cached_bytes(short[0])} of "
                        f"{os.stat(short[0]).st_size})")
        time.sleep(0.1)


def gets_bytes(log, prefix=""):
    return sum(e["bytes"] for e in log
               if e["method"] == "GET" and e["path"].startswith(prefix)
               and e["status"] in (200, 206))


def files_under(top):
    out = []
    for dirpath, _, names in os.walk(top):
        out += [os.path.join(dirpath, n) for n in names]
    return sorted(out)


# ---- which files are filled -----------------------------------------------

def test_open_completes_file_after_one_read(server, mount, tmp_path):
    """prefetch=open (the default): one 4 KiB read and a close, and the
    whole file is cached without any further read."""
    size = 10 * MiB + 123
    hashes = make_tree(tmp_path / "root", {"a.bin": size, "b.bin": size})
    srv = server(tmp_path / "root")
    mount.start(srv.url + "/", ["chunk_size=1M", "prefetch=default"])
    p = mount.path("a.bin")
    with open(p, "rb") as f:
        assert len(f.read(4096)) == 4096
    took = wait_cached([p], 30)
    print(f"open: {size} bytes filled {took:.2f} s after the close")
    assert sha256_file(p) == hashes["a.bin"]
    assert getattr_prefetch(p) == "done"
    log = settled_log(srv)
    assert not file_gets(log, "/b.bin"), "a file never opened was fetched"


def getattr_prefetch(p):
    return os.getxattr(p, "user.hollowfs.prefetch").decode()


def test_none_fetches_nothing_unread(server, mount, tmp_path):
    """prefetch=none: a small read fetches what it covers, nothing of
    the rest of the file nor of other files."""
    make_tree(tmp_path / "root", {"a.bin": 8 * MiB, "d/b.bin": 3 * MiB,
                                  "d/c.bin": 3 * MiB})
    srv = server(tmp_path / "root")
    mount.start(srv.url + "/",
                ["chunk_size=1M", "prefetch=none", "readahead=0"])
    with open(mount.path("a.bin"), "rb") as f:
        f.read(4096)
    with open(mount.path("d/b.bin"), "rb") as f:
        f.read(4096)
    time.sleep(1.5)
    log = settled_log(srv)
    assert gets_bytes(log, "/a.bin") <= 2 * MiB, log
    assert gets_bytes(log, "/d/b.bin") <= 2 * MiB, log
    assert not file_gets(log, "/d/c.bin")
    assert cached_bytes(mount.path("a.bin")) < 8 * MiB


def test_all_fills_tree_and_continues_after_kill9(server, make_mount,
                                                  tmp_path):
    """prefetch=all completes a tree nobody reads, small files first;
    after a kill -9 in the middle, a remount goes on where it stopped:
    the bytes fetched over both runs are about the tree's size."""
    spec = {f"small/{i:02d}.txt": 1000 + 97 * i for i in range(20)}
    spec.update({f"big/{i}.bin": 12 * MiB + i for i in range(4)})
    make_tree(tmp_path / "root", spec)
    total = sum(spec.values())
    # The big files come at 1 MiB/s a request: the kill lands mid-fill.
    faults = {f"/big/{i}.bin": {"rate": 1 * MiB} for i in range(4)}
    srv = server(tmp_path / "root", faults=faults)
    m = make_mount()
    m.start(srv.url + "/", ["chunk_size=1M", "prefetch=all"])
    files = files_under(m.path())
    small = [p for p in files if "/small/" in p]
    wait_cached(small, 20, "the small files")
    # Small files first: none of them waited for a big one.
    log = srv.log()
    big_done = [e for e in log if e["path"].startswith("/big/")]
    print(f"all: small files done with {len(big_done)} big GETs logged")
    time.sleep(1.5)  # some of the big files, not all (about 4 s)
    done_before = sum(cached_bytes(p) for p in files)
    assert done_before < total, "the fill ended before the kill"
    m.kill9()
    srv.set_faults({})
    m.start(srv.url + "/", ["chunk_size=1M", "prefetch=all"])
    took = wait_cached(files_under(m.path()), 60)
    log = settled_log(srv)
    fetched = gets_bytes(log)
    print(f"all: {done_before} of {total} bytes before the kill -9; "
          f"rest in {took:.2f} s after the remount; {fetched} bytes "
          f"fetched in total ({fetched / total:.3f} of the tree)")
    # In flight at the kill: at most a run (4 chunks) per connection.
    assert fetched <= total + 16 * 4 * MiB
    for rel in spec:
        assert sha256_file(m.path(rel)) == sha256_file(
            tmp_path / "root" / rel)


def test_xattr_on_folder_fills_recursively(server, mount, tmp_path):
    """setfattr -n user.hollowfs.prefetch -v 1 FOLDER: every file under
    it, at any depth, and nothing else."""
    make_tree(tmp_path / "root", {"d/a.bin": 3 * MiB, "d/e/b.bin": 2 * MiB,
                                  "d/e/f/c.bin": 5 * KiB,
                                  "other.bin": 4 * MiB})
    srv = server(tmp_path / "root")
    mount.start(srv.url + "/", ["chunk_size=1M", "prefetch=none"])
    os.setxattr(mount.path("d"), "user.hollowfs.prefetch", b"1")
    wait_cached(files_under(mount.path("d")), 30)
    assert cached_bytes(mount.path("other.bin")) == 0
    assert not file_gets(settled_log(srv), "/other.bin")
    # A value other than 1 means nothing: refused.
    with pytest.raises(OSError):
        os.setxattr(mount.path("other.bin"), "user.hollowfs.prefetch",
                    b"yes")


def run_prefetch(*args, timeout_s=60):
    return subprocess.run([str(HOLLOWFS), "prefetch", *map(str, args)],
                          capture_output=True, text=True,
                          timeout=timeout_s)


def test_prefetch_command_wait(server, mount, tmp_path):
    """hollowfs prefetch --wait DIR returns 0 once every file under DIR
    is cached, printing progress lines (not a tty: plain lines)."""
    make_tree(tmp_path / "root", {"d/a.bin": 6 * MiB, "d/s/b.bin": 3 * MiB,
                                  "x.bin": 2 * MiB})
    srv = server(tmp_path / "root",
                 faults={"/d/a.bin": {"rate": 4 * MiB}})
    mount.start(srv.url + "/", ["chunk_size=1M", "prefetch=none"])
    t0 = time.monotonic()
    r = run_prefetch("--wait", mount.path("d"))
    took = time.monotonic() - t0
    print(f"prefetch --wait: {took:.2f} s; stdout {r.stdout!r}")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines and "9.0 MiB / 9.0 MiB (100%)" in lines[-1], lines
    for p in files_under(mount.path("d")):
        assert cached_bytes(p) == os.stat(p).st_size
    assert cached_bytes(mount.path("x.bin")) == 0
    # Errors: one line each, exit status 1; the good path still queued.
    r = run_prefetch(mount.path("nope"), tmp_path, mount.path("x.bin"))
    assert r.returncode == 1
    errs = r.stderr.splitlines()
    assert len(errs) == 2, errs
    assert "No such file or directory" in errs[0]
    assert "is not in a hollowfs mount" in errs[1]
    wait_cached([mount.path("x.bin")], 30)
    r = run_prefetch("--bogus", mount.path("x.bin"))
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_prefetch_command_wait_reports_a_failed_file(server, mount,
                                                     tmp_path):
    """A file whose fill fails (the server answers 404): --wait says so
    in one line, still waits for the rest, and exits 1."""
    make_tree(tmp_path / "root", {"d/bad.bin": 2 * MiB,
                                  "d/good.bin": 3 * MiB})
    srv = server(tmp_path / "root", faults={"/d/bad.bin": {"status": 404}})
    mount.start(srv.url + "/", ["chunk_size=1M", "prefetch=none"])
    mount.allow(r"bad\.bin")
    r = run_prefetch("--wait", mount.path("d"))
    print(f"prefetch --wait, one failing: {r.returncode} {r.stderr!r}")
    assert r.returncode == 1
    errs = r.stderr.splitlines()
    assert len(errs) == 1 and "bad.bin" in errs[0] \
        and "background fill failed" in errs[0], errs
    assert cached_bytes(mount.path("d/good.bin")) == 3 * MiB
    assert getattr_prefetch(mount.path("d/bad.bin")).startswith("failed")


# ---- folder-order prefetch ------------------------------------------------

def test_folder_walk_is_faster_than_a_round_trip_per_file(server, mount,
                                                          tmp_path):
    """A reader that cats a folder's 200 small files in order, through a
    server that delays every answer, has the next files fetched ahead:
    much faster than one delay per file."""
    n = 200
    spec = {f"data/{i:04d}.bin": 4 * KiB + (i * 7919) % (60 * KiB)
            for i in range(n)}
    make_tree(tmp_path / "root", spec)
    # Each GET waits before its first byte (testserver's poll: ~0.1 s).
    faults = {f"/{rel}": {"stall": True, "stall_after": 0,
                          "stall_seconds": 0.05} for rel in spec}
    srv = server(tmp_path / "root", faults=faults)
    mount.start(srv.url + "/", ["prefetch=none"])
    names = sorted(os.listdir(mount.path("data")))
    assert len(names) == n
    # One round trip, measured: the first file, cold.
    t0 = time.monotonic()
    with open(mount.path("data/" + names[0]), "rb") as f:
        f.read()
    rtt = time.monotonic() - t0
    t0 = time.monotonic()
    for name in names[1:]:
        with open(mount.path("data/" + name), "rb") as f:
            f.read()
    took = time.monotonic() - t0
    rate = (n - 1) / took
    print(f"folder walk: {n - 1} files in {took:.2f} s = {rate:.0f} "
          f"files/s; one cold file took {rtt * 1000:.0f} ms "
          f"({1 / rtt:.0f} files/s without prefetch)")
    assert took < (n - 1) * rtt / 4, "no faster than a round trip each"


def test_folder_walk_reaches_further_when_the_reader_catches_up(
        server, mount, tmp_path):
    """The walk starts 32 files ahead of the reader and, once the reader
    reads a file the walk has not finished, reaches further: 3 files per
    connection, so that every connection stays busy (with 16 connections,
    48 files past the last one read are fetched, and no more)."""
    n, k = 200, 40
    spec = {f"data/{i:04d}.bin": 4 * KiB + (i * 7919) % (60 * KiB)
            for i in range(n)}
    make_tree(tmp_path / "root", spec)
    # Each GET waits before its first byte: the reader catches up.
    faults = {f"/{rel}": {"stall": True, "stall_after": 0,
                          "stall_seconds": 0.05} for rel in spec}
    srv = server(tmp_path / "root", faults=faults)
    mount.start(srv.url + "/", ["prefetch=none", "connections=16"])
    names = sorted(os.listdir(mount.path("data")))
    for name in names[:k]:
        with open(mount.path("data/" + name), "rb") as f:
            f.read()
    log = settled_log(srv, quiet_s=0.6, timeout_s=30)
    fetched = sorted({e["path"] for e in log
                      if e["method"] == "GET" and e["status"] in (200, 206)
                      and e["path"].startswith("/data/")
                      and e["path"].endswith(".bin")})
    print(f"folder walk: {len(fetched)} files fetched after {k} read "
          f"({len(fetched) - k} ahead)")
    # The next files in order, no others.
    assert fetched == ["/data/" + nm for nm in names[:len(fetched)]]
    assert len(fetched) - k == 48, "the window did not grow to 3 per " \
        "connection, or grew past it"


# ---- demand during a fill, and the rate cap --------------------------------

def test_demand_read_during_saturating_fill(server, mount, tmp_path):
    """While a fill keeps every background connection busy, a read of an
    uncached chunk of another file is answered within about two chunks'
    transfer time (asserted loosely; printed exactly)."""
    spec = {f"fill/{i}.bin": 40 * MiB for i in range(6)}
    spec.update({f"demand/{i}.bin": 16 * MiB for i in range(3)})
    make_tree(tmp_path / "root", spec)
    # The filled files come at 8 MiB/s per connection: the fill lasts.
    faults = {f"/fill/{i}.bin": {"rate": 8 * MiB} for i in range(6)}
    srv = server(tmp_path / "root", faults=faults)
    mount.start(srv.url + "/", ["chunk_size=1M", "prefetch=none"])
    # One chunk's transfer time on this server, measured cold.
    t0 = time.monotonic()
    with open(mount.path("demand/0.bin"), "rb") as f:
        f.seek(5 * MiB)
        f.read(4096)
    quiet = time.monotonic() - t0
    os.setxattr(mount.path("fill"), "user.hollowfs.prefetch", b"1")
    time.sleep(1.0)
    st = os.getxattr(mount.path(), "user.hollowfs.stats").decode()
    lat = []
    # Files 2 then 1: never the next file of the last one read, which
    # folder-order prefetch would have fetched ahead.
    for i in (2, 1):
        for off in (3 * MiB, 11 * MiB):
            t0 = time.monotonic()
            with open(mount.path(f"demand/{i}.bin"), "rb") as f:
                f.seek(off)
                assert len(f.read(4096)) == 4096
            lat.append(time.monotonic() - t0)
    busy = sum(cached_bytes(p) for p in files_under(mount.path("fill")))
    print(f"demand during fill: quiet {quiet * 1000:.1f} ms, during "
          f"{', '.join(f'{x * 1000:.1f}' for x in lat)} ms; fill had "
          f"{busy} of {6 * 40 * MiB} bytes; stats {st}")
    assert busy < 6 * 40 * MiB, "the fill was over before the reads"
    assert max(lat) < 2.0


@plain_only
def test_prefetch_rate_caps_background(server, mount, tmp_path):
    """-o prefetch_rate=8M: a 40 MiB fill takes about 5 s."""
    size = 40 * MiB
    make_tree(tmp_path / "root",
              {f"r/{i}.bin": size // 4 for i in range(4)})
    srv = server(tmp_path / "root")
    mount.start(srv.url + "/", ["chunk_size=1M", "prefetch=all",
                                "prefetch_rate=8M"])
    t0 = time.monotonic()
    took = wait_cached(files_under(mount.path("r")), 60)
    took = time.monotonic() - t0
    print(f"prefetch_rate=8M: {size} bytes in {took:.2f} s = "
          f"{size / took / MiB:.2f} MiB/s")
    assert took > 0.7 * size / (8 * MiB)
    assert took < 4 * size / (8 * MiB)
