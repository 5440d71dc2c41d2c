"""Mounting Hugging Face repos (hf://) from the fake Hub of
scripts/testserver.py (--hub), through a real hollowfs mount.

What /work/shared/HF-API.md asks of a download client, end to end: the
revision pinned to a commit (branch, tag, full commit, refs/pr/N), a
subfolder, datasets, a paginated listing, LFS files served by a CDN on
another host that never sees the token, mount-time errors in one line,
corrupted CDN bytes caught by the sha256 check, expired signed CDN URLs
resolved again, offline remounts from the saved snapshot, the export into
a huggingface_hub cache, and one copy of a file shared by two revisions.

The Hub is http://127.0.0.1:PORT; its CDN is http://localhost:PORT (same
server, another host name). Every test runs with a clean HF environment
(no HF_TOKEN, an empty HF_HOME) so the machine's own token never leaks in.
"""

import errno
import hashlib
import json
import os
import random
import re
import subprocess
import threading
import time

import pytest

from conftest import (BAD_LINE, MiB, assert_served_once, bytes_served,
                      cached_at_least, cached_bytes, daemon_env,
                      fusermount_u, is_mounted, settled_log, tree_files)

CHUNK = 1 * MiB
TOKEN = "hf_ownerTOKENabcdef0123456789"  # granted the test repos
OTHER = "hf_otherTOKENabcdef0123456789"  # valid on the hub, granted nothing
BOGUS = "hf_bogusTOKENabcdef0123456789"  # not a token of this hub

RNG = random.Random(20260101)
CONFIG = json.dumps({"architectures": ["TinyForCausalLM"],
                     "model_type": "tiny", "hidden_size": 64}).encode()
TOKENIZER = json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {
    f"tok{i}": i for i in range(12000)}}}).encode()  # ~200 KB, not LFS
WEIGHTS = RNG.randbytes(20 * MiB + 4321)
NESTED_W = RNG.randbytes(1 * MiB + 77)

MODEL = {
    "config.json": CONFIG,
    "tokenizer.json": TOKENIZER,
    "model.safetensors": WEIGHTS,
    "sub/dir/w.bin": NESTED_W,
    "sub/dir/deeper/x.safetensors": RNG.randbytes(300_000),
    "sub/readme.md": b"# the sub folder\n",
    "a b#1.txt": b"a name that needs percent-encoding\n",
    "\u00e9t\u00e9/\u00fcber.json": b'{"unicode": true}\n',
    "empty.txt": b"",
    "one.bin": b"1",  # LFS by its suffix, one byte
    "exact-chunk.safetensors": RNG.randbytes(CHUNK),
}

# A lighter repo with several revisions, for most tests.
SMALL = {
    "config.json": CONFIG,
    "model.safetensors": RNG.randbytes(3 * MiB + 99),
    "sub/dir/w.bin": RNG.randbytes(200_000),
    "sub/notes.txt": b"notes of main\n",
    "\u00e9t\u00e9 x/a#1 b.txt": b"a folder and a file to percent-encode\n",
}
V1 = {
    "config.json": b'{"model_type": "tiny", "version": 1}',
    "model.safetensors": RNG.randbytes(2 * MiB + 5),
    "sub/notes.txt": b"notes of v1\n",
}
PR1 = {**SMALL, "config.json": b'{"model_type": "tiny", "pr": 1}',
       "sub/dir/w.bin": RNG.randbytes(150_000),
       "sub/added.txt": b"added by the pull request\n"}


# ---- helpers ----------------------------------------------------------------

def hf_env(tmp_path, **more):
    """A clean Hugging Face environment for the daemon: no token, no
    endpoint, not offline, an empty HF_HOME; then more."""
    env = {"HF_TOKEN": None, "HUGGING_FACE_HUB_TOKEN": None,
           "HF_TOKEN_PATH": None, "HF_ENDPOINT": None, "HF_HUB_OFFLINE": None,
           "HF_HUB_CACHE": None, "HUGGINGFACE_HUB_CACHE": None,
           "HF_HOME": str(tmp_path / "hf-home")}
    env.update(more)
    return env


def token_file(tmp_path, token=TOKEN):
    p = tmp_path / "token"
    p.write_text(token + "\n")
    return p


def opts(srv, *more):
    return [f"endpoint={srv.url}", f"chunk_size={CHUNK // MiB}M", *more]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def expected_sizes(files, under=""):
    """{path relative to under: size} of a files dict."""
    pre = under.rstrip("/") + "/" if under else ""
    return {p[len(pre):]: len(d) for p, d in files.items()
            if p.startswith(pre)}


def assert_mounted_exact(mnt, files, under=""):
    """The mount holds exactly files (below under), byte for byte."""
    want = expected_sizes(files, under)
    got, _ = tree_files(mnt)
    assert got == want
    pre = under.rstrip("/") + "/" if under else ""
    for rel in want:
        data = read(mnt / rel)
        assert sha256(data) == sha256(files[pre + rel]), f"{rel} differs"


def hub_entries(log, srv):
    """Access log entries sent to the Hub host (127.0.0.1)."""
    return [e for e in log if e["host"] == f"127.0.0.1:{srv.port}"]


def cdn_entries(log, srv):
    """Access log entries sent to the CDN host (localhost)."""
    return [e for e in log if e["host"] == f"localhost:{srv.port}"]


def cdn_path(info, rel, rev=None):
    return f"/__lfs/{info.type}s/{info.id}/{info.files(rev)[rel]['sha256']}"


def resolve_gets(log, info, rel, commit):
    """GETs of rel's /resolve URL at commit (decoded path, any status)."""
    path = f"/{info.url_prefix}{info.id}/resolve/{commit}/{rel}"
    return [e for e in log if e["method"] == "GET" and e["path"] == path]


def poll(fn, timeout_s, step_s=0.05):
    """Calls fn until it returns a true value (returned) or timeout_s
    passes (then the last value)."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step_s)


def run_failing_mount(mount, source, options, env, foreground=True,
                      timeout_s=60):
    """Runs `hollowfs [-f] ... SOURCE MNT`, expecting it to fail before
    mounting: returns (exit status, stderr lines, stdout, seconds)."""
    t0 = time.monotonic()
    r = subprocess.run(mount.command(source, options, foreground),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout_s, env=daemon_env(env))
    took = time.monotonic() - t0
    if r.returncode == 0 or is_mounted(mount.mnt):
        fusermount_u(mount.mnt, lazy=True)
    return r.returncode, r.stderr.splitlines(), r.stdout, took


# ---- 1. a model repo: sizes, bytes, and the token never sent to the CDN -----

def test_model_repo_bytes_and_no_token_to_cdn(hub, make_mount, tmp_path):
    info = hub.repo("acme/model", MODEL, private=True, token=TOKEN,
                    extra={"cdn_reject_auth": True})
    srv = hub.start()
    mount = make_mount("model")
    mount.start("hf://acme/model",
                opts(srv, f"token_file={token_file(tmp_path)}",
                     "debug=http"),
                env=hf_env(tmp_path))
    mnt = mount.path()

    # Sizes (LFS sizes from the listing, not pointer sizes) before a read.
    files, dirs = tree_files(mnt)
    assert files == expected_sizes(MODEL)
    assert {"sub", "sub/dir", "sub/dir/deeper", "\u00e9t\u00e9"} <= dirs
    for rel in MODEL:
        assert cached_bytes(mnt / rel) == 0, rel
    log = settled_log(srv)
    assert not [e for e in log if "/resolve/" in e["path"]
                or e["path"].startswith("/__lfs/")], \
        "listing the mount fetched file bytes"

    for rel, data in MODEL.items():
        got = read(mnt / rel)
        assert len(got) == len(data), rel
        assert sha256(got) == sha256(data), f"{rel} differs"
        assert cached_bytes(mnt / rel) == len(data), rel
    assert os.getxattr(mnt / "model.safetensors", "user.hollowfs.sha256"
                       ).rstrip(b"\0").decode() == sha256(WEIGHTS)

    log = settled_log(srv)
    hub_side, cdn_side = hub_entries(log, srv), cdn_entries(log, srv)
    assert len(hub_side) + len(cdn_side) == len(log), \
        f"requests to an unexpected host: {log}"
    # Every Hub request carried the token; the CDN never saw one.
    assert hub_side and all(e["authorization"] == f"Bearer {TOKEN}"
                            for e in hub_side), hub_side
    assert cdn_side and not any(e["auth"] for e in cdn_side), cdn_side
    lfs = [rel for rel in MODEL if info.files()[rel]["lfs"]]
    assert set(lfs) == {"model.safetensors", "sub/dir/w.bin",
                        "sub/dir/deeper/x.safetensors", "one.bin",
                        "exact-chunk.safetensors"}
    for rel in lfs:
        assert_served_once(log, cdn_path(info, rel), len(MODEL[rel]))
    for rel in set(MODEL) - set(lfs) - {"empty.txt"}:  # from the Hub
        path = f"/acme/model/resolve/{info.commit}/{rel}"
        assert_served_once(log, path, len(MODEL[rel]))
    # Pinned: every /resolve names the commit, never "main".
    resolves = [e["path"] for e in log if "/resolve/" in e["path"]]
    assert resolves and all(f"/resolve/{info.commit}/" in p
                            for p in resolves), resolves
    mount.umount()
    assert TOKEN not in mount.log_text(), "the token reached the log"


TOKEN_CASES = {
    # id: (env, whether -o token_file= (TOKEN) is given, repo)
    "HF_TOKEN": ({"HF_TOKEN": TOKEN}, False, "private"),
    "HUGGING_FACE_HUB_TOKEN": ({"HUGGING_FACE_HUB_TOKEN": TOKEN}, False,
                               "private"),
    "HF_TOKEN_PATH": ({"HF_TOKEN_PATH": "{tmp}/tok"}, False, "private"),
    "HF_HOME-token": ({}, False, "private"),  # {tmp}/hf-home/token
    "option-over-env": ({"HF_TOKEN": BOGUS}, True, "private"),
    "HF_TOKEN-over-file": ({"HF_TOKEN": TOKEN, "HF_TOKEN_PATH": "{tmp}/bad"},
                           False, "private"),
    "gated-approved": ({"HF_TOKEN": TOKEN}, False, "gated"),
}


@pytest.mark.parametrize("case", sorted(TOKEN_CASES))
def test_token_sources(case, hub, make_mount, tmp_path):
    env_more, use_option, kind = TOKEN_CASES[case]
    files = {"config.json": CONFIG, "w.safetensors": NESTED_W}
    info = hub.repo("acme/secret", files, token=TOKEN,
                    private=kind == "private", gated=kind == "gated",
                    extra={"cdn_reject_auth": True})
    hub.token(BOGUS)  # valid, but granted nothing
    srv = hub.start()
    (tmp_path / "tok").write_text(f"  {TOKEN}\r\n")
    (tmp_path / "bad").write_text(BOGUS)
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text(TOKEN + "\n")
    env = hf_env(tmp_path, **{k: v.format(tmp=tmp_path)
                              for k, v in env_more.items()})
    extra = [f"token_file={token_file(tmp_path)}"] if use_option else []
    mount = make_mount("tok")
    mount.start("hf://acme/secret", opts(srv, *extra), env=env)
    assert_mounted_exact(mount.path(), files)
    log = settled_log(srv)
    hub_side, cdn_side = hub_entries(log, srv), cdn_entries(log, srv)
    assert hub_side and all(e["authorization"] == f"Bearer {TOKEN}"
                            for e in hub_side), hub_side
    assert cdn_side and not any(e["auth"] for e in cdn_side)
    assert_served_once(log, cdn_path(info, "w.safetensors"), len(NESTED_W))
    mount.umount()
    assert TOKEN not in mount.log_text() and BOGUS not in mount.log_text()


def test_resolve_cache_redirects(hub, make_mount, tmp_path):
    """Regular files answered with the Hub's relative 307 to
    /api/resolve-cache/... (HF-API.md 3.1 A): followed on the Hub, with
    the token."""
    files = {"config.json": CONFIG, "tokenizer.json": TOKENIZER,
             "sub/readme.md": b"# sub\n", "w.safetensors": NESTED_W}
    info = hub.repo("acme/rc", files, private=True, token=TOKEN,
                    extra={"resolve_cache": True})
    srv = hub.start()
    mount = make_mount("rc")
    mount.start("hf://acme/rc", opts(srv), env=hf_env(tmp_path,
                                                       HF_TOKEN=TOKEN))
    assert_mounted_exact(mount.path(), files)
    log = settled_log(srv)
    for rel in ("config.json", "tokenizer.json", "sub/readme.md"):
        path = f"/api/resolve-cache/models/acme/rc/{info.commit}/{rel}"
        assert_served_once(log, path, len(files[rel]))
        assert all(e["authorization"] == f"Bearer {TOKEN}"
                   for e in log if e["path"] == path)
        assert [e for e in resolve_gets(log, info, rel, info.commit)
                if e["status"] == 307]
    assert not any(e["auth"] for e in cdn_entries(log, srv))
    mount.umount()


# ---- 2. revisions, subfolders, datasets -------------------------------------

REVISION_CASES = {
    # id: (source suffix, files, subfolder of files that is mounted)
    "commit": ("@{v1}", "v1", ""),
    "tag": ("@v1.0", "v1", ""),
    "branch-alias-of-tag": ("@stable", "v1", ""),
    "pr": ("@refs/pr/1", "pr", ""),
    "pr-subfolder": ("@refs/pr/1/sub", "pr", "sub"),
    "subfolder": ("/sub", "main", "sub"),
    "nested-subfolder-at-tag": ("@v1.0/sub", "v1", "sub"),
    "short-commit": ("@{v1_short}", "v1", ""),
    "branch-with-slash": ("@feat%2Fx", "v1", ""),
    "subfolder-to-encode": ("/\u00e9t\u00e9 x", "main", "\u00e9t\u00e9 x"),
}


@pytest.mark.parametrize("case", sorted(REVISION_CASES))
def test_revisions_and_subfolders(case, hub, make_mount, tmp_path):
    suffix, which, under = REVISION_CASES[case]
    info = hub.repo("acme/revs", SMALL,
                    revisions={"v1": V1, "v1.0": "v1", "stable": "v1.0",
                               "refs/pr/1": PR1, "feat/x": "v1"})
    commit = info.revisions[{"v1": "v1", "pr": "refs/pr/1",
                             "main": "main"}[which]]
    files = {"v1": V1, "pr": PR1, "main": SMALL}[which]
    assert len(set(info.revisions.values())) == 3
    srv = hub.start()
    mount = make_mount("revs")
    v1 = info.revisions["v1"]
    source = "hf://acme/revs" + suffix.format(v1=v1, v1_short=v1[:7])
    mount.start(source, opts(srv), env=hf_env(tmp_path))
    assert_mounted_exact(mount.path(), files, under)
    log = settled_log(srv)
    resolves = [e["path"] for e in log if "/resolve/" in e["path"]]
    assert resolves and all(p.startswith(f"/acme/revs/resolve/{commit}/")
                            for p in resolves), resolves
    mount.umount()


@pytest.mark.parametrize("kind", ["dataset", "space"])
def test_dataset_and_space_repos(kind, hub, make_mount, tmp_path):
    data = {"data/train-00000-of-00001.parquet": RNG.randbytes(1 * MiB + 3),
            "data/test.csv": b"a,b\n1,2\n",
            "README.md": b"---\nlicense: mit\n---\n# a repo\n"}
    info = hub.repo("acme/data", data, repo_type=kind,
                    lfs=lambda p, d: p.endswith(".parquet"))
    # A model of the same name must not be what gets mounted.
    hub.repo("acme/data", {"config.json": b"{}"})
    srv = hub.start()
    mount = make_mount(kind)
    mount.start(f"hf://{kind}s/acme/data", opts(srv), env=hf_env(tmp_path))
    assert_mounted_exact(mount.path(), data)
    log = settled_log(srv)
    assert not [e for e in log if e["path"].startswith("/api/models/")]
    assert [e for e in log if e["path"] ==
            f"/api/{kind}s/acme/data/tree/{info.commit}"]
    resolves = {e["path"] for e in log if "/resolve/" in e["path"]}
    assert resolves == {f"/{kind}s/acme/data/resolve/{info.commit}/{p}"
                        for p in data}
    assert_served_once(log, cdn_path(
        info, "data/train-00000-of-00001.parquet"), 1 * MiB + 3)
    mount.umount()


# ---- 3. a listing of many pages ---------------------------------------------

def test_paginated_listing(hub, make_mount, tmp_path):
    files = {f"shard-{i:02d}.json": f'{{"shard": {i}}}'.encode()
             for i in range(9)}
    files.update({f"deep/d{i}/f{i}.txt": f"deep {i}\n".encode()
                  for i in range(4)})
    files["deep/w.safetensors"] = RNG.randbytes(70_000)
    info = hub.repo("acme/pages", files, page_size=3,
                    extra={"link_style": "alternate"})
    srv = hub.start()
    mount = make_mount("pages")
    mount.start("hf://acme/pages", opts(srv), env=hf_env(tmp_path))
    assert_mounted_exact(mount.path(), files)
    log = settled_log(srv)
    pages = [e for e in log
             if e["path"].startswith("/api/models/acme/pages/tree/")]
    # 14 files and 5 folders, 3 a page: 7 pages, relative and absolute
    # next links alike.
    assert len(pages) >= 4 and all(e["status"] == 200 for e in pages), pages
    assert len({e["query"] for e in pages}) == len(pages), \
        "a page was fetched twice"
    assert all(e["path"] == f"/api/models/acme/pages/tree/{info.commit}"
               for e in pages), "the listing was not pinned to the commit"
    mount.umount()

    # A subfolder listed in pages too (its next links keep the path).
    t0 = time.time()
    mount.start("hf://acme/pages/deep", opts(srv), env=hf_env(tmp_path))
    assert_mounted_exact(mount.path(), files, "deep")
    pages = [e for e in settled_log(srv) if e["t"] >= t0 and
             e["path"].startswith("/api/models/acme/pages/tree/")]
    assert len(pages) >= 3, pages
    assert all(e["status"] == 200 and e["path"] ==
               f"/api/models/acme/pages/tree/{info.commit}/deep"
               for e in pages), pages
    mount.umount()


# ---- 4. mount-time errors: one line, non-zero, nothing mounted --------------

TINY = {"config.json": b'{"model_type": "tiny"}', "w.safetensors": b"w" * 999,
        "sub/notes.txt": b"notes\n"}
NO_SUCH_COMMIT = "0123456789abcdef0123456789abcdef01234567"
ERROR_CASES = {
    # id: (source, HF_TOKEN, faults, message); {url} is the endpoint.
    "gated-anonymous": (
        "hf://acme/gated", None, None,
        "'acme/gated' is gated: accept its terms on the Hub and set "
        "HF_TOKEN"),
    "gated-not-approved": (
        "hf://acme/gated", OTHER, None,
        "'acme/gated' is gated: accept its terms on the Hub and set "
        "HF_TOKEN"),
    "gated-listing-denied": (  # the Hub of 2024: metadata is gated too
        "hf://acme/gated-deny", None, None,
        "'acme/gated-deny' is gated: accept its terms on the Hub and set "
        "HF_TOKEN"),
    "private-anonymous": (
        "hf://acme/private", None, None,
        "'acme/private' not found, or private: set HF_TOKEN"),
    "private-other-token": (
        "hf://acme/private", OTHER, None,
        "'acme/private' not found, or private: the token given cannot "
        "read it"),
    "missing-anonymous": (
        "hf://acme/nothing-here", None, None,
        "'acme/nothing-here' not found, or private: set HF_TOKEN"),
    "missing-dataset": (  # the model exists, the dataset does not
        "hf://datasets/acme/public", None, None,
        "not found, or private: set HF_TOKEN"),
    "bad-token": (
        "hf://acme/public", BOGUS, None,
        "the token was refused by {url} (HTTP 401): check HF_TOKEN"),
    "disabled": (
        "hf://acme/disabled", None, None,
        "'acme/disabled' is disabled on {url} (HTTP 403)"),
    "missing-revision": (
        "hf://acme/public@no-such-rev", None, None,
        "revision 'no-such-rev' not found in acme/public"),
    "missing-pr": (
        "hf://acme/public@refs/pr/99", None, None,
        "revision 'refs/pr/99' not found in acme/public"),
    "missing-commit": (
        "hf://acme/public@" + NO_SUCH_COMMIT, None, None,
        f"revision '{NO_SUCH_COMMIT}' not found in acme/public"),
    "missing-subfolder": (
        "hf://acme/public/no/such/dir", None, None,
        "subfolder 'no/such/dir' not found in acme/public@main"),
    "subfolder-is-a-file": (  # the Hub's /tree says EntryNotFound
        "hf://acme/public/sub/notes.txt", None, None,
        "subfolder 'sub/notes.txt' not found in acme/public@main"),
    "rate-limited": (
        "hf://acme/public", None,
        {"/api/models/acme/public/revision/main": {
            "status": 429, "ratelimit": '"api";r=0;t=0',
            "retry_after": 0}},
        "rate limited by {url} (HTTP 429): try again later"),
    "rate-limited-listing": (
        "hf://acme/public", None,
        {"/api/models/acme/public/tree/{commit}": {
            "status": 429, "ratelimit": '"api";r=0;t=0'}},
        "rate limited by {url} (HTTP 429): try again later"),
    "hub-unreachable": (
        "hf://acme/public", None, None,
        "'hf://acme/public' unreachable (Connection refused) and no "
        "snapshot of it in the cache"),
}


# Without -f, a few: the parent prints what the child says.
DAEMON_ERROR_CASES = ["bad-token", "gated-anonymous", "hub-unreachable",
                      "missing-revision", "private-anonymous", "rate-limited"]


@pytest.mark.parametrize("case,mode", [
    (c, "foreground") for c in sorted(ERROR_CASES)] + [
    (c, "daemon") for c in DAEMON_ERROR_CASES])
def test_mount_errors(case, mode, hub, make_mount, tmp_path):
    """foreground: -f with -o log=FILE, so stderr has only what stops the
    mount; daemon: no -f, the parent reports the child's failure."""
    source, token, faults, message = ERROR_CASES[case]
    public = hub.repo("acme/public", TINY)
    hub.repo("acme/private", TINY, private=True, token=TOKEN)
    hub.repo("acme/gated", TINY, gated=True, token=TOKEN)
    hub.repo("acme/gated-deny", TINY, gated="manual", token=TOKEN,
             extra={"gated_listing": "deny"})
    hub.repo("acme/disabled", TINY, extra={"disabled": True})
    hub.token(OTHER)
    if faults:
        faults = {k.format(commit=public.commit): v
                  for k, v in faults.items()}
    srv = hub.start(faults=faults)
    endpoint = srv.url
    if case == "hub-unreachable":
        srv.stop()
    message = message.format(url=endpoint)
    env = hf_env(tmp_path, **({"HF_TOKEN": token} if token else {}))
    mount = make_mount("err")
    options = [f"endpoint={endpoint}", "retries=1"]
    log_file = tmp_path / "daemon.log"
    if mode == "foreground":
        options.append(f"log={log_file}")
    rc, err, out, took = run_failing_mount(
        mount, source, options, env, foreground=mode == "foreground")
    assert rc == 1, f"exit status {rc}: {err}"
    assert len(err) == 1 and err[0].startswith("hollowfs: ") and \
        message in err[0], f"expected one line with {message!r}, got {err}"
    assert out == ""
    assert not is_mounted(mount.mnt)
    assert os.listdir(mount.mnt) == []
    assert took < 20, f"took {took:.1f} s to fail"
    if token:
        assert token not in err[0]
    if mode == "foreground" and log_file.exists():
        text = log_file.read_text()
        assert not token or token not in text
        bad = [line for line in text.splitlines() if BAD_LINE.search(line)]
        assert not bad, f"unexpected lines in the daemon log: {bad}"
    if case != "hub-unreachable":
        log = settled_log(srv)
        assert log, "the Hub was never asked"
        assert not [e for e in log if "/resolve/" in e["path"]
                    and e["method"] == "GET"
                    and e["status"] in (200, 206)], \
            "file bytes were fetched by a mount that failed"
        assert all(e["authorization"] == (f"Bearer {token}" if token
                                          else None) for e in log)


# ---- 5. corrupted bytes from the CDN ----------------------------------------

def test_corrupt_cdn_file_is_caught(hub, make_mount, tmp_path):
    files = {"config.json": CONFIG,
             "bad.safetensors": RNG.randbytes(3 * MiB + 17),
             "good.safetensors": RNG.randbytes(2 * MiB + 1),
             "small/inverted.bin": RNG.randbytes(100_000)}
    flip_at = 2 * MiB + 12345
    info = hub.repo("acme/corrupt", files,
                    corrupt_cdn={"bad.safetensors": flip_at,
                                 "small/inverted.bin": True})
    inverted = bytes(b ^ 0xFF for b in files["small/inverted.bin"])
    srv = hub.start()
    hfc = tmp_path / "hf-hub-cache"
    mount = make_mount("corrupt")
    mount.start("hf://acme/corrupt", opts(srv, f"hf_cache={hfc}"),
                env=hf_env(tmp_path))
    mnt = mount.path()
    bad = bytearray(files["bad.safetensors"])
    bad[flip_at] ^= 0xFF
    want = sha256(files["bad.safetensors"])
    mount.allow(r"error: state: 'bad\.safetensors' is corrupt: sha256 "
                + sha256(bad) + ", expected " + want + "; ",
                r"warning: fs: read failed for 'bad\.safetensors': ",
                r"error: state: 'small/inverted\.bin' is corrupt: sha256 "
                + sha256(inverted) + ", expected "
                + sha256(files["small/inverted.bin"]) + "; ",
                r"warning: fs: read failed for 'small/inverted\.bin': ")

    # The first full read fails: its last piece is held until the verdict
    # (the file is hashed as it lands) and gets EIO, never the corrupt
    # bytes; so does a one-chunk file's first and only read.
    kept = os.open(mnt / "bad.safetensors", os.O_RDONLY)  # open throughout
    with pytest.raises(OSError) as ei:
        read(mnt / "bad.safetensors")
    assert ei.value.errno == errno.EIO
    with pytest.raises(OSError) as ei:
        read(mnt / "small/inverted.bin")
    assert ei.value.errno == errno.EIO

    def eio(rel="bad.safetensors"):
        try:
            read(mnt / rel)
        except OSError as e:
            assert e.errno == errno.EIO, e
            return True
        return False

    # At once, not eventually: a new open drops the kernel's pages of an
    # unchecked file, and the blob has failed before any EIO was sent.
    assert eio(), "a read right after the verdict succeeded"
    assert eio("small/inverted.bin")
    # From then on: EIO every time, whole file or any piece, never the
    # corrupt bytes from the page cache or the blob.
    for _ in range(5):
        assert eio()
        for off in (0, flip_at - 10, 3 * MiB):
            try:
                with open(mnt / "bad.safetensors", "rb") as f:
                    f.seek(off)
                    got = f.read(4096)
            except OSError as e:
                assert e.errno == errno.EIO, e
            else:
                raise AssertionError(f"read at {off} gave {len(got)} bytes")
        assert eio("small/inverted.bin")
        # Nor through a descriptor opened before the check (its pages go
        # with the invalidation that follows the verdict).
        with pytest.raises(OSError) as ei:
            os.pread(kept, 4096, flip_at - 100)
        assert ei.value.errno == errno.EIO
        time.sleep(0.1)
    os.close(kept)
    assert re.search(r"'bad\.safetensors' is corrupt: sha256 "
                     + sha256(bad) + ", expected " + want, mount.log_text())
    # The other files are fine.
    assert read(mnt / "good.safetensors") == files["good.safetensors"]
    assert read(mnt / "config.json") == CONFIG
    # Never exported: huggingface_hub would trust the blob unverified.
    good_in_hfc = poll(lambda: try_to_load_from_cache(
        str(hfc), "acme/corrupt", "good.safetensors"), 10.0)
    assert good_in_hfc and read(good_in_hfc) == files["good.safetensors"]
    assert try_to_load_from_cache(str(hfc), "acme/corrupt",
                                  "bad.safetensors") is None
    blobs = hfc / repo_folder("model", "acme/corrupt") / "blobs"
    assert want not in os.listdir(blobs)
    assert sha256(bad) not in os.listdir(blobs)
    mount.umount()

    # The server is fixed (same commit, CDN no longer corrupts): a remount
    # on the same cache fetches the file again and serves it exact.
    fixed = hub.repo("acme/corrupt", files)
    assert fixed.commit == info.commit
    t0 = time.time()
    mount.start("hf://acme/corrupt", opts(srv, f"hf_cache={hfc}"),
                env=hf_env(tmp_path))
    assert read(mnt / "bad.safetensors") == files["bad.safetensors"]
    assert read(mnt / "small/inverted.bin") == files["small/inverted.bin"]
    assert read(mnt / "good.safetensors") == files["good.safetensors"]
    exported = poll(lambda: try_to_load_from_cache(
        str(hfc), "acme/corrupt", "bad.safetensors"), 10.0)
    assert exported and read(exported) == files["bad.safetensors"]
    log = settled_log(srv)
    assert_served_once(log, cdn_path(info, "bad.safetensors"),
                       len(files["bad.safetensors"]), since=t0)
    assert bytes_served(log, cdn_path(info, "good.safetensors"),
                        since=t0) == 0
    mount.umount()


# ---- 6. an expired signed CDN URL, mid-read ---------------------------------

EXPIRY_CASES = ["sleep-past-expiry", "cdn-403-mid-file",
                "expired-on-arrival", "slow-cdn-with-readahead"]


@pytest.mark.parametrize("case", EXPIRY_CASES)
def test_expired_cdn_url_is_resolved_again(case, hub, make_mount, tmp_path):
    """sleep-past-expiry: the URL handed out for the head expires (1 s)
    before the rest is read; cdn-403-mid-file: the CDN answers 403
    AccessDenied to a URL that is not yet expired (clock skew, a revoked
    signature); expired-on-arrival: the first /resolve hands out a URL
    that expired 10 s ago; slow-cdn-with-readahead: 1 s URLs, a CDN at
    2 MiB/s a request, and the default readahead, so requests in flight
    and new ones straddle the expiry. Each time the engine resolves
    again, and the bytes are exact."""
    data = RNG.randbytes(6 * MiB + 333)
    info = hub.repo("acme/expiry", {"w.safetensors": data,
                                    "config.json": CONFIG},
                    extra={"cdn_expires_in": 1 if case in (
                        "sleep-past-expiry", "slow-cdn-with-readahead")
                        else 3600})
    resolve = info.resolve_path("w.safetensors")
    cdn = cdn_path(info, "w.safetensors")
    faults = None
    if case == "expired-on-arrival":
        faults = {resolve: {"expires_in": -10, "count": 1}}
    elif case == "slow-cdn-with-readahead":
        faults = {cdn: {"rate": 2 * MiB}}
    srv = hub.start(faults=faults)
    mount = make_mount("expiry")
    mount.start("hf://acme/expiry",
                opts(srv, *([] if case == "slow-cdn-with-readahead"
                            else ["readahead=0"])),
                env=hf_env(tmp_path))
    path = mount.path("w.safetensors")
    with open(path, "rb") as f:
        head = f.read(CHUNK)
        t_mid = time.time()
        if case == "sleep-past-expiry":
            time.sleep(2.2)
        elif case == "cdn-403-mid-file":
            srv.set_faults({cdn: {"status": 403, "count": 1}})
        rest = f.read()
    assert len(head + rest) == len(data)
    assert sha256(head + rest) == sha256(data)

    log = settled_log(srv)
    cdn_log = [e for e in log if e["path"] == cdn]
    resolves = [e for e in resolve_gets(log, info, "w.safetensors",
                                        info.commit) if e["status"] == 302]
    assert not any(e["auth"] for e in cdn_log)
    assert len(resolves) >= 2, f"resolved once only: {resolves}"
    # Every 403 from the CDN is followed by a new /resolve, then by bytes
    # from the new URL. By when requests began ("t0"): a line is written
    # once its answer is sent, so the /resolve that the 403 caused may be
    # logged before the 403 itself.
    denied = [e for e in cdn_log if e["status"] == 403]
    for e in denied:
        assert [r for r in resolves if r["t0"] > e["t0"]], \
            f"no /resolve after the 403 at {e['t0']}: {resolves}"
    if case == "sleep-past-expiry":
        # A 403 or a URL known to be stale: either way a fresh one.
        assert [r for r in resolves if r["t"] > t_mid + 2.0], resolves
    elif case == "slow-cdn-with-readahead":
        pass  # two resolves at least, and every 403 followed by one
    else:
        assert denied, f"the CDN never answered 403: {cdn_log}"
        if case == "cdn-403-mid-file":
            assert all(e["t"] > t_mid for e in denied)
    # 206 answers only come from valid URLs; together they are the file,
    # once (a 403 sends no file bytes).
    assert_served_once(log, cdn, len(data))
    mount.umount()


# ---- 7. offline remounts ----------------------------------------------------

def offline_checks(mnt, files, t_limit_s=3.0):
    """The cached file is exact, the partly cached one serves its head,
    and uncached bytes fail with EIO promptly."""
    got, _ = tree_files(mnt)
    assert got == expected_sizes(files)
    assert read(mnt / "config.json") == files["config.json"]
    weights = files["model.safetensors"]
    with open(mnt / "model.safetensors", "rb") as f:
        assert os.pread(f.fileno(), 4096, 0) == weights[:4096]
    for rel, off in (("sub/dir/w.bin", 0),
                     ("model.safetensors", len(weights) - 50)):
        t0 = time.monotonic()
        with pytest.raises(OSError) as ei:
            with open(mnt / rel, "rb") as f:
                os.pread(f.fileno(), 4096, off)
        took = time.monotonic() - t0
        assert ei.value.errno == errno.EIO, (rel, ei.value)
        assert took < t_limit_s, f"{rel}: EIO after {took:.1f} s"
    assert read(mnt / "config.json") == files["config.json"]


@pytest.mark.parametrize("how", ["option", "env", "server-gone"])
def test_offline_remount(how, hub, make_mount, tmp_path):
    info = hub.repo("acme/off", SMALL)
    srv = hub.start()
    mount = make_mount("off")
    mount.start("hf://acme/off", opts(srv, "readahead=0"),
                env=hf_env(tmp_path))
    mnt = mount.path()
    assert read(mnt / "config.json") == CONFIG
    weights = SMALL["model.safetensors"]
    with open(mnt / "model.safetensors", "rb") as f:
        assert os.pread(f.fileno(), 4096, 0) == weights[:4096]
    # The head is cached, the tail is not.
    assert CHUNK <= cached_at_least(mnt / "model.safetensors",
                                    CHUNK) <= 2 * CHUNK
    assert cached_bytes(mnt / "sub/dir/w.bin") == 0
    mount.umount()
    srv.stop()

    extra, env = [], hf_env(tmp_path)
    if how == "option":
        extra = ["offline"]
    elif how == "env":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        extra = ["retries=0", "connect_timeout=2"]
        mount.allow(r"warning: fs: 'hf://acme/off' is unreachable: serving "
                    r"snapshot " + info.commit + " saved in the cache",
                    r"error: fetch: range GET of '(sub/dir/w\.bin|"
                    r"model\.safetensors)' chunks \d+-\d+ failed: Failed to "
                    r"connect to 127\.0\.0\.1 port %d " % srv.port)
    # Reads of uncached bytes fail, and say why.
    mount.allow(r"warning: fs: read failed for '(sub/dir/w\.bin|"
                r"model\.safetensors)': ")
    t0 = time.monotonic()
    mount.start("hf://acme/off", opts(srv, *extra), env=env)
    assert time.monotonic() - t0 < 10
    offline_checks(mnt, SMALL)
    text = mount.log_text().split("=== run 2")[1]
    if how == "server-gone":
        assert "is unreachable: serving snapshot " + info.commit in text
    else:
        assert "offline: serving snapshot " + info.commit in text
        assert "unreachable" not in text
    mount.umount()
    # Nothing was asked of the (stopped) server's port meanwhile: the
    # offline mounts never even tried.
    if how != "server-gone":
        assert "127.0.0.1:%d" % srv.port not in text.replace(
            "endpoint=" + srv.url, "")


def test_offline_revisions_and_push(hub, make_mount, tmp_path):
    """Offline, a revision is what it last resolved to on this cache: a
    tag and a branch resolved before, a full commit, the branch after a
    push; a revision never resolved here fails in one line."""
    info = hub.repo("acme/off", SMALL, revisions={"v1": V1})
    old_main = info.commit
    srv = hub.start()
    mount = make_mount("off")
    for rev in ("main", "v1"):
        mount.start(f"hf://acme/off@{rev}", opts(srv), env=hf_env(tmp_path))
        assert read(mount.path("config.json")) == \
            {"main": SMALL, "v1": V1}[rev]["config.json"]
        mount.umount()
    # A push to main; an online mount sees it and remembers it.
    pushed = {**SMALL, "config.json": b'{"pushed": true}'}
    info = hub.repo("acme/off", pushed, keep_old_commits=True)
    assert info.commit != old_main
    mount.start("hf://acme/off", opts(srv), env=hf_env(tmp_path))
    assert read(mount.path("config.json")) == b'{"pushed": true}'
    mount.umount()
    srv.stop()

    for source, files in (("hf://acme/off", pushed),
                          ("hf://acme/off@main", pushed),
                          ("hf://acme/off@v1", V1)):
        mount.start(source, opts(srv, "offline"), env=hf_env(tmp_path))
        got, _ = tree_files(mount.path())
        assert got == expected_sizes(files), source
        assert read(mount.path("config.json")) == files["config.json"], \
            source
        mount.umount()
    # refs/pr/1 was never resolved on this cache: nothing to serve.
    rc, err, out, _ = run_failing_mount(
        mount, "hf://acme/off@refs/pr/1", opts(srv, "offline"),
        hf_env(tmp_path))
    assert rc == 1 and len(err) == 1 and err[0].startswith("hollowfs: "), \
        err
    assert "refs/pr/1" in err[0]
    assert not is_mounted(mount.mnt)


@pytest.mark.parametrize("how", ["offline", "server-gone"])
def test_offline_full_commit_saved_via_branch(how, hub, make_mount,
                                              tmp_path):
    """HF-API.md 6.5: a 40-hex revision is the commit itself. A snapshot
    saved when main pointed at it serves hf://...@<commit> offline."""
    info = hub.repo("acme/off", SMALL)
    srv = hub.start()
    mount = make_mount("off")
    mount.start("hf://acme/off", opts(srv), env=hf_env(tmp_path))
    assert read(mount.path("config.json")) == CONFIG
    mount.umount()
    srv.stop()
    extra = ["offline"] if how == "offline" else ["retries=0"]
    if how == "server-gone":
        mount.allow(r"warning: fs: 'hf://acme/off@" + info.commit
                    + "' is unreachable: serving snapshot " + info.commit)
    mount.start(f"hf://acme/off@{info.commit}", opts(srv, *extra),
                env=hf_env(tmp_path))
    got, _ = tree_files(mount.path())
    assert got == expected_sizes(SMALL)
    assert read(mount.path("config.json")) == CONFIG
    mount.umount()


# ---- 8. export into a huggingface_hub cache ---------------------------------

def repo_folder(repo_type, repo_id):
    return f"{repo_type}s--" + repo_id.replace("/", "--")


def try_to_load_from_cache(cache_dir, repo_id, filename, revision="main",
                           repo_type="model"):
    """huggingface_hub's try_to_load_from_cache (HF-API.md 6.5): the file
    path in the cache, or None. refs/<revision> is read without strip(),
    as it does; a 40-hex revision is taken as the commit."""
    repo_cache = os.path.join(cache_dir, repo_folder(repo_type, repo_id))
    if not os.path.isdir(repo_cache):
        return None
    refs_dir = os.path.join(repo_cache, "refs")
    snapshots_dir = os.path.join(repo_cache, "snapshots")
    ref = os.path.join(refs_dir, revision)
    if os.path.isfile(ref):
        with open(ref) as f:
            revision = f.read()
    if not os.path.isdir(snapshots_dir):
        return None
    cached_shas = os.listdir(snapshots_dir)
    if revision not in cached_shas:
        return None
    cached_file = os.path.join(snapshots_dir, revision, filename)
    return cached_file if os.path.isfile(cached_file) else None


def scan_repo_cache(repo_cache):
    """huggingface_hub's scan_cache_dir rules for one repo folder: returns
    ({commit: {path: blob realpath}}, {ref: commit}, {blob name: size});
    raises AssertionError where it raises CorruptedCacheException."""
    snapshots = os.path.join(repo_cache, "snapshots")
    blobs_dir = os.path.join(repo_cache, "blobs")
    refs_dir = os.path.join(repo_cache, "refs")
    assert os.path.isdir(snapshots), "Snapshots dir doesn't exist in cache"
    assert not os.path.isfile(refs_dir), "Refs directory cannot be a file"
    blobs = {}
    for name in os.listdir(blobs_dir):
        st = os.lstat(os.path.join(blobs_dir, name))
        assert not name.endswith(".incomplete"), f"left over: {name}"
        assert os.path.isfile(os.path.join(blobs_dir, name)), name
        blobs[name] = st.st_size
    revs = {}
    for commit in os.listdir(snapshots):
        rev_dir = os.path.join(snapshots, commit)
        assert os.path.isdir(rev_dir), \
            f"Snapshots folder corrupted: {rev_dir} is not a folder"
        files = {}
        for dirpath, _, names in os.walk(rev_dir):
            for name in names:
                p = os.path.join(dirpath, name)
                blob = os.path.realpath(p)
                assert os.path.exists(blob), f"Blob missing (broken " \
                    f"symlink): {p}"
                assert os.path.dirname(blob) == os.path.realpath(blobs_dir)
                assert os.path.islink(p) and not os.path.isabs(
                    os.readlink(p)), f"{p}: not a relative symlink"
                files[os.path.relpath(p, rev_dir)] = blob
        revs[commit] = files
    refs = {}
    if os.path.isdir(refs_dir):
        for dirpath, _, names in os.walk(refs_dir):
            for name in names:
                p = os.path.join(dirpath, name)
                with open(p) as f:
                    refs[os.path.relpath(p, refs_dir)] = f.read()
    missing = set(refs.values()) - set(revs)
    assert not missing, f"Reference(s) refer to missing commit hashes: " \
        f"{missing}"
    return revs, refs, blobs


class BlobWatcher(threading.Thread):
    """Watches blobs/ of a huggingface_hub repo folder while files are
    read, recording any blob named after an etag whose size is not the
    final one (a partial file where huggingface_hub trusts it whole)."""

    def __init__(self, blobs_dir, sizes_by_etag):
        super().__init__(daemon=True)
        self.blobs_dir, self.sizes = blobs_dir, sizes_by_etag
        self.stop_ev = threading.Event()
        self.partial, self.seen = [], set()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                names = os.listdir(self.blobs_dir)
            except FileNotFoundError:
                names = []
            for name in names:
                if name not in self.sizes:
                    continue
                try:
                    size = os.stat(os.path.join(self.blobs_dir, name)).st_size
                except FileNotFoundError:
                    continue
                self.seen.add(name)
                if size != self.sizes[name]:
                    self.partial.append((name, size))
            time.sleep(0.005)

    def stop(self):
        self.stop_ev.set()
        self.join()


def test_hf_cache_export(hub, make_mount, tmp_path):
    info = hub.repo("acme/export", SMALL, revisions={"refs/pr/1": PR1})
    srv = hub.start()
    hfc = tmp_path / "hf-hub-cache"
    repo_cache = hfc / repo_folder("model", "acme/export")
    sizes = {m["etag"]: m["size"] for rev in ("main", "refs/pr/1")
             for m in info.files(rev).values()}
    watcher = BlobWatcher(str(repo_cache / "blobs"), sizes)
    watcher.start()
    main = info.revisions["main"]
    try:
        # The third mount finds everything in its own cache already.
        for rev, files in (("main", SMALL), ("refs/pr/1", PR1),
                           (main, SMALL)):
            mount = make_mount("export-" + rev.replace("/", "-"),
                               cache=tmp_path / "cache")
            source = "hf://acme/export" + ("" if rev == "main"
                                           else "@" + rev)
            mount.start(source, opts(srv, f"hf_cache={hfc}"),
                        env=hf_env(tmp_path))
            for rel, data in files.items():
                assert read(mount.path(rel)) == data, rel

            def exported():
                return all(try_to_load_from_cache(str(hfc), "acme/export",
                                                  rel, rev)
                           for rel in files)
            assert poll(exported, 10.0), \
                f"not all of {rev} exported after 10 s"
            mount.umount()
    finally:
        watcher.stop()
    assert not watcher.partial, f"partial blobs seen: {watcher.partial}"
    assert watcher.seen == set(sizes)

    revs, refs, blobs = scan_repo_cache(str(repo_cache))
    # No refs/<commit>: huggingface_hub writes refs for names only.
    assert refs == {"main": info.revisions["main"],
                    "refs/pr/1": info.revisions["refs/pr/1"]}
    with open(repo_cache / "refs" / "main", "rb") as f:
        assert f.read() == info.revisions["main"].encode(), "a newline?"
    assert set(revs) == {info.revisions["main"], info.revisions["refs/pr/1"]}
    assert blobs == sizes  # each content once, named by its etag
    for rev, files in (("main", SMALL), ("refs/pr/1", PR1)):
        commit = info.revisions[rev]
        meta = info.files(rev)
        assert set(revs[commit]) == set(files)
        for rel, data in files.items():
            blob = revs[commit][rel]
            assert os.path.basename(blob) == meta[rel]["etag"], rel
            assert len(meta[rel]["etag"]) == (64 if meta[rel]["lfs"]
                                              else 40), rel
            p = try_to_load_from_cache(str(hfc), "acme/export", rel, rev)
            assert os.path.realpath(p) == blob
            assert read(p) == data, rel
            # One "../" per folder level, as huggingface_hub computes it.
            link = os.readlink(os.path.join(
                repo_cache, "snapshots", commit, rel))
            assert link == "../" * (rel.count("/") + 2) + "blobs/" + \
                meta[rel]["etag"], (rel, link)
    # The unchanged weights are one blob in both snapshots.
    assert revs[info.revisions["main"]]["model.safetensors"] == \
        revs[info.revisions["refs/pr/1"]]["model.safetensors"]


def test_hf_cache_export_dataset_subfolder_at_tag(hub, make_mount,
                                                  tmp_path):
    """A dataset subfolder mounted at a tag: the snapshot paths are from
    the repo root, the ref is the tag's name, the folder datasets--."""
    data = {"data/train.parquet": RNG.randbytes(300_000),
            "data/nested/test.csv": b"a,b\n1,2\n",
            "README.md": b"# ds\n"}
    info = hub.repo("acme/ds", {"README.md": b"# old\n"},
                    repo_type="dataset", revisions={"v2.0": data},
                    lfs=lambda p, d: p.endswith(".parquet"))
    srv = hub.start()
    hfc = tmp_path / "hf-hub-cache"
    mount = make_mount("ds")
    mount.start("hf://datasets/acme/ds@v2.0/data",
                opts(srv, f"hf_cache={hfc}"), env=hf_env(tmp_path))
    assert_mounted_exact(mount.path(), data, "data")

    def exported():
        return all(try_to_load_from_cache(str(hfc), "acme/ds", rel, "v2.0",
                                          repo_type="dataset")
                   for rel in ("data/train.parquet", "data/nested/test.csv"))
    assert poll(exported, 10.0), "not exported after 10 s"
    mount.umount()
    repo_cache = hfc / repo_folder("dataset", "acme/ds")
    revs, refs, blobs = scan_repo_cache(str(repo_cache))
    commit = info.revisions["v2.0"]
    meta = info.files("v2.0")
    assert refs == {"v2.0": commit}
    assert set(revs) == {commit}
    assert set(revs[commit]) == {"data/train.parquet",
                                 "data/nested/test.csv"}
    assert blobs == {meta[p]["etag"]: meta[p]["size"] for p in revs[commit]}
    for rel in revs[commit]:
        assert read(revs[commit][rel]) == data[rel]
    assert not (hfc / repo_folder("model", "acme/ds")).exists()


# ---- 9. a file unchanged between revisions is stored once -------------------

def test_unchanged_file_shared_by_revisions(hub, make_mount, tmp_path):
    rev2 = {**SMALL, "config.json": b'{"model_type": "tiny", "rev": 2}',
            "sub/dir/w.bin": RNG.randbytes(100_000)}
    info = hub.repo("acme/dedup", SMALL, revisions={"rev2": rev2})
    c1, c2 = info.revisions["main"], info.revisions["rev2"]
    assert c1 != c2
    srv = hub.start()
    mount = make_mount("dedup")
    mount.start(f"hf://acme/dedup@{c1}", opts(srv), env=hf_env(tmp_path))
    assert_mounted_exact(mount.path(), SMALL)
    mount.umount()

    t2 = time.time()
    mount.start("hf://acme/dedup@rev2", opts(srv), env=hf_env(tmp_path))
    mnt = mount.path()
    # Unchanged files are complete before any read; changed ones empty.
    for rel in rev2:
        same = SMALL.get(rel) == rev2[rel]
        assert cached_bytes(mnt / rel) == (len(rev2[rel]) if same else 0), rel
    assert_mounted_exact(mnt, rev2)
    log = settled_log(srv)
    for rel in rev2:
        same = SMALL.get(rel) == rev2[rel]
        gets = [e for e in resolve_gets(log, info, rel, c2) if e["t"] >= t2]
        assert bool(gets) != same, (rel, gets)
    assert bytes_served(log, cdn_path(info, "model.safetensors"),
                        since=t2) == 0
    assert_served_once(log, cdn_path(info, "sub/dir/w.bin", "rev2"),
                       len(rev2["sub/dir/w.bin"]), since=t2)
    mount.umount()
