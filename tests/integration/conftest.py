"""Fixtures and helpers of the hollowfs integration tests (pytest-3).

Every test mounts the real daemon with `hollowfs -f` into its own tmp_path,
serves its files with scripts/testserver.py (or nginx) on 127.0.0.1, and
checks the bytes, the server's access log and the daemon's log:

- the daemon must exit 0 at unmount (so ASan leak reports surface);
- any daemon log line matching BAD_LINE fails the test unless the test
  allowed that line with a regex (Mount.allow);
- a test that cannot run (not root, no /dev/fuse, no binary) is skipped;
- the logs of a failed test are copied to
  $HOLLOWFS_BUILD/integration-logs/<test name>/.

Environment: HOLLOWFS_BUILD (the meson build dir holding the hollowfs binary,
default REPO/build) and HOLLOWFS_SOURCE (the repo, default: found from here).
"""

import errno
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(os.environ.get("HOLLOWFS_SOURCE")
            or Path(__file__).resolve().parents[2])
BUILD = Path(os.environ.get("HOLLOWFS_BUILD") or REPO / "build")
HOLLOWFS = BUILD / "hollowfs"
LOG_KEEP_DIR = BUILD / "integration-logs"

sys.path.insert(0, str(REPO / "scripts"))
from testserver import (  # noqa: E402
    TestServer, add_hub_token, make_hub_repo)

KiB = 1024
MiB = 1024 * 1024

MOUNT_DEADLINE_S = 20
UMOUNT_DEADLINE_S = 15

# A daemon log line like this fails the test unless the test allows it.
BAD_LINE = re.compile(
    r"error|warning|fatal|sanitizer|runtime error|leak|assertion",
    re.IGNORECASE)


# ---- which tests can run -------------------------------------------------

def _cannot_run():
    """Why the mount tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (FUSE mounts with allow_other, mount(8))"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return f"/dev/fuse cannot be opened: {e}"
    if not shutil.which("fusermount3"):
        return "no fusermount3 (Debian package fuse3)"
    if not os.access(HOLLOWFS, os.X_OK):
        return f"no hollowfs binary at {HOLLOWFS} (build it, or set " \
               f"HOLLOWFS_BUILD)"
    return None


@pytest.fixture(scope="session")
def hollowfs_bin():
    why = _cannot_run()
    if why:
        pytest.skip(why)
    return HOLLOWFS


# ---- keeping the logs of failed tests ------------------------------------

# nodeid -> list of (label, path) of log files worth keeping.
_LOGS = {}


def register_log(request, label, path):
    """Keeps path (or what path() returns then) if the test fails."""
    _LOGS.setdefault(request.node.nodeid, []).append((label, path))


def _safe_name(nodeid):
    name = nodeid.replace("/", "_").replace("::", "__")
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)[:150]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    failed = (getattr(item, "_hollowfs_failed", False) or rep.failed
              or hasattr(rep, "wasxfail"))
    item._hollowfs_failed = failed
    if rep.when != "teardown":
        return
    logs = _LOGS.pop(item.nodeid, [])
    if not failed or not logs:
        return
    dest = LOG_KEEP_DIR / _safe_name(item.nodeid)
    try:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True, exist_ok=True)
        for i, (label, path) in enumerate(logs):
            path = Path(path() if callable(path) else path)
            if path.is_file():
                shutil.copy(path, dest / f"{i:02d}-{label}")
        rep.sections.append(("hollowfs logs", f"kept in {dest}"))
    except OSError as e:
        rep.sections.append(("hollowfs logs", f"not kept: {e}"))


# ---- data -----------------------------------------------------------------

def randbytes(size, seed):
    return random.Random(seed).randbytes(size)


def write_random_file(path, size, seed=None):
    """Writes size pseudo-random bytes to path; returns their sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(str(path) if seed is None else seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            block = rng.randbytes(n)
            h.update(block)
            f.write(block)
            left -= n
    return h.hexdigest()


def sha256_file(path, bufsize=1 * MiB):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(bufsize)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def make_tree(root, spec):
    """Creates files under root: spec maps a relative path to a size (random
    bytes), to bytes, or to None (an empty folder). Returns
    {relpath: sha256} of the files."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for rel, what in spec.items():
        p = root / rel
        if what is None:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, int):
            hashes[rel] = write_random_file(p, what, seed=rel)
        else:
            p.write_bytes(what)
            hashes[rel] = hashlib.sha256(what).hexdigest()
    return hashes


def tree_files(top):
    """{relpath: size} of every regular file under top, and the set of
    folders (relative), walking with os.walk."""
    files, dirs = {}, set()
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        for d in dirnames:
            dirs.add(os.path.normpath(os.path.join(rel, d)))
        for f in filenames:
            p = os.path.join(dirpath, f)
            files[os.path.normpath(os.path.join(rel, f))] = os.stat(p).st_size
    return files, dirs


def getxattr_str(path, name):
    return os.getxattr(path, name).rstrip(b"\0").decode()


def cached_bytes(path):
    return int(getxattr_str(path, "user.hollowfs.cached"))


def cached_at_least(path, n, timeout_s=10.0):
    """user.hollowfs.cached of path once it is n or more, or at
    timeout_s: a read is answered as soon as its own bytes are in, so the
    chunk it started may complete a moment after it returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = cached_bytes(path)
        if got >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def chunks_xattr(path):
    done, total = getxattr_str(path, "user.hollowfs.chunks").split("/")
    return int(done), int(total)


def nchunks(size, chunk):
    return (size + chunk - 1) // chunk


# ---- the access log -------------------------------------------------------

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def file_gets(log, url_path, since=0.0):
    """The GETs of url_path (status 200/206) in an access log, after time
    since."""
    return [e for e in log if e["method"] == "GET" and e["path"] == url_path
            and e["t"] >= since and e["status"] in (200, 206)]


def served_spans(entries):
    """[start, end) of the file bytes each GET entry sent."""
    spans = []
    for e in entries:
        start = 0
        if e["status"] == 206:
            m = _RANGE.match((e["range"] or "").strip())
            assert m, f"206 for a range we cannot parse: {e}"
            start = int(m.group(1))
        if e["bytes"]:
            spans.append((start, start + e["bytes"]))
    return sorted(spans)


def bytes_served(log, url_path, since=0.0):
    return sum(e["bytes"] for e in file_gets(log, url_path, since))


def assert_served_once(log, url_path, size, since=0.0):
    """Every byte of [0, size) was sent exactly once by GETs of url_path."""
    spans = served_spans(file_gets(log, url_path, since))
    pos = 0
    for start, end in spans:
        assert start >= pos, (
            f"{url_path}: bytes {start}-{min(end, pos) - 1} were fetched "
            f"more than once; spans {spans}")
        assert start == pos, (
            f"{url_path}: bytes {pos}-{start - 1} never fetched; "
            f"spans {spans}")
        pos = end
    assert pos == size, f"{url_path}: fetched {pos} of {size} bytes; {spans}"


def settled_log(srv, quiet_s=0.3, timeout_s=5.0):
    """The access log once no line was added for quiet_s (a request is
    logged only after its last byte is sent)."""
    deadline = time.monotonic() + timeout_s
    last = srv.log()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = srv.log()
        if len(now) == len(last):
            return now
        last = now
    return last


# ---- servers ---------------------------------------------------------------

@pytest.fixture
def server(request, tmp_path):
    """Factory: server(root, faults=None, index="json") -> a running
    TestServer (.url, .log(), .set_faults(), .stop()), stopped at
    teardown."""
    started = []

    def start(root, faults=None, index="json"):
        srv = TestServer(root, tmp_path, faults=faults, index=index)
        started.append(srv)
        n = len(started)
        register_log(request, f"testserver{n}-access.log", srv.log_path)
        register_log(request, f"testserver{n}-stderr", srv.stderr_path)
        register_log(request, f"testserver{n}-faults.json", srv.faults_path)
        return srv

    yield start
    for srv in started:
        srv.stop()


class Hub:
    """A fake Hugging Face Hub for one test: repos made with
    make_hub_repo() in .dir, served by start() (testserver.py --hub)."""

    def __init__(self, request, tmp_path):
        self.request = request
        self.tmp_path = Path(tmp_path)
        self.dir = self.tmp_path / "hub"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.servers = []

    def repo(self, repo_id, files, **kwargs):
        """make_hub_repo(self.dir, repo_id, files, **kwargs) -> a
        HubRepoInfo."""
        return make_hub_repo(self.dir, repo_id, files, **kwargs)

    def token(self, token):
        """A token valid on this hub that no repo grants anything."""
        add_hub_token(self.dir, token)

    def start(self, faults=None, cdn_host=None, root=None):
        """A running TestServer for this hub (.url is the endpoint),
        stopped at teardown."""
        srv = TestServer(root, self.tmp_path, faults=faults, hub=self.dir,
                         cdn_host=cdn_host)
        self.servers.append(srv)
        n = len(self.servers)
        register_log(self.request, f"hub{n}-access.log", srv.log_path)
        register_log(self.request, f"hub{n}-stderr", srv.stderr_path)
        register_log(self.request, f"hub{n}-faults.json", srv.faults_path)
        return srv


@pytest.fixture
def hub(request, tmp_path):
    """A Hub (fake Hugging Face Hub) under tmp_path/hub: hub.repo(...)
    builds repos, hub.start() serves them; servers stop at teardown."""
    h = Hub(request, tmp_path)
    yield h
    for srv in h.servers:
        srv.stop()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} in "
                       f"{timeout_s} s")


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format jsonl escape=json '{{"uri":"$uri","range":"$http_range",'
        '"status":$status,"bytes":$body_bytes_sent,'
        '"method":"$request_method"}}';
    access_log {dir}/access.log jsonl;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /json/ {{
            alias {root}/;
            autoindex on;
            autoindex_format json;
        }}
        location /html/ {{
            alias {root}/;
            autoindex on;
            autoindex_exact_size on;
        }}
    }}
}}
"""


class Nginx:
    """nginx serving root at /json/ (JSON autoindex) and /html/ (HTML
    autoindex), in the foreground, all its files in dir."""

    def __init__(self, root, dir):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "nginx.conf"
        self.error_log = self.dir / "error.log"
        self.access_log = self.dir / "access.log"
        self.proc = None
        for _ in range(5):  # the port we picked may be taken meanwhile
            self.port = free_port()
            self.conf.write_text(NGINX_CONF.format(
                dir=self.dir, port=self.port, root=Path(root).resolve()))
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.dir), "-c", str(self.conf),
                 "-e", str(self.error_log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(self.dir / "stderr", "wb"))
            if wait_for_port(self.port, self.proc, 10, "nginx"):
                break
        else:
            raise RuntimeError("nginx did not start: "
                               + (self.dir / "stderr").read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self):
        import json
        try:
            text = self.access_log.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.split("\n")[:-1] if line]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def nginx(request, tmp_path):
    """Factory: nginx(root) -> a running Nginx, stopped at teardown; skips
    when nginx is not installed."""
    if not shutil.which("nginx"):
        pytest.skip("nginx is not installed (Debian package nginx-light)")
    started = []

    def start(root):
        n = Nginx(root, tmp_path / f"nginx{len(started) + 1}")
        started.append(n)
        register_log(request, f"nginx{len(started)}-error.log", n.error_log)
        register_log(request, f"nginx{len(started)}-access.log",
                     n.access_log)
        return n

    yield start
    for n in started:
        n.stop()


# ---- mounts ----------------------------------------------------------------

def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mount_entry(mnt):
    """The /proc/self/mountinfo fields (mountpoint, fstype, source) of the
    topmost mount on mnt, or None."""
    mnt = os.path.realpath(mnt)
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8",
              errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if _unescape_mountinfo(fields[4]) != mnt:
                continue
            rfields = right.split()
            found = (mnt, rfields[0], _unescape_mountinfo(rfields[1]))
    return found


def is_mounted(mnt):
    return mount_entry(mnt) is not None


def fusermount_u(mnt, lazy=False):
    args = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [str(mnt)]
    return subprocess.run(args, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=30)


def daemon_env(env):
    """os.environ with env applied (a value None removes that variable),
    or None (inherit) when env is None."""
    if env is None:
        return None
    out = dict(os.environ)
    for k, v in env.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


class MountFailed(AssertionError):
    pass


def mount_holders(mnt):
    """The processes of other mount namespaces that still see mnt (a
    namespace made while it was mounted keeps a copy of it)."""
    mine = os.readlink("/proc/self/ns/mnt")
    seen, out = set(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ns = os.readlink(f"/proc/{pid}/ns/mnt")
            if ns == mine or ns in seen:
                continue
            with open(f"/proc/{pid}/mountinfo") as f:
                if f" {mnt} " not in f.read():
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode()[:80]
        except OSError:
            continue
        seen.add(ns)
        out.append(f"pid {pid} ({cmd}) in {ns}")
    return "; ".join(out) or "none"


def thread_stacks(pid):
    """Every thread's backtrace of a hung process (gdb), for the failure
    message; a line saying why not when gdb cannot give them."""
    if not shutil.which("gdb"):
        return "(no gdb: no thread stacks)"
    try:
        r = subprocess.run(
            ["gdb", "-p", str(pid), "-batch", "-nx",
             "-ex", "set pagination off", "-ex", "thread apply all bt"],
            capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "(gdb timed out: no thread stacks)"
    lines = [ln for ln in r.stdout.splitlines()
             if ln.startswith(("Thread ", "#"))]
    return "thread stacks:\n" + "\n".join(lines)


class Mount:
    """One hollowfs daemon in the foreground, its mountpoint, cache and log.

    start() runs `hollowfs -f -o cache=CACHE,OPTS SOURCE MNT` with stdout
    and stderr to self.log_path and waits until MNT is mounted; umount()
    unmounts and requires exit status 0 and a clean log.
    """

    def __init__(self, tmp_path, name, cache=None):
        self.tmp_path = Path(tmp_path)
        self.name = name
        self.mnt = self.tmp_path / f"mnt-{name}"
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.cache = Path(cache) if cache else self.tmp_path / "cache"
        self.log_path = self.tmp_path / f"hollowfs-{name}.log"
        self.allowed = []
        self.proc = None
        self.runs = 0  # how many times start() ran the daemon
        self.exit_ok = True  # a kill -9 makes the status meaningless

    # -- running --

    def command(self, source, opts=None, foreground=True):
        o = [f"cache={self.cache}"] + list(opts or [])
        # The background fill (the default is prefetch=open) fetches what
        # a test did not read: tests count what they read, so they mount
        # with prefetch=none unless they say prefetch= themselves;
        # "prefetch=default" mounts with none given, the daemon's default.
        if "prefetch=default" in o:
            o.remove("prefetch=default")
        elif not any(x.startswith("prefetch=") for x in o):
            o.append("prefetch=none")
        return ([str(HOLLOWFS)] + (["-f"] if foreground else [])
                + ["-o", ",".join(o), source, str(self.mnt)])

    def start(self, source, opts=None, wait=True, env=None):
        """env: variables to set (a value None removes one) in the
        daemon's environment, on top of this process's."""
        assert self.proc is None or self.proc.poll() is not None, \
            "already running"
        assert not is_mounted(self.mnt), f"{self.mnt} is still mounted"
        self.runs += 1
        self.exit_ok = True
        self.source = source
        with open(self.log_path, "ab") as log:
            cmd = " ".join(self.command(source, opts))
            log.write(f"=== run {self.runs}: {cmd}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(source, opts), stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, env=daemon_env(env))
        self.pid = self.proc.pid
        if wait:
            self.wait_mounted()
        return self

    def wait_mounted(self, deadline_s=MOUNT_DEADLINE_S):
        deadline = time.monotonic() + deadline_s
        while True:
            if self.proc.poll() is not None:
                raise MountFailed(
                    f"hollowfs exited with status {self.proc.returncode} "
                    f"before mounting:\n{self.log_text()}")
            if is_mounted(self.mnt):
                return
            if time.monotonic() > deadline:
                raise MountFailed(
                    f"{self.mnt} not mounted after {deadline_s} s:\n"
                    f"{self.log_text()}")
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def umount(self, check=True, timeout_s=UMOUNT_DEADLINE_S):
        """fusermount3 -u (falling back to -z), waits for the daemon; with
        check, asserts exit status 0 and a clean log. Returns the seconds
        it took."""
        t0 = time.monotonic()
        self.umount_said = ""
        if is_mounted(self.mnt):
            r = fusermount_u(self.mnt)
            if r.returncode != 0 and is_mounted(self.mnt):
                self.umount_said = (f"fusermount3 -u: {r.returncode} "
                                    f"{r.stderr.decode().strip()}; lazily")
                fusermount_u(self.mnt, lazy=True)
        rc = self.wait_exit(timeout_s)
        took = time.monotonic() - t0
        if check:
            assert rc == 0, (f"hollowfs exited with status {rc}:\n"
                             f"{self.log_text()}")
            assert not is_mounted(self.mnt)
            self.check_log()
        return took

    def wait_exit(self, timeout_s):
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stacks = thread_stacks(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"hollowfs did not exit within {timeout_s} s of the "
                f"unmount ({getattr(self, 'umount_said', '')}; still "
                f"mounted: {is_mounted(self.mnt)}; other mount namespaces "
                f"that hold it: {mount_holders(self.mnt)}):\n"
                f"{self.log_text()}\n{stacks}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill9(self):
        """kill -9 the daemon, then lazily unmount its dead mount."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.exit_ok = False
        fusermount_u(self.mnt, lazy=True)
        assert not is_mounted(self.mnt)

    def cleanup(self):
        """Teardown: never leave a mount or a process behind."""
        if is_mounted(self.mnt):
            fusermount_u(self.mnt, lazy=True)
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # -- the log --

    def allow(self, *patterns):
        """Lets log lines matching any of these regexes (re.search) pass
        check_log."""
        self.allowed.extend(patterns)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return [line for line in self.log_text().splitlines()
                if not line.startswith("=== run ")]

    def bad_lines(self, allowed=()):
        pats = [re.compile(p) for p in list(self.allowed) + list(allowed)]
        bad = []
        for line in self.log_lines():
            # Paths the test chose (pytest names tmp_path after the test)
            # are not the daemon's words.
            text = line.replace(str(self.tmp_path), "<tmp>")
            if BAD_LINE.search(text) and not any(p.search(line)
                                                 for p in pats):
                bad.append(line)
        return bad

    def check_log(self, allowed=()):
        bad = self.bad_lines(allowed)
        assert not bad, ("unexpected lines in the daemon log:\n"
                         + "\n".join(bad))

    def path(self, rel=""):
        return self.mnt / rel if rel else self.mnt


@pytest.fixture
def make_mount(request, tmp_path, hollowfs_bin):
    """Factory: make_mount(name="m", cache=None) -> a Mount (not started).
    At teardown each mount is unmounted; if the test did not unmount it
    itself, teardown does, requiring exit status 0 and a clean log."""
    mounts = []

    def make(name="m", cache=None):
        m = Mount(tmp_path, name, cache)
        mounts.append(m)
        register_log(request, f"hollowfs-{name}.log", lambda: m.log_path)
        return m

    yield make
    errors = []
    for m in mounts:
        if m.running() and m.exit_ok:
            try:
                m.umount(check=True)
            except AssertionError as e:
                errors.append(str(e))
        m.cleanup()
    if errors and not getattr(request.node, "_hollowfs_failed", False):
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def mount(make_mount):
    """One Mount named "m" with the cache tmp_path/cache."""
    return make_mount()


def expect_errno(err, fn, *args, **kwargs):
    """Calls fn, asserting it raises OSError with errno err."""
    with pytest.raises(OSError) as ei:
        fn(*args, **kwargs)
    assert ei.value.errno == err, (
        f"{fn.__name__}{args}: expected {errno.errorcode[err]}, got "
        f"{ei.value!r}")
    return ei.value


# ---- issue 10: many files, shared caches, a size limit (H6) ---------------

# True under ASan/UBSan (HOLLOWFS_SANITIZE set by tests/meson.build): the
# slow scale measurements run on the plain build only.
SANITIZED = os.environ.get("HOLLOWFS_SANITIZE", "none") not in ("", "none")


class Sampler:
    """Calls fn() every period_s in a thread until stop(); keeps the
    largest value (.max) and every value (.values). Errors of fn (the
    process gone) are ignored."""

    def __init__(self, fn, period_s=0.05):
        import threading
        self.fn, self.period_s = fn, period_s
        self.values, self.max = [], None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            self.sample()
            if self._stop.wait(self.period_s):
                return

    def sample(self):
        try:
            v = self.fn()
        except OSError:
            return None
        self.values.append(v)
        if self.max is None or v > self.max:
            self.max = v
        return v

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample()
        return self.max


def open_fds(pid):
    """How many descriptors process pid has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_status_kib(pid, field):
    """A "kB" field of /proc/pid/status (VmRSS, VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def allocated_bytes(top):
    """Sum of st_blocks * 512 of the regular files under top (what a cache
    limit accounts); files vanishing meanwhile are skipped."""
    total = 0
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            total += st.st_blocks * 512
    return total


def count_files(top):
    n = 0
    for _, _, filenames in os.walk(top):
        n += len(filenames)
    return n


def bounded(fn, *args, timeout_s=300, what=None):
    """Runs fn(*args) in a thread and returns what it returns (raising
    what it raises), or fails the test when it has not finished in
    timeout_s: a daemon that hangs a read fails the test instead of
    hanging the run (teardown's unmount and kill then free the thread)."""
    import threading
    box = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - raised below
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        pytest.fail(f"{what or getattr(fn, '__name__', fn)} did not finish "
                    f"in {timeout_s} s (hung?)", pytrace=False)
    if "error" in box:
        raise box["error"]
    return box.get("value")
