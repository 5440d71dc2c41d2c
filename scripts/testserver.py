#!/usr/bin/python3
"""HTTP test server for the hollowfs integration tests.

Serves the files under --root with single byte ranges, nginx-style directory
listings (JSON or HTML autoindex), a JSON-lines access log that tests assert
on, and fault injection driven by a JSON file that may change while the
server runs. Python 3 standard library only; it listens on loopback only.

    testserver.py --root DIR --port-file FILE [--host 127.0.0.1] [--port 0]
                  [--faults FILE] [--log FILE] [--index json|html]
                  [--secret S]

The faults file maps a decoded URL path ("/big.bin") to an object whose keys
are listed in FAULT_TYPES; each key is described where it is applied.

Tests use the TestServer helper at the end of this file:

    sys.path.insert(0, str(REPO / "scripts"))
    from testserver import TestServer, read_log

    with TestServer(root, tmp_path, faults={"/a.bin": {"status": 503}}) as srv:
        ...  # srv.url, srv.set_faults({...}), srv.log()
"""

import argparse
import email.utils
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

    def lookup(self, url_path, method):
        """Return the fault entry to apply to this request, or {}."""
        with self.lock:
            self._reload_locked()
            entry = self.table.get(url_path)
            if entry is None:
                return {}
            # A redirect applies to every method; other faults only to theirs.
            methods = entry.get("methods", DEFAULT_METHODS)
            if "redirect" not in entry and method not in methods:
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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer has a length

    def version_string(self):
        return "hollowfs-testserver"

    def do_GET(self):
        with self.server.idle:
            self.server.busy_handlers += 1
        self.sent_bytes = 0  # body bytes handed to the socket
        self.status = None
        path, _, self.query = self.path.partition("?")
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

    def log_request(self, code="-", size="-"):
        pass  # the JSON access log replaces http.server's stderr lines

    def respond(self):
        path = self.url_path
        if not path.startswith("/") or "\0" in path:
            return self.send_text(404, "not found")
        file_path = path  # the file under root that this URL names
        if path.startswith(CDN_PREFIX + "/"):
            file_path = path[len(CDN_PREFIX):]
            error = self.check_signature(file_path)
            if error:
                return self.send_text(403, error)
        elif path.startswith(REL_PREFIX + "/"):
            file_path = path[len(REL_PREFIX):]

        fault = self.server.faults.lookup(path, self.command)
        if "redirect" in fault:
            return self.redirect(fault)
        if "status" in fault:
            # "status": answer it with a short text body instead of the file,
            # plus "retry_after" and "ratelimit" headers when given.
            headers = {}
            if "retry_after" in fault:
                headers["Retry-After"] = str(fault["retry_after"])
            if "ratelimit" in fault:
                headers["RateLimit"] = fault["ratelimit"]
            return self.send_text(fault["status"], "injected fault", headers)
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
        else:
            self.send_bytes(200, render_html(self.url_path, entries),
                            "text/html")

    def send_file(self, target, fault):
        try:
            f = open(target, "rb")
        except OSError:
            return self.send_text(403, "forbidden")
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = quote_etag(fault["etag"]) if "etag" in fault else file_etag(st)
            last_modified = http_date(st.st_mtime)

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

            headers = {
                "Content-Type": "application/octet-stream",
                "ETag": etag,
                "Last-Modified": last_modified,
                "Accept-Ranges": "bytes",
            }
            if span is None:
                status, start, length = 200, 0, size
            else:
                status, start, length = 206, span[0], span[1] - span[0] + 1
                # "bad_content_range": claim a range shifted by 1 KiB.
                shift = 1024 if fault.get("bad_content_range") else 0
                headers["Content-Range"] = (
                    f"bytes {span[0] + shift}-{span[1] + shift}/{size}")
            headers["Content-Length"] = str(length)
            self.start_response(status, headers)
            if self.command != "HEAD":
                self.send_body(f.fileno(), start, length, fault)

    def if_range_holds(self, etag, last_modified):
        """True unless an If-Range header says the file has changed."""
        cond = self.headers.get("If-Range")
        if cond is None:
            return True
        if cond.startswith('"'):
            return cond == etag  # strong comparison: weak tags never match
        return cond == last_modified

    def send_body(self, fd, offset, length, fault):
        """Send length bytes of fd from offset, shaped by the fault."""
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
            n = os.sendfile(self.connection.fileno(), fd, offset + sent, n)
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


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of many concurrent connects

    def __init__(self, args):
        self.root = os.path.realpath(args.root)
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
    p.add_argument("--root", required=True, help="directory to serve")
    p.add_argument("--port-file", required=True,
                   help="written with the port number once listening")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--faults", help="JSON faults file, re-read on change")
    p.add_argument("--log", help="append a JSON line per request here")
    p.add_argument("--index", choices=("json", "html"), default="json",
                   help="directory listing format (nginx autoindex)")
    p.add_argument("--secret", default=secrets.token_hex(16),
                   help="HMAC key of the signed CDN URLs")
    args = p.parse_args(argv)
    if not os.path.isdir(args.root):
        p.error(f"--root '{args.root}' is not a directory")
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


class TestServer:
    """testserver.py running in a subprocess, for one test.

    Its files (faults.json, access.log, stderr, port) live in a fresh
    directory under tmpdir, .dir, kept for the post-mortem of a failed test.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, root, tmpdir, faults=None, index="json"):
        self.dir = tempfile.mkdtemp(prefix="testserver-", dir=tmpdir)
        self.faults_path = os.path.join(self.dir, "faults.json")
        self.log_path = os.path.join(self.dir, "access.log")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.secret = secrets.token_hex(16)
        self._faults_mtime_ns = 0
        self.set_faults(faults or {})
        port_file = os.path.join(self.dir, "port")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, os.path.abspath(__file__), "--root", str(root),
                 "--port-file", port_file, "--faults", self.faults_path,
                 "--log", self.log_path, "--index", index,
                 "--secret", self.secret],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
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
