"""Hostile and broken servers, at the default options (issue 9, items 1,
2, 3, 4, 7 and 12): each test mounts for real, injects the fault with
scripts/testserver.py and checks that nothing wrong is returned or cached,
that the read fails with EIO and one log line saying why where it must,
and that every failure comes within 60 s with no timeout= or retries=.

The bounds of item 4 take their time (a stalled read fails after the
50 s budget): those tests are few, marked slow in their names, and print
the figures they measure (pytest -s shows them)."""

import errno
import http.client
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import (MiB, KiB, bytes_served, cached_bytes, make_tree,
                      settled_log, sha256_file)

BOUND_S = 60  # DESIGN.md: EIO within 60 s at the default options

FILES = {
    "f.bin": 6 * MiB + 123,
    "ok.bin": 1 * MiB + 1,
    "stall.bin": 8 * MiB,
    "trickle.bin": 8 * MiB,
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "root"
    return root, make_tree(root, FILES)


def pread_timed(path, length=128 * KiB, offset=0):
    """(bytes or the OSError, seconds) of one pread of path."""
    t0 = time.monotonic()
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            res = os.pread(fd, length, offset)
        finally:
            os.close(fd)
    except OSError as e:
        res = e
    return res, time.monotonic() - t0


def expect_eio(path, bound_s=BOUND_S, **kwargs):
    res, took = pread_timed(path, **kwargs)
    assert isinstance(res, OSError), f"{path}: read returned {len(res)} B"
    assert res.errno == errno.EIO, f"{path}: {res!r}"
    assert took < bound_s, f"{path}: EIO after {took:.1f} s"
    return took


def log_has(mount, pattern):
    """The daemon log lines matching pattern (re.search)."""
    return [line for line in mount.log_lines() if re.search(pattern, line)]


def cache_files(cache):
    for dirpath, _, names in os.walk(cache):
        for name in names:
            yield os.path.join(dirpath, name)


def blob_blocks(cache):
    """Allocated bytes of every blob data file in the cache."""
    total = 0
    for p in cache_files(cache):
        if "/blobs/" in p and "." not in os.path.basename(p):
            total += os.stat(p).st_blocks * 512
    return total


# ---- the fault options the tests below rely on ---------------------------

def get(srv, path, headers=None):
    host, port = srv.url.split("//")[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    return r, r.read()


def test_testserver_hostile_faults(server, tree):
    root, _ = tree
    data = (root / "ok.bin").read_bytes()
    rng = {"Range": "bytes=100-1099", "Accept-Encoding": "identity"}
    srv = server(root)

    srv.set_faults({"/ok.bin": {"location": "file:///etc/shadow"}})
    r, _ = get(srv, "/ok.bin", rng)
    assert r.status == 302 and r.getheader("Location") == "file:///etc/shadow"

    srv.set_faults({"/ok.bin": {"force_gzip": "206"}})
    r, body = get(srv, "/ok.bin", rng)
    assert r.status == 206 and r.getheader("Content-Encoding") == "gzip"
    assert r.getheader("Content-Range") == f"bytes 100-1099/{len(data)}"
    import gzip
    assert gzip.decompress(body) == data[100:1100]

    srv.set_faults({"/ok.bin": {"force_gzip": "200"}})
    r, body = get(srv, "/ok.bin", rng)
    assert r.status == 200 and r.getheader("Content-Length") is None
    assert r.getheader("Transfer-Encoding") == "chunked"
    assert gzip.decompress(body) == data

    srv.set_faults({"/ok.bin": {"no_length": True}})
    r, body = get(srv, "/ok.bin", rng)
    assert r.status == 200 and r.getheader("Content-Length") is None
    assert r.getheader("Content-Encoding") is None and body == data

    srv.set_faults({"/ok.bin": {"max_range": 300}})
    r, body = get(srv, "/ok.bin", rng)
    assert r.status == 206 and body == data[100:400]
    assert r.getheader("Content-Range") == f"bytes 100-399/{len(data)}"

    # range_max: only requests for at most that many bytes are faulted.
    srv.set_faults({"/ok.bin": {"status": 500, "range_max": 1000}})
    r, _ = get(srv, "/ok.bin", rng)
    assert r.status == 500
    r, _ = get(srv, "/ok.bin", {"Range": "bytes=100-1100"})
    assert r.status == 206
    r, _ = get(srv, "/ok.bin")
    assert r.status == 200

    srv.set_faults({"/ok.bin": {"hang": True}})
    host, port = srv.url.split("//")[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=1)
    c.request("GET", "/ok.bin")
    with pytest.raises(TimeoutError):
        c.getresponse()
    c.close()


# ---- item 1: redirects lead to http(s) only -------------------------------

def test_redirect_to_file_is_refused(server, mount, tree, tmp_path):
    root, hashes = tree
    secret = tmp_path / "secret"
    marker = os.urandom(48)
    secret.write_bytes(marker * 2048)  # 96 KiB of root's secret
    os.chmod(secret, 0o600)
    srv = server(root, faults={"/f.bin": {"location": f"file://{secret}"}})
    mount.start(srv.url + "/")
    mount.allow(r"f\.bin")
    expect_eio(mount.path("f.bin"), bound_s=10)
    lines = log_has(mount, r"redirect to 'file://.*secret' refused: only "
                    r"http and https are followed")
    assert lines, mount.log_text()
    assert "f.bin" in lines[0]
    # The mount still works, and the secret is nowhere in the cache.
    assert sha256_file(mount.path("ok.bin")) == hashes["ok.bin"]
    assert cached_bytes(mount.path("f.bin")) == 0
    mount.umount()
    for p in cache_files(mount.cache):
        with open(p, "rb") as f:
            assert marker not in f.read(), f"the secret is in {p}"


# ---- item 2: an encoded or unsized answer is never stored ----------------

NOT_THE_FILE = {
    # 206 with a gzip body, despite Accept-Encoding: identity
    "206-gzip": ({"force_gzip": "206"},
                 r"HTTP 206 with Content-Encoding 'gzip': an encoded body "
                 r"is never stored"),
    # a chunked gzip 200 to a range request
    "200-chunked-gzip": ({"force_gzip": "200"},
                         r"HTTP 200 with Content-Encoding 'gzip'"),
    # a 200 without Content-Length (chunked, as HTTP/2 may)
    "200-no-length": ({"no_length": True},
                      r"HTTP 200 of unknown length to a range request"),
}


@pytest.mark.parametrize("fault", NOT_THE_FILE)
def test_never_stores_what_is_not_the_file(server, mount, tree, fault):
    root, hashes = tree
    entry, why = NOT_THE_FILE[fault]
    srv = server(root, faults={"/f.bin": entry})
    mount.start(srv.url + "/")
    mount.allow(r"f\.bin")
    expect_eio(mount.path("f.bin"), bound_s=10)
    lines = log_has(mount, why)
    assert lines and "f.bin" in lines[0], mount.log_text()
    assert cached_bytes(mount.path("f.bin")) == 0
    assert blob_blocks(mount.cache) == 0, "bytes landed in a blob"
    # Not retried: the answer would be the same.
    assert not log_has(mount, r"f\.bin.*retrying in"), mount.log_text()
    # A good server later: the file comes whole.
    srv.set_faults({})
    assert sha256_file(mount.path("f.bin")) == hashes["f.bin"]
    mount.umount()


# ---- item 3: a server that ignores Range ---------------------------------

def test_range_ignoring_server_streams_the_file_once(server, mount,
                                                     tmp_path):
    size = 64 * MiB
    root = tmp_path / "big"
    hashes = make_tree(root, {"big.bin": size})
    srv = server(root, faults={"/big.bin": {"ignore_range": True}})
    mount.start(srv.url + "/")
    t0 = time.monotonic()
    out = subprocess.run(f"cat '{mount.path('big.bin')}' | sha256sum",
                         shell=True, capture_output=True, text=True,
                         timeout=300)
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == hashes["big.bin"]
    log = settled_log(srv)
    moved = bytes_served(log, "/big.bin")
    gets = [e for e in log if e["path"] == "/big.bin"]
    print(f"\nrange-ignoring server: {size / MiB:.0f} MiB read end to end "
          f"in {took:.1f} s moved {moved / MiB:.1f} MiB "
          f"({moved / size:.2f}x) in {len(gets)} requests")
    assert all(e["status"] == 200 for e in gets)
    assert moved <= 2 * size, f"moved {moved} bytes for a {size} B file"
    assert log_has(mount, r"ignores Range: reading 'big\.bin' whole, once")
    mount.umount()


# ---- item 7: progress earns retries --------------------------------------

def test_short_answers_read_exact(server, mount, tree):
    """A server that sends at most 300,000 bytes per answer (legal short
    206s): a 4-chunk run takes ~56 answers, each making progress."""
    root, hashes = tree
    srv = server(root, faults={"/f.bin": {"max_range": 300_000}})
    mount.start(srv.url + "/")
    assert sha256_file(mount.path("f.bin")) == hashes["f.bin"]
    short = [e for e in srv.log() if e["path"] == "/f.bin"
             and e["status"] == 206 and e["bytes"] == 300_000]
    assert len(short) > 5
    mount.umount()


def test_cuts_with_progress_read_exact(server, mount, tree):
    """Every answer is cut after 500 kB, then its connection dropped:
    failures, each with progress, so retries never run out."""
    root, hashes = tree
    srv = server(root, faults={"/f.bin": {"drop_after": 500_000}})
    mount.start(srv.url + "/")
    mount.allow(r"hollowfs warning: .*f\.bin")
    assert sha256_file(mount.path("f.bin")) == hashes["f.bin"]
    cuts = [e for e in srv.log() if e["path"] == "/f.bin"
            and e["bytes"] == 500_000]
    assert len(cuts) > 5
    mount.umount()


# ---- item 12: the disk-full fallback checks what it serves ---------------

def test_full_disk_fallback_checks_the_server(server, make_mount, tree,
                                              tmp_path):
    root, hashes = tree
    data = (root / "f.bin").read_bytes()
    cache = tmp_path / "small-cache"
    cache.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700",
                        "tmpfs",
                        str(cache)], capture_output=True, text=True,
                       timeout=30)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {r.stderr.strip()}")
    try:
        srv = server(root)
        m = make_mount(cache=cache)
        m.start(srv.url + "/")
        m.allow(r"hollowfs warning: .*(No space left|disk|full)",
                r"f\.bin")
        # Fill what is left, so no chunk can be stored.
        with open(cache / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        # The fallback serves good bytes...
        res, _ = pread_timed(m.path("f.bin"), 4096, 10)
        assert res == data[10:4106]
        # ...and refuses a lie on its own request (a short Range: not a
        # chunk run's), as the cached path does.
        lie = {"bad_content_range": True, "range_max": 1 * MiB}
        srv.set_faults({"/f.bin": lie})
        expect_eio(m.path("f.bin"), bound_s=20, length=4096,
                   offset=3 * MiB)
        assert log_has(m, r"uncached read of 'f\.bin' bytes \d+-\d+ "
                       r"refused: another Content-Range")
        srv.set_faults({"/f.bin": {"ignore_range": True,
                                   "range_max": 1 * MiB}})
        expect_eio(m.path("f.bin"), bound_s=20, length=4096,
                   offset=4 * MiB)
        assert log_has(m, r"uncached read of 'f\.bin' .*refused: not a 206")
        srv.set_faults({"/f.bin": {"etag": "changed", "range_max": 1 * MiB}})
        expect_eio(m.path("f.bin"), bound_s=20, length=4096,
                   offset=5 * MiB)
        assert log_has(m, r"uncached read of 'f\.bin' .*refused: the ETag "
                       r"changed")
        assert cached_bytes(m.path("f.bin")) == 0
        # Other files are still served.
        srv.set_faults({})
        res, _ = pread_timed(m.path("ok.bin"), 4096, 0)
        assert res == (root / "ok.bin").read_bytes()[:4096]
        m.umount()
    finally:
        subprocess.run(["umount", "-l", str(cache)], capture_output=True,
                       timeout=30)


# ---- item 4: every fault bounded at the default options (slow) -----------

# Time bounds are measured on the plain build only: under the sanitizers
# the same paths run (the stall tests of test_faults.py, with short
# options), and a minute each of waiting would add nothing but time.
slow_bound = pytest.mark.skipif(
    os.environ.get("HOLLOWFS_SANITIZE", "none") not in ("", "none"),
    reason="a time bound at the default options: measured on the plain "
    "build")

@slow_bound
def test_slow_stall_and_trickle_fail_within_60s(server, mount, tree):
    """At the default options: a file that stalls (no byte after the
    headers) and a file that trickles (1 byte a second, which the stall
    timer alone never catches) both fail with EIO in under 60 s, while
    the rest of the mount works."""
    root, hashes = tree
    srv = server(root, faults={"/stall.bin": {"stall": True},
                               "/trickle.bin": {"rate": 1}})
    mount.start(srv.url + "/")
    mount.allow(r"stall\.bin", r"trickle\.bin")
    results = {}

    def reader(name):
        results[name] = pread_timed(mount.path(name))

    threads = [threading.Thread(target=reader, args=(n,), daemon=True)
               for n in ("stall.bin", "trickle.bin")]
    for t in threads:
        t.start()
    time.sleep(1)
    assert sha256_file(mount.path("ok.bin")) == hashes["ok.bin"]
    for t in threads:
        t.join(timeout=BOUND_S + 30)
        assert not t.is_alive(), "a read hangs"
    for name, (res, took) in sorted(results.items()):
        print(f"\n{name}: EIO after {took:.1f} s at the default options")
        assert isinstance(res, OSError) and res.errno == errno.EIO, res
        assert took < BOUND_S, f"{name}: EIO after {took:.1f} s"
    assert log_has(mount, r"stall\.bin.*no data for 10000 ms")
    assert log_has(mount, r"trickle\.bin.*too slow: \d+ bytes in 10000 ms")
    assert log_has(mount, r"(stall|trickle)\.bin.*budget")
    mount.umount()


@slow_bound
def test_slow_stalled_listing_fails_mount_within_60s(server, hollowfs_bin,
                                                     tree, tmp_path):
    """A listing that never answers fails the mount, in one line, within
    60 s at the default options."""
    root, _ = tree
    srv = server(root, faults={"/": {"hang": True}})
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    t0 = time.monotonic()
    r = subprocess.run([str(hollowfs_bin), "-f", "-o",
                        f"cache={tmp_path / 'cache'}", srv.url + "/",
                        str(mnt)], capture_output=True, text=True,
                       timeout=BOUND_S + 30)
    took = time.monotonic() - t0
    print(f"\nstalled listing: the mount failed after {took:.1f} s")
    # With -f the log goes to stderr too: its info lines tell the tries.
    lines = [line for line in r.stderr.strip().splitlines()
             if not re.match(r"[0-9:.]+ hollowfs info: ", line)]
    assert r.returncode != 0
    assert took < BOUND_S
    assert len(lines) == 1, r.stderr
    assert re.match(r"hollowfs: .*" + re.escape(srv.url), lines[0]), lines
    assert re.search(r"timed out", lines[0]), lines
