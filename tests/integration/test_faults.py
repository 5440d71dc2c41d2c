"""Faults through the mount: a misbehaving server, a stall, no server, bad
command lines, hostile listings, and the two other ways of mounting
(daemonized, mount(8))."""

import errno
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import (HOLLOWFS, KiB, MiB, BUILD, cached_bytes, file_gets,
                      free_port, fusermount_u, is_mounted, make_tree,
                      mount_entry, settled_log, sha256_file)

CHUNK = 1 * MiB
OPTS = ["chunk_size=1M"]

FILES = {
    "a.bin": 4 * MiB + 100,
    "b.bin": 3 * MiB,
    "broken.bin": 2 * MiB,
    "stall.bin": 2 * MiB + 5,
    "ok.bin": 1 * MiB + 1,
    "sub/c.bin": 100 * KiB,
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults") / "root"
    return root, make_tree(root, FILES)


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def expect_eio_within(path, bound_s, offset=0, length=CHUNK):
    """Reads length bytes of path at offset as cat would, asking again
    after a short read; asserts EIO within bound_s, before all of them
    came. (Bytes that landed before the fault may come first: a short
    read, then EIO.) Returns the elapsed seconds."""
    t0 = time.monotonic()
    with pytest.raises(OSError) as ei:
        fd = os.open(path, os.O_RDONLY)
        try:
            got = 0
            while got < length:
                b = os.pread(fd, length - got, offset + got)
                assert b, f"{path}: end of file at {offset + got}"
                got += len(b)
        finally:
            os.close(fd)
    took = time.monotonic() - t0
    assert ei.value.errno == errno.EIO, f"{path}: {ei.value!r}"
    assert took < bound_s, f"{path}: EIO after {took:.1f} s (> {bound_s})"
    return took


def allow_file(m, name):
    """Lets the log lines about one file pass (retries say "error" too)."""
    m.allow(rf"hollowfs \w+: .*{name}")


# ---- a misbehaving server, recovered from --------------------------------

def check_dropped(log):
    mine = [e for e in log if e["path"] == "/a.bin"]
    seen = repr([(e.get("range"), e["status"], e["bytes"]) for e in mine])
    cut = [e for e in mine if e["bytes"] == 100_000]
    # Three requests were armed; one of them may be the 100-byte tail
    # chunk, which a cut after 100,000 bytes cannot reach.
    assert len(cut) >= 2, "the drop_after fault was not hit: " + seen
    # Each cut run was asked again from where it stopped.
    for e in cut:
        start = int(e["range"].split("=")[1].split("-")[0])
        assert any(x.get("range", "").startswith(
            f"bytes={start + 100_000}-") for x in mine), seen


def check_status(status):
    def check(log):
        hits = [e for e in log if e["path"] == "/a.bin"
                and e["status"] == status]
        assert len(hits) == 2, f"HTTP {status} was not answered twice"
        if status in (429, 503):
            # Retry-After: 1 is honoured: the same range comes again no
            # earlier than a second later.
            pairs = 0
            for h in hits:
                later = [e for e in log if e["path"] == "/a.bin"
                         and e["range"] == h["range"] and e["t"] > h["t"]]
                if later:
                    pairs += 1
                    gap = min(e["t"] for e in later) - h["t"]
                    assert gap >= 0.9, (
                        f"range {h['range']} retried {gap:.2f} s after "
                        f"HTTP {status} with Retry-After: 1")
            assert pairs, "no answered range was asked for again"
    return check


def check_ignored(log):
    gets = [e for e in log if e["path"] == "/a.bin" and e["method"] == "GET"]
    assert gets and all(e["status"] == 200 for e in gets)
    assert any(e["range"] for e in gets), "no Range request was ignored"


def range_length(e):
    first, last = e["range"].split("=")[1].split("-")
    return int(last) - int(first) + 1


def check_short(log):
    # Each armed answer stops 1,000 bytes short, or sooner when the
    # client had already closed that connection (a slow sanitizer run).
    mine = [e for e in log if e["path"] == "/a.bin" and e["status"] == 206]
    short = [e for e in mine if e["bytes"] < range_length(e)]
    assert len(short) >= 2, "the short fault was not hit twice: " + repr(
        [(e["range"], e["bytes"]) for e in mine])


RECOVERABLE = {
    "drop_after": ({"drop_after": 100_000, "count": 3}, check_dropped),
    "short": ({"short": 1000, "count": 2}, check_short),
    "500-retry-after": ({"status": 500, "retry_after": 1, "count": 2},
                        check_status(500)),
    "503-retry-after": ({"status": 503, "retry_after": 1, "count": 2},
                        check_status(503)),
    "429-retry-after": ({"status": 429, "retry_after": 1, "count": 2},
                        check_status(429)),
    "ignore_range": ({"ignore_range": True}, check_ignored),
}


@pytest.mark.parametrize("fault", RECOVERABLE)
def test_recovers_from(server, mount, tree, fault):
    root, hashes = tree
    entry, check = RECOVERABLE[fault]
    srv = server(root, faults={"/a.bin": entry})
    mount.start(srv.url + "/", OPTS)
    mount.allow(r"hollowfs warning: .*a\.bin")
    assert sha256_file(mount.path("a.bin")) == hashes["a.bin"]
    assert cached_bytes(mount.path("a.bin")) == FILES["a.bin"]
    check(settled_log(srv))
    # Another file is not affected.
    assert sha256_file(mount.path("b.bin")) == hashes["b.bin"]
    mount.umount()


# ---- failures that reach the reader as EIO --------------------------------

def test_always_failing_file_gives_eio_others_work(server, mount, tree):
    root, hashes = tree
    srv = server(root, faults={"/broken.bin": {"status": 500}})
    mount.start(srv.url + "/", OPTS + ["timeout=2", "retries=2"])
    allow_file(mount, r"broken\.bin")
    result = {}

    def bad_reader():
        t0 = time.monotonic()
        try:
            read_all(mount.path("broken.bin"))
            result["bad"] = "read succeeded"
        except OSError as e:
            result["bad"] = e
        result["took"] = time.monotonic() - t0

    t = threading.Thread(target=bad_reader)
    t.start()
    # While that read retries, the rest of the mount works.
    t0 = time.monotonic()
    assert sorted(os.listdir(mount.path())) == sorted(
        {rel.split("/")[0] for rel in FILES})
    assert sha256_file(mount.path("ok.bin")) == hashes["ok.bin"]
    assert sha256_file(mount.path("sub/c.bin")) == hashes["sub/c.bin"]
    assert time.monotonic() - t0 < 10
    t.join(timeout=70)
    assert not t.is_alive(), "the read of an always failing file hangs"
    assert isinstance(result["bad"], OSError), result["bad"]
    assert result["bad"].errno == errno.EIO, result["bad"]
    assert result["took"] < 60
    # A second try fails the same way, in bounded time too.
    expect_eio_within(mount.path("broken.bin"), 60)
    gets = file_gets(srv.log(), "/broken.bin")
    statuses = [e["status"] for e in srv.log() if e["path"] == "/broken.bin"]
    assert not gets and statuses.count(500) >= 3, statuses  # retried
    mount.umount()


# timeout=2, retries=1: two attempts of at most ~3 s each, and the kernel
# may ask once more after a failed readahead: EIO well within 20 s.
STALL_BOUND_S = 20


@pytest.mark.parametrize("stall_after", [0, 300_000])
def test_stalled_file_gives_eio(server, mount, tree, stall_after):
    root, hashes = tree
    # At that file offset in every answer: no try after the first makes
    # progress (one that does earns its retry back: test_hostile.py).
    srv = server(root, faults={"/stall.bin": {"stall": True,
                                              "stall_from": stall_after}})
    mount.start(srv.url + "/", OPTS + ["timeout=2", "retries=1"])
    allow_file(mount, r"stall\.bin")
    took = expect_eio_within(mount.path("stall.bin"), STALL_BOUND_S)
    assert took >= 1.5, f"EIO after {took:.2f} s, before the 2 s timeout"
    assert sha256_file(mount.path("ok.bin")) == hashes["ok.bin"]
    mount.umount()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts_during_stalled_reads(server, mount, tree, sig):
    root, hashes = tree
    srv = server(root, faults={"/stall.bin": {"stall": True}})
    mount.start(srv.url + "/", OPTS + ["timeout=60", "max_threads=4"])
    allow_file(mount, r"stall\.bin")
    results = [None] * 6

    def reader(i):
        try:
            fd = os.open(mount.path("stall.bin"), os.O_RDONLY)
            try:
                # Distinct pages: one FUSE read each, not one page lock.
                results[i] = os.pread(fd, 4 * KiB, i * 300 * KiB)
            finally:
                os.close(fd)
        except OSError as e:
            results[i] = e

    # One open first: concurrent first opens are test_concurrent_first_opens.
    os.close(os.open(mount.path("stall.bin"), os.O_RDONLY))
    threads = [threading.Thread(target=reader, args=(i,), daemon=True)
               for i in range(len(results))]
    for t in threads:
        t.start()
    time.sleep(1.5)
    assert all(t.is_alive() for t in threads), "stalled reads returned"
    # More blocked readers than worker threads, and the mount still works.
    assert "ok.bin" in os.listdir(mount.path())
    assert sha256_file(mount.path("ok.bin")) == hashes["ok.bin"]

    t0 = time.monotonic()
    mount.signal(sig)
    rc = mount.wait_exit(10)
    took = time.monotonic() - t0
    assert rc == 0, mount.log_text()
    assert took < 10
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "readers still blocked"
    for r in results:
        assert isinstance(r, OSError), f"a stalled read returned {r!r}"
    assert not is_mounted(mount.path())
    mount.check_log()


def test_changed_etag_is_never_mixed_in(server, mount, tree):
    root, hashes = tree
    data = (root / "a.bin").read_bytes()
    srv = server(root)
    mount.start(srv.url + "/", OPTS + ["readahead=0", "retries=1"])
    allow_file(mount, r"a\.bin")
    fd = os.open(mount.path("a.bin"), os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == data[:4096]
        settled_log(srv)
        cached = cached_bytes(mount.path("a.bin"))
        assert 0 < cached < FILES["a.bin"]
        # The file "changes" on the server: its ETag does.
        srv.set_faults({"/a.bin": {"etag": "changed-on-the-server"}})
        t0 = time.monotonic()
        with pytest.raises(OSError) as ei:
            os.pread(fd, 4096, 3 * CHUNK)
        assert ei.value.errno == errno.EIO, ei.value
        assert time.monotonic() - t0 < 20
        assert cached_bytes(mount.path("a.bin")) == cached
        assert os.pread(fd, 4096, 0) == data[:4096]
    finally:
        os.close(fd)
    assert any(e["path"] == "/a.bin" and e["t"] > t0
               for e in settled_log(srv)), "no request saw the new ETag"
    assert sha256_file(mount.path("b.bin")) == hashes["b.bin"]
    mount.umount()


def test_bad_content_range_is_never_mixed_in(server, mount, tree):
    root, hashes = tree
    srv = server(root, faults={"/a.bin": {"bad_content_range": True}})
    mount.start(srv.url + "/", OPTS + ["retries=1"])
    allow_file(mount, r"a\.bin")
    expect_eio_within(mount.path("a.bin"), 20)
    assert cached_bytes(mount.path("a.bin")) == 0
    assert any(e["path"] == "/a.bin" and e["status"] == 206
               for e in settled_log(srv))
    assert sha256_file(mount.path("b.bin")) == hashes["b.bin"]
    mount.umount()


def test_full_disk_still_answers_reads(server, make_mount, tree, tmp_path):
    root, hashes = tree
    cache = tmp_path / "small-cache"
    cache.mkdir()
    # mode=0700: a tmpfs is 1777 by default, and a cache others can
    # write is refused.
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700",
                        "tmpfs", str(cache)], capture_output=True,
                       text=True, timeout=30)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {r.stderr.strip()}")
    try:
        srv = server(root)
        m = make_mount(cache=cache)
        m.start(srv.url + "/", OPTS)
        m.allow(r"hollowfs warning: .*(No space left|disk|full)")
        # 7 MiB through a 3 MiB cache.
        assert sha256_file(m.path("a.bin")) == hashes["a.bin"]
        assert sha256_file(m.path("b.bin")) == hashes["b.bin"]
        assert any("hollowfs warning" in line for line in m.log_lines()), \
            "no warning that the disk is full"
        m.umount()
    finally:
        subprocess.run(["umount", "-l", str(cache)], capture_output=True,
                       timeout=30)


# ---- no server: the snapshot saved in the cache ----------------------------

def first_mount_and_read_a(server, make_mount, root, hashes):
    srv = server(root)
    m = make_mount()
    m.start(srv.url + "/", OPTS)
    assert sha256_file(m.path("a.bin")) == hashes["a.bin"]
    m.umount()
    return srv, m


def check_saved_snapshot(m, hashes):
    mnt = m.path()
    assert sorted(os.listdir(mnt)) == sorted(
        {rel.split("/")[0] for rel in FILES})
    for rel, size in FILES.items():
        assert os.stat(mnt / rel).st_size == size, rel
    assert cached_bytes(mnt / "a.bin") == FILES["a.bin"]
    assert sha256_file(mnt / "a.bin") == hashes["a.bin"]
    expect_eio_within(mnt / "b.bin", 5)


def test_server_gone_mounts_saved_snapshot(server, make_mount, tree):
    root, hashes = tree
    srv, m = first_mount_and_read_a(server, make_mount, root, hashes)
    srv.stop()
    m.start(srv.url + "/", OPTS + ["retries=1", "connect_timeout=2"])
    m.allow(r"hollowfs warning: .*unreachable")
    allow_file(m, r"b\.bin")
    warned = [line for line in m.log_lines() if "hollowfs warning" in line]
    assert warned, "no warning that the saved snapshot is served"
    check_saved_snapshot(m, hashes)
    m.umount()


def test_offline_option_never_touches_the_server(server, make_mount, tree):
    root, hashes = tree
    srv, m = first_mount_and_read_a(server, make_mount, root, hashes)
    seen = len(settled_log(srv))
    m.start(srv.url + "/", OPTS + ["offline"])
    allow_file(m, r"b\.bin")
    check_saved_snapshot(m, hashes)
    assert settled_log(srv)[seen:] == [], "-o offline made requests"
    m.umount()


def test_offline_option_without_snapshot_fails(server, make_mount, tree,
                                               tmp_path):
    root, _ = tree
    srv = server(root)
    m = make_mount()
    r = subprocess.run(m.command(srv.url + "/", OPTS + ["offline"]),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not is_mounted(m.path())


# ---- mount(8) and the daemonized form ---------------------------------------

def find_daemon(mnt):
    """pid of the hollowfs process serving mnt (found by its command
    line), or None."""
    mnt = str(mnt)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"hollowfs" and \
                os.fsencode(mnt) in argv:
            return int(pid)
    return None


def wait_gone(pid, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def daemonize(mount, source, opts=()):
    """Runs hollowfs without -f, logging to a file; returns the
    CompletedProcess."""
    mount.log_path = mount.tmp_path / "daemon.log"
    cmd = mount.command(source, OPTS + list(opts)
                        + [f"log={mount.log_path}"], foreground=False)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_daemonized_returns_once_mounted(server, mount, tree):
    root, hashes = tree
    srv = server(root)
    r = daemonize(mount, srv.url + "/")
    assert r.returncode == 0, r.stderr
    # Logs go to log=FILE, not to the terminal.
    assert r.stdout == "" and r.stderr == "", r.stderr
    # Live at once, without waiting.
    assert is_mounted(mount.path())
    assert sorted(os.listdir(mount.path())) == sorted(
        {rel.split("/")[0] for rel in FILES})
    assert sha256_file(mount.path("a.bin")) == hashes["a.bin"]
    pid = find_daemon(mount.path())
    assert pid, "no hollowfs process serves the mount"
    assert pid != os.getpid()
    u = fusermount_u(mount.path())
    assert u.returncode == 0, u.stderr
    assert wait_gone(pid, 10), "the daemon did not exit after fusermount3 -u"
    assert not is_mounted(mount.path())
    assert any("hollowfs info" in line for line in mount.log_lines()), \
        "log= got no lines"
    mount.check_log()


def mount8_runs_our_build():
    """Whether mount(8) finds this build's hollowfs: it runs helpers with
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,
    whatever our PATH is."""
    for d in "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            .split(":"):
        p = os.path.join(d, "hollowfs")
        if os.path.exists(p):
            return os.path.samefile(p, HOLLOWFS)
    return False


@pytest.mark.parametrize("form", ["fuse.hollowfs", "fuse-prog#source",
                                  "mount.fuse3-t-hollowfs"])
def test_mount8_form(server, mount, tree, form):
    if not shutil.which("mount.fuse3", path="/sbin:/usr/sbin"):
        pytest.skip("no mount.fuse3 (Debian package fuse3)")
    if form == "fuse.hollowfs" and not mount8_runs_our_build():
        pytest.skip("mount(8) resets PATH for its helpers, and no hollowfs "
                    "of this build is on that PATH (install it)")
    root, hashes = tree
    srv = server(root)
    mount.log_path = mount.tmp_path / "mount8.log"
    opts = f"cache={mount.cache},log={mount.log_path},chunk_size=1M"
    if form == "fuse.hollowfs":
        argv = ["mount", "-t", "fuse.hollowfs", srv.url + "/"]
    elif form == "fuse-prog#source":
        argv = ["mount", "-t", "fuse", f"{HOLLOWFS}#{srv.url}/"]
    else:  # what mount -t fuse.hollowfs runs, with our PATH kept
        argv = [shutil.which("mount.fuse3", path="/sbin:/usr/sbin"),
                srv.url + "/"]
        opts = "rw," + opts  # as mount(8) adds it
    tail = ["-t", "hollowfs"] if form.startswith("mount.fuse3") else []
    env = dict(os.environ, PATH=f"{BUILD}:{os.environ.get('PATH', '')}")
    r = subprocess.run(argv + [str(mount.path()), "-o", opts] + tail,
                       capture_output=True, text=True, timeout=60, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    entry = mount_entry(mount.path())
    assert entry and entry[1].startswith("fuse"), entry
    assert sorted(os.listdir(mount.path())) == sorted(
        {rel.split("/")[0] for rel in FILES})
    assert sha256_file(mount.path("sub/c.bin")) == hashes["sub/c.bin"]
    pid = find_daemon(mount.path())
    assert pid, "no hollowfs process serves the mount"
    u = subprocess.run(["umount", str(mount.path())], capture_output=True,
                       text=True, timeout=30)
    assert u.returncode == 0, u.stderr
    assert not is_mounted(mount.path())
    assert wait_gone(pid, 10), "the daemon did not exit after umount"
    mount.check_log()


# ---- bad command lines ------------------------------------------------------

def bad_cases(tmp_path, url):
    """name -> (source, mountpoint or None, -o options)."""
    mnt = tmp_path / "mnt"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    dead = f"http://127.0.0.1:{free_port()}/"
    return {
        "malformed-source": ("http//x", mnt, []),
        "unknown-scheme": ("ftp://x/", mnt, []),
        "missing-mountpoint": (url, None, []),
        "extra-argument": (url, mnt, [], "extra"),
        "mountpoint-is-a-file": (url, a_file, []),
        "mountpoint-does-not-exist": (url, tmp_path / "nowhere", []),
        "cache-in-proc": (url, mnt, ["cache=/proc/hollowfs-test"]),
        "cache-under-a-file": (url, mnt, [f"cache={a_file}/cache"]),
        "chunk-size-3": (url, mnt, ["chunk_size=3"]),
        "chunk-size-too-big": (url, mnt, ["chunk_size=128M"]),
        "timeout-not-a-number": (url, mnt, ["timeout=soon"]),
        "unknown-option": (url, mnt, ["no_such_option"]),
        "source-404": (url + "no/such/folder/", mnt, []),
        "server-not-listening": (dead, mnt, ["retries=1",
                                             "connect_timeout=2"]),
    }


BAD_NAMES = ["malformed-source", "unknown-scheme", "missing-mountpoint",
             "extra-argument", "mountpoint-is-a-file",
             "mountpoint-does-not-exist", "cache-in-proc",
             "cache-under-a-file", "chunk-size-3", "chunk-size-too-big",
             "timeout-not-a-number", "unknown-option", "source-404",
             "server-not-listening"]

# With -f, stderr is also the log: its timestamped lines are not counted.
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} hollowfs \w+: ")

@pytest.mark.parametrize("foreground", [True, False], ids=["-f", "daemon"])
@pytest.mark.parametrize("case", BAD_NAMES)
def test_bad_input_one_line_nothing_mounted(server, hollowfs_bin, tree,
                                            tmp_path, case, foreground):
    root, _ = tree
    srv = server(root)
    source, mnt, opts, *extra = bad_cases(tmp_path, srv.url + "/")[case]
    (tmp_path / "mnt").mkdir(exist_ok=True)
    if not any(o.startswith("cache=") for o in opts):
        opts = [f"cache={tmp_path / 'cache'}"] + opts
    argv = ([str(HOLLOWFS)] + (["-f"] if foreground else [])
            + ["-o", ",".join(opts), source]
            + ([str(mnt)] if mnt else []) + extra)
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    finally:
        if is_mounted(tmp_path / "mnt"):
            fusermount_u(tmp_path / "mnt", lazy=True)
            pytest.fail(f"{case}: left a mount behind")
    assert r.returncode != 0, f"{case}: exit status 0"
    assert "sanitizer" not in r.stderr.lower(), r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    if foreground:
        lines = [line for line in lines if not LOG_LINE.match(line)]
    assert len(lines) == 1, f"{case}: stderr is not one line:\n{r.stderr}"
    assert lines[0].startswith("hollowfs"), lines[0]
    assert r.stdout == ""
    assert not is_mounted(tmp_path / "mnt")
    assert find_daemon(tmp_path / "mnt") is None, "a daemon is left running"


# ---- hostile listings ----------------------------------------------------

MTIME = "Mon, 23 Nov 2026 18:00:00 GMT"
OK_SIZE = FILES["ok.bin"]

HOSTILE_JSON = [
    {"name": "..", "type": "directory", "mtime": MTIME},
    {"name": ".", "type": "directory", "mtime": MTIME},
    {"name": "", "type": "file", "mtime": MTIME, "size": 5},
    {"name": "a/b", "type": "file", "mtime": MTIME, "size": 5},
    {"name": "/abs", "type": "file", "mtime": MTIME, "size": 5},
    {"name": "../../etc/passwd", "type": "file", "mtime": MTIME, "size": 5},
    {"name": "nul\u0000byte", "type": "file", "mtime": MTIME, "size": 5},
    {"name": "sub", "type": "directory", "mtime": MTIME},
    {"name": "ok.bin", "type": "file", "mtime": MTIME, "size": OK_SIZE},
    {"name": "ok.bin", "type": "file", "mtime": MTIME, "size": OK_SIZE},
]
# Each dropped JSON entry (7 unsafe names and the second "ok.bin") gets a
# warning line of its own.
HOSTILE_JSON_DROPPED = 8


def html_row(href, label, size):
    return (f'<a href="{href}">{label}</a>{" " * max(1, 50 - len(label))} '
            f'23-Nov-2026 18:00 {size:>19}\n')


HOSTILE_HTML = (
    "<html>\n<head><title>Index of /</title></head>\n<body>\n"
    "<h1>Index of /</h1><hr><pre><a href=\"../\">../</a>\n"
    + html_row("sub/", "sub/", "-")
    + html_row("..%2F..%2Fetc%2Fpasswd", "passwd", 5)
    + html_row("/etc/passwd", "passwd2", 5)
    + html_row("a%2Fb", "a/b", 5)
    + html_row("http://evil.invalid/x.bin", "x.bin", 5)
    + html_row("%00nul", "nul", 5)
    + html_row("ok.bin", "ok.bin", OK_SIZE)
    + html_row("ok.bin", "ok.bin", OK_SIZE)
    + "</pre><hr></body>\n</html>\n")
# The encoded names that decode to unsafe ones: ../../etc/passwd, a/b and
# NUL. Absolute and off-site links (the parent link, Apache's sort links)
# may be dropped quietly.
HOSTILE_HTML_REPORTED = 3


@pytest.mark.parametrize("index", ["json", "html"])
def test_hostile_listing_names_are_dropped(server, mount, tree, index):
    root, hashes = tree
    listing = HOSTILE_JSON if index == "json" else HOSTILE_HTML
    srv = server(root, index=index, faults={"/": {"listing": listing}})
    mount.start(srv.url + "/", OPTS)
    mount.allow(r"hollowfs warning: \w+: .*(listing|unsafe|duplicate|name)")
    mnt = mount.path()
    assert sorted(os.listdir(mnt)) == ["ok.bin", "sub"]
    assert sorted(os.listdir(mnt / "sub")) == ["c.bin"]
    assert sha256_file(mnt / "ok.bin") == hashes["ok.bin"]
    assert sha256_file(mnt / "sub" / "c.bin") == hashes["sub/c.bin"]
    warnings = [line for line in mount.log_lines()
                if "hollowfs warning" in line]
    if index == "json":
        assert len(warnings) == HOSTILE_JSON_DROPPED, "\n".join(warnings)
    else:
        assert len(warnings) >= HOSTILE_HTML_REPORTED, "\n".join(warnings)
    # No request ever left the served tree.
    paths = {e["path"] for e in srv.log()}
    assert paths <= {"/", "/sub", "/sub/", "/ok.bin", "/sub/c.bin"}, paths
    mount.umount()
