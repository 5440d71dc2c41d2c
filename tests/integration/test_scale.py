"""Many files (issue 10, "blob lifetime" and "metadata at scale").

- 20,000 small files served by nginx, read end to end by several threads
  through a daemon started with RLIMIT_NOFILE soft = hard = 1024: every
  byte exact, and the daemon's open descriptors (/proc/PID/fd, sampled all
  along) stay below the limit. Before that, user.hollowfs.cached of
  5,000 files never opened: 0 each, no file created in the cache, and
  again bounded descriptors. Under the sanitizers 2,000 files (still six
  times the ~330 files that used to exhaust the descriptors).
- A flat folder of 100,000 files by nginx (JSON autoindex): mount time,
  ls -R time, entries and the daemon's peak RSS; loose bounds (mount
  < 30 s, RSS < 200 MiB), plain build only. scripts/bench/scale.py
  measures the same for file:// too and prints a table.
"""

import os
import random
import subprocess
import threading
import time

import pytest

from conftest import (SANITIZED, KiB, MiB, Sampler, count_files,
                      open_fds, proc_status_kib)

NOFILE = 1024
# What the daemon may hold at most: the limit less the 64 descriptors it
# keeps for itself (state/fsutil.c nofile_blob_budget: blobs take at most
# (limit - 64 - 2 * connections - threads) / 4 * 4, the rest is sockets,
# the FUSE device, the cache's folders, the log).
FD_CEILING = NOFILE - 64

NFILES = 2000 if SANITIZED else 20000
PER_DIR = 1000
NXATTR = 5000 if not SANITIZED else 1500
READERS = 8
# The longest all the reads may take before the test calls them hung.
RUN_BOUND_S = 600


def limited(m, nofile=NOFILE):
    """Makes Mount m start its daemon under RLIMIT_NOFILE soft = hard =
    nofile (prlimit(1) sets it, then execs hollowfs: same pid)."""
    plain = m.command

    def command(source, opts=None, foreground=True):
        return (["prlimit", f"--nofile={nofile}:{nofile}", "--"]
                + plain(source, opts, foreground))
    m.command = command
    return m


def make_small_files(root, n, seed=20):
    """n files of 1-4 KiB in folders of PER_DIR, slices of one random
    pool; returns [(relpath, offset in pool, size)] and the pool."""
    rng = random.Random(seed)
    pool = rng.randbytes(4 * MiB)
    files = []
    for i in range(n):
        d = root / f"d{i // PER_DIR:03d}"
        if i % PER_DIR == 0:
            d.mkdir(parents=True)
        size = rng.randint(1 * KiB, 4 * KiB)
        off = rng.randrange(len(pool) - size)
        rel = f"d{i // PER_DIR:03d}/f{i:05d}.bin"
        with open(root / rel, "wb") as f:
            f.write(pool[off:off + size])
        files.append((rel, off, size))
    return files, pool


def run_threads(fn, items, nthreads=READERS):
    """fn(item) for every item, spread over nthreads threads; returns the
    errors (item, exception), at most 20."""
    errors = []
    lock = threading.Lock()
    it = iter(items)

    def worker():
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                return
            try:
                fn(item)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    if len(errors) < 20:
                        errors.append((item, e))

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(nthreads)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + RUN_BOUND_S
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        assert not t.is_alive(), f"readers hung ({RUN_BOUND_S} s)"
    return errors


def test_many_small_files_under_ulimit_1024(nginx, make_mount, tmp_path):
    root = tmp_path / "root"
    files, pool = make_small_files(root, NFILES)
    ng = nginx(root)
    m = limited(make_mount("scale"))
    m.start(ng.url + "/json/")
    with open(f"/proc/{m.pid}/limits") as f:
        line = next(x for x in f if x.startswith("Max open files"))
    assert line.split()[3:5] == [str(NOFILE)] * 2, line
    blobs = m.cache / "blobs"

    # 1. xattrs of files never opened: answered, nothing created.
    before = count_files(blobs)
    sampler = Sampler(lambda: open_fds(m.pid)).start()
    t0 = time.monotonic()
    unopened = files[-NXATTR:]

    def cached0(item):
        rel = item[0]
        v = os.getxattr(m.path(rel), "user.hollowfs.cached")
        assert v.rstrip(b"\0") == b"0", v
    errors = run_threads(cached0, unopened)
    xattr_s = time.monotonic() - t0
    xattr_fds = sampler.stop()
    after = count_files(blobs)
    print(f"\ngetxattr user.hollowfs.cached of {NXATTR} unopened files: "
          f"{xattr_s:.1f} s, max {xattr_fds} descriptors, cache files "
          f"{before} -> {after}")
    assert not errors, errors
    assert xattr_fds < FD_CEILING, f"{xattr_fds} descriptors"
    assert after == before, (
        f"asking the xattr of {NXATTR} files never opened made "
        f"{after - before} files in the cache")

    # 2. Every file read end to end by READERS threads.
    sampler = Sampler(lambda: open_fds(m.pid)).start()
    t0 = time.monotonic()

    def read_one(item):
        rel, off, size = item
        with open(m.path(rel), "rb") as f:
            got = f.read()
        assert got == pool[off:off + size], f"{rel}: wrong bytes"
    errors = run_threads(read_one, files)
    read_s = time.monotonic() - t0
    max_fds = sampler.stop()
    print(f"read {NFILES} files with {READERS} threads in {read_s:.1f} s "
          f"under ulimit -n {NOFILE}: max {max_fds} open descriptors "
          f"(ceiling {FD_CEILING})")
    assert not errors, f"{len(errors)}+ files failed: {errors[:5]}"
    assert max_fds < FD_CEILING, f"{max_fds} descriptors"
    m.umount()


# ---- 100,000 entries -------------------------------------------------------

N_LISTING = 100_000


def make_flat_folder(root, n):
    root.mkdir(parents=True)
    for i in range(n):
        with open(root / f"file-{i:06d}.bin", "wb") as f:
            f.write(b"%d\n" % i)


# Listing memory must stay proportional to the entries: about 1 KiB an
# entry at most (measured: ~550 bytes; a whole jansson tree of the listing
# or of the snapshot, as before, took ~1,600).
RSS_BOUND_KIB = N_LISTING  # 1 KiB an entry


@pytest.mark.skipif(SANITIZED, reason="a measurement with loose bounds: "
                    "plain build only")
def test_listing_100k_files(nginx, make_mount, tmp_path):
    root = tmp_path / "root"
    make_flat_folder(root / "big", N_LISTING)
    ng = nginx(root)
    m = make_mount("listing")
    url = ng.url + "/json/big/"
    t0 = time.monotonic()
    m.start(url)
    mount_s = time.monotonic() - t0
    hwm_mount = proc_status_kib(m.pid, "VmHWM")
    t0 = time.monotonic()
    r = subprocess.run(["ls", "-R", str(m.path())], capture_output=True,
                       timeout=300)
    ls_s = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    listed = sum(1 for line in r.stdout.split(b"\n")
                 if line.startswith(b"file-"))
    n_stat = sum(1 for _ in os.scandir(m.path()))
    hwm_ls = proc_status_kib(m.pid, "VmHWM")
    print(f"\n{N_LISTING} files by nginx: mount {mount_s:.2f} s, ls -R "
          f"{ls_s:.2f} s, VmHWM {hwm_mount / 1024:.1f} MiB after the "
          f"mount, {hwm_ls / 1024:.1f} MiB after ls -R "
          f"({hwm_ls * 1024 / N_LISTING:.0f} bytes an entry)")
    assert listed == N_LISTING and n_stat == N_LISTING
    assert mount_s < 30
    assert hwm_ls < RSS_BOUND_KIB, f"VmHWM {hwm_ls} KiB"
    # A file of the listing reads right.
    assert (m.path("file-099999.bin")).read_bytes() == b"99999\n"
    m.umount()
    # Remounted offline: the saved snapshot, loaded as lightly.
    ng.stop()
    t0 = time.monotonic()
    m.start(url, ["offline"])
    mount_s = time.monotonic() - t0
    n_stat = sum(1 for _ in os.scandir(m.path()))
    hwm = proc_status_kib(m.pid, "VmHWM")
    print(f"offline remount from the saved snapshot: {mount_s:.2f} s, "
          f"VmHWM {hwm / 1024:.1f} MiB")
    assert n_stat == N_LISTING
    assert hwm < RSS_BOUND_KIB, f"VmHWM {hwm} KiB"
    m.umount()
