#!/usr/bin/python3
"""HTTP test server for the hollowfs integration tests.

Serves the files under --root with single byte ranges, nginx-style directory
listings (JSON or HTML autoindex), a JSON-lines access log that tests assert
on, and fault injection driven by a JSON file that may change while the
server runs. Python 3 standard library only; it listens on loopback only.

    testserver.py --root DIR --port-file FILE [--host 127.0.0.1] [--port 0]
                  [--faults FILE] [--log FILE]
                  [--index json|html|html-bare]
                  [--secret S]

The faults file maps a decoded URL path ("/big.bin") to an object whose keys
are listed in FAULT_TYPES; each key is described where it is applied.

Tests use the TestServer helper at the end of this file:

    sys.path.insert(0, str(REPO / "scripts"))
    from testserver import TestServer, read_log

    with TestServer(root, tmp_path, faults={"/a.bin": {"status": 503}}) as srv:
        ...  # srv.url, srv.set_faults({...}), srv.log()

Fake Hugging Face Hub
---------------------

    testserver.py --hub DIR [--root DIR] [--cdn-host NAME] --port-file FILE ...

answers the download side of the Hub API as /work/shared/HF-API.md
describes it (section numbers below refer to it). URLs that are not Hub URLs
are served from --root if given, else answered 404. Build DIR from tests
with make_hub_repo() and add_hub_token() (end of this file), then
TestServer(None, tmp_path, hub=DIR).

Layout: DIR/{models,datasets,spaces,kernels}/OWNER/NAME/hub.json, one per
repo (legacy bare names like "gpt2" are not supported), plus the optional
DIR/tokens.json: a JSON list of more valid tokens that no repo grants
anything. hub.json is re-read whenever it changes. Its keys, all optional
but "commits" and "revisions":

  "revisions":  {"main": COMMIT, "v1.0": COMMIT, "refs/pr/1": COMMIT}
                branches, tags and refs alike, each naming a commit below
  "commits":    {COMMIT (40 hex): {
                   "files": {PATH: {
                      "src": content file, relative to the repo dir (or
                             absolute),
                      "lfs": false,  true: stored in LFS, served by the CDN
                      "size", "sha256", "oid": computed from src when absent;
                             for an LFS file "oid" is the git blob oid of
                             its pointer file (section 5),
                      "pointer_size": (computed),
                      "corrupt_cdn": true (every byte inverted) or an
                             offset (that byte inverted) in what the CDN
                             serves}},
                   "parent": COMMIT or null, "date": "2026-...Z",
                   "title": "..."}}   (parent/date/title: for lastCommit)
  "default_branch": "main"     what HEAD and /api/{type}s/{id} resolve
  "private": false
  "gated":   false, true (= "auto"), "auto" or "manual"
  "token": "hf_x" / "tokens": [...]  tokens granted access (needed if
                               private or gated); any one of them, and any
                               token in tokens.json, is a valid token
  "disabled": false            true: 403 "Access to this resource is
                               disabled."
  "gated_listing": "open"      metadata of a gated repo for callers without
                               access: "open" (2026), "redact" (lfs sha256
                               as 64 "*"), "deny" (401/403 GatedRepo as 2024)
  "page_size": N               /tree page size cap (default 1000, 50 with
                               expand=true; a smaller "limit" wins)
  "link_style": "absolute"     /tree next links: absolute, relative or
                               alternate (pages 1, 3, ... absolute)
  "resolve_cache": false       true: regular files answer a relative 307 to
                               /api/resolve-cache/... (the Hub since 2025-07)
  "cdn_expires_in": 3600       lifetime of signed CDN URLs in seconds
  "cdn_reject_auth": false     true: the CDN answers 400 to Authorization
  "_id", "created_at"          (made up when absent)

Endpoints ({type}s: models, datasets, spaces, kernels; {prefix}: "" for
models, "datasets/", "spaces/", "kernels/"):

  GET  /api/{type}s/{id}                       default branch  (section 1)
  GET  /api/{type}s/{id}/revision/{rev}        ?blobs=true, ?expand=f
  GET  /api/{type}s/{id}/tree/{rev}[/{path}]   ?recursive ?expand ?limit
                                               ?cursor, Link rel="next"
  POST /api/{type}s/{id}/paths-info/{rev}      form or JSON body
  GET|HEAD /{prefix}{id}/resolve/{rev}/{path}  regular: 200/206, ETag git
                                               oid; LFS: 302 to the CDN
  GET|HEAD /{prefix}{id}/raw/{rev}/{path}      the git blob (LFS pointer)
  GET|HEAD /api/resolve-cache/{type}s/{id}/{rev}/{path}
  GET|HEAD /__lfs/{type}s/{id}/{sha256}?...&Expires=T&Signature=S
                 the CDN, on another host name: "localhost" when the client
                 used 127.0.0.1, else 127.0.0.1 (or --cdn-host). Signed like
                 the "redirect": "cdn" fault (sign() of the path and T).
                 403 with an XML AccessDenied body once expired.

A revision is one path segment ("refs%2Fpr%2F1"): a ref name, HEAD, a full
commit or a unique prefix of 4+ hex digits. Errors follow section 4.2: a bad
token gets 401 "Invalid credentials in Authorization header" everywhere; a
missing or private repo 401 + WWW-Authenticate + RepoNotFound anonymously,
404 RepoNotFound with a valid token; a gated repo's content 401 GatedRepo
anonymously, 403 GatedRepo with a token that is not granted; 404
RevisionNotFound "Invalid rev id: R"; 404 EntryNotFound (text body on
/resolve, with X-Repo-Commit). Every Hub (not CDN) response carries
X-Request-Id, RateLimit and RateLimit-Policy.

Faults are keyed by the decoded path here too ("/api/models/o/n/revision/
main", "/o/n/resolve/refs/pr/1/f.bin", "/__lfs/models/o/n/<sha256>"; POST
needs "methods": ["POST"]). "status" faults answer with the Hub's headers
(and a RateLimit-Policy for 429 with "ratelimit"); "expires_in" on a
/resolve path sets the lifetime of the CDN URL it hands out; the body
faults (drop_after, short, stall, rate, ignore_range, bad_content_range,
etag, gzip, force_gzip, no_length, max_range) shape the file bytes of
/resolve and the CDN. "redirect", "location", "hang", "listing" and
"content_file" apply to --root files only.
"""

import argparse
import base64
import binascii
import email.utils
import gzip
import hashlib
import hmac
import html
import json
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK_BYTES = 256 * 1024  # largest body write; keeps memory flat
POLL_S = 0.1  # how often a sleeping handler checks for shutdown
DEFAULT_METHODS = ("GET", "HEAD")
CDN_PREFIX = "/__cdn"  # signed URLs that "redirect": "cdn" points to
REL_PREFIX = "/__rel"  # where "redirect": "relative" points to

# Every key a fault entry may carry, with the JSON types it accepts.
FAULT_TYPES = {
    "status": int,
    "retry_after": (int, str),
    "ratelimit": str,
    "ratelimit_policy": str,
    "drop_after": int,
    "stall": bool,
    "stall_after": int,
    "stall_seconds": (int, float),
    "ignore_range": bool,
    "etag": str,
    "content_file": str,
    "rate": int,
    "bad_content_range": bool,
    "short": int,
    "redirect": str,
    "expires_in": int,
    "count": int,
    "methods": list,
    "listing": (str, list, dict),
    "gzip": bool,
    "location": str,
    "force_gzip": str,
    "no_length": bool,
    "max_range": int,
    "hang": bool,
    "range_max": int,
    "stall_from": int,
}

# Returned by parse_range() for a range that starts past the end of the file.
UNSATISFIABLE = object()


def check_faults(table):
    """Raise ValueError unless table is a valid faults object."""
    if not isinstance(table, dict):
        raise ValueError("faults must be a JSON object")
    for path, entry in table.items():
        if not path.startswith("/"):
            raise ValueError(f"fault path {path!r} must start with /")
        if not isinstance(entry, dict):
            raise ValueError(f"fault for {path!r} must be an object")
        for key, value in entry.items():
            if key not in FAULT_TYPES:
                raise ValueError(f"unknown fault key {key!r} for {path!r}")
            if not isinstance(value, FAULT_TYPES[key]):
                raise ValueError(f"bad value {value!r} for {key!r} of {path!r}")
        if entry.get("redirect", "cdn") not in ("cdn", "relative"):
            raise ValueError(f"redirect of {path!r} must be cdn or relative")
        if entry.get("rate", 1) <= 0:
            raise ValueError(f"rate of {path!r} must be positive")
        if entry.get("max_range", 1) <= 0:
            raise ValueError(f"max_range of {path!r} must be positive")
        if entry.get("force_gzip", "200") not in ("200", "206"):
            raise ValueError(f"force_gzip of {path!r} must be 200 or 206")


def load_faults(path):
    """Read and check a faults file; raises OSError or ValueError."""
    with open(path, encoding="utf-8") as f:
        table = json.load(f)
    check_faults(table)
    return table


class Faults:
    """The faults file, re-read whenever it changes, and the "count" hits."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.stamp = None  # identity of the file last read; protected by lock
        self.table = {}  # protected by lock
        self.hits = {}  # URL path -> requests faulted so far; protected by lock

    def lookup(self, url_path, method, range_len=None):
        """Return the fault entry to apply to this request, or {}.
        range_len: how many bytes its Range header asks for, or None."""
        with self.lock:
            self._reload_locked()
            entry = self.table.get(url_path)
            if entry is None:
                return {}
            # A redirect applies to every method; other faults only to theirs.
            methods = entry.get("methods", DEFAULT_METHODS)
            if "redirect" not in entry and method not in methods:
                return {}
            # "range_max" N: only requests whose Range asks for at most N
            # bytes (a read's own request, not a chunk run's).
            if "range_max" in entry and (range_len is None
                                         or range_len > entry["range_max"]):
                return {}
            if "count" in entry:
                hits = self.hits.get(url_path, 0)
                if hits >= entry["count"]:
                    return {}
                self.hits[url_path] = hits + 1
            return entry

    def _reload_locked(self):
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        # The inode and size too: two quick atomic rewrites may share an mtime.
        stamp = st and (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self.stamp:
            return
        table = {}
        if st is not None:
            try:
                table = load_faults(self.path)
            except (OSError, ValueError) as e:
                print(f"testserver: ignoring faults file '{self.path}': {e}",
                      file=sys.stderr, flush=True)
        self.stamp, self.table, self.hits = stamp, table, {}


class AccessLog:
    """Appends one JSON object per finished request, flushed at once."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8") if path else None

    def write(self, record):
        if self.file is None:
            return
        line = json.dumps(record) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()


def http_date(mtime):
    return email.utils.formatdate(mtime, usegmt=True)


def file_etag(st):
    """A strong ETag derived from the size and mtime of a file."""
    ident = f"{st.st_size}-{st.st_mtime_ns}".encode()
    return '"%s"' % hashlib.sha256(ident).hexdigest()[:16]


def quote_etag(value):
    """Quote a fault's "etag" unless it is already a full entity tag."""
    if value.startswith('"') or value.startswith("W/"):
        return value
    return f'"{value}"'


def sign(secret, path, expires):
    """The "sig" of a CDN URL: hex HMAC-SHA256 of path + expires."""
    msg = (path + str(expires)).encode("utf-8", "surrogateescape")
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)


def parse_range(value, size):
    """Parse a Range header against a file of size bytes.

    Returns (start, end) inclusive for one satisfiable range, UNSATISFIABLE,
    or None when the header is to be ignored (malformed, or several ranges)
    and the whole file served.
    """
    m = RANGE_RE.fullmatch(value.strip())
    if not m:
        return None
    first, last = m.groups()
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None
        if start >= size:
            return UNSATISFIABLE
        return start, min(end, size - 1)
    if not last:
        return None
    suffix = int(last)
    if suffix == 0 or size == 0:
        return UNSATISFIABLE
    return max(0, size - suffix), size - 1


def list_dir(dirpath):
    """Return (name, stat) of a directory's entries in nginx's order.

    Like nginx's autoindex: dot files are hidden, entries that cannot be
    stat()ed are skipped, directories come first, then names byte-wise.
    """
    entries = []
    with os.scandir(dirpath) as it:
        for de in it:
            if de.name.startswith("."):
                continue
            try:
                entries.append((de.name, de.stat()))
            except OSError:
                continue
    entries.sort(key=lambda e: (not stat.S_ISDIR(e[1].st_mode),
                                os.fsencode(e[0])))
    return entries


def entry_type(st):
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


def render_json(entries):
    """nginx's "autoindex_format json" output, byte for byte."""
    items = []
    for name, st in entries:
        kind = entry_type(st)
        item = (f'{{ "name":{json.dumps(name, ensure_ascii=False)}, '
                f'"type":"{kind}", "mtime":"{http_date(st.st_mtime)}"')
        if kind == "file":
            item += f', "size":{st.st_size}'
        items.append(item + " }")
    text = "[" + ",".join("\n" + item for item in items) + "\n]\n"
    return text.encode("utf-8", "surrogateescape")


def render_html(url_path, entries):
    """nginx's default HTML autoindex page (exact sizes, times in GMT)."""
    title = html.escape(url_path)
    lines = [f"<html>\n<head><title>Index of {title}</title></head>\n"
             f"<body>\n<h1>Index of {title}</h1><hr><pre>"
             f'<a href="../">../</a>\n']
    for name, st in entries:
        is_dir = stat.S_ISDIR(st.st_mode)
        href = urllib.parse.quote(name, safe="", errors="surrogateescape")
        shown = name + "/" if is_dir else name
        if len(shown) > 50:  # nginx cuts long names to 50 columns
            label, pad = html.escape(shown[:47]) + "..&gt;", ""
        else:
            label, pad = html.escape(shown), " " * (50 - len(shown))
        when = time.strftime("%d-%b-%Y %H:%M", time.gmtime(st.st_mtime))
        size = "-" if is_dir else str(st.st_size)
        lines.append(f'<a href="{href}{"/" if is_dir else ""}">{label}</a>'
                     f"{pad} {when} {size:>19}\n")
    lines.append("</pre><hr></body>\n</html>\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def render_html_bare(url_path, entries):
    """A page of links only, no sizes or dates (python -m http.server's
    listing): a client needs a HEAD request per file for its size."""
    title = html.escape(url_path)
    lines = [f"<html>\n<head><title>Directory listing for {title}</title>"
             f"</head>\n<body>\n<ul>\n"]
    for name, st in entries:
        slash = "/" if stat.S_ISDIR(st.st_mode) else ""
        href = urllib.parse.quote(name, safe="", errors="surrogateescape")
        lines.append(f'<li><a href="{href}{slash}">'
                     f"{html.escape(name)}{slash}</a></li>\n")
    lines.append("</ul>\n</body>\n</html>\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


# ---- fake Hugging Face Hub (--hub DIR) --------------------------------------
#
# The layout, hub.json schema and behaviour are described in the module
# docstring. Everything below is keyed by the plural repo type of the URLs.

HUB_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space",
             "kernels": "kernel"}
HUB_URL_PREFIXES = ("datasets", "spaces", "kernels")  # models have none
LFS_PREFIX = "/__lfs"  # the fake CDN: /__lfs/{type}s/{owner}/{name}/{sha256}
HUB_EPOCH = 1767225600  # 2026-01-01T00:00:00Z; commit n of a repo is n s later
GIT_IDENT = b"hollowfs-test <test@hollowfs.invalid>"
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf")
LFS_THRESHOLD = 1 << 20
TREE_PAGE = 1000  # the Hub's default /tree page size ...
TREE_PAGE_EXPAND = 50  # ... and with expand=true (huggingface_hub's docstring)
CDN_EXPIRES_IN = 3600
CDN_KEY_PAIR_ID = "KHOLLOWFSTESTKEY"
REDACTED = "*" * 64
HUB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
HEX40_RE = re.compile(r"[0-9a-f]{40}")
HEX64_RE = re.compile(r"[0-9a-f]{64}")
SHORT_SHA_RE = re.compile(r"[0-9a-f]{4,39}")
BEARER_RE = re.compile(r"Bearer +(\S+)", re.IGNORECASE)
RATE_QUOTA = {"api": 1000, "resolvers": 5000}
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
ANON_NOT_FOUND = "Invalid username or password."
SECURITY_STATUS = {
    "avScan": {"status": "safe"},
    "pickleImportScan": {"pickleImports": [], "status": "unscanned",
                         "version": "0.0.0"},
    "protectAiScan": {"status": "unscanned"},
    "status": "safe",
    "virusTotalScan": {"status": "unscanned"},
}
FLIP_TABLE = bytes(b ^ 0xFF for b in range(256))
HUB_KEYS = {  # every top-level hub.json key, with the JSON types it accepts
    "_id": str, "private": bool, "gated": (bool, str), "disabled": bool,
    "token": str, "tokens": list, "default_branch": str, "revisions": dict,
    "commits": dict, "page_size": int, "link_style": str,
    "cdn_expires_in": int, "resolve_cache": bool, "gated_listing": str,
    "cdn_reject_auth": bool, "created_at": str,
}
HUB_FILE_KEYS = {"src": str, "size": int, "oid": str, "sha256": str,
                 "lfs": bool, "pointer_size": int, "corrupt_cdn": (bool, int)}


def git_blob_oid(data):
    """git hash-object: sha1 of b"blob <len>\\0" + data, as /tree "oid"."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256, size):
    """The git-lfs pointer file the git tree holds for an LFS file."""
    return (f"version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{sha256}\nsize {size}\n").encode()


def hash_file(path):
    """(size, git blob oid, sha256) of a file, read in blocks."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        sha1 = hashlib.sha1(b"blob %d\0" % size)
        sha256 = hashlib.sha256()
        while block := f.read(1 << 20):
            sha1.update(block)
            sha256.update(block)
    return size, sha1.hexdigest(), sha256.hexdigest()


def git_tree_oids(file_oids):
    """Git tree oids of every directory ("" is the root) of a commit whose
    files (all mode 100644) have these blob oids."""
    root = {}
    for path, oid in file_oids.items():
        node = root
        *dirs, leaf = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = oid
    out = {}

    def tree(node, prefix):
        items = []
        for name, value in node.items():
            sub = f"{prefix}/{name}" if prefix else name
            if isinstance(value, dict):
                # git sorts a tree as if its name ended with "/"
                items.append((name.encode() + b"/", b"40000", name,
                              tree(value, sub)))
            else:
                items.append((name.encode(), b"100644", name, value))
        items.sort()
        body = b"".join(mode + b" " + name.encode() + b"\0" + bytes.fromhex(oid)
                        for _, mode, name, oid in items)
        out[prefix] = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
        return out[prefix]

    tree(root, "")
    return out


def git_commit_oid(tree, parent, when, title):
    """The oid of a git commit object with these fields."""
    lines = [b"tree " + tree.encode()]
    if parent:
        lines.append(b"parent " + parent.encode())
    lines.append(b"author %s %d +0000" % (GIT_IDENT, when))
    lines.append(b"committer %s %d +0000" % (GIT_IDENT, when))
    body = b"\n".join(lines) + b"\n\n" + title.encode() + b"\n"
    return hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()


def iso_date(when):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when))


def express_etag(body):
    """The weak ETag Express puts on the Hub's generated bodies."""
    digest = hashlib.sha1(body).digest()
    return 'W/"%x-%s"' % (len(body), base64.b64encode(digest).decode()[:27])


def header_safe(text):
    """Text fit for an HTTP header: printable ASCII."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def content_disposition(kind, path):
    name = path.rsplit("/", 1)[-1]
    return (f"{kind}; filename*=UTF-8''{urllib.parse.quote(name)}; "
            f'filename="{header_safe(name).replace(chr(34), "_")}";')


def truthy(values):
    """A query boolean: true, True, 1 ... (the last one given)."""
    return bool(values) and values[-1].lower() in ("1", "true", "yes", "on")


def check_repo_path(path):
    """Raise ValueError unless path is a clean relative file path."""
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") for p in parts) or "\0" in path:
        raise ValueError(f"bad file path {path!r}")


class HubConfigError(ValueError):
    """A hub.json that cannot be used."""


class HubFile:
    __slots__ = ("path", "src", "size", "oid", "sha256", "lfs",
                 "pointer_size", "corrupt")


class HubCommit:
    """One commit: files by path, git tree oids of its directories."""

    def __init__(self, cid, files, parent, date, title):
        self.id, self.files, self.parent = cid, files, parent
        self.date, self.title = date, title
        self.dirs = git_tree_oids({p: f.oid for p, f in files.items()})

    def listing(self, path, recursive):
        """[(type, path)] below directory path: directories, then files."""
        prefix = path + "/" if path else ""

        def wanted(p):
            return p.startswith(prefix) and p != path and (
                recursive or "/" not in p[len(prefix):])
        return ([("directory", d) for d in sorted(filter(wanted, self.dirs))]
                + [("file", f) for f in sorted(filter(wanted, self.files))])

    def oid_of(self, kind, path):
        if kind == "file":
            f = self.files.get(path)
            return f and f.oid
        return self.dirs.get(path)


class HubRepo:
    """A repo as read from its hub.json."""

    def __init__(self, hub, path, plural, owner, name):
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError("hub.json must be an object")
        for key, value in meta.items():
            if key in HUB_KEYS and not isinstance(value, HUB_KEYS[key]):
                raise ValueError(f"bad value for {key!r}")
        repo_dir = os.path.dirname(path)
        self.type, self.kind = plural, HUB_TYPES[plural]
        self.owner, self.name, self.id = owner, name, f"{owner}/{name}"
        self.url_prefix = "" if plural == "models" else plural + "/"
        self.mongo_id = meta.get("_id") or hashlib.sha1(
            f"{plural}/{self.id}".encode()).hexdigest()[:24]
        self.private = meta.get("private", False)
        gated = meta.get("gated", False)
        self.gated = "auto" if gated is True else gated
        if self.gated not in (False, "auto", "manual"):
            raise ValueError("gated must be false, true, auto or manual")
        self.disabled = meta.get("disabled", False)
        self.tokens = set(meta.get("tokens", []))
        if "token" in meta:
            self.tokens.add(meta["token"])
        if (self.private or self.gated) and not self.tokens:
            raise ValueError("a private or gated repo needs a token")
        self.default_branch = meta.get("default_branch", "main")
        self.page_size = meta.get("page_size")
        if self.page_size is not None and self.page_size < 1:
            raise ValueError("page_size must be positive")
        self.link_style = meta.get("link_style", "absolute")
        if self.link_style not in ("absolute", "relative", "alternate"):
            raise ValueError("link_style must be absolute, relative or "
                             "alternate")
        self.gated_listing = meta.get("gated_listing", "open")
        if self.gated_listing not in ("open", "redact", "deny"):
            raise ValueError("gated_listing must be open, redact or deny")
        self.cdn_expires_in = meta.get("cdn_expires_in", CDN_EXPIRES_IN)
        self.resolve_cache = meta.get("resolve_cache", False)
        self.cdn_reject_auth = meta.get("cdn_reject_auth", False)
        self.commits = {}
        self.by_sha256 = {}  # LFS content id -> a HubFile holding it
        self.corrupt = {}  # LFS content id -> True or the offset to flip
        for cid, cmeta in meta.get("commits", {}).items():
            if not HEX40_RE.fullmatch(cid) or not isinstance(cmeta, dict):
                raise ValueError(f"bad commit {cid!r}")
            files = {}
            for fpath, fmeta in cmeta.get("files", {}).items():
                check_repo_path(fpath)
                files[fpath] = self._file(hub, repo_dir, fpath, fmeta)
            parent = cmeta.get("parent")
            self.commits[cid] = HubCommit(
                cid, files, parent, cmeta.get("date", iso_date(HUB_EPOCH)),
                cmeta.get("title", "Upload files"))
        self.revisions = dict(meta.get("revisions", {}))
        for rev, cid in self.revisions.items():
            if cid not in self.commits:
                raise ValueError(f"revision {rev!r} names unknown commit "
                                 f"{cid!r}")
        dates = sorted(c.date for c in self.commits.values())
        self.created_at = meta.get("created_at") or (
            dates[0] if dates else iso_date(HUB_EPOCH))

    def _file(self, hub, repo_dir, path, fmeta):
        if not isinstance(fmeta, dict) or "src" not in fmeta:
            raise ValueError(f"file {path!r} needs a src")
        for key, value in fmeta.items():
            if key in HUB_FILE_KEYS and not isinstance(value,
                                                       HUB_FILE_KEYS[key]):
                raise ValueError(f"bad {key!r} of file {path!r}")
        f = HubFile()
        f.path = path
        f.src = os.path.join(repo_dir, fmeta["src"])
        f.lfs = fmeta.get("lfs", False)
        if all(k in fmeta for k in ("size", "sha256")) and (
                f.lfs or "oid" in fmeta):
            f.size, f.sha256 = fmeta["size"], fmeta["sha256"]
            f.oid = fmeta.get("oid")
        else:
            f.size, f.oid, f.sha256 = hub.hash_file(f.src)
        f.pointer_size = None
        if f.lfs:
            pointer = lfs_pointer(f.sha256, f.size)
            f.pointer_size = len(pointer)
            f.oid = fmeta.get("oid") or git_blob_oid(pointer)
            self.by_sha256.setdefault(f.sha256, f)
            if fmeta.get("corrupt_cdn") not in (None, False):
                self.corrupt[f.sha256] = fmeta["corrupt_cdn"]
        f.corrupt = fmeta.get("corrupt_cdn")
        return f

    def resolve(self, rev):
        """The commit a revision names, or None: a branch, tag or ref, HEAD,
        a full commit id or a unique commit id prefix of 4+ hex digits."""
        if rev in self.revisions:
            return self.revisions[rev]
        if rev == "HEAD":
            return self.revisions.get(self.default_branch)
        if rev in self.commits:
            return rev
        if SHORT_SHA_RE.fullmatch(rev):
            found = [c for c in self.commits if c.startswith(rev)]
            if len(found) == 1:
                return found[0]
        return None

    def last_commit(self, commit, kind, path):
        """The oldest commit, going back from commit, since which path has
        had its current oid (what "lastCommit" reports)."""
        oid = commit.oid_of(kind, path)
        while commit.parent in self.commits:
            parent = self.commits[commit.parent]
            if parent.oid_of(kind, path) != oid:
                break
            commit = parent
        return commit


class Hub:
    """The repos under --hub DIR; a hub.json is re-read when it changes."""

    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.lock = threading.Lock()
        self.repos = {}  # hub.json path -> (stamp, HubRepo); under lock
        self.hashes = {}  # (src, stamp) -> (size, oid, sha256); under lock

    def hash_file(self, src):
        st = os.stat(src)
        key = (src, st.st_mtime_ns, st.st_ino, st.st_size)
        if key not in self.hashes:
            self.hashes[key] = hash_file(src)
        return self.hashes[key]

    def repo(self, plural, owner, name):
        """The HubRepo, or None if it does not exist. Raises
        HubConfigError for a hub.json that cannot be read."""
        if plural not in HUB_TYPES or not all(
                HUB_NAME_RE.fullmatch(n) and ".." not in n
                for n in (owner, name)):
            return None
        path = os.path.join(self.root, plural, owner, name, "hub.json")
        with self.lock:
            return self._load_locked(path, plural, owner, name)

    def _load_locked(self, path, plural, owner, name):
        try:
            st = os.stat(path)
        except OSError:
            self.repos.pop(path, None)
            return None
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        cached = self.repos.get(path)
        if cached is None or cached[0] != stamp:
            try:
                repo = HubRepo(self, path, plural, owner, name)
            except (OSError, ValueError, KeyError, TypeError,
                    AttributeError) as e:
                raise HubConfigError(f"{path}: {e}") from e
            cached = self.repos[path] = (stamp, repo)
        return cached[1]

    def token_valid(self, token):
        """True if token is known: in DIR/tokens.json or granted by a repo."""
        try:
            with open(os.path.join(self.root, "tokens.json"),
                      encoding="utf-8") as f:
                if token in json.load(f):
                    return True
        except (OSError, ValueError, TypeError):
            pass
        for plural in HUB_TYPES:
            top = os.path.join(self.root, plural)
            for owner in sorted(os.listdir(top)) if os.path.isdir(top) else ():
                odir = os.path.join(top, owner)
                for name in sorted(os.listdir(odir)) if os.path.isdir(odir) \
                        else ():
                    try:
                        repo = self.repo(plural, owner, name)
                    except HubConfigError:
                        continue
                    if repo is not None and token in repo.tokens:
                        return True
        return False


def hub_route(raw_path):
    """Classify a raw (still percent-encoded) URL path for the fake Hub.

    Returns (kind, fields) or None for a path that is not a Hub URL. The
    revision is one path segment, so "%2F" in it is part of its name.
    """
    segs = raw_path.split("/")[1:]

    def dec(seg):
        return os.fsdecode(urllib.parse.unquote_to_bytes(seg.encode("latin-1")))

    def path_of(parts):
        return "/".join(p for p in "/".join(dec(s) for s in parts).split("/")
                        if p)

    if segs and segs[0] == "api":
        if len(segs) >= 4 and segs[1] in HUB_TYPES:
            r = {"type": segs[1], "owner": dec(segs[2]), "name": dec(segs[3])}
            rest = segs[4:]
            if rest in ([], [""]):
                return "info", {**r, "rev": None}
            if rest[0] == "revision" and len(rest) == 2:
                return "info", {**r, "rev": dec(rest[1])}
            if rest[0] == "tree" and len(rest) >= 2:
                return "tree", {**r, "rev": dec(rest[1]),
                                "path": path_of(rest[2:])}
            if rest[0] == "paths-info" and len(rest) == 2:
                return "paths-info", {**r, "rev": dec(rest[1])}
        if len(segs) >= 7 and segs[1] == "resolve-cache" and \
                segs[2] in HUB_TYPES:
            return "resolve-cache", {
                "type": segs[2], "owner": dec(segs[3]), "name": dec(segs[4]),
                "rev": dec(segs[5]), "path": path_of(segs[6:])}
        return "api-404", None
    if len(segs) == 5 and segs[0] == LFS_PREFIX[1:] and segs[1] in HUB_TYPES:
        return "cdn", {"type": segs[1], "owner": dec(segs[2]),
                       "name": dec(segs[3]), "sha256": dec(segs[4])}
    if len(segs) >= 5 and segs[0] in HUB_URL_PREFIXES and \
            segs[3] in ("resolve", "raw"):
        plural, segs = segs[0], segs[1:]
    elif len(segs) >= 4 and segs[2] in ("resolve", "raw"):
        plural = "models"
    else:
        return None
    return segs[2], {"type": plural, "owner": dec(segs[0]),
                     "name": dec(segs[1]), "rev": dec(segs[3]),
                     "path": path_of(segs[4:])}


def encode_cursor(offset):
    raw = json.dumps({"offset": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor):
    """The offset a cursor encodes; raises ValueError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["offset"]
    except (ValueError, TypeError, KeyError, binascii.Error) as e:
        raise ValueError("bad cursor") from e
    if not isinstance(offset, int) or offset < 0:
        raise ValueError("bad cursor")
    return offset


class HubMixin:
    """The fake Hub's request handling, mixed into Handler."""

    def respond_hub(self, route):
        kind, r = route or ("none", None)
        self.hub_bucket = "resolvers" if kind in (
            "resolve", "raw", "resolve-cache") else "api"
        fault = self.server.faults.lookup(self.url_path, self.command)
        if "status" in fault:
            extra = {} if kind == "cdn" else self.hub_headers()
            if "ratelimit" in fault and kind != "cdn":
                quota = RATE_QUOTA[self.hub_bucket]
                extra["RateLimit-Policy"] = (f'"fixed window";'
                                             f'"{self.hub_bucket}";q={quota};'
                                             f'w=300')
            return self.send_status_fault(fault, extra)
        if self.command == "POST" and kind != "paths-info":
            return self.hub_error(405, "Method not allowed")
        if kind == "paths-info" and self.command != "POST":
            return self.hub_error(405, "Method not allowed")
        if kind in ("none", "api-404"):
            return self.hub_error(404, "Sorry, we can't find the page you "
                                  "are looking for.")
        try:
            handler = getattr(self, "hub_" + kind.replace("-", "_"))
            return handler(r, fault)
        except HubConfigError as e:  # a broken hub.json: the test's mistake
            print(f"testserver: {e}", file=sys.stderr, flush=True)
            if self.status is None:
                self.hub_error(500, f"bad hub.json: {e}")
        except OSError:
            raise  # the client went away
        except Exception:  # a bug here: say so, and keep serving
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            if self.status is None:
                self.hub_error(500, "testserver bug, see its stderr")

    # -- responses --

    def hub_headers(self):
        rid = "Root=1-%08x-%s" % (int(time.time()), secrets.token_hex(12))
        trace = self.headers.get("X-Amzn-Trace-Id")
        if trace:
            rid += ";" + header_safe(trace)
        bucket = getattr(self, "hub_bucket", "api")
        quota = RATE_QUOTA[bucket]
        return {
            "X-Powered-By": "huggingface-moon",
            "X-Request-Id": rid,
            "RateLimit": f'"{bucket}";r={quota - 1};t=300',
            "RateLimit-Policy": f'"fixed window";"{bucket}";q={quota};w=300',
            "Vary": "Origin, Accept",
        }

    def hub_json(self, status, value, headers=None):
        # UTF-8 as the Hub sends it; a lone surrogate (from a path that
        # was not UTF-8) becomes a \udcXX escape, which is valid JSON.
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")
                          ).encode("utf-8", "backslashreplace")
        self.send_bytes(status, body, "application/json; charset=utf-8",
                        {**self.hub_headers(), "ETag": express_etag(body),
                         **(headers or {})})

    def hub_error(self, status, message, code=None, headers=None, text=False):
        extra = {"X-Error-Message": header_safe(message)}
        if code:
            extra["X-Error-Code"] = code
        extra.update(headers or {})
        if not text:
            return self.hub_json(status, {"error": message}, extra)
        body = message.encode()
        self.send_bytes(status, body, "text/plain; charset=utf-8",
                        {**self.hub_headers(), "ETag": express_etag(body),
                         **extra})

    def cdn_error(self, status, code, message):
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}'
                f"</Code><Message>{message}</Message></Error>").encode()
        self.send_bytes(status, body, "application/xml",
                        {"X-Cache": "Error from cloudfront"})

    def base_url(self):
        host = self.headers.get("Host") or \
            f"127.0.0.1:{self.server.server_port}"
        return "http://" + header_safe(host)

    def cdn_host(self):
        if self.server.cdn_host:
            return self.server.cdn_host
        host = urllib.parse.urlsplit(self.base_url()).hostname
        return "127.0.0.1" if host == "localhost" else "localhost"

    # -- access --

    def hub_access(self, r, content):
        """Check the token against the repo. Returns (repo, redact) or None
        once an error is answered. content: the request reads file bytes
        (always gated), not only metadata."""
        hub = self.server.hub
        token = None
        auth = self.headers.get("Authorization")
        if auth is not None:
            m = BEARER_RE.fullmatch(auth.strip())
            token = m and m.group(1)
            if not token or not hub.token_valid(token):
                return self.hub_error(401, INVALID_CREDENTIALS)
        repo = hub.repo(r["type"], r["owner"], r["name"])
        granted = repo is not None and token in repo.tokens
        if repo is None or (repo.private and not granted):
            if token is None:
                return self.hub_error(401, ANON_NOT_FOUND, "RepoNotFound", {
                    "WWW-Authenticate": 'Bearer realm="Authentication '
                                        'required", charset="UTF-8"'})
            return self.hub_error(404, "Repository not found", "RepoNotFound")
        if repo.disabled:
            return self.hub_error(403, "Access to this resource is disabled.")
        locked = repo.gated and not granted
        if locked and (content or repo.gated_listing == "deny"):
            what = f"{repo.kind} {repo.id}"
            if token is None:
                return self.hub_error(
                    401, f"Access to {what} is restricted. You must have "
                    f"access to it and be authenticated to access it. "
                    f"Please log in.", "GatedRepo")
            return self.hub_error(
                403, f"Access to {what} is restricted and you are not in the "
                f"authorized list. Visit {self.base_url()}/{repo.url_prefix}"
                f"{repo.id} to ask for access.", "GatedRepo")
        return repo, bool(locked and repo.gated_listing == "redact")

    def hub_commit(self, repo, rev):
        """The HubCommit rev names, or None once a 404 is answered."""
        cid = repo.resolve(rev)
        if cid is None:
            return self.hub_error(404, f"Invalid rev id: {rev}",
                                  "RevisionNotFound")
        return repo.commits[cid]

    # -- /api/{type}s/{id}[/revision/{rev}] --

    def hub_info(self, r, fault):
        access = self.hub_access(r, False)
        if not access:
            return
        repo, redact = access
        rev = repo.default_branch if r["rev"] is None else r["rev"]
        commit = self.hub_commit(repo, rev)
        if not commit:
            return
        query = urllib.parse.parse_qs(self.query, keep_blank_values=True)
        blobs = truthy(query.get("blobs"))
        siblings = []
        for path in sorted(commit.files):
            f = commit.files[path]
            s = {"rfilename": path}
            if blobs:
                s.update(blobId=f.oid, size=f.size)
                if f.lfs:
                    s["lfs"] = {"sha256": REDACTED if redact else f.sha256,
                                "size": f.size, "pointerSize": f.pointer_size}
            siblings.append(s)
        info = {
            "_id": repo.mongo_id, "id": repo.id, "author": repo.owner,
            "sha": commit.id, "lastModified": commit.date,
            "private": repo.private, "gated": repo.gated,
            "disabled": repo.disabled, "tags": [], "downloads": 0,
            "likes": 0, "siblings": siblings, "createdAt": repo.created_at,
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        if repo.kind == "model":
            info.update({"library_name": None, "model-index": None,
                         "config": {}, "spaces": []})
        elif repo.kind == "space":
            info.update({"sdk": "static", "runtime": {"stage": "RUNNING"}})
        fields = [v for vs in query.get("expand", []) for v in vs.split(",")]
        if fields:  # only the named fields; unknown ones are ignored
            info = {k: v for k, v in info.items()
                    if k in ("_id", "id") or k in fields}
        self.hub_json(200, info)

    # -- /api/{type}s/{id}/tree/{rev}[/{path}] and paths-info --

    def tree_entry(self, repo, commit, kind, path, expand, redact):
        if kind == "directory":
            e = {"type": "directory", "oid": commit.dirs[path], "size": 0,
                 "path": path}
        else:
            f = commit.files[path]
            e = {"type": "file", "oid": f.oid, "size": f.size, "path": path}
            if f.lfs:
                e["lfs"] = {"oid": REDACTED if redact else f.sha256,
                            "size": f.size, "pointerSize": f.pointer_size}
        if expand:
            last = repo.last_commit(commit, kind, path)
            e["lastCommit"] = {"id": last.id, "title": last.title,
                               "date": last.date}
            if kind == "file":
                e["securityFileStatus"] = SECURITY_STATUS
        return e

    def hub_tree(self, r, fault):
        access = self.hub_access(r, False)
        if not access:
            return
        repo, redact = access
        commit = self.hub_commit(repo, r["rev"])
        if not commit:
            return
        path = r["path"]
        if path and path not in commit.dirs:
            return self.hub_error(
                404, f'{path} does not exist on "{r["rev"]}"', "EntryNotFound",
                {"X-Repo-Commit": commit.id})
        query = urllib.parse.parse_qs(self.query, keep_blank_values=True)
        recursive = truthy(query.get("recursive"))
        expand = truthy(query.get("expand"))
        page = repo.page_size or (TREE_PAGE_EXPAND if expand else TREE_PAGE)
        try:
            limit = query.get("limit", [""])[-1]
            if limit:
                if int(limit) < 1:
                    raise ValueError("bad limit")
                page = min(page, int(limit))
            cursor = query.get("cursor", [""])[-1]
            offset = decode_cursor(cursor) if cursor else 0
        except ValueError:
            return self.hub_error(400, "Invalid limit or cursor")
        entries = commit.listing(path, recursive)
        body = [self.tree_entry(repo, commit, kind, p, expand, redact)
                for kind, p in entries[offset:offset + page]]
        headers = {}
        if offset + page < len(entries):
            params = {}
            if recursive:
                params["recursive"] = "1"
            if expand:
                params["expand"] = "1"
            if "limit" in query:
                params["limit"] = query["limit"][-1]
            params["cursor"] = encode_cursor(offset + page)
            link = (self.path.partition("?")[0] + "?"
                    + urllib.parse.urlencode(params))
            n = (offset + page) // page  # the number of the next page
            if repo.link_style == "absolute" or (
                    repo.link_style == "alternate" and n % 2 == 1):
                link = self.base_url() + link
            headers["Link"] = f'<{link}>; rel="next"'
        self.hub_json(200, body, headers)

    def hub_paths_info(self, r, fault):
        access = self.hub_access(r, False)
        if not access:
            return
        repo, redact = access
        commit = self.hub_commit(repo, r["rev"])
        if not commit:
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            if ctype == "application/json":
                req = json.loads(self.body or b"{}")
                paths, expand = req.get("paths", []), req.get("expand", False)
                if not isinstance(paths, list) or not all(
                        isinstance(p, str) for p in paths):
                    raise ValueError("paths must be a list of strings")
                expand = expand is True or truthy([str(expand)])
            else:
                form = urllib.parse.parse_qs(self.body.decode("utf-8"),
                                             keep_blank_values=True)
                paths, expand = form.get("paths", []), truthy(
                    form.get("expand"))
        except (ValueError, AttributeError, UnicodeDecodeError) as e:
            return self.hub_error(400, f"Invalid request body: {e}")
        out, seen = [], set()
        for p in paths:
            p = p.strip("/")
            if p in seen:
                continue
            seen.add(p)
            if p in commit.files:
                out.append(self.tree_entry(repo, commit, "file", p, expand,
                                           redact))
            elif p and p in commit.dirs:
                out.append(self.tree_entry(repo, commit, "directory", p,
                                           expand, redact))
        self.hub_json(200, out)

    # -- /{prefix}{id}/resolve|raw/{rev}/{path} and the resolve cache --

    def hub_resolve(self, r, fault, raw=False, cached=False):
        access = self.hub_access(r, True)
        if not access:
            return
        repo, _ = access
        commit = self.hub_commit(repo, r["rev"])
        if not commit:
            return
        f = commit.files.get(r["path"])
        headers = {**self.hub_headers(), "X-Repo-Commit": commit.id,
                   "Accept-Ranges": "bytes"}
        if f is None:
            return self.hub_error(404, "Entry not found", "EntryNotFound",
                                  {"X-Repo-Commit": commit.id}, text=True)
        headers["Content-Disposition"] = content_disposition("inline", f.path)
        if raw:  # the git blob: the pointer file of an LFS file
            if f.lfs:
                return self.send_data(lfs_pointer(f.sha256, f.size),
                                      f'"{f.oid}"', headers, fault)
            return self.send_file(f.src, fault, f'"{f.oid}"', headers)
        etag = f'"{f.sha256}"' if f.lfs else f'"{f.oid}"'
        if f.lfs:
            headers.update({"X-Linked-Size": str(f.size),
                            "X-Linked-Etag": etag})
        inm = self.headers.get("If-None-Match")
        if inm is not None and not cached and etag in (
                t.strip().removeprefix("W/") for t in inm.split(",")):
            self.start_response(304, {**headers, "ETag": etag})
            return
        if f.lfs and not cached:
            return self.redirect_to_cdn(repo, f, headers, fault)
        if repo.resolve_cache and not cached:
            orig = urllib.parse.quote(self.path.partition("?")[0], safe="")
            location = (f"/api/resolve-cache/{repo.type}/{repo.id}/"
                        f"{commit.id}/{urllib.parse.quote(f.path)}?{orig}="
                        f"&etag={urllib.parse.quote(etag, safe='')}")
            body = f"Temporary Redirect. Redirecting to {location}".encode()
            return self.send_bytes(307, body, "text/plain; charset=utf-8", {
                **headers, "X-Linked-Etag": etag, "Location": location,
                "ETag": express_etag(body)})
        self.send_file(f.src, fault, etag, headers)

    def hub_raw(self, r, fault):
        self.hub_resolve(r, fault, raw=True)

    def hub_resolve_cache(self, r, fault):
        self.hub_resolve(r, fault, cached=True)

    def redirect_to_cdn(self, repo, f, headers, fault):
        expires = int(time.time()) + fault.get("expires_in",
                                               repo.cdn_expires_in)
        path = f"{LFS_PREFIX}/{repo.type}/{repo.id}/{f.sha256}"
        disp = urllib.parse.quote(content_disposition("attachment", f.path),
                                  safe="")
        location = (f"http://{self.cdn_host()}:{self.server.server_port}"
                    f"{path}?response-content-disposition={disp}"
                    f"&Expires={expires}"
                    f"&Signature={sign(self.server.secret, path, expires)}"
                    f"&Key-Pair-Id={CDN_KEY_PAIR_ID}")
        body = f"Found. Redirecting to {location}".encode()
        self.send_bytes(302, body, "text/plain; charset=utf-8", {
            **headers, "Location": location, "ETag": express_etag(body),
            "Cache-Control": "no-store"})

    # -- the LFS CDN: /__lfs/{type}s/{id}/{sha256}?Expires=&Signature= --

    def hub_cdn(self, r, fault):
        params = urllib.parse.parse_qs(self.query)
        expires = params.get("Expires", [""])[-1]
        sig = params.get("Signature", [""])[-1]
        if not expires.isdigit() or not sig:
            return self.cdn_error(403, "MissingKey", "Missing Key-Pair-Id "
                                  "query parameter or cookie value")
        good = sign(self.server.secret, self.url_path, int(expires))
        if not hmac.compare_digest(sig.encode(), good.encode()):
            return self.cdn_error(403, "AccessDenied", "Access denied")
        if time.time() >= int(expires):
            return self.cdn_error(403, "AccessDenied", "Request has expired")
        repo = self.server.hub.repo(r["type"], r["owner"], r["name"])
        f = repo and repo.by_sha256.get(r["sha256"])
        if f is None:
            return self.cdn_error(404, "NoSuchKey",
                                  "The specified key does not exist.")
        if repo.cdn_reject_auth and "Authorization" in self.headers:
            return self.cdn_error(400, "InvalidArgument", "Only one auth "
                                  "mechanism allowed")
        headers = {"X-Cache": "Miss from cloudfront",
                   "Via": "1.1 hollowfs-testserver.cloudfront.net "
                          "(CloudFront)"}
        disp = params.get("response-content-disposition")
        if disp:
            headers["Content-Disposition"] = header_safe(disp[-1])
        # The CDN's own ETag: like a Xet hash, 64 hex that is NOT the sha256.
        etag = '"%s"' % hashlib.sha256(b"cdn:" + f.sha256.encode()).hexdigest()
        self.send_file(f.src, fault, etag, headers,
                       flip=repo.corrupt.get(f.sha256))

    def send_data(self, data, etag, headers, fault):
        """Serve bytes from memory with a single range, like send_file."""
        span = None
        if self.headers.get("Range") is not None and \
                not fault.get("ignore_range"):
            span = parse_range(self.headers["Range"], len(data))
            if span is UNSATISFIABLE:
                return self.send_text(416, "range not satisfiable", {
                    "Content-Range": f"bytes */{len(data)}"})
        headers = {**headers, "ETag": etag}
        if span is None:
            return self.send_bytes(200, data, "application/octet-stream",
                                   headers)
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{len(data)}"
        self.send_bytes(206, data[span[0]:span[1] + 1],
                        "application/octet-stream", headers)



class Handler(HubMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer has a length

    def version_string(self):
        return "hollowfs-testserver"

    def do_GET(self):
        with self.server.idle:
            self.server.busy_handlers += 1
        self.sent_bytes = 0  # body bytes handed to the socket
        self.status = None
        t0 = time.time()  # "t" is when the line is written, after it
        path, _, self.query = self.path.partition("?")
        self.raw_path = path
        self.body = b""
        if self.command == "POST":
            self.read_body()
        # http.server decoded the request line as latin-1; undo that so raw
        # UTF-8 and percent-encoded UTF-8 both map to the file names.
        raw = urllib.parse.unquote_to_bytes(path.encode("latin-1"))
        self.url_path = os.fsdecode(raw)
        try:
            self.respond()
        except OSError:  # the client went away mid-response
            self.close_connection = True
        finally:
            self.server.access_log.write({
                "t": time.time(),
                "t0": t0,
                "method": self.command,
                "path": self.url_path,
                "query": self.query,
                "range": self.headers.get("Range"),
                "status": self.status,
                "bytes": self.sent_bytes,
                "auth": "Authorization" in self.headers,
                "authorization": self.headers.get("Authorization"),
                "host": self.headers.get("Host"),
                "client_port": self.client_address[1],
            })
            with self.server.idle:
                self.server.busy_handlers -= 1
                self.server.idle.notify_all()

    do_HEAD = do_GET
    do_POST = do_GET

    def read_body(self):
        """Read a POST body (the paths-info form or JSON)."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > 16 << 20:
            self.close_connection = True  # cannot find the next request
            return
        self.body = self.rfile.read(int(length))

    def log_request(self, code="-", size="-"):
        pass  # the JSON access log replaces http.server's stderr lines

    def respond(self):
        path = self.url_path
        if not path.startswith("/") or "\0" in path:
            return self.send_text(404, "not found")
        if self.server.hub is not None:
            route = hub_route(self.raw_path)
            if route is not None or self.server.root is None:
                return self.respond_hub(route)
        if self.command == "POST":
            return self.send_text(405, "method not allowed")
        file_path = path  # the file under root that this URL names
        if path.startswith(CDN_PREFIX + "/"):
            file_path = path[len(CDN_PREFIX):]
            error = self.check_signature(file_path)
            if error:
                return self.send_text(403, error)
        elif path.startswith(REL_PREFIX + "/"):
            file_path = path[len(REL_PREFIX):]

        fault = self.server.faults.lookup(path, self.command,
                                          self.range_len())
        if fault.get("hang"):
            # "hang": read the request, answer nothing until the client
            # or the server goes away (a stalled listing, a dead origin).
            self.stall(None)
            return self.abort()
        if "location" in fault:
            # "location": a 302 to exactly this Location, any scheme.
            return self.send_text(302, "found",
                                  {"Location": fault["location"]})
        if "redirect" in fault:
            return self.redirect(fault)
        if "status" in fault:
            return self.send_status_fault(fault)
        if "listing" in fault:
            # "listing": serve this text (or JSON value) as the listing.
            listing = fault["listing"]
            if isinstance(listing, str):
                body = listing.encode("utf-8", "surrogateescape")
            else:
                body = json.dumps(listing).encode()
            is_json = not isinstance(listing, str) or self.server.index == "json"
            return self.send_bytes(200, body, "application/json" if is_json
                                   else "text/html")

        # "content_file": serve another file's bytes under this path.
        if "content_file" in fault:
            target = self.resolve("/" + fault["content_file"])
        else:
            target = self.resolve(file_path)
        if target is None:
            return self.send_text(404, "not found")
        if os.path.isdir(target):
            if not path.endswith("/"):
                location = urllib.parse.quote(path + "/",
                                              errors="surrogateescape")
                if self.query:
                    location += "?" + self.query
                return self.send_text(301, "moved", {"Location": location})
            return self.send_listing(target)
        if not os.path.isfile(target) or (path.endswith("/")
                                          and "content_file" not in fault):
            return self.send_text(404, "not found")
        return self.send_file(target, fault)

    def range_len(self):
        """How many bytes a "bytes=A-B" Range header asks for, or None."""
        m = RANGE_RE.fullmatch((self.headers.get("Range") or "").strip())
        if not m or not m.group(1) or not m.group(2):
            return None
        return int(m.group(2)) - int(m.group(1)) + 1

    def send_status_fault(self, fault, headers=None):
        """"status": answer with a short text body instead of the file,
        plus "retry_after", "ratelimit" and "ratelimit_policy" headers
        when given."""
        headers = dict(headers or {})
        if "retry_after" in fault:
            headers["Retry-After"] = str(fault["retry_after"])
        if "ratelimit" in fault:
            headers["RateLimit"] = fault["ratelimit"]
        if "ratelimit_policy" in fault:
            headers["RateLimit-Policy"] = fault["ratelimit_policy"]
        self.send_text(fault["status"], "injected fault", headers)

    def resolve(self, url_path):
        """Map a URL path to an existing path under root, or None."""
        root = self.server.root
        full = os.path.realpath(os.path.join(root, url_path.lstrip("/")))
        if os.path.commonpath([root, full]) != root or not os.path.exists(full):
            return None
        return full

    def check_signature(self, file_path):
        """Return why a /__cdn/ request is refused, or None."""
        params = urllib.parse.parse_qs(self.query)
        expires = params.get("expires", [""])[0]
        sig = params.get("sig", [""])[0]
        if not expires.isdigit():
            return "missing or malformed expires"
        good = sign(self.server.secret, file_path, int(expires))
        if not hmac.compare_digest(sig.encode(), good.encode()):
            return "SignatureDoesNotMatch"
        if time.time() >= int(expires):
            return "Request has expired"
        return None

    def redirect(self, fault):
        """"redirect": a 302 to a signed CDN URL on host "localhost" (a
        different host name for the client, the same server), or to a
        relative /__rel/ URL; both serve this path's file."""
        quoted = urllib.parse.quote(self.url_path, errors="surrogateescape")
        if fault["redirect"] == "cdn":
            expires = int(time.time()) + fault.get("expires_in", 3600)
            sig = sign(self.server.secret, self.url_path, expires)
            location = (f"http://localhost:{self.server.server_port}"
                        f"{CDN_PREFIX}{quoted}?expires={expires}&sig={sig}")
        else:
            location = REL_PREFIX + quoted
        self.send_text(302, "found", {"Location": location})

    def send_listing(self, dirpath):
        try:
            entries = list_dir(dirpath)
        except OSError:
            return self.send_text(403, "forbidden")
        if self.server.index == "json":
            self.send_bytes(200, render_json(entries), "application/json")
        elif self.server.index == "html-bare":
            self.send_bytes(200, render_html_bare(self.url_path, entries),
                            "text/html")
        else:
            self.send_bytes(200, render_html(self.url_path, entries),
                            "text/html")

    def send_file(self, target, fault, etag=None, extra_headers=None,
                  flip=None):
        """Serve a file with a single range. etag replaces the one made up
        from size and mtime (a fault's "etag" wins over both);
        extra_headers are added; flip (True, or one offset) corrupts the
        bytes sent."""
        try:
            f = open(target, "rb")
        except OSError:
            return self.send_text(403, "forbidden")
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            if "etag" in fault:
                etag = quote_etag(fault["etag"])
            elif etag is None:
                etag = file_etag(st)
            last_modified = http_date(st.st_mtime)
            if fault.get("gzip") and "gzip" in self.headers.get(
                    "Accept-Encoding", ""):
                return self.send_gzip(f, etag, last_modified, extra_headers,
                                      flip)
            # "force_gzip": "200": as "gzip", whatever Accept-Encoding says.
            if fault.get("force_gzip") == "200":
                return self.send_gzip(f, etag, last_modified, extra_headers,
                                      flip)
            if fault.get("no_length"):
                return self.send_unsized(f, etag, last_modified,
                                         extra_headers, flip)

            span = None  # (start, end) inclusive, or None for the whole file
            range_header = self.headers.get("Range")
            if (range_header is not None and not fault.get("ignore_range")
                    and self.if_range_holds(etag, last_modified)):
                span = parse_range(range_header, size)
                if span is UNSATISFIABLE:
                    return self.send_text(416, "range not satisfiable",
                                          {"Content-Range": f"bytes */{size}"})
            if fault.get("bad_content_range") and span is None and size:
                span = (0, size - 1)
            # "max_range" N: a range answer carries at most N bytes, a
            # legal short 206 (RFC 9110 14.4) the client asks on after.
            if "max_range" in fault and span not in (None, UNSATISFIABLE):
                span = (span[0], min(span[1], span[0] + fault["max_range"] - 1))

            headers = {
                "Content-Type": "application/octet-stream",
                "ETag": etag,
                "Last-Modified": last_modified,
                "Accept-Ranges": "bytes",
                **(extra_headers or {}),
            }
            if span is None:
                status, start, length = 200, 0, size
            else:
                status, start, length = 206, span[0], span[1] - span[0] + 1
                # "bad_content_range": claim a range shifted by 1 KiB.
                shift = 1024 if fault.get("bad_content_range") else 0
                headers["Content-Range"] = (
                    f"bytes {span[0] + shift}-{span[1] + shift}/{size}")
            if fault.get("force_gzip") == "206" and span is not None:
                # "force_gzip": "206": the range's bytes gzip-compressed,
                # with Content-Encoding, whatever Accept-Encoding says.
                os.lseek(f.fileno(), start, os.SEEK_SET)
                body = gzip.compress(flip_bytes(f.read(length), start, flip))
                headers["Content-Encoding"] = "gzip"
                headers["Content-Length"] = str(len(body))
                self.start_response(status, headers)
                if self.command != "HEAD":
                    self.connection.sendall(body)
                    self.sent_bytes += len(body)
                return
            headers["Content-Length"] = str(length)
            self.start_response(status, headers)
            if self.command != "HEAD":
                self.send_body(f.fileno(), start, length, fault, flip)

    def send_gzip(self, f, etag, last_modified, extra_headers, flip):
        """"gzip": the whole file gzip-compressed, chunked, without a
        Content-Length, and a 200 whatever the Range (as the Hub's and
        CloudFront's compression of small text files)."""
        body = gzip.compress(flip_bytes(f.read(), 0, flip))
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": etag,
            "Last-Modified": last_modified,
            **(extra_headers or {}),
            "Content-Encoding": "gzip",
            "Transfer-Encoding": "chunked",
        }
        headers.pop("Content-Length", None)
        headers.pop("Accept-Ranges", None)
        self.start_response(200, headers)
        if self.command == "HEAD":
            return
        self.connection.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        self.sent_bytes += len(body)

    def send_unsized(self, f, etag, last_modified, extra_headers, flip):
        """"no_length": the whole file, a 200 whatever the Range, chunked,
        without a Content-Length (its length unknown to the client until
        the end, as over HTTP/2 without content-length)."""
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": etag,
            "Last-Modified": last_modified,
            **(extra_headers or {}),
            "Transfer-Encoding": "chunked",
        }
        self.start_response(200, headers)
        if self.command == "HEAD":
            return
        offset = 0
        while True:
            if self.server.stopping.is_set():
                return self.abort()
            data = flip_bytes(os.pread(f.fileno(), BLOCK_BYTES, offset),
                              offset, flip)
            self.connection.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            if not data:
                return
            offset += len(data)
            self.sent_bytes += len(data)

    def if_range_holds(self, etag, last_modified):
        """True unless an If-Range header says the file has changed."""
        cond = self.headers.get("If-Range")
        if cond is None:
            return True
        if cond.startswith('"'):
            return cond == etag  # strong comparison: weak tags never match
        return cond == last_modified

    def send_body(self, fd, offset, length, fault, flip=None):
        """Send length bytes of fd from offset, shaped by the fault and
        corrupted as flip says (see flip_bytes)."""
        # "drop_after" N sends N body bytes, "short" N all but N, and then
        # the connection is cut although Content-Length promised more.
        cuts = []
        if "drop_after" in fault:
            cuts.append(fault["drop_after"])
        if "short" in fault:
            cuts.append(length - fault["short"])
        end = max(0, min([length] + cuts))
        # "stall" stops after "stall_after" bytes, for "stall_seconds" or
        # until the client or the server goes away.
        stall_at = fault.get("stall_after", 0) if fault.get("stall") else None
        if stall_at is not None and "stall_from" in fault:
            # "stall_from" N: stall at file offset N instead, in every
            # answer: no try gets past it.
            stall_at = max(0, fault["stall_from"] - offset)
        rate = fault.get("rate")  # bytes per second
        began = time.monotonic()
        sent = 0
        while sent < end:
            if self.server.stopping.is_set():
                return self.abort()
            if stall_at is not None and sent >= stall_at:
                if not self.stall(fault.get("stall_seconds")):
                    return self.abort()
                stall_at = None
            n = min(BLOCK_BYTES, end - sent)
            if stall_at is not None:
                n = min(n, stall_at - sent)
            if rate:
                # Send each block once the time it takes at rate has passed.
                n = min(n, max(1, rate // 10))
                delay = began + (sent + n) / rate - time.monotonic()
                if delay > 0 and self.server.stopping.wait(delay):
                    return self.abort()
            if flip is None:
                n = os.sendfile(self.connection.fileno(), fd, offset + sent, n)
            else:
                data = flip_bytes(os.pread(fd, n, offset + sent),
                                  offset + sent, flip)
                self.connection.sendall(data)
                n = len(data)
            if n == 0:  # the file shrank under us: the body is short
                return self.abort()
            sent += n
            self.sent_bytes += n
        if cuts:
            self.abort()

    def stall(self, seconds):
        """Send nothing for seconds (None: forever). Return False if the
        client closed the connection or the server is stopping."""
        deadline = None if seconds is None else time.monotonic() + seconds
        sock = self.connection
        while deadline is None or time.monotonic() < deadline:
            if self.server.stopping.is_set():
                return False
            readable, _, _ = select.select([sock], [], [], POLL_S)
            if not readable:
                continue
            try:
                if not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    return False  # orderly close by the client
            except BlockingIOError:
                continue
            except OSError:
                return False
            # A pipelined request is waiting: keep stalling, without spinning.
            self.server.stopping.wait(POLL_S)
        return True

    def abort(self):
        """Cut the connection now, without sending anything more. The
        socket is closed when this request's handler returns."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def start_response(self, status, headers):
        self.status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def send_bytes(self, status, body, content_type, headers=None):
        self.start_response(status, {
            **(headers or {}),
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
        })
        if self.command == "HEAD":
            return
        view = memoryview(body)
        while view:
            n = self.connection.send(view)
            self.sent_bytes += n
            view = view[n:]

    def send_text(self, status, text, headers=None):
        self.send_bytes(status, f"{status} {text}\n".encode(),
                        "text/plain; charset=utf-8", headers)


def flip_bytes(data, offset, flip):
    """data (found at offset of its file) corrupted: every byte inverted
    if flip is True, only the byte at file offset flip if an int."""
    if flip is None or flip is False:
        return data
    if flip is True:
        return data.translate(FLIP_TABLE)
    if offset <= flip < offset + len(data):
        data = bytearray(data)
        data[flip - offset] ^= 0xFF
        data = bytes(data)
    return data


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of many concurrent connects

    def __init__(self, args):
        self.root = os.path.realpath(args.root) if args.root else None
        self.hub = Hub(args.hub) if args.hub else None
        self.cdn_host = args.cdn_host
        self.faults = Faults(args.faults)
        self.access_log = AccessLog(args.log)
        self.index = args.index
        self.secret = args.secret
        self.stopping = threading.Event()  # set on SIGTERM/SIGINT
        self.idle = threading.Condition()  # notified when a request ends
        self.busy_handlers = 0  # requests being answered; protected by idle
        super().__init__((args.host, args.port), Handler)

    def server_bind(self):
        # Skip HTTPServer.server_bind()'s socket.getfqdn(): it may query DNS,
        # and this server must not touch any network beyond loopback.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def write_atomically(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="directory to serve")
    p.add_argument("--hub", help="serve the repos under this directory as "
                   "a fake Hugging Face Hub (see the top of this file)")
    p.add_argument("--cdn-host", help="host name of the fake LFS CDN "
                   "(default: localhost, or 127.0.0.1 for clients that "
                   "reach the Hub as localhost)")
    p.add_argument("--port-file", required=True,
                   help="written with the port number once listening")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--faults", help="JSON faults file, re-read on change")
    p.add_argument("--log", help="append a JSON line per request here")
    p.add_argument("--index", choices=("json", "html", "html-bare"),
                   default="json",
                   help="directory listing format: nginx autoindex (json, "
                   "html), or links without sizes or dates (html-bare, "
                   "as python -m http.server: sizes need HEAD requests)")
    p.add_argument("--secret", default=secrets.token_hex(16),
                   help="HMAC key of the signed CDN URLs")
    args = p.parse_args(argv)
    if args.root is None and args.hub is None:
        p.error("one of --root and --hub is required")
    if args.root is not None and not os.path.isdir(args.root):
        p.error(f"--root '{args.root}' is not a directory")
    if args.hub is not None and not os.path.isdir(args.hub):
        p.error(f"--hub '{args.hub}' is not a directory")
    if args.faults and os.path.exists(args.faults):
        try:
            load_faults(args.faults)
        except (OSError, ValueError) as e:
            p.error(f"--faults '{args.faults}': {e}")

    server = Server(args)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stopping.set())
    loop = threading.Thread(target=server.serve_forever,
                            kwargs={"poll_interval": POLL_S})
    loop.start()
    write_atomically(args.port_file, f"{server.server_port}\n")
    while not server.stopping.wait(1.0):
        pass
    server.shutdown()  # returns once serve_forever() has
    server.server_close()
    # Requests being answered see "stopping" and cut their connection within
    # POLL_S; wait for them, so their log lines are written. The handler
    # threads are daemons: idle keep-alive connections die with the process.
    with server.idle:
        server.idle.wait_for(lambda: server.busy_handlers == 0, timeout=5)
    return 0


PYTHON = "/usr/bin/python3"  # Debian's, as the integration tests require


def read_log(path):
    """Return the access log at path as a list of dicts ([] if missing)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    # Only complete lines: the server may be writing the last one.
    return [json.loads(line) for line in text.split("\n")[:-1] if line]


# ---- building a hub directory from tests -------------------------------------

def default_lfs(path, data):
    """make_hub_repo's default: LFS when over 1 MiB or a weights suffix."""
    size = len(data) if isinstance(data, (bytes, bytearray, memoryview)) \
        else os.path.getsize(data)
    return size > LFS_THRESHOLD or path.endswith(LFS_SUFFIXES)


class HubRepoInfo:
    """What make_hub_repo wrote: ids and hashes as the Hub reports them.

    .revisions {name: commit}, .commit (the default branch's), .commits
    {commit: {path: {"size", "oid", "sha256", "lfs", "pointer_size",
    "etag"}}} where "oid" is /tree's oid (the pointer's for LFS) and "etag"
    what /resolve reports as the content id (sha256 for LFS, else oid).
    """

    def __init__(self, repo_id, repo_type, path, default_branch, revisions,
                 commits):
        self.id, self.type, self.dir = repo_id, repo_type, path
        self.revisions, self.commits = revisions, commits
        self.commit = revisions[default_branch]
        self.url_prefix = "" if repo_type == "model" else repo_type + "s/"

    def files(self, rev=None):
        return self.commits[self.revisions.get(rev, rev) if rev
                            else self.commit]

    def api_path(self, rest=""):
        return f"/api/{self.type}s/{self.id}{rest}"

    def resolve_path(self, path, rev=None):
        rev = urllib.parse.quote(rev or self.commit, safe="")
        return (f"/{self.url_prefix}{self.id}/resolve/{rev}/"
                f"{urllib.parse.quote(path)}")


def make_hub_repo(hub_dir, repo_id, files, repo_type="model", lfs=default_lfs,
                  revisions=None, private=False, gated=False, token=None,
                  page_size=None, corrupt_cdn=(), *, default_branch="main",
                  keep_old_commits=False, extra=None):
    """Write a repo for `testserver.py --hub hub_dir` and return a
    HubRepoInfo.

    files maps a repo path to its content: bytes, or the path of a file to
    use in place (hashed, not copied; for big sparse files). It is the tree
    of the default branch's commit. lfs(path, data) says which files are
    LFS (data is the bytes or that path). revisions maps more refs (branch,
    tag, "refs/pr/1", ...) to either their own complete files dict (a new
    commit whose parent is the default branch's) or the name of another
    revision or a commit id (an alias). token is a str or a list of the
    tokens granted access; a private or gated repo needs one. gated: False,
    True ("auto"), "auto" or "manual". corrupt_cdn: LFS paths the CDN serves
    with every byte flipped, or a dict path -> the one offset to flip.
    keep_old_commits keeps the commits and refs of an existing hub.json and
    makes the new commit a child of the old default branch (a push).
    extra: more hub.json keys (cdn_expires_in, link_style, resolve_cache,
    gated_listing, disabled, cdn_reject_auth, ...).
    """
    owner, _, name = repo_id.partition("/")
    plural = repo_type + "s"
    if plural not in HUB_TYPES or not all(
            HUB_NAME_RE.fullmatch(n) and ".." not in n for n in (owner, name)):
        raise ValueError(f"bad repo {repo_type} {repo_id!r}")
    tokens = [token] if isinstance(token, str) else list(token or [])
    if (private or gated) and not tokens:
        raise ValueError("a private or gated repo needs a token")
    repo_dir = os.path.join(hub_dir, plural, owner, name)
    os.makedirs(os.path.join(repo_dir, "objects"), exist_ok=True)
    hub_json = os.path.join(repo_dir, "hub.json")
    commits, refs = {}, {}
    if keep_old_commits and os.path.exists(hub_json):
        with open(hub_json, encoding="utf-8") as f:
            old = json.load(f)
        commits, refs = old.get("commits", {}), old.get("revisions", {})
    corrupt = corrupt_cdn if isinstance(corrupt_cdn, dict) else \
        {p: True for p in corrupt_cdn}
    infos = {}

    def store(tree):
        entries, info = {}, {}
        for path, data in tree.items():
            check_repo_path(path)
            if isinstance(data, (bytes, bytearray, memoryview)):
                data = bytes(data)
                size, oid = len(data), git_blob_oid(data)
                sha = hashlib.sha256(data).hexdigest()
                src = os.path.join("objects", sha)
                if not os.path.exists(os.path.join(repo_dir, src)):
                    tmp = os.path.join(repo_dir, src + ".tmp")
                    with open(tmp, "wb") as f:
                        f.write(data)
                    os.replace(tmp, os.path.join(repo_dir, src))
            else:
                size, oid, sha = hash_file(data)
                src = os.path.abspath(data)
            e = {"src": src, "size": size, "sha256": sha,
                 "lfs": bool(lfs(path, data))}
            if e["lfs"]:
                pointer = lfs_pointer(sha, size)
                e["oid"] = git_blob_oid(pointer)
                e["pointer_size"] = len(pointer)
            else:
                e["oid"] = oid
            if path in corrupt:
                if not e["lfs"]:
                    raise ValueError(f"corrupt_cdn: {path!r} is not LFS")
                e["corrupt_cdn"] = corrupt[path]
            entries[path] = e
            info[path] = {"size": size, "oid": e["oid"], "sha256": sha,
                          "lfs": e["lfs"], "pointer_size": e.get(
                              "pointer_size"),
                          "etag": sha if e["lfs"] else e["oid"]}
        return entries, info

    def commit(tree, parent, title):
        entries, info = store(tree)
        when = HUB_EPOCH + len(commits)
        root = git_tree_oids({p: e["oid"] for p, e in entries.items()})[""]
        cid = git_commit_oid(root, parent, when, title)
        commits[cid] = {"parent": parent, "date": iso_date(when),
                        "title": title, "files": entries}
        infos[cid] = info
        return cid

    missing = set(corrupt) - set(files).union(
        *(t for t in (revisions or {}).values() if isinstance(t, dict)))
    if missing:
        raise ValueError(f"corrupt_cdn names unknown paths {sorted(missing)}")
    refs[default_branch] = commit(files, refs.get(default_branch),
                                  "Upload files")
    aliases = {}
    for rev, spec in (revisions or {}).items():
        if rev == default_branch:
            raise ValueError(f"revisions must not redefine {rev!r}")
        if isinstance(spec, dict):
            refs[rev] = commit(spec, refs[default_branch], f"Update {rev}")
        else:
            aliases[rev] = spec
    for rev, target in aliases.items():
        if target in refs:
            refs[rev] = refs[target]
        elif target in commits:
            refs[rev] = target
        else:
            raise ValueError(f"revision {rev!r}: unknown target {target!r}")
    mongo_id = hashlib.sha1(f"{plural}/{repo_id}".encode()).hexdigest()[:24]
    meta = {"_id": mongo_id,
            "private": private, "gated": "auto" if gated is True else gated,
            "tokens": tokens, "default_branch": default_branch,
            "revisions": refs, "commits": commits}
    if page_size is not None:
        meta["page_size"] = page_size
    meta.update(extra or {})
    write_atomically(hub_json, json.dumps(meta, indent=1, sort_keys=True))
    for cid, cmeta in commits.items():  # old commits too
        if cid not in infos:
            infos[cid] = {p: {"size": e["size"], "oid": e["oid"],
                              "sha256": e["sha256"], "lfs": e["lfs"],
                              "pointer_size": e.get("pointer_size"),
                              "etag": e["sha256"] if e["lfs"] else e["oid"]}
                          for p, e in cmeta["files"].items()}
    return HubRepoInfo(repo_id, repo_type, repo_dir, default_branch, refs,
                       infos)


def add_hub_token(hub_dir, token):
    """Make token valid on the hub without granting it any repo (a user
    who is neither the owner of a private repo nor approved for a gated
    one)."""
    path = os.path.join(hub_dir, "tokens.json")
    try:
        with open(path, encoding="utf-8") as f:
            tokens = json.load(f)
    except FileNotFoundError:
        tokens = []
    if token not in tokens:
        tokens.append(token)
    os.makedirs(hub_dir, exist_ok=True)
    write_atomically(path, json.dumps(tokens))


class TestServer:
    """testserver.py running in a subprocess, for one test.

    Its files (faults.json, access.log, stderr, port) live in a fresh
    directory under tmpdir, .dir, kept for the post-mortem of a failed test.
    hub: a directory made with make_hub_repo() to serve as a fake Hub at
    .url (root may then be None); cdn_host: the host name its LFS
    redirects name instead of "localhost".
    """

    __test__ = False  # not a pytest test class

    def __init__(self, root, tmpdir, faults=None, index="json", hub=None,
                 cdn_host=None):
        self.dir = tempfile.mkdtemp(prefix="testserver-", dir=tmpdir)
        self.faults_path = os.path.join(self.dir, "faults.json")
        self.log_path = os.path.join(self.dir, "access.log")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.secret = secrets.token_hex(16)
        self._faults_mtime_ns = 0
        self.set_faults(faults or {})
        port_file = os.path.join(self.dir, "port")
        argv = [PYTHON, os.path.abspath(__file__),
                "--port-file", port_file, "--faults", self.faults_path,
                "--log", self.log_path, "--index", index,
                "--secret", self.secret]
        if root is not None:
            argv += ["--root", str(root)]
        if hub is not None:
            argv += ["--hub", str(hub)]
        if cdn_host is not None:
            argv += ["--cdn-host", cdn_host]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        try:
            self.port = self._wait_for_port(port_file, timeout_s=10)
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_for_port(self, port_file, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"testserver exited with status {self.proc.returncode}:\n"
                    + self.stderr())
            try:
                with open(port_file, encoding="ascii") as f:
                    return int(f.read())
            except FileNotFoundError:
                time.sleep(0.02)
        raise RuntimeError(f"testserver did not start in {timeout_s} s:\n"
                           + self.stderr())

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def set_faults(self, faults):
        """Replace the faults atomically; the next request sees them, and
        every "count" starts again."""
        check_faults(faults)
        tmp = self.faults_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(faults, f)
        # A strictly newer mtime, even for two writes within a clock tick.
        ns = max(time.time_ns(), self._faults_mtime_ns + 1_000_000)
        os.utime(tmp, ns=(ns, ns))
        os.replace(tmp, self.faults_path)
        self._faults_mtime_ns = ns

    def log(self, min_entries=0, timeout_s=5.0):
        """The access log so far. A request is logged just after its last
        byte is sent, so a test that has just read a response can ask for
        min_entries to wait (up to timeout_s) for its line."""
        deadline = time.monotonic() + timeout_s
        while True:
            entries = read_log(self.log_path)
            if len(entries) >= min_entries or time.monotonic() >= deadline:
                return entries
            time.sleep(0.02)

    def stop(self):
        """SIGTERM the server, wait for it (kill after 10 s); return its
        exit status. Safe to call twice."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
