"""Several hollowfs processes on one cache (issue 10, "safe sharing").

Every test runs 2 to 4 real daemons, each with its own mountpoint, all on
one cache folder, against one testserver (or fake Hub), and checks:
- the same large file read through all of them at once is byte-exact in
  each, and the server sent each byte about once (<= 1.25x the size);
- kill -9 of one of them mid-transfer: the others still finish it;
- mounts with different chunk sizes on one cache: byte-exact, and neither
  wipes the other's progress (a remount fetches nothing it had);
- two hf:// revisions sharing an unchanged file: fetched once, stored once.
The 256 MiB file is 64 MiB under the sanitizers (3x slower).
"""

import hashlib
import os
import threading
import time

import pytest

from conftest import (SANITIZED, MiB, bounded, bytes_served, cached_bytes,
                      settled_log, sha256_file, write_random_file)
from cachecheck import check_cache

BIG = (64 if SANITIZED else 256) * MiB
# The longest a read of one file may take before the test calls it hung.
READ_BOUND_S = 300


def read_all_at_once(paths, bufsize=1 * MiB):
    """Reads every path in its own thread, all starting together; returns
    {path: sha256 hex or the exception}."""
    barrier = threading.Barrier(len(paths))
    out = {}

    def reader(p):
        barrier.wait()
        try:
            out[p] = sha256_file(p, bufsize)
        except OSError as e:
            out[p] = e

    threads = [threading.Thread(target=reader, args=(p,), daemon=True)
               for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(READ_BOUND_S)
        assert not t.is_alive(), "a reader hung"
    return out


def data_files_of_size(cache, size):
    """Data files (no suffix) of this apparent size under cache/blobs."""
    found = []
    for dirpath, _, names in os.walk(cache / "blobs"):
        for n in names:
            p = os.path.join(dirpath, n)
            if "." not in n and os.stat(p).st_size == size:
                found.append(p)
    return found


@pytest.fixture
def big(tmp_path):
    root = tmp_path / "root"
    sha = write_random_file(root / "big.bin", BIG, seed=10)
    return root, sha


@pytest.mark.parametrize("nproc", [2, 4])
def test_processes_share_one_fetch(nproc, server, make_mount, big,
                                   tmp_path):
    root, sha = big
    srv = server(root)
    mounts = [make_mount(f"s{i}", cache=tmp_path / "cache")
              for i in range(nproc)]
    for m in mounts:
        m.start(srv.url + "/")
    t0 = time.monotonic()
    got = read_all_at_once([m.path("big.bin") for m in mounts])
    took = time.monotonic() - t0
    for p, h in got.items():
        assert h == sha, f"{p}: {h}"
    served = bytes_served(settled_log(srv), "/big.bin")
    print(f"\n{nproc} processes sharing {BIG} bytes: {served} bytes "
          f"fetched ({served / BIG:.3f}x the size) in {took:.1f} s")
    assert served <= 1.25 * BIG, (
        f"{nproc} processes fetched {served} bytes of a {BIG}-byte file "
        f"({served / BIG:.2f}x)")
    for m in mounts:
        m.umount()
    rep = check_cache(tmp_path / "cache")
    assert rep.ok and rep.bits_checked, str(rep)


def test_kill9_one_the_others_finish(server, make_mount, tmp_path):
    size = 64 * MiB
    root = tmp_path / "root"
    sha = write_random_file(root / "big.bin", size, seed=11)
    # 4 MiB/s a request: the transfer takes a few seconds, so the kill
    # lands in the middle of it.
    srv = server(root, faults={"/big.bin": {"rate": 4 * MiB}})
    mounts = [make_mount(f"k{i}", cache=tmp_path / "cache")
              for i in range(3)]
    for m in mounts:
        m.start(srv.url + "/")
    victim = mounts[0]
    paths = [m.path("big.bin") for m in mounts]
    out = {}
    threads = []

    def reader(p):
        try:
            out[p] = sha256_file(p)
        except OSError as e:
            out[p] = e

    for p in paths:
        threads.append(threading.Thread(target=reader, args=(p,),
                                        daemon=True))
        threads[-1].start()
    deadline = time.monotonic() + 60
    while bytes_served(srv.log(), "/big.bin") < size // 8:
        assert time.monotonic() < deadline, "no progress in 60 s"
        time.sleep(0.05)
    served_at_kill = bytes_served(srv.log(), "/big.bin")
    victim.kill9()
    for t in threads:
        t.join(timeout=READ_BOUND_S)
        assert not t.is_alive(), "a reader is stuck after the kill"
    for p in paths[1:]:
        assert out[p] == sha, f"{p}: {out[p]}"
    srv.set_faults({})
    served = bytes_served(settled_log(srv), "/big.bin")
    print(f"\nkill -9 at {served_at_kill} bytes served; {served} in all "
          f"({served / size:.3f}x the size)")
    for m in mounts[1:]:
        m.umount()
    rep = check_cache(tmp_path / "cache")
    assert rep.ok, str(rep)
    # A new mount finds the whole file cached.
    since = time.time()
    m = make_mount("after", cache=tmp_path / "cache")
    m.start(srv.url + "/")
    assert cached_bytes(m.path("big.bin")) == size
    assert bounded(sha256_file, m.path("big.bin")) == sha
    assert bytes_served(settled_log(srv), "/big.bin", since) == 0
    m.umount()


def test_two_chunk_sizes_keep_each_others_progress(server, make_mount,
                                                   tmp_path):
    size = 32 * MiB + 12345
    half = 16 * MiB
    root = tmp_path / "root"
    write_random_file(root / "f.bin", size, seed=12)
    data = (root / "f.bin").read_bytes()
    srv = server(root)
    cache = tmp_path / "cache"
    a = make_mount("a", cache=cache)
    b = make_mount("b", cache=cache)
    a_opts, b_opts = ["chunk_size=1M"], ["chunk_size=4M"]
    a.start(srv.url + "/", a_opts)
    b.start(srv.url + "/", b_opts)
    # Both at once: A the first half, B the second, then each the whole.
    def halves():
        with open(a.path("f.bin"), "rb") as fa, \
                open(b.path("f.bin"), "rb") as fb:
            assert fa.read(half) == data[:half]
            fb.seek(half)
            assert fb.read() == data[half:]
    bounded(halves)
    want = hashlib.sha256(data).hexdigest()
    assert bounded(sha256_file, a.path("f.bin")) == want
    assert bounded(sha256_file, b.path("f.bin")) == want
    a.umount()
    b.umount()
    rep = check_cache(cache)
    assert rep.ok and rep.bits_checked, str(rep)
    # Remounted, each still has all it had: nothing is fetched again.
    since = time.time()
    for m, o in ((a, a_opts), (b, b_opts)):
        m.start(srv.url + "/", o)
        assert cached_bytes(m.path("f.bin")) == size, m.name
        assert bounded(m.path("f.bin").read_bytes) == data
    served = bytes_served(settled_log(srv), "/f.bin", since)
    assert served == 0, f"{served} bytes fetched again after the remounts"
    a.umount()
    b.umount()


def hf_env(tmp_path):
    return {"HF_TOKEN": None, "HUGGING_FACE_HUB_TOKEN": None,
            "HF_TOKEN_PATH": None, "HF_ENDPOINT": None,
            "HF_HUB_OFFLINE": None, "HF_HUB_CACHE": None,
            "HUGGINGFACE_HUB_CACHE": None,
            "HF_HOME": str(tmp_path / "hf-home")}


def test_overlapping_revisions_fetch_and_store_once(hub, make_mount,
                                                    tmp_path):
    shared = os.urandom(24 * MiB + 7)
    info = hub.repo("acme/share", {"w.safetensors": shared,
                                   "config.json": b'{"v": 1}'},
                    revisions={"v2": {"w.safetensors": shared,
                                      "config.json": b'{"v": 2}'}})
    assert info.revisions["v2"] != info.revisions["main"]
    srv = hub.start()
    cache = tmp_path / "cache"
    opts = [f"endpoint={srv.url}", "chunk_size=1M"]
    m1 = make_mount("main", cache=cache)
    m2 = make_mount("v2", cache=cache)
    m1.start("hf://acme/share", opts, env=hf_env(tmp_path))
    m2.start("hf://acme/share@v2", opts, env=hf_env(tmp_path))
    assert (m1.path("config.json").read_bytes(),
            m2.path("config.json").read_bytes()) == (b'{"v": 1}',
                                                     b'{"v": 2}')
    want = hashlib.sha256(shared).hexdigest()
    got = read_all_at_once([m1.path("w.safetensors"),
                            m2.path("w.safetensors")])
    assert set(got.values()) == {want}, got
    cdn = f"/__lfs/models/acme/share/{want}"
    served = bytes_served(settled_log(srv), cdn)
    print(f"\ntwo revisions sharing {len(shared)} bytes: {served} bytes "
          f"fetched ({served / len(shared):.3f}x)")
    assert 0 < served <= 1.25 * len(shared)
    stored = data_files_of_size(cache, len(shared))
    assert len(stored) == 1, f"stored {len(stored)} times: {stored}"
    m1.umount()
    m2.umount()
    rep = check_cache(cache)
    assert rep.ok and rep.bits_checked, str(rep)
