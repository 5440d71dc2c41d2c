"""One role per thread, seen from outside (DESIGN.md "Threads: one role
each"): long jobs run on the worker pool and stop between blocks, so an
unmount never waits for a whole-file check; file:// bytes are read by
pread on the pool, not by curl.

Each test mounts for real against scripts/testserver.py (fake Hub) or a
local folder, at the default options unless it says otherwise.
"""

import hashlib
import os
import time

from conftest import MiB
from test_hf import hf_env, opts


def sparse_file(path, size, marks):
    """A sparse file of size bytes with a few marked offsets (cheap to
    make and to serve, still a real sha256 to check)."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off in marks:
            f.seek(off)
            f.write(b"hollowfs %d" % off)


def test_unmount_during_2gib_verification(hub, make_mount, tmp_path):
    """A 2 GiB LFS file is read whole; its sha256 check starts as its
    last chunk lands. The unmount right after returns within about a
    second: the check runs on the worker pool and stops between blocks,
    where it used to hold the saver, and the saver held unmount, for
    the whole hash."""
    size = 2 << 30
    big = tmp_path / "big.bin"
    sparse_file(big, size, [0, 123456789, size - 100])
    hub.repo("acme/big", {"big.bin": str(big), "README.md": b"hi\n"},
             lfs=lambda p, d: p.endswith(".bin"))
    srv = hub.start()
    mount = make_mount("big")
    mount.start("hf://acme/big", opts(srv, "debug=state"),
                env=hf_env(tmp_path))
    with open(mount.path("big.bin"), "rb") as f:
        while f.read(16 * MiB):
            pass
    took = mount.umount()
    print(f"unmount during a 2 GiB verification: {took:.3f} s")
    log = mount.log_text()
    # The check was cut short (neither verdict), not waited for.
    assert "'big.bin' verified" not in log, log[-2000:]
    assert "corrupt" not in log
    assert took < 2.0, f"unmount took {took:.2f} s"

    # The next mount checks it again, finds it good, and serves it.
    mount = make_mount("big2", cache=mount.cache)
    mount.start("hf://acme/big", opts(srv, "debug=state"),
                env=hf_env(tmp_path))
    h = hashlib.sha256()
    with open(mount.path("big.bin"), "rb") as f:
        while True:
            b = f.read(16 * MiB)
            if not b:
                break
            h.update(b)
    with open(big, "rb") as f:
        want = hashlib.file_digest(f, "sha256").hexdigest()
    assert h.hexdigest() == want
    deadline = time.monotonic() + 60
    while "'big.bin' verified" not in mount.log_text():
        assert time.monotonic() < deadline, "not verified after 60 s"
        time.sleep(0.1)
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
