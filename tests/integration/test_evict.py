"""A bounded cache (issue 10, "a size limit", "ENOSPC", `hollowfs gc`).

Every test reads real files through real mounts from testserver.py and
checks the bytes, the server's access log, the cache's allocated bytes
(st_blocks * 512 of every file under CACHE/blobs, sampled every 50 ms while
reading and measured after) and, at the end, every set bit of every
sidecar with the independent checker tests/integration/cachecheck.py.

The slack allowed over cache_max: one chunk per connection (chunks being
written when the evictor runs), plus 1 MiB and 16 KiB a blob for the
metadata (each blob's sidecar, sums and lock file take a block or two;
the snapshot manifest). With several processes on one cache, each may
also write limit / 32 bytes the others have not seen yet (the evictor
accounts by scanning the cache after every limit / 32 bytes written). The mounts use 1 MiB chunks and 4 connections so
the slack (5 MiB + 16 KiB a blob) stays small beside the 64 MiB limit.
Under the sanitizers every size is a quarter.
"""

import os
import subprocess
import threading
import time

import pytest

from conftest import (HOLLOWFS, SANITIZED, KiB, MiB, Sampler,
                      allocated_bytes, bounded, bytes_served, cached_bytes,
                      settled_log, write_random_file)
from cachecheck import check_cache

SCALE = 4 if SANITIZED else 1
LIMIT = 64 * MiB // SCALE
CHUNK = 1 * MiB
CONNS = 4
OPTS = [f"chunk_size={CHUNK // MiB}M", f"connections={CONNS}"]
# What the daemon may say about space and eviction.
SPACE_LINES = (r"(?i)no space|space left|disk.*full|cache.*full|evict|"
               r"uncached|cache_max|free space")


RUN_CHUNKS = 4  # the largest job: sched_opts.max_run_chunks


def slack(nblobs, nproc=1, limit=LIMIT):
    """One chunk per connection and the metadata; with several processes
    also what each may write unseen by the others between two of its
    scans of the cache (fetch/evictor.c: every limit / 32 bytes, at least
    two of its largest jobs)."""
    every = max(limit // 32, 2 * RUN_CHUNKS * CHUNK)
    unseen = every if nproc > 1 else 0
    return nproc * (CONNS * CHUNK + unseen) + 1 * MiB + nblobs * 16 * KiB


def limit_opts(limit=LIMIT):
    return OPTS + [f"cache_max={limit}"]


def make_files(root, names, size, seed=30):
    """Random files of size bytes; returns {name: bytes}."""
    out = {}
    for i, n in enumerate(names):
        write_random_file(root / n, size, seed=f"{seed}-{i}")
        out[n] = (root / n).read_bytes()
    return out


# The longest a read of one file may take before the test calls it hung.
READ_BOUND_S = 300


def read_exact(path, want, bufsize=1 * MiB):
    """_read_exact, failing the test if it hangs."""
    return bounded(_read_exact, path, want, bufsize, timeout_s=READ_BOUND_S,
                   what=f"reading {path}")


def _read_exact(path, want, bufsize):
    """Reads path in order, asserting each block is the same bytes of
    want. The kernel's page cache of the file is dropped first, so every
    byte comes from the daemon (its cache or the server)."""
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        pos = 0
        while True:
            block = f.read(bufsize)
            if not block:
                break
            assert block == want[pos:pos + len(block)], \
                f"{path}: wrong bytes at {pos}"
            pos += len(block)
    assert pos == len(want), f"{path}: {pos} of {len(want)} bytes"


def blob_bytes(cache):
    return allocated_bytes(cache / "blobs")


def assert_checker_passes(cache, need_bits=True):
    rep = check_cache(cache)
    print(f"cachecheck: {rep.summary()}")
    assert rep.ok, str(rep)
    if need_bits:
        assert rep.bits_checked > 0, f"nothing checked: {rep.summary()}"


# ---- 1. a limit smaller than what is read ----------------------------------

def test_limit_holds_and_evicted_chunks_are_fetched_again(
        server, make_mount, tmp_path):
    root = tmp_path / "root"
    names = [f"f{i}.bin" for i in range(8)]
    files = make_files(root, names, LIMIT // 2)  # 4x the limit in all
    srv = server(root)
    m = make_mount("lim")
    m.allow(SPACE_LINES)
    m.start(srv.url + "/", limit_opts())
    cache = m.cache
    sampler = Sampler(lambda: blob_bytes(cache)).start()
    for n in names:
        read_exact(m.path(n), files[n])
    during = sampler.stop()
    time.sleep(0.5)
    after = blob_bytes(cache)
    bound = LIMIT + slack(len(names))
    print(f"\ncache_max {LIMIT}: read {len(names) * LIMIT // 2} bytes; "
          f"allocated max {during} during, {after} after (bound {bound})")
    assert during <= bound, f"{during} bytes allocated during the reads"
    assert after <= bound, f"{after} bytes allocated after the reads"
    # The first file was evicted (at least in part): read again, it is
    # fetched again, and right.
    since = time.time()
    read_exact(m.path(names[0]), files[names[0]])
    again = bytes_served(settled_log(srv), "/" + names[0], since)
    print(f"{names[0]} read again: {again} bytes fetched again")
    assert again > 0, "evicted chunks were not fetched again"
    assert blob_bytes(cache) <= bound
    m.umount()
    assert_checker_passes(cache)


# ---- 2. one streamed file twice the limit ---------------------------------

def stream(m, name, want):
    t0 = time.monotonic()
    read_exact(m.path(name), want)
    return time.monotonic() - t0


def test_streaming_a_file_twice_the_limit(server, make_mount, tmp_path):
    root = tmp_path / "root"
    files = make_files(root, ["big.bin"], 2 * LIMIT)
    size = 2 * LIMIT
    srv = server(root)
    # Unlimited, for comparison (own cache).
    u = make_mount("unlimited", cache=tmp_path / "cache-unlimited")
    u.start(srv.url + "/", OPTS)
    since = time.time()
    took_u = stream(u, "big.bin", files["big.bin"])
    served_u = bytes_served(settled_log(srv), "/big.bin", since)
    u.umount()
    # With the limit.
    m = make_mount("lim")
    m.allow(SPACE_LINES)
    m.start(srv.url + "/", limit_opts())
    sampler = Sampler(lambda: blob_bytes(m.cache)).start()
    since = time.time()
    took = stream(m, "big.bin", files["big.bin"])
    during = sampler.stop()
    served = bytes_served(settled_log(srv), "/big.bin", since)
    after = blob_bytes(m.cache)
    bound = LIMIT + slack(1)
    print(f"\nstreaming {size} bytes, cache_max {LIMIT}: {took:.2f} s "
          f"({size / took / MiB:.0f} MiB/s), {served} bytes fetched "
          f"({served - size} refetched), allocated max {during} "
          f"(bound {bound}); unlimited: {took_u:.2f} s "
          f"({size / took_u / MiB:.0f} MiB/s), {served_u} bytes fetched")
    assert during <= bound and after <= bound, (during, after, bound)
    # Loose: the limit must not make it thrash.
    assert served <= 2 * size, f"{served} bytes fetched for {size}"
    m.umount()
    assert_checker_passes(m.cache)


# ---- 3. a small filesystem as the cache, filled up ------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A ~32 MiB ext4 image loop-mounted at tmp_path/smallfs (unmounted
    at teardown, whatever happens)."""
    img = tmp_path / "small.img"
    mnt = tmp_path / "smallfs"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(32 * MiB)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(img)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode:
        pytest.skip(f"mkfs.ext4 failed: {r.stderr.strip()}")
    r = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode:
        pytest.skip(f"cannot loop-mount an image: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        for args in (["umount", str(mnt)], ["umount", "-l", str(mnt)]):
            if subprocess.run(args, capture_output=True,
                              timeout=60).returncode == 0:
                break
        img.unlink()


def read_exact_or_eio(path, want, bufsize=1 * MiB):
    return bounded(_read_exact_or_eio, path, want, bufsize,
                   timeout_s=READ_BOUND_S, what=f"reading {path}")


def _read_exact_or_eio(path, want, bufsize):
    """Reads path block by block (pread); returns (blocks right, blocks
    EIO; all of them when the open fails with EIO); fails on a wrong byte
    or another error."""
    good = eio = 0
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        assert e.errno == 5, f"open {path}: {e!r}"
        return 0, (len(want) + bufsize - 1) // bufsize
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for off in range(0, len(want), bufsize):
            try:
                block = os.pread(fd, bufsize, off)
            except OSError as e:
                assert e.errno == 5, f"{path} at {off}: {e!r}"
                eio += 1
                continue
            assert block == want[off:off + bufsize], \
                f"{path}: wrong bytes at {off}"
            good += 1
    finally:
        os.close(fd)
    return good, eio


def test_small_cache_filesystem_filled_up(server, make_mount, tmp_path,
                                          small_fs):
    root = tmp_path / "root"
    names = [f"f{i}.bin" for i in range(4)]
    files = make_files(root, names, 8 * MiB)
    srv = server(root)
    # Leave ~6 MiB free: less than one file.
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        f.write(b"\xa5" * (free - 6 * MiB))
        f.flush()
        os.fsync(f.fileno())
    cache = small_fs / "cache"
    m = make_mount("small", cache=cache)
    m.allow(SPACE_LINES, r"f\d\.bin")
    m.start(srv.url + "/", OPTS)
    good = eio = 0
    for _ in range(2):  # twice: read again over a full disk
        for n in names[:3]:
            g, e = read_exact_or_eio(m.path(n), files[n])
            good, eio = good + g, eio + e
    print(f"\nfull cache filesystem: {good} blocks right, {eio} EIO, "
          f"{os.statvfs(small_fs).f_bavail * 4096} bytes free")
    assert good > 0, "nothing could be read"
    m.umount()
    assert_checker_passes(cache, need_bits=False)
    # Space freed: caching resumes.
    filler.unlink()
    m.start(srv.url + "/", OPTS)
    before = cached_bytes(m.path(names[3]))
    read_exact(m.path(names[3]), files[names[3]])
    after = cached_bytes(m.path(names[3]))
    print(f"after freeing space: {names[3]} cached {before} -> {after}")
    assert after == len(files[names[3]]), f"cached {after} bytes"
    m.umount()
    assert_checker_passes(cache)


# ---- 4. two processes on one limited cache ---------------------------------

def test_two_processes_racing_eviction(server, make_mount, tmp_path):
    root = tmp_path / "root"
    a_names = [f"a{i}.bin" for i in range(4)]
    b_names = [f"b{i}.bin" for i in range(4)]
    files = make_files(root, a_names + b_names, LIMIT // 2)
    srv = server(root)
    cache = tmp_path / "cache"
    ma = make_mount("a", cache=cache)
    mb = make_mount("b", cache=cache)
    for m in (ma, mb):
        m.allow(SPACE_LINES)
        m.start(srv.url + "/", limit_opts())
    errors = []

    def reader(m, names):
        try:
            for _ in range(2):
                for n in names:
                    read_exact(m.path(n), files[n])
        except (AssertionError, OSError) as e:
            errors.append(e)

    sampler = Sampler(lambda: blob_bytes(cache)).start()
    threads = [threading.Thread(target=reader, args=(ma, a_names)),
               threading.Thread(target=reader, args=(mb, b_names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * READ_BOUND_S)
        assert not t.is_alive(), "a reader hung"
    during = sampler.stop()
    bound = LIMIT + slack(len(files), nproc=2)
    print(f"\ntwo processes, cache_max {LIMIT}: allocated max {during} "
          f"(bound {bound})")
    assert not errors, errors
    assert during <= bound
    ma.umount()
    mb.umount()
    assert_checker_passes(cache)


# ---- 5. hollowfs gc while a mount reads -------------------------------------

def test_gc_racing_a_reading_mount(server, make_mount, tmp_path):
    root = tmp_path / "root"
    names = [f"g{i}.bin" for i in range(6)]
    files = make_files(root, names, LIMIT // 4)
    srv = server(root)
    m = make_mount("gc")
    m.allow(SPACE_LINES)
    m.start(srv.url + "/", OPTS)
    stop = threading.Event()
    runs = []

    def gc_loop():
        while not stop.is_set():
            r = subprocess.run(
                [str(HOLLOWFS), "gc", "-o", f"cache={m.cache}", "--max",
                 str(LIMIT // 4)], capture_output=True, text=True,
                timeout=60)
            runs.append(r)
            time.sleep(0.05)

    gc = threading.Thread(target=gc_loop)
    gc.start()
    try:
        for _ in range(2):
            for n in names:
                read_exact(m.path(n), files[n])
    finally:
        stop.set()
        gc.join(120)
    failed = [r for r in runs if r.returncode != 0]
    print(f"\n{len(runs)} gc runs while reading; allocated now "
          f"{blob_bytes(m.cache)}")
    assert runs and not failed, (
        f"gc failed: {failed[0].returncode} {failed[0].stderr.strip()}")
    m.umount()
    assert_checker_passes(m.cache)
    # With no mount: gc prunes to the size asked.
    r = subprocess.run([str(HOLLOWFS), "gc", "-o", f"cache={m.cache}",
                        "--max", str(LIMIT // 4)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    left = blob_bytes(m.cache)
    assert left <= LIMIT // 4 + slack(len(names)), left
    assert_checker_passes(m.cache, need_bits=False)
