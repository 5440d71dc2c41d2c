"""Resuming from the cache: after kill -9, and after a clean unmount."""

import hashlib
import os
import time

import pytest

from conftest import (MiB, cached_bytes, chunks_xattr, file_gets,
                      make_tree, nchunks, served_spans, settled_log,
                      sha256_file)

CHUNK = 1 * MiB
SIZE = 40 * MiB + 777
HALF = 20 * MiB
# Readahead off, ours and the kernel's raised one: what is fetched before
# the kill is what was read (plus the kernel's own 128 KiB readahead).
OPTS = ["chunk_size=1M", "readahead=0", "kernel_readahead=0"]
SAVER_PERIOD_S = 1.0  # DESIGN.md: the saver persists bitmaps every second


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    hashes = make_tree(root, {"big.bin": SIZE, "other.bin": 5 * MiB + 3})
    return root, hashes


def read_range(path, start, length, bufsize=1 * MiB):
    """Reads [start, start+length) with plain reads, returns the bytes."""
    out = bytearray()
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        while len(out) < length:
            b = f.read(min(bufsize, length - len(out)))
            if not b:
                break
            out += b
    return bytes(out)


def merge(spans):
    out = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def overlap(a, b):
    """Bytes in both span lists."""
    total = 0
    for s1, e1 in merge(a):
        for s2, e2 in merge(b):
            total += max(0, min(e1, e2) - max(s1, s2))
    return total


def covered(spans):
    return sum(e - s for s, e in merge(spans))


def test_kill9_after_settling_refetches_only_the_missing_part(
        server, make_mount, root):
    root, hashes = root
    data = (root / "big.bin").read_bytes()
    srv = server(root)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    path = m.path("big.bin")
    assert read_range(path, 0, HALF) == data[:HALF]
    # Let the saver persist the bitmap (at most a second), then crash.
    time.sleep(SAVER_PERIOD_S * 2.5)
    before = served_spans(file_gets(settled_log(srv), "/big.bin"))
    assert covered(before) >= HALF
    assert covered(before) < SIZE, "readahead=0 fetched the whole file"
    m.kill9()
    t_remount = time.time()

    m.start(srv.url + "/", OPTS)
    # What was persisted shows at once.
    assert cached_bytes(path) == covered(before)
    assert chunks_xattr(path) == (covered(before) // CHUNK,
                                  nchunks(SIZE, CHUNK))
    assert sha256_file(path) == hashes["big.bin"]
    after = served_spans(file_gets(settled_log(srv), "/big.bin",
                                   since=t_remount))
    assert overlap(before, after) == 0, (
        f"fetched again after the remount: before {merge(before)}, "
        f"after {merge(after)}")
    assert covered(after) == SIZE - covered(before)
    assert sum(e - s for s, e in after) == covered(after), "fetched twice"
    m.umount()


def test_kill9_mid_read_loses_at_most_the_last_second(
        server, make_mount, root):
    root, hashes = root
    rate = 4 * MiB  # bytes/s: the read below takes about 3 s
    srv = server(root, faults={"/big.bin": {"rate": rate}})
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    path = m.path("big.bin")
    read = 12 * MiB
    t0 = time.monotonic()
    assert len(read_range(path, 0, read)) == read
    assert time.monotonic() - t0 >= 2.0, "the rate fault did not apply"
    m.kill9()  # at once: the last chunks may not be persisted
    before = served_spans(file_gets(settled_log(srv), "/big.bin"))
    srv.set_faults({})
    t_remount = time.time()

    m.start(srv.url + "/", OPTS)
    assert sha256_file(path) == hashes["big.bin"]
    after = served_spans(file_gets(settled_log(srv), "/big.bin",
                                   since=t_remount))
    again = overlap(before, after)
    # The saver runs every second: what was fetched more than about a
    # second before the kill is kept.
    bound = int(rate * SAVER_PERIOD_S * 1.5) + 2 * CHUNK
    assert again <= bound, (
        f"{again} bytes fetched again after kill -9 (bound {bound}): "
        f"before {merge(before)}, after {merge(after)}")
    assert covered(before) + covered(after) - again == SIZE
    m.umount()


def test_clean_remount_fetches_nothing_cached(server, make_mount, root):
    root, hashes = root
    srv = server(root)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    assert sha256_file(m.path("big.bin")) == hashes["big.bin"]
    other = read_range(m.path("other.bin"), 0, 2 * MiB)
    assert other == (root / "other.bin").read_bytes()[:2 * MiB]
    settled_log(srv)  # the kernel's readahead may still be fetching
    other_cached = cached_bytes(m.path("other.bin"))
    assert 2 * MiB <= other_cached < 5 * MiB + 3
    m.umount()

    # The cache holds the blobs and their sidecars.
    blobs = m.cache / "blobs"
    states = list(blobs.glob("*/*.state"))
    assert len(states) == 2, sorted(os.listdir(blobs))

    t_remount = time.time()
    m.start(srv.url + "/", OPTS)
    path = m.path("big.bin")
    assert cached_bytes(path) == SIZE
    n = nchunks(SIZE, CHUNK)
    assert chunks_xattr(path) == (n, n)
    assert cached_bytes(m.path("other.bin")) == other_cached
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(4 * MiB):
            h.update(b)
    assert h.hexdigest() == hashes["big.bin"]
    log = settled_log(srv)
    gets = [e for e in log if e["t"] >= t_remount and e["method"] == "GET"
            and e["path"] == "/big.bin"]
    assert not gets, f"a cached file was fetched again: {gets}"
    # The partly cached file fetches only its missing part.
    assert sha256_file(m.path("other.bin")) == hashes["other.bin"]
    after = served_spans(file_gets(settled_log(srv), "/other.bin",
                                   since=t_remount))
    assert covered(after) == 5 * MiB + 3 - other_cached
    assert all(s >= 2 * MiB for s, _ in after), after
    m.umount()
