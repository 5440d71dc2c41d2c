"""The host side of "trust nothing" (issue 9, items 9, 11, 13 and 14),
through real mounts:

- the sidecar never outlives its data: a data file deleted, truncated or
  replaced by a new sparse file is fetched again, never served (or
  exported into a huggingface_hub cache) as zeros;
- a mirror given as endpoint= cannot poison the blobs of the real Hub on
  one cache: each endpoint has its own blobs;
- the cache is private: everything made 0700/0600 whatever the umask, and
  a cache folder another user can write is refused in one line;
- symbolic links planted in the cache are never followed: their targets
  are never written, and reads stay exact (the link is removed, the file
  made again: "refuse and recreate").

Every daemon runs as root here, as it does from fstab.
"""

import hashlib
import os
import random
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (MiB, Hub, bytes_served, daemon_env, fusermount_u,
                      is_mounted, make_tree, settled_log)

CHUNK = 1 * MiB
SIZE = 3 * MiB + 4321
OPTS = ["chunk_size=1M"]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def blob_data_files(cache):
    """The data files of the blobs in a cache (no sidecar, sums, lock or
    marker), sorted."""
    out = []
    for p in sorted(Path(cache, "blobs").glob("*/*")):
        if p.is_symlink() or not p.is_file():
            continue
        if "." in p.name:  # .state, .sums, .lock, .verified, .tmp.*
            continue
        out.append(p)
    return out


def one_blob(cache, size):
    """The one data file of a blob of size bytes."""
    found = [p for p in blob_data_files(cache) if p.stat().st_size == size]
    assert len(found) == 1, found
    return found[0]


def poll(fn, timeout_s, step_s=0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step_s)


def hf_env(tmp_path):
    """A clean Hugging Face environment (no token, no endpoint)."""
    return {"HF_TOKEN": None, "HUGGING_FACE_HUB_TOKEN": None,
            "HF_TOKEN_PATH": None, "HF_ENDPOINT": None,
            "HF_HUB_OFFLINE": None, "HF_HUB_CACHE": None,
            "HUGGINGFACE_HUB_CACHE": None,
            "HF_HOME": str(tmp_path / "hf-home")}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    make_tree(root, {"big.bin": SIZE, "small.txt": b"small\n"})
    return root, (root / "big.bin").read_bytes()


# ---- 9. the sidecar does not outlive its data ------------------------------

def lose_data(path, how):
    """Takes a blob's bytes away as a user or a tmp cleaner would."""
    size = path.stat().st_size
    if how == "deleted":
        path.unlink()
    elif how == "truncated":
        os.truncate(path, 0)
    elif how == "shortened":
        os.truncate(path, size // 3)
    elif how == "replaced":
        # A new sparse file of the right size: all zeros, a new inode (or
        # the old inode number reused, with a new birth time).
        path.unlink()
        with open(path, "wb") as f:
            f.truncate(size)
    else:
        raise ValueError(how)


LOST = ["deleted", "truncated", "shortened", "replaced"]
LOST_LINE = (r"warning: state: (data file '.*' was missing or short: its "
             r"sidecar is not trusted, starting over|sidecar '.*' rejected "
             r"\(it describes another data file\): starting over)$")


@pytest.mark.parametrize("how", LOST)
def test_lost_data_file_is_fetched_again(how, server, make_mount, tree):
    root, data = tree
    srv = server(root)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    assert read(m.path("big.bin")) == data
    m.umount()  # the sidecar is saved at unmount: every chunk DONE
    blob = one_blob(m.cache, SIZE)
    lose_data(blob, how)

    t0 = time.time()
    m.allow(LOST_LINE)
    m.start(srv.url + "/", OPTS)
    got = read(m.path("big.bin"))
    assert len(got) == SIZE
    assert got == data, "stale sidecar trusted: zeros served"
    # Fetched again, all of it.
    assert bytes_served(settled_log(srv), "/big.bin", since=t0) >= SIZE
    m.umount()
    # One warning, once: the new sidecar is not rejected again.
    assert sum(1 for line in m.log_lines() if re.search(LOST_LINE, line)) \
        == 1
    # A third mount trusts the new sidecar again: nothing fetched.
    t1 = time.time()
    m.start(srv.url + "/", OPTS)
    assert read(m.path("big.bin")) == data
    assert bytes_served(settled_log(srv), "/big.bin", since=t1) == 0
    m.umount()


def hf_blob_path(hfc, repo_id, etag):
    return Path(hfc) / ("models--" + repo_id.replace("/", "--")) / \
        "blobs" / etag


@pytest.mark.parametrize("how", ["deleted", "truncated", "replaced"])
def test_lost_data_file_never_exported_as_zeros(how, hub, make_mount,
                                                tmp_path):
    weights = random.Random(9).randbytes(SIZE)
    info = hub.repo("acme/lost", {"model.safetensors": weights})
    etag = info.files()["model.safetensors"]["etag"]
    srv = hub.start()
    hfc = tmp_path / "hf-hub-cache"
    exported = hf_blob_path(hfc, "acme/lost", etag)
    m = make_mount("lost")
    opts = [f"endpoint={srv.url}", "chunk_size=1M", f"hf_cache={hfc}"]
    m.start("hf://acme/lost", opts, env=hf_env(tmp_path))
    assert read(m.path("model.safetensors")) == weights
    assert poll(exported.exists, 10.0), "not exported after 10 s"
    m.umount()  # sidecar: all DONE; .verified marker written
    blob = one_blob(m.cache, SIZE)
    subprocess.run(["rm", "-rf", str(hfc)], check=True)
    lose_data(blob, how)

    m.allow(LOST_LINE)
    m.start("hf://acme/lost", opts, env=hf_env(tmp_path))
    # Before any read: the old marker used to export the (lost) bytes at
    # once. Whenever the export appears, it holds the file's bytes.
    if poll(exported.exists, 2.0):
        assert sha256(read(exported)) == etag, "zeros exported"
    assert read(m.path("model.safetensors")) == weights
    assert poll(exported.exists, 10.0), "not exported again after 10 s"
    assert sha256(read(exported)) == etag, "zeros exported"
    m.umount()


# ---- 11. a mirror cannot poison the real Hub's blobs ------------------------

def test_lying_mirror_does_not_poison_the_hub(request, hub, make_mount,
                                              tmp_path):
    """Two Hubs serve acme/m; the mirror's CDN sends other bytes under the
    same sha256. A partial read through the mirror (never verified: the
    file is not complete) must not be served by a mount of the real Hub on
    the same cache."""
    weights = random.Random(11).randbytes(4 * MiB + 17)
    flip_at = 1000  # in chunk 0
    honest_info = hub.repo("acme/m", {"w.safetensors": weights})
    honest = hub.start()
    mirror_hub = Hub(request, tmp_path / "mirror")
    try:
        mirror_hub.repo("acme/m", {"w.safetensors": weights},
                        corrupt_cdn={"w.safetensors": flip_at})
        mirror = mirror_hub.start()
        cache = tmp_path / "cache"
        lie = bytearray(weights)
        lie[flip_at] ^= 0xFF

        mm = make_mount("mirror", cache=cache)
        mm.start("hf://acme/m", [f"endpoint={mirror.url}", "chunk_size=1M",
                                 "readahead=0"], env=hf_env(tmp_path))
        with open(mm.path("w.safetensors"), "rb", buffering=0) as f:
            first = f.read(64 * 1024)
        assert first == bytes(lie[:64 * 1024])  # unverified, as served
        mm.umount()

        hm = make_mount("hub", cache=cache)
        hm.start("hf://acme/m", [f"endpoint={honest.url}", "chunk_size=1M",
                                 "readahead=0"], env=hf_env(tmp_path))
        with open(hm.path("w.safetensors"), "rb", buffering=0) as f:
            assert f.read(64 * 1024) == weights[:64 * 1024], \
                "the mirror's bytes were served by the Hub's mount"
        assert read(hm.path("w.safetensors")) == weights
        hm.umount()
        # One blob per endpoint.
        sizes = [p.stat().st_size for p in blob_data_files(cache)]
        assert sizes.count(len(weights)) == 2
        assert honest_info.files()["w.safetensors"]["sha256"] == \
            sha256(weights)
    finally:
        for srv in mirror_hub.servers:
            srv.stop()


# ---- 13. a private cache -------------------------------------------------------

def assert_all_private(top):
    bad = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [dirpath] + [os.path.join(dirpath, n)
                                 for n in filenames]:
            st = os.lstat(name)
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) != want:
                bad.append(f"{name} {stat.filemode(st.st_mode)}")
    assert not bad, "not private:\n" + "\n".join(bad)


def test_cache_is_private_whatever_the_umask(hub, make_mount, tmp_path):
    token = "hf_privateTOKEN0123456789abcdef"
    files = {"model.safetensors": random.Random(13).randbytes(2 * MiB + 5),
             "config.json": b'{"private": true}'}
    hub.repo("acme/secret", files, private=True, token=token)
    srv = hub.start()
    tokf = tmp_path / "token"
    tokf.write_text(token + "\n")
    cache = tmp_path / "new" / "cache"  # made by the daemon
    m = make_mount("private", cache=cache)
    old = os.umask(0)  # inherited by the daemon: modes must not rely on it
    try:
        m.start("hf://acme/secret", [f"endpoint={srv.url}",
                                     "chunk_size=1M", f"token_file={tokf}"],
                env=hf_env(tmp_path))
    finally:
        os.umask(old)
    for rel, data in files.items():
        assert read(m.path(rel)) == data
    m.umount()
    # Blobs, sidecars, sums, locks, markers, snapshots and refs.
    assert blob_data_files(cache)
    assert list(Path(cache, "snapshots").rglob("*.json"))
    assert_all_private(cache)
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700


def refused(m, source, opts=()):
    """Runs a mount that must be refused: (status, stderr lines)."""
    # Not -f: a mount that is wrongly accepted returns too.
    r = subprocess.run(m.command(source, list(opts), foreground=False),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60, env=daemon_env({}))
    if is_mounted(m.mnt):
        fusermount_u(m.mnt, lazy=True)
    return r.returncode, r.stderr.splitlines()


@pytest.mark.parametrize("case", ["mode-0777", "mode-0775", "owned-by-nobody"])
def test_cache_others_can_write_is_refused(case, server, make_mount, tree,
                                           tmp_path):
    root, data = tree
    srv = server(root)
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    if case == "mode-0777":
        os.chmod(cache, 0o777)
    elif case == "mode-0775":
        os.chmod(cache, 0o775)
    else:
        os.chmod(cache, 0o700)
        os.chown(cache, 65534, 65534)  # nobody
    m = make_mount("refused", cache=cache)
    rc, lines = refused(m, srv.url + "/", OPTS)
    assert rc != 0
    assert len(lines) == 1, lines
    assert "is not private" in lines[0] and str(cache) in lines[0]
    if case == "owned-by-nobody":
        assert "owned by uid 65534" in lines[0]
    else:
        assert "lets other users write it" in lines[0]
    # Nothing was made in it.
    assert os.listdir(cache) == []
    # Made private by its owner, it is used.
    os.chown(cache, 0, 0)
    os.chmod(cache, 0o755)
    m.start(srv.url + "/", OPTS)
    assert read(m.path("big.bin")) == data
    m.umount()


# ---- 14. no symlink games --------------------------------------------------------

class Victim:
    """A file outside the cache that a planted link points to: its bytes,
    mode and mtime must never change."""

    TEXT = b"a file outside the cache that must never change\n" * 100

    def __init__(self, path):
        self.path = Path(path)
        self.path.write_bytes(self.TEXT)
        os.utime(self.path, (1_000_000_000, 1_000_000_000))
        self.st = os.stat(self.path)

    def check(self):
        st = os.stat(self.path)
        assert self.path.read_bytes() == self.TEXT, "written through a link"
        assert st.st_size == self.st.st_size
        assert st.st_mtime_ns == self.st.st_mtime_ns
        assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(self.st.st_mode)


PLANTED = ["data", ".state", ".sums", ".lock", "fan-out-dir"]
LINK_LINE = (r"warning: state: (cache (file|folder) '.*' is a symbolic "
             r"link: removed, not followed|sidecar '.*' rejected \(Too many "
             r"levels of symbolic links\): starting over|data file '.*' "
             r"was missing or short: its sidecar is not trusted, starting "
             r"over)$")


@pytest.mark.parametrize("where", PLANTED)
def test_planted_links_are_never_followed(where, server, make_mount, tree,
                                          tmp_path):
    root, data = tree
    srv = server(root)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    assert read(m.path("big.bin")) == data
    m.umount()
    blob = one_blob(m.cache, SIZE)
    victim = Victim(tmp_path / "victim")
    if where == "fan-out-dir":
        # blobs/ab -> a folder outside holding a file of the blob's name.
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / blob.name).symlink_to(victim.path)
        subprocess.run(["rm", "-rf", str(blob.parent)], check=True)
        blob.parent.symlink_to(outside)
    else:
        target = blob if where == "data" else \
            blob.with_name(blob.name + where)
        target.unlink()
        target.symlink_to(victim.path)

    m.allow(LINK_LINE)
    m.start(srv.url + "/", OPTS)
    assert read(m.path("big.bin")) == data
    m.umount()
    victim.check()
    if where == "fan-out-dir":
        assert os.listdir(tmp_path / "outside") == [blob.name]
        assert not blob.parent.is_symlink() and blob.parent.is_dir()
    for p in blob.parent.iterdir():
        assert not p.is_symlink(), f"{p} is still a link"


def test_link_planted_before_the_first_fetch(server, make_mount, tree,
                                             tmp_path):
    """The attack of the issue: a link in place of a data file that is not
    fetched yet. The daemon used to create it through the link and write
    the file's bytes into the target."""
    root, data = tree
    srv = server(root)
    m = make_mount()
    m.start(srv.url + "/", OPTS + ["readahead=0"])
    with open(m.path("big.bin"), "rb") as f:  # opens the blob, reads
        assert f.read(10) == data[:10]
    # The kernel's own readahead may still be in flight at the unmount.
    m.allow(r"error: fetch: range GET of 'big\.bin' chunks \d+-\d+ "
            r"failed: Operation canceled$")
    m.umount()
    blob = one_blob(m.cache, SIZE)
    for p in list(blob.parent.iterdir()):
        p.unlink()
    victim = Victim(tmp_path / "victim")
    blob.symlink_to(victim.path)
    dangling = tmp_path / "would-be-created"
    blob.with_name(blob.name + ".sums").symlink_to(dangling)

    m.allow(LINK_LINE)
    m.start(srv.url + "/", OPTS)
    assert read(m.path("big.bin")) == data
    m.umount()
    victim.check()
    assert not dangling.exists(), "a file was created through a link"
