"""Reading through a hollowfs mount: sizes, bytes, xattrs, read-only.

Most tests mount a tree served by scripts/testserver.py with chunk_size=1M,
so small files give many chunks and every edge (0, 1, chunk-1, chunk,
chunk+1 bytes) is met; one test reads a 200 MiB file with the default chunk
size; some mount nginx as a real server.
"""

import errno
import filecmp
import hashlib
import mmap
import os
import random
import subprocess
import threading

import pytest

from conftest import (KiB, MiB, assert_served_once, cached_bytes,
                      chunks_xattr, expect_errno, file_gets, getxattr_str,
                      make_tree, nchunks, settled_log, sha256_file,
                      served_spans, tree_files)

CHUNK = 1 * MiB
OPTS = ["chunk_size=1M"]

UNICODE = "ünï ⚡.txt"
TREE = {
    "empty.bin": 0,
    "one.bin": 1,
    "chunk-minus-1.bin": CHUNK - 1,
    "chunk.bin": CHUNK,
    "chunk-plus-1.bin": CHUNK + 1,
    "big20.bin": 20 * MiB + 12345,
    "a b.bin": 3000,
    UNICODE: "unicode ⚡ text\n".encode() * 300,
    "nested/x.bin": 2 * MiB + 512 * KiB,
    "nested/deeper/deepest/leaf.bin": 200 * KiB + 7,
    "nested/empty": None,
}
TREE_DIRS = {"nested", "nested/deeper", "nested/deeper/deepest",
             "nested/empty"}


class Tree:
    def __init__(self, root, spec):
        self.root = root
        self.hashes = make_tree(root, spec)
        self.sizes = {rel: os.path.getsize(root / rel) for rel in self.hashes}

    def data(self, rel):
        return (self.root / rel).read_bytes()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return Tree(tmp_path_factory.mktemp("tree") / "root", TREE)


def url_path(rel):
    return "/" + rel


def assert_tree_exact(mnt, tree):
    files, dirs = tree_files(mnt)
    assert files == tree.sizes
    for rel, digest in tree.hashes.items():
        assert sha256_file(mnt / rel) == digest, f"{rel} differs"
    return files, dirs


def test_sizes_and_xattrs_before_any_read(server, mount, tree):
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    mnt = mount.path()

    files, dirs = tree_files(mnt)
    assert files == tree.sizes
    assert dirs == TREE_DIRS
    ls = subprocess.run(["ls", "-laR", str(mnt)], capture_output=True,
                        text=True, timeout=30)
    assert ls.returncode == 0, ls.stderr
    assert "a b.bin" in ls.stdout and UNICODE in ls.stdout
    for rel, size in tree.sizes.items():
        st = os.stat(mnt / rel)
        assert st.st_size == size
        assert cached_bytes(mnt / rel) == 0, rel
        assert chunks_xattr(mnt / rel) == (0, nchunks(size, CHUNK)), rel
        assert getxattr_str(mnt / rel, "user.hollowfs.source").startswith(
            srv.url + "/"), rel
    assert os.path.isdir(mnt / "nested" / "empty")
    assert os.listdir(mnt / "nested" / "empty") == []

    # Listing and stat fetched no file bytes.
    log = settled_log(srv)
    for rel in tree.sizes:
        assert not file_gets(log, url_path(rel)), f"{rel} fetched by stat"
    mount.umount()


def test_whole_reads_byte_exact_and_fetched_once(server, mount, tree):
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    mnt = mount.path()

    for rel in sorted(tree.sizes):
        with open(mnt / rel, "rb") as f:
            got = f.read()
        assert len(got) == tree.sizes[rel], rel
        assert hashlib.sha256(got).hexdigest() == tree.hashes[rel], rel
    for rel, size in tree.sizes.items():
        n = nchunks(size, CHUNK)
        assert cached_bytes(mnt / rel) == size, rel
        assert chunks_xattr(mnt / rel) == (n, n), rel

    log = settled_log(srv)
    for rel, size in tree.sizes.items():
        assert_served_once(log, url_path(rel), size)
    # A second read comes from the cache.
    before = len(log)
    for rel, digest in tree.hashes.items():
        assert sha256_file(mnt / rel) == digest
    assert len(settled_log(srv)) == before
    mount.umount()


def test_random_reads_match(server, mount, tree):
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    mnt = mount.path()
    names = ["big20.bin", "nested/x.bin", "chunk-plus-1.bin",
             "chunk-minus-1.bin", "one.bin", "empty.bin"]
    data = {rel: tree.data(rel) for rel in names}
    fds = {rel: os.open(mnt / rel, os.O_RDONLY) for rel in names}
    rng = random.Random(42)
    try:
        for i in range(200):
            rel = rng.choice(names[:3]) if i % 10 else rng.choice(names)
            size = len(data[rel])
            # Offsets anywhere, chunk edges and past the end.
            off = rng.choice([
                rng.randrange(size + 100),
                max(0, (rng.randrange(size + 1) // CHUNK) * CHUNK
                    - rng.randrange(3)),
                size, size + 5,
            ])
            length = rng.choice([1, 511, 4096, 65536, CHUNK + 3,
                                 rng.randrange(1, 3 * MiB)])
            got = os.pread(fds[rel], length, off)
            want = data[rel][off:off + length]
            assert got == want, (f"read {i}: {rel} offset {off} length "
                                 f"{length}: {len(got)} bytes, "
                                 f"{len(want)} expected")
    finally:
        for fd in fds.values():
            os.close(fd)

    # No byte was fetched twice.
    log = settled_log(srv)
    for rel in names:
        spans = served_spans(file_gets(log, url_path(rel)))
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            assert s2 >= e1, f"{rel}: overlapping fetches {spans}"
    mount.umount()


def test_mmap_reads(server, mount, tree):
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    mnt = mount.path()
    rng = random.Random(7)
    for rel in ["big20.bin", "chunk-plus-1.bin", "one.bin"]:
        data = tree.data(rel)
        with open(mnt / rel, "rb") as f, \
                mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
            assert len(mm) == len(data)
            for _ in range(50):
                off = rng.randrange(len(data))
                n = rng.choice([1, 4096, 100000, CHUNK])
                assert mm[off:off + n] == data[off:off + n], (rel, off, n)
            assert mm[-1:] == data[-1:]
            assert hashlib.sha256(mm).hexdigest() == tree.hashes[rel]
    mount.umount()


def test_concurrent_readers_of_one_file(server, mount, tree):
    rel = "big20.bin"
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    path = mount.path(rel)
    data = tree.data(rel)
    size = len(data)
    nthreads, piece = 16, 256 * KiB
    barrier = threading.Barrier(nthreads)
    errors = []

    def reader(i):
        try:
            # Half start at 0, half each somewhere else, and wrap around.
            start = 0 if i % 2 else (i * size // nthreads) // piece * piece
            offsets = list(range(0, size, piece))
            k = start // piece
            offsets = offsets[k:] + offsets[:k]
            fd = os.open(path, os.O_RDONLY)
            try:
                barrier.wait(timeout=30)
                for off in offsets:
                    got = os.pread(fd, piece, off)
                    if got != data[off:off + piece]:
                        errors.append(f"thread {i}: offset {off} differs")
                        return
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {i}: {e!r}")

    # One open first: concurrent first opens are test_concurrent_first_opens.
    os.close(os.open(path, os.O_RDONLY))
    threads = [threading.Thread(target=reader, args=(i,))
               for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "readers hang"
    assert not errors, errors
    assert cached_bytes(path) == size

    # Single-flight: every byte came from the server once.
    assert_served_once(settled_log(srv), url_path(rel), size)
    mount.umount()


def test_cp_r_gives_identical_tree(server, mount, tree, tmp_path):
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    dest = tmp_path / "copy"
    r = subprocess.run(["cp", "-r", str(mount.path()), str(dest)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

    def compare(dc, where=""):
        assert not dc.left_only and not dc.right_only, (
            where, dc.left_only, dc.right_only)
        assert not dc.funny_files and not dc.common_funny, where
        match, mismatch, errs = filecmp.cmpfiles(
            dc.left, dc.right, dc.common_files, shallow=False)
        assert not mismatch and not errs, (where, mismatch, errs)
        for name, sub in dc.subdirs.items():
            compare(sub, f"{where}/{name}")

    compare(filecmp.dircmp(tree.root, dest, ignore=[]))
    files, dirs = tree_files(dest)
    assert files == tree.sizes and dirs == TREE_DIRS
    for rel, digest in tree.hashes.items():
        assert sha256_file(dest / rel) == digest, rel
    mount.umount()


def test_names_with_spaces_and_unicode(server, mount, tree):
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    mnt = mount.path()
    names = os.listdir(mnt)
    assert "a b.bin" in names and UNICODE in names
    for rel in ["a b.bin", UNICODE]:
        assert os.stat(mnt / rel).st_size == tree.sizes[rel]
        assert (mnt / rel).read_bytes() == tree.data(rel)
    log = settled_log(srv)
    assert_served_once(log, "/a b.bin", tree.sizes["a b.bin"])
    assert_served_once(log, "/" + UNICODE, tree.sizes[UNICODE])
    mount.umount()


def test_writes_get_erofs(server, mount, tree):
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    mnt = mount.path()
    f = mnt / "chunk.bin"
    expect_errno(errno.EROFS, open, f, "wb")
    expect_errno(errno.EROFS, open, f, "ab")
    expect_errno(errno.EROFS, os.open, f, os.O_RDWR)
    expect_errno(errno.EROFS, os.open, mnt / "new.bin",
                 os.O_WRONLY | os.O_CREAT, 0o644)
    expect_errno(errno.EROFS, os.mkdir, mnt / "newdir")
    expect_errno(errno.EROFS, os.unlink, f)
    expect_errno(errno.EROFS, os.rmdir, mnt / "nested" / "empty")
    expect_errno(errno.EROFS, os.rename, f, mnt / "renamed.bin")
    expect_errno(errno.EROFS, os.utime, f, None)
    expect_errno(errno.EROFS, os.truncate, f, 0)
    expect_errno(errno.EROFS, os.chmod, f, 0o777)
    expect_errno(errno.EROFS, os.symlink, "chunk.bin", mnt / "link")
    touch = subprocess.run(["touch", str(mnt / "touched")],
                           capture_output=True, text=True, timeout=30)
    assert touch.returncode != 0
    assert "Read-only file system" in touch.stderr
    touch = subprocess.run(["touch", str(f)], capture_output=True,
                           text=True, timeout=30)
    assert touch.returncode != 0
    assert "Read-only file system" in touch.stderr
    assert sorted(os.listdir(mnt)) == sorted(
        {rel.split("/")[0] for rel in TREE})
    assert sha256_file(f) == tree.hashes["chunk.bin"]
    mount.umount()


def test_statfs(server, mount, tree):
    srv = server(tree.root)
    mount.start(srv.url + "/", OPTS)
    st = os.statvfs(mount.path())
    assert st.f_bsize > 0
    assert st.f_namemax >= 255
    # Not mounted "ro" (setxattr user.hollowfs.prefetch must reach the
    # daemon), yet read-only: every change is EROFS.
    expect_errno(errno.EROFS, open, mount.path("new.bin"), "wb")
    df = subprocess.run(["df", "-P", str(mount.path())], capture_output=True,
                        text=True, timeout=30)
    assert df.returncode == 0, df.stderr
    mount.umount()


# ---- one large file, the default chunk size ---------------------------------

BIG_SIZE = 200 * MiB + 4097


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory):
    return Tree(tmp_path_factory.mktemp("big") / "root",
                {"model.bin": BIG_SIZE})


def test_200mib_file_default_chunk_size(server, mount, big_tree):
    srv = server(big_tree.root)
    mount.start(srv.url + "/")
    path = mount.path("model.bin")
    assert os.stat(path).st_size == BIG_SIZE
    n = nchunks(BIG_SIZE, 4 * MiB)
    assert chunks_xattr(path) == (0, n)
    assert sha256_file(path) == big_tree.hashes["model.bin"]
    assert cached_bytes(path) == BIG_SIZE
    assert chunks_xattr(path) == (n, n)
    assert_served_once(settled_log(srv), "/model.bin", BIG_SIZE)
    mount.umount()


# ---- real servers and listing forms -----------------------------------------

SMALL = {
    "a.bin": 3 * MiB + 5,
    "empty.bin": 0,
    "sub/b.bin": 100 * KiB,
    "sub/deeper/c.txt": b"hello\n",
    "sp ace ü.bin": 5000,
}


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    return Tree(tmp_path_factory.mktemp("small") / "root", SMALL)


@pytest.mark.parametrize("index", ["json", "html"])
def test_nginx_autoindex_tree(nginx, mount, small_tree, index):
    ngx = nginx(small_tree.root)
    mount.start(f"{ngx.url}/{index}/", OPTS)
    assert_tree_exact(mount.path(), small_tree)
    log = ngx.log()
    ranged = [e for e in log if e["uri"] == f"/{index}/a.bin"
              and e["method"] == "GET"]
    assert ranged and all(e["status"] == 206 for e in ranged), ranged
    assert sum(e["bytes"] for e in ranged) == small_tree.sizes["a.bin"]
    mount.umount()


def test_nginx_single_file_url(nginx, mount, small_tree):
    ngx = nginx(small_tree.root)
    mount.start(f"{ngx.url}/json/a.bin", OPTS)
    mnt = mount.path()
    assert os.listdir(mnt) == ["a.bin"]
    assert os.stat(mnt / "a.bin").st_size == small_tree.sizes["a.bin"]
    assert sha256_file(mnt / "a.bin") == small_tree.hashes["a.bin"]
    assert cached_bytes(mnt / "a.bin") == small_tree.sizes["a.bin"]
    mount.umount()


def test_testserver_html_index(server, mount, tree):
    srv = server(tree.root, index="html")
    mount.start(srv.url + "/", OPTS)
    files, dirs = assert_tree_exact(mount.path(), tree)
    assert dirs == TREE_DIRS
    mount.umount()


# ---- many first opens of one file at once ----------------------------------

def open_blob_files(pid, cache):
    """{path: how many times the daemon has it open} for files under
    cache/blobs (not folders: each open blob holds its fan-out folder,
    which blobs of that folder share by name)."""
    counts = {}
    prefix = str(cache / "blobs") + "/"
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefix) and not os.path.isdir(target):
            counts[target] = counts.get(target, 0) + 1
    return counts


def test_concurrent_first_opens(server, mount, tmp_path):
    nfiles, nthreads = 24, 16
    root = tmp_path / "root"
    hashes = make_tree(root, {f"f{i:02d}.bin": 64 * KiB + i
                              for i in range(nfiles)})
    data = {p.name: p.read_bytes() for p in root.iterdir()}
    srv = server(root)
    mount.start(srv.url + "/", OPTS)
    barrier = threading.Barrier(nthreads)
    errors = []

    def opener(t):
        try:
            for i in range(nfiles):
                path = mount.path(f"f{i:02d}.bin")
                barrier.wait(timeout=30)
                want = data[path.name][t:t + 1]
                fd = os.open(path, os.O_RDONLY)
                try:
                    if os.pread(fd, 1, t) != want:
                        errors.append(f"{path.name}: byte {t} differs")
                finally:
                    os.close(fd)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {e!r}")

    threads = [threading.Thread(target=opener, args=(t,))
               for t in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    # One blob per file: a blob file open twice is a duplicate that leaks
    # (ASan builds also report it at exit).
    twice = {p: n for p, n in open_blob_files(mount.pid, mount.cache).items()
             if n > 1}
    assert not twice, (f"{len(twice)} blob files open more than once, "
                       f"e.g. {sorted(twice.items())[:3]}")
    for rel, digest in hashes.items():
        assert sha256_file(mount.path(rel)) == digest
    mount.umount()
