"""One role per thread, seen from outside (DESIGN.md "Threads: one role
each"): long jobs run on the worker pool and stop between blocks, so an
unmount never waits for a whole-file check; file:// bytes are read by
pread on the pool, not by curl.

Each test mounts for real against scripts/testserver.py (fake Hub) or a
local folder, at the default options unless it says otherwise.
"""

import errno
import hashlib
import os
import random
import signal
import threading
import time

import pytest

from conftest import MiB, make_tree, sha256_file
from test_hf import hf_env, opts


def sparse_file(path, size, marks):
    """A sparse file of size bytes with a few marked offsets (cheap to
    make and to serve, still a real sha256 to check)."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off in marks:
            f.seek(off)
            f.write(b"hollowfs %d" % off)


def read_all_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(16 * MiB)
            if not b:
                return h.hexdigest()
            h.update(b)


def wait_log(mount, text, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while text not in mount.log_text():
        assert time.monotonic() < deadline, f"no {text!r} after {timeout_s} s"
        time.sleep(0.05)


def test_unmount_during_2gib_verification(hub, make_mount, tmp_path):
    """A complete 2 GiB LFS file whose check must run again (its marker
    gone) is hashed from its first byte when it is next opened. The
    unmount right then returns within about a second: the check runs on
    the worker pool and stops between blocks, where it used to hold the
    saver, and the saver held unmount, for the whole hash."""
    size = 2 << 30
    big = tmp_path / "big.bin"
    sparse_file(big, size, [0, 123456789, size - 100])
    with open(big, "rb") as f:
        want = hashlib.file_digest(f, "sha256").hexdigest()
    hub.repo("acme/big", {"big.bin": str(big), "README.md": b"hi\n"},
             lfs=lambda p, d: p.endswith(".bin"))
    srv = hub.start()
    cache = tmp_path / "cache"

    # Fetched once; hashed as it lands, so verified at the last chunk.
    mount = make_mount("big", cache=cache)
    mount.start("hf://acme/big", opts(srv, "debug=state"),
                env=hf_env(tmp_path))
    assert read_all_sha256(mount.path("big.bin")) == want
    wait_log(mount, "'big.bin' verified", 10)
    mount.umount()
    markers = [p for p in cache.rglob("*.verified")]
    assert len(markers) == 1
    markers[0].unlink()

    # Complete but unchecked: the open starts the 2 GiB hash; unmount.
    mount = make_mount("big2", cache=cache)
    mount.start("hf://acme/big", opts(srv, "debug=state"),
                env=hf_env(tmp_path))
    os.getxattr(mount.path("big.bin"), "user.hollowfs.cached")
    time.sleep(0.2)
    took = mount.umount()
    print(f"unmount during a 2 GiB verification: {took:.3f} s")
    log = mount.log_text()
    # The check was cut short (neither verdict), not waited for.
    assert "'big.bin' verified" not in log, log[-2000:]
    assert "corrupt" not in log
    assert took < 2.0, f"unmount took {took:.2f} s"

    # Next time it is checked to the end, and a read, even of its first
    # bytes, is answered only once the verdict is in (logged before the
    # held reads are released).
    mount = make_mount("big3", cache=cache)
    mount.start("hf://acme/big", opts(srv, "debug=state"),
                env=hf_env(tmp_path))
    with open(mount.path("big.bin"), "rb") as f:
        assert f.read(4096)[:9] == b"hollowfs "
    assert "'big.bin' verified" in mount.log_text()
    assert read_all_sha256(mount.path("big.bin")) == want
    mount.umount()


def test_file_source_read_without_curl(make_mount, tmp_path):
    """A file:// mount reads its files with pread on the worker pool:
    byte-exact, chunk after chunk, with the cache filled as for any
    source (and no curl file:// handle, which the engine no longer
    allows)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    data = os.urandom(9 * MiB + 123)
    (src / "sub" / "model.bin").write_bytes(data)
    (src / "small.txt").write_bytes(b"small\n")
    mount = make_mount("local")
    mount.start(f"file://{src}", ["chunk_size=1M"])
    with open(mount.path("sub/model.bin"), "rb") as f:
        f.seek(5 * MiB + 7)
        assert f.read(MiB) == data[5 * MiB + 7:6 * MiB + 7]
        f.seek(0)
        assert f.read() == data
    with open(mount.path("small.txt"), "rb") as f:
        assert f.read() == b"small\n"
    cached = os.getxattr(mount.path("sub/model.bin"), "user.hollowfs.cached")
    assert int(cached) == len(data)
    mount.umount()


def test_corrupt_file_never_served_wrong_or_zeros(hub, make_mount, tmp_path):
    """Readers hammer a file whose CDN bytes are corrupt while it lands,
    is checked and is thrown away. Before the verdict a read may return
    what the CDN sent (nobody can know yet); from the verdict on, EIO,
    and at no moment zeros from the punched-out blob or anything else."""
    rng = random.Random(7)
    size = 12 * MiB + 5
    data = rng.randbytes(size)
    flip_at = 9 * MiB + 3
    hub.repo("acme/bad", {"w.bin": data}, lfs=lambda p, d: True,
             corrupt_cdn={"w.bin": flip_at})
    bad = bytearray(data)
    bad[flip_at] ^= 0xFF
    srv = hub.start()
    mount = make_mount("bad")
    mount.start("hf://acme/bad", opts(srv), env=hf_env(tmp_path))
    mount.allow(r"error: state: 'w\.bin' is corrupt: sha256 ",
                r"warning: fs: read failed for 'w\.bin': ")
    path = mount.path("w.bin")
    stop = threading.Event()
    errors, eio_after_verdict = [], []

    def reader(seed):
        r = random.Random(seed)
        while not stop.is_set():
            off = r.randrange(0, size - 65536)
            try:
                with open(path, "rb") as f:
                    f.seek(off)
                    got = f.read(65536)
            except OSError as e:
                if e.errno != errno.EIO:
                    errors.append(f"errno {e.errno} at {off}")
                continue
            if got != bad[off:off + 65536]:
                errors.append(f"wrong bytes at {off}")

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        # A sequential reader never gets to the end: its last piece is
        # held for the verdict, which is EIO.
        with pytest.raises(OSError) as ei:
            with open(path, "rb") as f:
                while f.read(MiB):
                    pass
        assert ei.value.errno == errno.EIO
        # From now on nothing but EIO, for every reader.
        for _ in range(50):
            try:
                with open(path, "rb") as f:
                    f.read(4096)
                eio_after_verdict.append(False)
            except OSError as e:
                eio_after_verdict.append(e.errno == errno.EIO)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    assert all(eio_after_verdict), eio_after_verdict
    mount.umount()


def test_frozen_peer_does_not_block_readers(server, make_mount, tmp_path):
    """Another process on the same cache holds chunk locks and is frozen
    (SIGSTOP, as docker pause does): after a bounded wait (10 s) our
    reads of those chunks are served uncached, byte-exact, instead of
    waiting for it forever. At the default options."""
    root = tmp_path / "root"
    hashes = make_tree(root, {"big.bin": 24 * MiB + 7})
    srv = server(root, faults={"/big.bin": {"rate": 2 * MiB}})
    cache = tmp_path / "cache"
    frozen = make_mount("frozen", cache=cache)
    frozen.start(srv.url + "/", ["chunk_size=1M"])
    got = {}

    def slow_reader():
        try:
            got["frozen"] = sha256_file(frozen.path("big.bin"))
        except OSError as e:
            got["frozen"] = e

    t = threading.Thread(target=slow_reader)
    t.start()
    time.sleep(1.5)  # its transfers are under way, their chunks locked
    frozen.signal(signal.SIGSTOP)
    try:
        srv.set_faults({})
        reader = make_mount("reader", cache=cache)
        reader.start(srv.url + "/", ["chunk_size=1M"])
        reader.allow(r"warning: sched: 'big\.bin' chunk \d+ is held by "
                     r"another process")
        t0 = time.monotonic()
        assert sha256_file(reader.path("big.bin")) == hashes["big.bin"]
        took = time.monotonic() - t0
        print(f"read past a frozen peer: {took:.1f} s")
        assert "is held by another process" in reader.log_text()
        assert took < 40, f"{took:.1f} s"
        reader.umount()
    finally:
        frozen.signal(signal.SIGCONT)
    t.join(timeout=120)
    assert got["frozen"] == hashes["big.bin"]
    frozen.umount()
