"""Readahead that never over-fetches (issue 11), the kernel's side of it,
O_DIRECT and MAP_POPULATE, through a real mount of scripts/testserver.py.

What was fetched is read from the server's access log (bytes_served,
file_gets). Every mount runs with -o prefetch=none, so that only reads
and their readahead fetch anything.

Run with: pytest-3 -q tests/integration/test_readahead.py
"""

import hashlib
import mmap
import os
import random
import time

import pytest

from cachecheck import check_cache
from conftest import (MiB, bytes_served, cached_at_least, chunks_xattr,
                      file_gets, served_spans, settled_log,
                      write_random_file)

CHUNK = 4 * MiB  # the default chunk size
OPTS = ["prefetch=none"]



def bdi_read_ahead_kb(path):
    st = os.stat(path)
    with open(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
              "/read_ahead_kb") as f:
        return int(f.read())


def wait_read_ahead_kb(path, want, timeout_s=5.0):
    """The mount's read_ahead_kb, once it is want (set just after INIT)
    or timeout_s passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        kb = bdi_read_ahead_kb(path)
        if kb == want or time.monotonic() > deadline:
            return kb
        time.sleep(0.05)


@pytest.fixture
def sparse_root(tmp_path):
    """A served 1 GiB file of zeros (sparse: nothing to write)."""
    root = tmp_path / "root"
    root.mkdir()
    with open(root / "big.bin", "wb") as f:
        f.truncate(1024 * MiB)
    return root


# The kernel's readahead raised (READs of 1 MiB) and left at 128 KiB
# (a 1 MiB read arrives as 8 READs in a row, which once grew a window).
KERNEL_RA = pytest.mark.parametrize("kra", ["4M", "0"])


@KERNEL_RA
def test_two_distant_reads_fetch_their_chunks(server, mount, sparse_root,
                                              kra):
    """The issue's dd case: two 1 MiB reads at distant offsets of a fresh
    file fetch the chunk each covers, nothing ahead (was 136 MiB)."""
    srv = server(sparse_root)
    mount.start(srv.url + "/", OPTS + [f"kernel_readahead={kra}"])
    since = time.time()
    for off in (10 * MiB, 300 * MiB):
        fd = os.open(mount.path("big.bin"), os.O_RDONLY)
        try:
            assert os.pread(fd, MiB, off) == bytes(MiB)
        finally:
            os.close(fd)
    log = settled_log(srv)
    got = bytes_served(log, "/big.bin", since)
    gets = file_gets(log, "/big.bin", since)
    print(f"kernel_readahead={kra}: two 1 MiB reads: {len(gets)} requests, {got / MiB:.1f} MiB")
    assert got <= 2 * 2 * CHUNK, f"fetched {got} bytes for two 1 MiB reads"


@KERNEL_RA
def test_random_reads_fetch_little(server, mount, sparse_root, kra):
    """100 random 1 MiB reads (dd-style, 1 MiB aligned) of a 1 GiB file:
    at most ~4.5 MiB fetched per read on average (was 3.1 GiB in all).
    Unaligned reads straddle two chunks one time in four: 5 MiB."""
    srv = server(sparse_root)
    mount.start(srv.url + "/", OPTS + [f"kernel_readahead={kra}"])
    rnd = random.Random(11)
    since = time.time()
    fd = os.open(mount.path("big.bin"), os.O_RDONLY)
    try:
        for _ in range(100):
            off = rnd.randrange(1024) * MiB
            assert os.pread(fd, MiB, off) == bytes(MiB)
    finally:
        os.close(fd)
    log = settled_log(srv)
    got = bytes_served(log, "/big.bin", since)
    n = len(file_gets(log, "/big.bin", since))
    print(f"kernel_readahead={kra}: 100 random 1 MiB reads: {n} requests, {got / MiB:.1f} MiB "
          f"({got / MiB / 100:.2f} MiB a read)")
    assert got <= 100 * 4.5 * MiB


def test_sequential_reader_reaches_the_window(server, mount, tmp_path):
    """cat of a file: byte-exact, each byte fetched about once, and in
    requests of several chunks (the window grew), with the kernel's
    readahead raised to 4 MiB (READs of 1 MiB)."""
    root = tmp_path / "root"
    root.mkdir()
    size = 96 * MiB + 12345
    want = write_random_file(root / "seq.bin", size, seed=3)
    srv = server(root)
    mount.start(srv.url + "/", OPTS)
    kb = wait_read_ahead_kb(mount.path(), 4096)
    since = time.time()
    h = hashlib.sha256()
    with open(mount.path("seq.bin"), "rb") as f:
        while True:
            b = f.read(MiB)
            if not b:
                break
            h.update(b)
    assert h.hexdigest() == want
    log = settled_log(srv)
    gets = file_gets(log, "/seq.bin", since)
    got = sum(e["bytes"] for e in gets)
    biggest = max(e["bytes"] for e in gets)
    print(f"sequential: {len(gets)} requests, {got / MiB:.1f} MiB of "
          f"{size / MiB:.1f}, largest {biggest / MiB:.1f} MiB; "
          f"read_ahead_kb {kb}")
    assert got <= 1.1 * size
    assert biggest > CHUNK, "no request of more than one chunk: no window"
    if os.geteuid() == 0:
        assert kb == 4096


def test_kernel_readahead_option(server, make_mount, sparse_root):
    """-o kernel_readahead=SIZE sets the mount's read_ahead_kb (as root);
    0 leaves the kernel's."""
    if os.geteuid() != 0:
        pytest.skip("only root may set read_ahead_kb")
    srv = server(sparse_root)
    m = make_mount("ra")
    m.start(srv.url + "/", OPTS + ["kernel_readahead=8M"])
    assert wait_read_ahead_kb(m.path(), 8192) == 8192
    m.umount()
    m.start(srv.url + "/", OPTS + ["kernel_readahead=0"])
    time.sleep(0.3)
    assert bdi_read_ahead_kb(m.path()) != 8192


def test_o_direct_reads(server, mount, tmp_path):
    """An O_DIRECT open works; reads aligned to st_blksize (llama.cpp's
    direct-I/O loader) come back byte-exact, the short last one too."""
    root = tmp_path / "root"
    root.mkdir()
    size = 24 * MiB + 4321
    write_random_file(root / "d.bin", size, seed=5)
    data = (root / "d.bin").read_bytes()
    srv = server(root)
    mount.start(srv.url + "/", OPTS)
    path = mount.path("d.bin")
    blk = os.stat(path).st_blksize
    print(f"st_blksize {blk}")
    assert blk >= MiB, "a small st_blksize makes direct-I/O reads small"
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, blk)  # page-aligned, as O_DIRECT wants
    try:
        off = 0
        while off < size:
            n = os.preadv(fd, [buf], off)
            assert n == min(blk, size - off), f"short read at {off}"
            assert buf[:n] == data[off:off + n], f"bytes differ at {off}"
            off += n
        # Out of order, as parallel loader threads do.
        for off in (16 * MiB, 4 * MiB, 20 * MiB):
            n = os.preadv(fd, [buf], off)
            assert buf[:n] == data[off:off + n]
    finally:
        buf.close()
        os.close(fd)


def test_map_populate_streams(server, mount, tmp_path):
    """mmap(MAP_POPULATE) of a whole file: byte-exact, each byte fetched
    about once, in requests of several chunks (like cat)."""
    populate = getattr(mmap, "MAP_POPULATE", 0x8000)
    root = tmp_path / "root"
    root.mkdir()
    size = 64 * MiB + 999
    write_random_file(root / "p.bin", size, seed=7)
    data = (root / "p.bin").read_bytes()
    srv = server(root)
    mount.start(srv.url + "/", OPTS)
    since = time.time()
    t = time.monotonic()
    with open(mount.path("p.bin"), "rb") as f:
        m = mmap.mmap(f.fileno(), size, flags=mmap.MAP_SHARED | populate,
                      prot=mmap.PROT_READ)
    elapsed = time.monotonic() - t
    try:
        assert m[:] == data
    finally:
        m.close()
    log = settled_log(srv)
    gets = file_gets(log, "/p.bin", since)
    got = sum(e["bytes"] for e in gets)
    print(f"MAP_POPULATE: {elapsed:.2f}s, {len(gets)} requests, "
          f"{got / MiB:.1f} MiB of {size / MiB:.1f}, largest "
          f"{max(e['bytes'] for e in gets) / MiB:.1f} MiB")
    assert got <= 1.1 * size
    assert max(e["bytes"] for e in gets) > CHUNK


# ---- a read is answered once its own bytes are in ---------------------------

def test_read_answered_before_its_chunk_is_complete(server, mount, tmp_path):
    """At 1 MiB/s a 4 MiB chunk takes 4 s; a read of its first page is
    answered as soon as those bytes landed, while the rest of the chunk
    is still coming, and the chunk still completes with the right bytes."""
    root = tmp_path / "root"
    root.mkdir()
    data = random.Random(31).randbytes(2 * CHUNK)
    (root / "slow.bin").write_bytes(data)
    srv = server(root, faults={"/slow.bin": {"rate": MiB}})
    mount.start(srv.url + "/", OPTS + ["kernel_readahead=0"])
    path = mount.path("slow.bin")
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.monotonic()
        got = os.pread(fd, 4096, 0)
        took = time.monotonic() - t0
        cached = int(os.getxattr(path, "user.hollowfs.cached").rstrip(b"\0"))
        print(f"first page after {took * 1000:.0f} ms; "
              f"{cached} bytes of the chunk DONE then")
        assert got == data[:4096]
        # Not a whole chunk: its transfer alone takes 4 s.
        assert cached < CHUNK, "the reply waited for the whole chunk"
        assert took < 3.0, f"first page after {took:.2f} s"
        # The rest of the chunk, read as it comes, is right too.
        assert os.pread(fd, CHUNK, 0) == data[:CHUNK]
    finally:
        os.close(fd)
    mount.umount()


def test_random_read_into_the_next_chunk_fetches_only_its_start(
        server, mount, tmp_path):
    """A random 512 KiB read (one READ) that reaches 256 KiB into the next
    chunk gets its own chunk whole and only those 256 KiB of the next one
    (not 4 MiB); a later read in the middle of that chunk fetches the
    rest of it, not those 256 KiB again, and the chunk's sum (hashed
    across the two requests) and every byte are right. (A longer read the kernel splits in
    READs that two threads take in the other order may fetch the next
    chunk whole: scripts/bench/targets.py measures the bytes per read.)"""
    root = tmp_path / "root"
    root.mkdir()
    data = random.Random(32).randbytes(4 * CHUNK)
    (root / "r.bin").write_bytes(data)
    srv = server(root)
    mount.start(srv.url + "/", OPTS)
    path = mount.path("r.bin")
    fd = os.open(path, os.O_RDONLY)
    try:
        # First, Range is found to work (a blob's first request is the
        # one that tells).
        assert os.pread(fd, 4096, 3 * CHUNK) == data[3 * CHUNK:][:4096]
        settled_log(srv)
        mark = time.time()
        off = CHUNK - 256 * 1024
        assert os.pread(fd, MiB // 2, off) == data[off:off + MiB // 2]
        spans = served_spans(file_gets(settled_log(srv), "/r.bin", mark))
        print("spans of the random read:", spans)
        assert (0, CHUNK) in spans
        assert spans == [(0, CHUNK), (CHUNK, CHUNK + 256 * 1024)], spans
        # The chunk is not complete: a read in its middle fetches it.
        assert chunks_xattr(path)[0] == 2
        mark = time.time()
        assert os.pread(fd, 4096, CHUNK + 2 * MiB) == \
            data[CHUNK + 2 * MiB:][:4096]
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert os.pread(fd, CHUNK, CHUNK) == data[CHUNK:2 * CHUNK]
        spans = served_spans(file_gets(settled_log(srv), "/r.bin", mark))
        # The rest of chunk 1, once (and maybe readahead past it).
        assert [s for s in spans if s[0] < 2 * CHUNK] == \
            [(CHUNK + 256 * 1024, 2 * CHUNK)], spans
        assert cached_at_least(path, 3 * CHUNK) >= 3 * CHUNK
    finally:
        os.close(fd)
    mount.umount()
    rep = check_cache(mount.cache)
    print(f"cachecheck: {rep.summary()}")
    assert rep.ok and rep.bits_checked >= 3, str(rep)
