"""Many nodes behind one shared cache tier (issue 13), simulated on one
machine: the nginx configuration shipped in scripts/cache-tier/ (started
by its run.sh with ports and paths of the test) in front of a fake Hub
(scripts/testserver.py --hub, LFS bytes on its CDN host 127.0.0.1) and a
plain http folder (scripts/testserver.py), and hollowfs "nodes": separate
processes with separate caches, each mounting the repo through the tier
as a Hub mirror (-o endpoint=) and the folder through it as a forward
proxy (-o proxy=).

Also: the proxy settings hollowfs honours (HTTP_PROXY, which libcurl
ignores, NO_PROXY, -o proxy= over the environment, -o proxy= empty for
none), a tier that goes away in the middle of a read (EIO within the retry
budget; a remount without the tier reads on), and a node's token, which
never reaches the tier's log or cache.

The origin bytes of the 1- and 4-node runs are printed (pytest -s) and
written to $HOLLOWFS_BUILD/cache-tier-figures.txt.
"""

import errno
import hashlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import (BUILD, HOLLOWFS, MiB, REPO, free_port, register_log,
                      settled_log, wait_for_port, write_random_file)

RUN_SH = REPO / "scripts" / "cache-tier" / "run.sh"
TOKEN = "hf_nodeTOKENabcdef0123456789xyz"  # valid on the hub, never cached
FIGURES = BUILD / "cache-tier-figures.txt"

# A clean environment: no proxy, no token, no endpoint of the machine's.
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
              "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY")


def node_env(tmp_path, **more):
    env = {v: None for v in PROXY_VARS}
    env.update({"HF_TOKEN": None, "HUGGING_FACE_HUB_TOKEN": None,
                "HF_TOKEN_PATH": None, "HF_ENDPOINT": None,
                "HF_HUB_OFFLINE": None,
                "HF_HOME": str(tmp_path / "hf-home")})
    env.update(more)
    return env


# ---- the tier ---------------------------------------------------------------

# The tier's log format (nginx.conf.in "tier").
TIER_LINE = re.compile(
    r'^(?P<client>\S+) \[(?P<time>[^]]+)\] (?P<port>\d+) '
    r'"(?P<method>\S+) (?P<target>[^"]*)" (?P<status>\d+) (?P<bytes>\d+) '
    r'"(?P<range>[^"]*)" (?P<cache>\S+) (?P<upstream>.*) (?P<took>\S+)$')


class Tier:
    """scripts/cache-tier/run.sh in its own process group, all its files
    in dir: a Hub mirror at .mirror_url (for hub_url, whose CDN host:port
    is cdn_host) and a forward proxy at .proxy_url."""

    def __init__(self, dir, hub_url="http://127.0.0.1:9", cdn_host=None):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stderr = self.dir / "stderr"
        cdn = cdn_host or hub_url.split("://", 1)[1]
        for _ in range(5):  # a port we picked may be taken meanwhile
            self.mirror_port, self.proxy_port = free_port(), free_port()
            env = dict(os.environ,
                       TIER_MIRROR_LISTEN=f"127.0.0.1:{self.mirror_port}",
                       TIER_PROXY_LISTEN=f"127.0.0.1:{self.proxy_port}",
                       TIER_HUB=hub_url, TIER_CDN_HOSTS=re.escape(cdn),
                       TIER_ALLOW="127.0.0.1", TIER_RESOLVER="127.0.0.1",
                       TIER_USER="root", TIER_WORKERS="2")
            self.proc = subprocess.Popen(
                [str(RUN_SH), str(self.dir)], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(self.stderr, "wb"), start_new_session=True)
            if wait_for_port(self.mirror_port, self.proc, 10, "the tier") \
                    and wait_for_port(self.proxy_port, self.proc, 10,
                                      "the tier"):
                break
            self.proc.wait()
        else:
            raise RuntimeError("the tier did not start: "
                               + self.stderr.read_text())
        self.mirror_url = f"http://127.0.0.1:{self.mirror_port}"
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"

    def log(self):
        try:
            text = (self.dir / "access.log").read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            m = TIER_LINE.match(line)
            assert m, f"tier log line not in the tier format: {line!r}"
            out.append(m.groupdict())
        return out

    def proxied(self):
        """Log entries of the forward proxy."""
        return [e for e in self.log() if int(e["port"]) == self.proxy_port]

    def kill(self):
        """SIGKILL nginx, master and workers: the tier is gone."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def tier(request, tmp_path):
    """Factory: tier(hub_url=..., cdn_host=...) -> a running Tier, stopped
    at teardown; skips without nginx."""
    if not shutil.which("nginx"):
        pytest.skip("nginx is not installed (Debian package nginx-light)")
    started = []

    def start(**kwargs):
        t = Tier(tmp_path / f"tier{len(started) + 1}", **kwargs)
        started.append(t)
        n = len(started)
        register_log(request, f"tier{n}-access.log", t.dir / "access.log")
        register_log(request, f"tier{n}-error.log", t.dir / "error.log")
        register_log(request, f"tier{n}-nginx.conf", t.dir / "nginx.conf")
        return t

    yield start
    for t in started:
        t.stop()


# ---- helpers ----------------------------------------------------------------

def sha256_of(path, bufsize=1 * MiB):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(bufsize)
            if not block:
                return h.hexdigest()
            h.update(block)


def origin_bytes(*servers):
    return sum(e["bytes"] or 0 for srv in servers
               for e in settled_log(srv))


def grep_tree(top, needle):
    """Files under top whose bytes contain needle."""
    hits = []
    for dirpath, _, filenames in os.walk(top):
        for f in filenames:
            p = Path(dirpath) / f
            try:
                if needle in p.read_bytes():
                    hits.append(p)
            except OSError:
                pass
    return hits


# ---- 1. N nodes, one fetch from the origin ----------------------------------

HF_FILES = {"model-00001-of-00002.safetensors": 100 * MiB + 12345,
            "model-00002-of-00002.safetensors": 100 * MiB - 777}
WEB_FILES = {"shard-a.bin": 50 * MiB + 4321, "shard-b.bin": 50 * MiB - 99}
CONFIG = b'{"model_type": "tiny", "hidden_size": 64}\n'


@pytest.mark.parametrize("nodes", [1, 4])
def test_nodes_share_one_origin_fetch(nodes, hub, server, tier, make_mount,
                                      tmp_path):
    data = tmp_path / "data"
    want = {}
    files = {"config.json": CONFIG}
    for rel, size in HF_FILES.items():
        want[("hf", rel)] = write_random_file(data / "hub" / rel, size)
        files[rel] = str(data / "hub" / rel)
    want[("hf", "config.json")] = hashlib.sha256(CONFIG).hexdigest()
    for rel, size in WEB_FILES.items():
        want[("web", rel)] = write_random_file(data / "web" / rel, size)
    dataset = sum(HF_FILES.values()) + len(CONFIG) + sum(WEB_FILES.values())

    info = hub.repo("acme/big", files)
    hub.token(TOKEN)  # nodes send it; the repo is public
    hsrv = hub.start(cdn_host="127.0.0.1")
    wsrv = server(data / "web")
    t = tier(hub_url=hsrv.url, cdn_host=f"127.0.0.1:{hsrv.port}")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")

    mounts = []
    for i in range(nodes):
        cache = tmp_path / f"node{i}-cache"
        env = node_env(tmp_path)
        hf = make_mount(f"hf{i}", cache=cache).start(
            f"hf://{info.id}", [f"endpoint={t.mirror_url}",
                                f"token_file={token_file}"], env=env)
        web = make_mount(f"web{i}", cache=cache).start(
            f"{wsrv.url}/", [f"proxy={t.proxy_url}"], env=env)
        mounts.append({"hf": hf, "web": web})

    # Every node reads everything, all at the same time.
    results, errors = {}, []

    def read_all(i):
        try:
            for (kind, rel) in want:
                results[(i, kind, rel)] = sha256_of(mounts[i][kind].path(rel))
        except Exception as e:  # reported below
            errors.append((i, e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=read_all, args=(i,))
               for i in range(nodes)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    took = time.monotonic() - t0
    assert not any(th.is_alive() for th in threads), "reads hang"
    assert not errors, errors
    for i in range(nodes):
        for key, digest in want.items():
            assert results[(i,) + key] == digest, f"node {i}: {key} differs"

    sent = origin_bytes(hsrv, wsrv)
    ratio = sent / dataset
    line = (f"{nodes} node(s): data set {dataset} bytes, origin sent "
            f"{sent} bytes ({ratio:.4f}x), all read in {took:.1f} s")
    print(line)
    with open(FIGURES, "a") as f:
        f.write(line + "\n")
    assert ratio <= 1.1, line

    # Every node went through the tier: it served all their bytes.
    served = sum(int(e["bytes"]) for e in t.log())
    assert served >= nodes * dataset, (served, nodes * dataset)
    assert t.proxied(), "no request reached the forward proxy"

    # The token went through the tier to the Hub, and never into the
    # tier's log, cache or error log.
    assert any(e["authorization"] == f"Bearer {TOKEN}"
               for e in settled_log(hsrv)), "the nodes sent no token"
    assert not grep_tree(t.dir, TOKEN.encode()), \
        f"the token is in {grep_tree(t.dir, TOKEN.encode())}"
    log_text = (t.dir / "access.log").read_text()
    assert "Signature=" not in log_text and "Expires=" not in log_text
    assert list((t.dir / "cache").rglob("*")), "the tier cached nothing"

    for m in mounts:
        m["hf"].umount()
        m["web"].umount()
    # Passed: free the disk (pytest keeps the last runs' tmp_path).
    for p in [data, t.dir / "cache"] + [tmp_path / f"node{i}-cache"
                                        for i in range(nodes)]:
        shutil.rmtree(p, ignore_errors=True)


# ---- 2. what the mirror caches, and for whom --------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url, headers=None):
    """(status, headers, body) of a GET that follows no redirect."""
    opener = urllib.request.build_opener(_NoRedirect,
                                         urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_mirror_keys_cdn_bytes_without_signature_and_api_without_token(
        hub, tier, tmp_path):
    blob = os.urandom(9 * MiB + 3)
    info = hub.repo("acme/keys", {"w.safetensors": blob})
    hub.token(TOKEN)
    hsrv = hub.start(cdn_host="127.0.0.1")
    t = tier(hub_url=hsrv.url, cdn_host=f"127.0.0.1:{hsrv.port}")
    resolve = f"{t.mirror_url}/{info.id}/resolve/{info.commit}/w.safetensors"
    rng = {"Range": "bytes=5000000-5999999"}

    # Two redirects, a second apart: two signed URLs, one cached object.
    locations = []
    for i in range(2):
        if i:
            time.sleep(1.1)  # the next URL expires a second later
        status, h, _ = fetch(resolve, rng)
        assert status == 302, status
        loc = h["Location"]
        assert loc.startswith(f"/_cdn/http/127.0.0.1:{hsrv.port}/__lfs/"), loc
        locations.append(loc)
        status, h, body = fetch(t.mirror_url + loc, rng)
        assert status == 206 and body == blob[5000000:6000000]
        assert h["X-Cache-Status"] == ("MISS" if i == 0 else "HIT"), i
    assert locations[0] != locations[1], "the same signed URL twice"
    cdn = [e for e in settled_log(hsrv) if e["path"].startswith("/__lfs/")]
    assert len(cdn) == 1, cdn  # one slice, fetched once

    # A CDN host that is not on the list is refused: no open proxy.
    status, _, _ = fetch(f"{t.mirror_url}/_cdn/http/127.0.0.2:{hsrv.port}"
                         f"/__lfs/x")
    assert status == 403

    # The Hub API: anonymous answers are shared; answers to a token are
    # neither served from the cache nor stored.
    api = f"{t.mirror_url}/api/models/{info.id}/revision/main"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    got = [fetch(api, hdrs)[1]["X-Cache-Status"]
           for hdrs in (auth, {}, {}, auth)]
    assert got == ["BYPASS", "MISS", "HIT", "BYPASS"], got
    assert not grep_tree(t.dir, TOKEN.encode())


def test_forward_proxy_keeps_if_match_pins(nginx, tier, tmp_path):
    """A node pinning an ETag (If-Match, as s3:// does) through the forward
    proxy gets that version's bytes or a 412, never cached bytes of
    another version."""
    root = tmp_path / "web"
    blob = os.urandom(5 * MiB)
    (root).mkdir()
    (root / "obj.bin").write_bytes(blob)
    origin = nginx(root)  # static files: nginx answers If-Match itself
    t = tier()
    url = f"{origin.url}/json/obj.bin"
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": t.proxy_url}))

    def get(if_match):
        req = urllib.request.Request(url, headers={
            "Range": "bytes=100-199", "If-Match": if_match})
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, r.headers["X-Cache-Status"], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["X-Cache-Status"], b""

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(urllib.request.Request(url, method="HEAD")) as r:
        etag = r.headers["ETag"]
    # Whether the slice was cached or not, nginx checks the pin against
    # the slice's ETag (the origin never sees If-Match: nginx asks it for
    # whole slices).
    assert get('"another-version"') == (412, "MISS", b"")
    assert get(etag)[::2] == (206, blob[100:200])
    assert get(etag) == (206, "HIT", blob[100:200])
    assert get('"another-version"') == (412, "HIT", b"")


# ---- 3. the tier goes away in the middle of a read --------------------------

def test_tier_gone_mid_read_fails_with_eio_then_remount_direct(
        hub, tier, make_mount, tmp_path):
    size = 24 * MiB + 5
    src = tmp_path / "data" / "weights.safetensors"
    digest = write_random_file(src, size)
    info = hub.repo("acme/gone", {"weights.safetensors": str(src)})
    hsrv = hub.start(cdn_host="127.0.0.1")
    t = tier(hub_url=hsrv.url, cdn_host=f"127.0.0.1:{hsrv.port}")
    env = node_env(tmp_path)
    cache = tmp_path / "cache"
    m = make_mount("via-tier", cache=cache).start(
        f"hf://{info.id}", [f"endpoint={t.mirror_url}", "readahead=0",
                            "chunk_size=4M", "retries=2"], env=env)
    path = m.path("weights.safetensors")
    with open(path, "rb", buffering=0) as f:
        assert len(f.read(4 * MiB)) == 4 * MiB
        t.kill()
        t0 = time.monotonic()
        with pytest.raises(OSError) as ei:
            f.seek(12 * MiB)
            f.read(1 * MiB)
        took = time.monotonic() - t0
    assert ei.value.errno == errno.EIO, ei.value
    # retries=2: 3 refused connects and two backoffs (<= 0.31 + 0.63 s).
    assert took < 15, f"EIO after {took:.1f} s"
    m.allow(r"range GET of .* failed",
            r"read failed for 'weights\.safetensors': Connection refused")
    m.umount()

    # Without the tier, straight to the Hub: the rest comes from the
    # origin, the first chunk from the node's own cache.
    d = make_mount("direct", cache=cache).start(
        f"hf://{info.id}", [f"endpoint={hsrv.url}"], env=env)
    assert sha256_of(d.path("weights.safetensors")) == digest
    d.umount()


# ---- 4. which proxy a node uses ---------------------------------------------

DEAD = "http://127.0.0.1:9"  # nothing listens on the discard port

PROXY_CASES = {
    # id: (environment, options, whether the tier's forward proxy is used)
    "HTTP_PROXY": ({"HTTP_PROXY": "TIER"}, [], True),
    "http_proxy": ({"http_proxy": "TIER"}, [], True),
    "http_proxy-over-HTTP_PROXY": (
        {"http_proxy": "TIER", "HTTP_PROXY": DEAD}, [], True),
    "NO_PROXY": ({"HTTP_PROXY": "TIER", "NO_PROXY": "127.0.0.1"}, [],
                 False),
    "option-without-scheme": ({}, ["proxy=TIER_HOST_PORT"], True),
    "option-NO_PROXY": ({"NO_PROXY": "localhost,127.0.0.1"},
                        ["proxy=TIER"], False),
    "option-over-env": ({"http_proxy": DEAD, "HTTP_PROXY": DEAD},
                        ["proxy=TIER"], True),
    "empty-option-none": ({"http_proxy": DEAD, "HTTP_PROXY": DEAD,
                           "all_proxy": DEAD}, ["proxy="], False),
}


@pytest.mark.parametrize("case", PROXY_CASES)
def test_proxy_settings(case, server, tier, make_mount, tmp_path):
    env_spec, opt_spec, via_tier = PROXY_CASES[case]
    root = tmp_path / "web"
    digest = write_random_file(root / "f.bin", 3 * MiB + 17)
    wsrv = server(root)
    t = tier()

    def sub(v):
        return v.replace("TIER_HOST_PORT", f"127.0.0.1:{t.proxy_port}") \
                .replace("TIER", t.proxy_url)

    env = node_env(tmp_path, **{k: sub(v) for k, v in env_spec.items()})
    m = make_mount().start(f"{wsrv.url}/", [sub(o) for o in opt_spec],
                           env=env)
    assert sha256_of(m.path("f.bin")) == digest
    m.umount()
    assert bool(t.proxied()) == via_tier, t.log()
    if via_tier:
        assert any(e["target"] == "127.0.0.1/f.bin" for e in t.proxied())


@pytest.mark.parametrize("value", ["ftp://h:1", "proxy", "http://", "a b"])
def test_proxy_option_rejects_bad_values(value, tmp_path, hollowfs_bin):
    opt = value if value == "proxy" else f"proxy={value}"
    r = subprocess.run([str(HOLLOWFS), "-f", "-o", opt, "http://127.0.0.1:9/",
                        str(tmp_path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"hollowfs: bad value '{opt[6:]}' for "
                               "option proxy: "), r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
