"""Tests of the fake Hugging Face Hub of scripts/testserver.py (--hub).

They talk to it with http.client only (no hollowfs), and check it against
/work/shared/HF-API.md: revision resolution, /tree pagination, paths-info,
/resolve direct and through the LFS CDN, signed URL expiry, errors, tokens
and faults. Run with: pytest-3 -q tests/integration/test_fakehub.py
"""

import gzip
import hashlib
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from testserver import (  # noqa: E402
    HUB_EPOCH, TestServer, add_hub_token, git_blob_oid, lfs_pointer,
    make_hub_repo, sign)

OWNER, APPROVED = "hf_owner", "hf_approved"  # granted access by repos
OTHER = "hf_other"  # valid (tokens.json) but granted nothing
BOGUS = "hf_bogus"  # not a token of this hub
RNG = random.Random(7)
WEIGHTS = RNG.randbytes(300_000)
BAD = RNG.randbytes(50_000)
ONE_OFF = RNG.randbytes(20_000)
TINY = {
    "config.json": b'{"model_type": "tiny"}',
    "README.md": b"# tiny\n",
    "model.safetensors": WEIGHTS,
    "bad.gguf": BAD,
    "one-off.bin": ONE_OFF,
    "a b#1.txt": b"space and hash",
    "\u00e9t\u00e9.txt": b"unicode",
    "big.txt": b"t" * ((1 << 20) + 1),  # over 1 MiB: LFS by size
    "weights/part-1.txt": b"p1",
    "weights/part-2.txt": b"p2",
    "weights/sub/deep.txt": b"deep",
    "docs/x.md": b"x",
}
PR_FILES = {**TINY, "config.json": b'{"model_type": "pr"}'}
OLD_FILES = {"config.json": b'{"model_type": "old"}', "README.md": b"# old\n"}
EXPECTED_TREE = {
    "dirs": {"docs", "weights", "weights/sub"},
    "files": set(TINY),
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub directory with a few repos; returns {name: HubRepoInfo}."""
    root = tmp_path_factory.mktemp("hub")
    repos = {
        "tiny": make_hub_repo(
            root, "acme/tiny", TINY, page_size=3,
            revisions={"refs/pr/1": PR_FILES, "v1.0": OLD_FILES,
                       "stable": "v1.0"},
            corrupt_cdn={"bad.gguf": True, "one-off.bin": 1234}),
        "alt": make_hub_repo(root, "acme/alt", TINY, page_size=2,
                             extra={"link_style": "alternate"}),
        "short": make_hub_repo(root, "acme/short", {"w.bin": b"w" * 100},
                               extra={"cdn_expires_in": 1}),
        "cache": make_hub_repo(root, "acme/cache", {"config.json": b"{}"},
                               extra={"resolve_cache": True}),
        "private": make_hub_repo(root, "acme/private", {"w.bin": b"p" * 10},
                                 private=True, token=OWNER),
        "gated": make_hub_repo(root, "acme/gated", {"w.bin": b"g" * 10,
                                                    "config.json": b"{}"},
                               gated=True, token=[APPROVED, OWNER]),
        "gated-deny": make_hub_repo(root, "acme/gated-deny",
                                    {"w.bin": b"g"}, gated="manual",
                                    token=APPROVED,
                                    extra={"gated_listing": "deny"}),
        "gated-redact": make_hub_repo(root, "acme/gated-redact",
                                      {"w.bin": b"g"}, gated=True,
                                      token=APPROVED,
                                      extra={"gated_listing": "redact"}),
        "disabled": make_hub_repo(root, "acme/disabled", {"a": b"a"},
                                  extra={"disabled": True}),
        "ds": make_hub_repo(root, "acme/ds",
                            {"data/train.parquet": b"D" * 2000,
                             "README.md": b"ds"},
                            repo_type="dataset",
                            lfs=lambda p, d: p.endswith(".parquet")),
        "sp": make_hub_repo(root, "acme/sp", {"app.py": b"print()"},
                            repo_type="space"),
    }
    add_hub_token(root, OTHER)
    return root, repos


@pytest.fixture(scope="module")
def module_server(hub, tmp_path_factory):
    with TestServer(None, tmp_path_factory.mktemp("srv"), hub=hub[0]) as srv:
        yield srv


@pytest.fixture
def srv(module_server):
    module_server.set_faults({})
    yield module_server
    module_server.set_faults({})


@pytest.fixture
def repos(hub):
    return hub[1]


def request(srv, path, headers=None, method="GET", host="127.0.0.1",
            body=None):
    """One request on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection(host, srv.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def get_json(srv, path, headers=None, host="127.0.0.1"):
    status, hdrs, body = request(srv, path, headers, host=host)
    assert status == 200, (path, status, body)
    assert hdrs["Content-Type"] == "application/json; charset=utf-8"
    return hdrs, json.loads(body)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def follow(location):
    """(host, path+query) of an absolute Location."""
    url = urllib.parse.urlsplit(location)
    return url.hostname, f"{url.path}?{url.query}"


def q(rev):
    return urllib.parse.quote(rev, safe="")


# ---- hashes -----------------------------------------------------------------

def test_hashes_match_the_hub():
    # HF-API.md section 5: bert-base-uncased/pytorch_model.bin's pointer.
    sha = "097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a"
    pointer = lfs_pointer(sha, 440473133)
    assert len(pointer) == 134
    assert git_blob_oid(pointer) == "ba5d19791be1dd7992e33bd61f20207b0f7f50a5"
    assert git_blob_oid(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_ids_match_git(repos, tmp_path):
    """Commit, tree and blob oids are what git computes for the same repo."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    info = repos["tiny"]
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_CONFIG_SYSTEM": "/dev/null",
           "GIT_AUTHOR_NAME": "hollowfs-test",
           "GIT_AUTHOR_EMAIL": "test@hollowfs.invalid",
           "GIT_COMMITTER_NAME": "hollowfs-test",
           "GIT_COMMITTER_EMAIL": "test@hollowfs.invalid",
           "GIT_AUTHOR_DATE": f"@{HUB_EPOCH} +0000",
           "GIT_COMMITTER_DATE": f"@{HUB_EPOCH} +0000"}

    def git(*args):
        return subprocess.run(("git",) + args, cwd=tmp_path, env=env,
                              check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    files = info.files()
    for path, data in TINY.items():
        p = tmp_path / path
        p.parent.mkdir(parents=True, exist_ok=True)
        f = files[path]
        p.write_bytes(lfs_pointer(f["sha256"], f["size"]) if f["lfs"]
                      else data)
    git("add", "-A")
    git("commit", "-q", "-m", "Upload files")
    assert git("rev-parse", "HEAD") == info.commit
    for path in TINY:
        assert git("rev-parse", f"HEAD:{path}") == files[path]["oid"], path


# ---- revisions --------------------------------------------------------------

def test_revision_resolution(srv, repos):
    tiny = repos["tiny"]
    main, pr, old = (tiny.revisions[r] for r in ("main", "refs/pr/1", "v1.0"))
    assert len({main, pr, old}) == 3
    for rev, want in [(None, main), ("main", main), ("HEAD", main),
                      ("v1.0", old), ("stable", old), ("refs/pr/1", pr),
                      (main, main), (pr[:7], pr), (old[:12], old)]:
        path = "/api/models/acme/tiny" + (
            "" if rev is None else "/revision/" + q(rev))
        hdrs, info = get_json(srv, path)
        assert (info["id"], info["sha"]) == ("acme/tiny", want), rev
        assert hdrs["X-Request-Id"].startswith("Root=1-")

    _, info = get_json(srv, "/api/models/acme/tiny/revision/main")
    assert info["private"] is False and info["gated"] is False
    assert info["_id"] and info["lastModified"] == "2026-01-01T00:00:00.000Z"
    assert info["siblings"] == [{"rfilename": p} for p in sorted(TINY)]
    _, info = get_json(srv, "/api/models/acme/tiny/revision/v1.0")
    assert info["siblings"] == [{"rfilename": p} for p in sorted(OLD_FILES)]

    _, info = get_json(srv, "/api/models/acme/tiny/revision/main?blobs=true"
                       "&securityStatus=true")
    sib = {s["rfilename"]: s for s in info["siblings"]}
    f = tiny.files()["model.safetensors"]
    assert sib["model.safetensors"] == {
        "rfilename": "model.safetensors", "blobId": f["oid"],
        "size": len(WEIGHTS), "lfs": {
            "sha256": hashlib.sha256(WEIGHTS).hexdigest(),
            "size": len(WEIGHTS), "pointerSize": f["pointer_size"]}}
    assert sib["config.json"] == {
        "rfilename": "config.json",
        "blobId": git_blob_oid(TINY["config.json"]),
        "size": len(TINY["config.json"])}

    _, info = get_json(srv, "/api/models/acme/tiny/revision/"
                       f"{main}?expand=sha&expand=bogus")
    assert info == {"_id": info["_id"], "id": "acme/tiny", "sha": main}
    _, info = get_json(srv, "/api/models/acme/tiny?expand=xetEnabled")
    assert info["id"] == "acme/tiny"  # (old clients) unknown: ignored

    _, info = get_json(srv, "/api/datasets/acme/ds/revision/main")
    assert info["sha"] == repos["ds"].commit
    _, info = get_json(srv, "/api/spaces/acme/sp")
    assert info["sha"] == repos["sp"].commit
    assert request(srv, "/api/models/acme/ds")[0] == 401  # wrong type


def test_revision_not_found(srv, repos):
    for path in ["/api/models/acme/tiny/revision/nope",
                 "/api/models/acme/tiny/tree/nope",
                 "/acme/tiny/resolve/nope/config.json"]:
        status, hdrs, body = request(srv, path)
        assert (status, hdrs["X-Error-Code"]) == (404, "RevisionNotFound")
        assert hdrs["X-Error-Message"] == "Invalid rev id: nope"
        assert json.loads(body) == {"error": "Invalid rev id: nope"}
    # An unencoded "/" ends the revision (HF-API.md 0.1).
    status, hdrs, _ = request(srv, "/acme/tiny/resolve/refs/pr/1/config.json")
    assert (status, hdrs["X-Error-Message"]) == (404, "Invalid rev id: refs")
    status, _, body = request(srv, "/api/models/acme/tiny/revision/"
                              f"{repos['tiny'].commit[:3]}")
    assert status == 404  # too short a prefix
    status, hdrs, body = request(srv, "/api/models/acme/tiny/revision/%FF")
    assert (status, hdrs["X-Error-Code"]) == (404, "RevisionNotFound")
    assert json.loads(body) == {"error": "Invalid rev id: \udcff"}


# ---- listing ----------------------------------------------------------------

def walk_tree(srv, first, headers=None):
    """Follow Link rel=next to the end: (entries, pages, links)."""
    entries, pages, links = [], 0, []
    url = first
    while url:
        hdrs, page = get_json(srv, url, headers)
        entries += page
        pages += 1
        assert pages < 50
        link = hdrs.get("Link")
        if link is None:
            break
        assert link.startswith("<") and link.endswith('>; rel="next"')
        target = link[1:link.index(">")]
        links.append(target)
        url = (urllib.parse.urlsplit(target)._replace(scheme="", netloc="")
               .geturl())
    return entries, pages, links


def test_tree_pagination(srv, repos):
    tiny = repos["tiny"]
    files = tiny.files()
    entries, pages, links = walk_tree(
        srv, "/api/models/acme/tiny/tree/main?recursive=true&expand=false")
    n = len(EXPECTED_TREE["dirs"]) + len(EXPECTED_TREE["files"])
    assert len(entries) == n and pages == -(-n // 3) and pages >= 4
    assert all(link.startswith(f"http://127.0.0.1:{srv.port}/api/models/"
                               "acme/tiny/tree/main?recursive=1&")
               and "cursor=" in link for link in links)
    assert {e["path"] for e in entries if e["type"] == "directory"} == \
        EXPECTED_TREE["dirs"]
    by_path = {e["path"]: e for e in entries if e["type"] == "file"}
    assert set(by_path) == EXPECTED_TREE["files"]
    assert [e["type"] for e in entries] == \
        ["directory"] * 3 + ["file"] * len(TINY)  # directories first
    for path, e in by_path.items():
        f = files[path]
        assert list(e)[:4] == ["type", "oid", "size", "path"]
        assert (e["oid"], e["size"]) == (f["oid"], len(TINY[path]))
        if f["lfs"]:
            assert e["lfs"] == {"oid": hashlib.sha256(TINY[path]).hexdigest(),
                                "size": len(TINY[path]),
                                "pointerSize": f["pointer_size"]}
        else:
            assert "lfs" not in e and e["oid"] == git_blob_oid(TINY[path])
    assert by_path["big.txt"]["lfs"] and by_path["bad.gguf"]["lfs"]
    assert "xetHash" not in json.dumps(entries)
    d = next(e for e in entries if e["path"] == "weights")
    assert d == {"type": "directory", "oid": d["oid"], "size": 0,
                 "path": "weights"}

    # Not recursive: one level; %2F and / both separate the sub-path.
    top, _, _ = walk_tree(srv, "/api/models/acme/tiny/tree/main")
    assert {e["path"] for e in top} == {"docs", "weights"} | {
        p for p in TINY if "/" not in p}
    for sub in ("weights%2Fsub", "weights/sub"):
        got, _, _ = walk_tree(srv, f"/api/models/acme/tiny/tree/main/{sub}")
        assert [e["path"] for e in got] == ["weights/sub/deep.txt"]
    got, _, _ = walk_tree(srv, "/api/models/acme/tiny/tree/main/weights"
                          "?recursive=True")
    assert [e["path"] for e in got] == ["weights/sub", "weights/part-1.txt",
                                        "weights/part-2.txt",
                                        "weights/sub/deep.txt"]
    # A smaller limit wins; the page size of hub.json caps a larger one.
    _, pages, links = walk_tree(srv, "/api/models/acme/tiny/tree/main"
                                "?recursive=1&limit=2")
    assert pages == -(-n // 2) and "limit=2" in links[0]
    assert walk_tree(srv, "/api/models/acme/tiny/tree/main?recursive=1"
                     "&limit=1000")[1] == -(-n // 3)
    # Errors.
    status, hdrs, body = request(srv, "/api/models/acme/tiny/tree/main/nope")
    assert (status, hdrs["X-Error-Code"]) == (404, "EntryNotFound")
    assert json.loads(body) == {"error": 'nope does not exist on "main"'}
    assert request(srv, "/api/models/acme/tiny/tree/main?cursor=zz!")[0] == 400


def test_tree_links_relative_and_absolute(srv):
    entries, pages, links = walk_tree(
        srv, "/api/models/acme/alt/tree/main?recursive=true")
    assert len(entries) == len(TINY) + 3 and pages >= 4
    for i, link in enumerate(links):
        assert link.startswith("http://" if i % 2 == 0 else "/api/"), link


def test_tree_expand_last_commit(srv, repos):
    tiny = repos["tiny"]
    pr = tiny.revisions["refs/pr/1"]
    entries, _, _ = walk_tree(srv, "/api/models/acme/tiny/tree/"
                              f"{q('refs/pr/1')}?recursive=true&expand=true")
    by_path = {e["path"]: e for e in entries}
    assert by_path["config.json"]["lastCommit"]["id"] == pr  # changed in PR
    assert by_path["README.md"]["lastCommit"] == {
        "id": tiny.commit, "title": "Upload files",
        "date": "2026-01-01T00:00:00.000Z"}
    assert by_path["weights"]["lastCommit"]["id"] == tiny.commit
    assert by_path["README.md"]["securityFileStatus"]["status"] == "safe"


def test_paths_info(srv, repos):
    files = repos["tiny"].files()
    form = urllib.parse.urlencode([("paths", "config.json"),
                                   ("paths", "model.safetensors"),
                                   ("paths", "nope.txt"), ("paths", "weights"),
                                   ("expand", "false")])
    status, _, body = request(
        srv, "/api/models/acme/tiny/paths-info/main", method="POST",
        body=form, headers={"Content-Type":
                            "application/x-www-form-urlencoded"})
    assert status == 200
    got = json.loads(body)
    assert [e["path"] for e in got] == ["config.json", "model.safetensors",
                                        "weights"]
    assert got[1]["lfs"]["oid"] == files["model.safetensors"]["sha256"]
    assert got[2]["type"] == "directory"
    status, _, body = request(
        srv, f"/api/models/acme/tiny/paths-info/{q('refs/pr/1')}",
        method="POST", headers={"Content-Type": "application/json"},
        body=json.dumps({"paths": ["config.json", "x"], "expand": True}))
    (entry,) = json.loads(body)
    assert entry["oid"] == git_blob_oid(PR_FILES["config.json"])
    assert "lastCommit" in entry
    assert request(srv, "/api/models/acme/tiny/paths-info/main")[0] == 405


# ---- /resolve ---------------------------------------------------------------

def test_resolve_regular_file(srv, repos):
    tiny = repos["tiny"]
    path = "/acme/tiny/resolve/main/config.json"
    oid = git_blob_oid(TINY["config.json"])
    status, hdrs, body = request(srv, path)
    assert (status, body) == (200, TINY["config.json"])
    assert hdrs["ETag"] == f'"{oid}"'
    assert hdrs["X-Repo-Commit"] == tiny.commit
    assert hdrs["Accept-Ranges"] == "bytes"
    assert hdrs["Content-Length"] == str(len(body))
    assert "X-Linked-Etag" not in hdrs and "X-Linked-Size" not in hdrs
    assert 'filename="config.json"' in hdrs["Content-Disposition"]
    assert hdrs["RateLimit"].startswith('"resolvers";')

    status, head, body = request(srv, path, method="HEAD")
    assert (status, body, head["ETag"]) == (200, b"", f'"{oid}"')
    status, hdrs, body = request(srv, path, {"Range": "bytes=2-6"})
    assert (status, body) == (206, TINY["config.json"][2:7])
    assert hdrs["Content-Range"] == f"bytes 2-6/{len(TINY['config.json'])}"
    status, hdrs, _ = request(srv, path, {"If-None-Match": f'"{oid}"'})
    assert (status, hdrs["X-Repo-Commit"]) == (304, tiny.commit)

    for rev, data in [("refs/pr/1", PR_FILES), ("stable", OLD_FILES),
                      (tiny.revisions["v1.0"][:8], OLD_FILES)]:
        status, hdrs, body = request(srv, tiny.resolve_path("config.json",
                                                            rev))
        assert (status, body) == (200, data["config.json"]), rev
        assert hdrs["X-Repo-Commit"] == tiny.revisions.get(
            rev, tiny.revisions["v1.0"])
    for name in ("a b#1.txt", "\u00e9t\u00e9.txt", "weights/sub/deep.txt"):
        assert request(srv, tiny.resolve_path(name))[2] == TINY[name]
    status, hdrs, body = request(srv, tiny.resolve_path("weights"))
    assert (status, hdrs["X-Error-Code"], body) == \
        (404, "EntryNotFound", b"Entry not found")
    assert hdrs["X-Repo-Commit"] == tiny.commit

    # Datasets and spaces have a URL prefix; /raw gives the LFS pointer.
    assert request(srv, "/datasets/acme/ds/resolve/main/README.md")[2] == b"ds"
    assert request(srv, "/spaces/acme/sp/resolve/main/app.py")[2] == \
        b"print()"
    assert request(srv, "/acme/ds/resolve/main/README.md")[0] == 401
    f = tiny.files()["model.safetensors"]
    status, hdrs, body = request(srv, "/acme/tiny/raw/main/model.safetensors")
    assert (status, body) == (200, lfs_pointer(f["sha256"], f["size"]))
    assert hdrs["ETag"] == f'"{f["oid"]}"'


def test_resolve_lfs_redirects_to_cdn(srv, repos):
    tiny = repos["tiny"]
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    path = tiny.resolve_path("model.safetensors", "main")
    start = len(srv.log())
    for method in ("HEAD", "GET"):
        status, hdrs, body = request(srv, path, {
            "Range": "bytes=0-99", **bearer(OTHER)}, method=method)
        assert status == 302  # a Range is not answered by the Hub
        assert hdrs["X-Linked-Etag"] == f'"{sha}"'
        assert hdrs["X-Linked-Size"] == str(len(WEIGHTS))
        assert hdrs["X-Repo-Commit"] == tiny.commit
        assert hdrs["ETag"].startswith('W/"')  # of the redirect body
        assert hdrs["Accept-Ranges"] == "bytes"
        assert "X-Xet-Hash" not in hdrs and "Link" not in hdrs
        assert hdrs["Content-Length"] == str(len(body) or len(
            b"Found. Redirecting to " + hdrs["Location"].encode()))
    url = urllib.parse.urlsplit(hdrs["Location"])
    assert (url.scheme, url.hostname, url.port) == ("http", "localhost",
                                                    srv.port)
    assert url.path == f"/__lfs/models/acme/tiny/{sha}"
    query = urllib.parse.parse_qs(url.query)
    expires = int(query["Expires"][0])
    assert 3590 < expires - time.time() <= 3600
    assert query["Signature"] == [sign(srv.secret, url.path, expires)]

    host, cdn = follow(hdrs["Location"])
    status, chdrs, body = request(srv, cdn, {"Range": "bytes=100-199"},
                                  host=host)
    assert (status, body) == (206, WEIGHTS[100:200])
    assert chdrs["Content-Range"] == f"bytes 100-199/{len(WEIGHTS)}"
    cdn_etag = chdrs["ETag"]
    assert cdn_etag.strip('"') != sha and len(cdn_etag) == 66
    for name in ("X-Repo-Commit", "X-Linked-Etag", "X-Linked-Size",
                 "X-Request-Id"):
        assert name not in chdrs
    status, chdrs, body = request(srv, cdn, host=host)
    assert status == 200 and hashlib.sha256(body).hexdigest() == sha
    assert chdrs["ETag"] == cdn_etag
    status, _, _ = request(srv, cdn, {"Range": f"bytes={len(WEIGHTS)}-"},
                           host=host)
    assert status == 416

    log = srv.log(min_entries=start + 5)[start:]
    hub_lines = [e for e in log if e["path"] == urllib.parse.unquote(path)]
    cdn_lines = [e for e in log if e["path"].startswith("/__lfs/")]
    assert len(hub_lines) == 2 and len(cdn_lines) == 3
    assert all(e["auth"] and e["host"] == f"127.0.0.1:{srv.port}"
               for e in hub_lines)
    assert all(not e["auth"] and e["host"] == f"localhost:{srv.port}"
               for e in cdn_lines)

    # A client that reached the Hub as localhost is sent to 127.0.0.1.
    status, hdrs, _ = request(srv, path, host="localhost")
    assert urllib.parse.urlsplit(hdrs["Location"]).hostname == "127.0.0.1"
    # The bare datasets form too.
    status, hdrs, _ = request(srv, "/datasets/acme/ds/resolve/main/"
                              "data/train.parquet")
    assert status == 302
    host, cdn = follow(hdrs["Location"])
    assert request(srv, cdn, host=host)[2] == b"D" * 2000


def test_cdn_signature_and_expiry(srv, repos):
    path = repos["tiny"].resolve_path("model.safetensors")
    host, cdn = follow(request(srv, path)[1]["Location"])
    tampered = cdn.replace("Signature=", "Signature=0")
    status, hdrs, body = request(srv, tampered, host=host)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    assert request(srv, cdn.split("?")[0], host=host)[0] == 403

    # "expires_in" on the resolve path: an already expired URL, once.
    srv.set_faults({urllib.parse.unquote(path): {"expires_in": -1,
                                                 "count": 1}})
    host, stale = follow(request(srv, path)[1]["Location"])
    status, hdrs, body = request(srv, stale, host=host)
    assert status == 403 and hdrs["Content-Type"] == "application/xml"
    assert b"<Code>AccessDenied</Code><Message>Request has expired" in body
    host, fresh = follow(request(srv, path)[1]["Location"])  # re-resolve
    assert request(srv, fresh, host=host)[2] == WEIGHTS

    # hub.json "cdn_expires_in": 1 s.
    status, hdrs, _ = request(srv, "/acme/short/resolve/main/w.bin")
    host, cdn = follow(hdrs["Location"])
    expires = int(urllib.parse.parse_qs(cdn.split("?")[1])["Expires"][0])
    assert expires - time.time() <= 1
    assert request(srv, cdn, host=host)[0] in (200, 403)
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    assert request(srv, cdn, host=host)[0] == 403


def test_corrupt_cdn(srv, repos):
    tiny = repos["tiny"]
    for name, data in [("bad.gguf", BAD), ("one-off.bin", ONE_OFF)]:
        status, hdrs, _ = request(srv, tiny.resolve_path(name))
        assert status == 302
        # The Hub reports the true sha256 ...
        assert hdrs["X-Linked-Etag"] == \
            f'"{hashlib.sha256(data).hexdigest()}"'
        host, cdn = follow(hdrs["Location"])
        status, _, body = request(srv, cdn, host=host)
        assert status == 200 and len(body) == len(data)
        # ... which the CDN's bytes do not have.
        assert hashlib.sha256(body).hexdigest() != \
            hdrs["X-Linked-Etag"].strip('"')
        diff = [i for i in range(len(data)) if body[i] != data[i]]
        if name == "bad.gguf":
            assert len(diff) == len(data)
            assert request(srv, cdn, {"Range": "bytes=10-19"},
                           host=host)[2] == bytes(b ^ 0xFF
                                                  for b in data[10:20])
        else:
            assert diff == [1234] and body[1234] == data[1234] ^ 0xFF
            ranged = request(srv, cdn, {"Range": "bytes=1230-1239"},
                             host=host)[2]
            assert ranged == body[1230:1240]
    # /raw and the tree are not affected.
    entries, _, _ = walk_tree(srv, "/api/models/acme/tiny/tree/main")
    lfs = {e["path"]: e["lfs"]["oid"] for e in entries if "lfs" in e}
    assert lfs["bad.gguf"] == hashlib.sha256(BAD).hexdigest()


def test_resolve_cache_redirect(srv, repos):
    info = repos["cache"]
    oid = git_blob_oid(b"{}")
    status, hdrs, _ = request(srv, "/acme/cache/resolve/main/config.json",
                              method="HEAD")
    assert status == 307
    location = hdrs["Location"]
    assert location.startswith(f"/api/resolve-cache/models/acme/cache/"
                               f"{info.commit}/config.json?")
    assert f"etag=%22{oid}%22" in location
    assert hdrs["X-Linked-Etag"] == f'"{oid}"'
    assert hdrs["X-Repo-Commit"] == info.commit
    status, hdrs, body = request(srv, location)
    assert (status, body, hdrs["ETag"]) == (200, b"{}", f'"{oid}"')
    assert hdrs["X-Repo-Commit"] == info.commit


# ---- errors and tokens ------------------------------------------------------

INFO, TREE, RESOLVE = "info", "tree", "resolve"


def endpoint(kind, repo, file="w.bin"):
    return {INFO: f"/api/models/acme/{repo}/revision/main",
            TREE: f"/api/models/acme/{repo}/tree/main",
            RESOLVE: f"/acme/{repo}/resolve/main/{file}",
            # a regular file: served by the Hub itself
            RESOLVE.upper(): f"/acme/{repo}/resolve/main/config.json"}[kind]


@pytest.mark.parametrize("repo, token, kind, status, code", [
    ("tiny", None, INFO, 200, None),
    ("tiny", OTHER, TREE, 200, None),
    ("missing", None, INFO, 401, "RepoNotFound"),
    ("missing", None, RESOLVE, 401, "RepoNotFound"),
    ("missing", OTHER, INFO, 404, "RepoNotFound"),
    ("private", None, INFO, 401, "RepoNotFound"),
    ("private", None, RESOLVE, 401, "RepoNotFound"),
    ("private", OTHER, TREE, 404, "RepoNotFound"),
    ("private", OTHER, RESOLVE, 404, "RepoNotFound"),
    ("private", OWNER, INFO, 200, None),
    ("private", OWNER, RESOLVE, 302, None),  # LFS: to the CDN
    ("gated", None, INFO, 200, None),
    ("gated", None, TREE, 200, None),
    ("gated", None, RESOLVE, 401, "GatedRepo"),
    ("gated", OTHER, RESOLVE, 403, "GatedRepo"),
    ("gated", APPROVED, RESOLVE, 302, None),
    ("gated", OWNER, RESOLVE, 302, None),
    ("gated", None, RESOLVE.upper(), 401, "GatedRepo"),
    ("gated-deny", None, INFO, 401, "GatedRepo"),
    ("gated-deny", OTHER, TREE, 403, "GatedRepo"),
    ("gated-deny", APPROVED, INFO, 200, None),
    ("disabled", None, INFO, 403, None),
])
def test_access(srv, repo, token, kind, status, code):
    headers = bearer(token) if token else {}
    got, hdrs, body = request(srv, endpoint(kind, repo), headers)
    assert (got, hdrs.get("X-Error-Code")) == (status, code), body
    message = hdrs.get("X-Error-Message")
    if got in (200, 302):
        return
    assert json.loads(body) == {"error": message}
    if got == 401 and code == "RepoNotFound":
        assert message == "Invalid username or password."
        assert hdrs["WWW-Authenticate"] == \
            'Bearer realm="Authentication required", charset="UTF-8"'
    elif got == 401:
        assert message == (f"Access to model acme/{repo} is restricted. You "
                           "must have access to it and be authenticated to "
                           "access it. Please log in.")
    elif code == "GatedRepo":
        assert message.startswith(f"Access to model acme/{repo} is "
                                  "restricted and you are not in the "
                                  "authorized list. Visit http://")
    elif status == 403:
        assert message == "Access to this resource is disabled."


@pytest.mark.parametrize("auth", [f"Bearer {BOGUS}", "Bearer ", "Basic eDp5",
                                  f"Bearer {OWNER}x"])
@pytest.mark.parametrize("kind", [INFO, TREE, RESOLVE])
def test_invalid_token(srv, auth, kind):
    """A bad token is refused even on a public repo, not read as a missing
    repo."""
    status, hdrs, body = request(srv, endpoint(kind, "tiny", "config.json"),
                                 {"Authorization": auth})
    assert status == 401 and "X-Error-Code" not in hdrs
    message = "Invalid credentials in Authorization header"
    assert hdrs["X-Error-Message"] == message
    assert json.loads(body) == {"error": message}


def test_gated_private_content_and_redaction(srv, repos):
    status, hdrs, _ = request(srv, "/acme/private/resolve/main/w.bin",
                              bearer(OWNER))
    assert status == 302 and hdrs["X-Repo-Commit"] == repos["private"].commit
    host, cdn = follow(hdrs["Location"])  # the signed URL needs no token
    assert request(srv, cdn, host=host)[2] == b"p" * 10
    status, _, body = request(srv, "/acme/gated/resolve/main/config.json",
                              bearer(APPROVED))
    assert (status, body) == (200, b"{}")
    # Gated metadata stays readable; "redact" hides LFS hashes from those
    # without access.
    sha = hashlib.sha256(b"g").hexdigest()
    for headers, want in [({}, "*" * 64), (bearer(OTHER), "*" * 64),
                          (bearer(APPROVED), sha)]:
        _, entries = get_json(srv, "/api/models/acme/gated-redact/tree/main",
                              headers)
        assert entries[0]["lfs"]["oid"] == want
        _, info = get_json(srv, "/api/models/acme/gated-redact?blobs=1",
                           headers)
        assert info["siblings"][0]["lfs"]["sha256"] == want
        assert info["gated"] == "auto"
    _, info = get_json(srv, "/api/models/acme/gated-deny", bearer(APPROVED))
    assert info["gated"] == "manual"


def test_not_a_hub_url(srv):
    status, hdrs, body = request(srv, "/api/whoami-v2")
    assert status == 404 and "X-Request-Id" in hdrs
    assert request(srv, "/acme/tiny")[0] == 404
    assert request(srv, "/api/models/acme/tiny/xet-read-token/main")[0] == 404
    assert request(srv, "/api/models/acme/tiny", method="POST",
                   body=b"")[0] == 405


# ---- faults -----------------------------------------------------------------

def test_faults_on_hub_paths(srv, repos):
    tiny = repos["tiny"]
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    rl = '"resolvers";r=0;t=2'
    srv.set_faults({
        "/api/models/acme/tiny/revision/main": {
            "status": 429, "ratelimit": '"api";r=0;t=3', "retry_after": 3,
            "count": 1},
        f"/acme/tiny/resolve/{tiny.commit}/config.json": {
            "status": 429, "ratelimit": rl,
            "ratelimit_policy": '"fixed window";"resolvers";q=10;w=60'},
        "/acme/tiny/resolve/refs/pr/1/config.json": {"status": 503},
        f"/__lfs/models/acme/tiny/{sha}": {"drop_after": 1000},
        "/api/models/acme/tiny/paths-info/main": {"status": 500,
                                                  "methods": ["POST"]},
        "/acme/tiny/resolve/main/README.md": {"ignore_range": True},
    })
    status, hdrs, _ = request(srv, "/api/models/acme/tiny/revision/main")
    assert (status, hdrs["RateLimit"], hdrs["Retry-After"]) == \
        (429, '"api";r=0;t=3', "3")
    assert hdrs["RateLimit-Policy"] == '"fixed window";"api";q=1000;w=300'
    assert "X-Request-Id" in hdrs
    assert request(srv, "/api/models/acme/tiny/revision/main")[0] == 200

    status, hdrs, _ = request(srv, tiny.resolve_path("config.json"))
    assert (status, hdrs["RateLimit"]) == (429, rl)
    assert hdrs["RateLimit-Policy"] == '"fixed window";"resolvers";q=10;w=60'
    assert request(srv, tiny.resolve_path("config.json", "main"))[0] == 200
    assert request(srv, tiny.resolve_path("config.json", "refs/pr/1"))[0] == \
        503
    assert request(srv, "/api/models/acme/tiny/paths-info/main",
                   method="POST", body=b"paths=a")[0] == 500
    status, _, body = request(srv, tiny.resolve_path("README.md", "main"),
                              {"Range": "bytes=0-1"})
    assert (status, body) == (200, TINY["README.md"])

    host, cdn = follow(request(srv, tiny.resolve_path("model.safetensors"))
                       [1]["Location"])
    conn = http.client.HTTPConnection(host, srv.port, timeout=10)
    conn.request("GET", cdn)
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as exc:
        resp.read()
    conn.close()
    assert exc.value.partial == WEIGHTS[:1000]


def test_gzip_fault(srv, repos):
    path = repos["tiny"].resolve_path("config.json")
    srv.set_faults({urllib.parse.unquote(path): {"gzip": True}})
    status, hdrs, body = request(srv, path, {"Accept-Encoding": "gzip",
                                             "Range": "bytes=0-3"})
    assert (status, hdrs["Content-Encoding"]) == (200, "gzip")
    assert "Content-Length" not in hdrs and "Content-Range" not in hdrs
    assert gzip.decompress(body) == TINY["config.json"]
    status, hdrs, body = request(srv, path, {"Accept-Encoding": "identity",
                                             "Range": "bytes=0-3"})
    assert (status, body) == (206, TINY["config.json"][:4])


# ---- changes, and a hub next to --root --------------------------------------

def test_push_keeps_old_commits(tmp_path):
    hub = tmp_path / "hub"
    first = make_hub_repo(hub, "o/r", {"a.txt": b"1", "b.txt": b"b"})
    with TestServer(None, tmp_path, hub=hub) as srv:
        assert get_json(srv, "/api/models/o/r")[1]["sha"] == first.commit
        second = make_hub_repo(hub, "o/r", {"a.txt": b"2", "b.txt": b"b"},
                               keep_old_commits=True)
        assert second.commit != first.commit
        assert get_json(srv, "/api/models/o/r")[1]["sha"] == second.commit
        assert request(srv, f"/o/r/resolve/{first.commit}/a.txt")[2] == b"1"
        assert request(srv, "/o/r/resolve/main/a.txt")[2] == b"2"
        _, entries = get_json(srv, "/api/models/o/r/tree/main?expand=true")
        last = {e["path"]: e["lastCommit"]["id"] for e in entries}
        assert last == {"a.txt": second.commit, "b.txt": first.commit}
        # A broken hub.json is a 500 naming the problem, not a crash.
        (hub / "models/o/r/hub.json").write_text("{")
        status, _, body = request(srv, "/api/models/o/r")
        assert status == 500 and b"hub.json" in body
        assert "hub.json" in srv.stderr()


def test_hub_with_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "plain.bin").write_bytes(b"plain")
    hub = tmp_path / "hub"
    make_hub_repo(hub, "o/r", {"a.txt": b"1"})
    with TestServer(root, tmp_path, hub=hub, cdn_host="cdn.invalid") as srv:
        assert request(srv, "/plain.bin")[2] == b"plain"
        assert request(srv, "/o/r/resolve/main/a.txt")[2] == b"1"
        make_hub_repo(hub, "o/w", {"w.bin": b"w"})
        location = request(srv, "/o/w/resolve/main/w.bin")[1]["Location"]
        assert location.startswith(f"http://cdn.invalid:{srv.port}/__lfs/")
        # cdn.invalid does not resolve: reach the CDN path directly.
        _, cdn = follow(location)
        assert request(srv, cdn)[2] == b"w"


def test_make_hub_repo_checks(tmp_path):
    with pytest.raises(ValueError):
        make_hub_repo(tmp_path, "o/r", {"a": b""}, private=True)
    with pytest.raises(ValueError):
        make_hub_repo(tmp_path, "o/r", {"a": b""}, corrupt_cdn={"a"})
    with pytest.raises(ValueError):
        make_hub_repo(tmp_path, "o/../r", {"a": b""})
    with pytest.raises(ValueError):
        make_hub_repo(tmp_path, "o/r", {"../a": b""})
    with pytest.raises(ValueError):
        make_hub_repo(tmp_path, "o/r", {"a": b""}, revisions={"x": "nope"})
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(3 << 20)
    info = make_hub_repo(tmp_path, "o/big", {"big.bin": big, "s": b"s"})
    f = info.files()["big.bin"]
    assert f["lfs"] and f["size"] == 3 << 20
    assert f["sha256"] == hashlib.sha256(bytes(3 << 20)).hexdigest()
    assert not info.files()["s"]["lfs"]
