"""Tests of scripts/testserver.py, the HTTP server the integration tests use.

Run with: pytest-3 -q tests/integration/test_testserver.py
"""

import calendar
import http.client
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from testserver import TestServer, sign  # noqa: E402

DATA = random.Random(1).randbytes(300_000)
OTHER = random.Random(2).randbytes(300_000)
# Mon, 23 Nov 2026 18:00:00 GMT, for listings with known dates.
MTIME = calendar.timegm((2026, 11, 23, 18, 0, 0))


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a b").mkdir()
    (root / "data.bin").write_bytes(DATA)
    (root / "other.bin").write_bytes(OTHER)
    (root / "a b" / "é ü.bin").write_bytes(b"unicode")
    (root / "sub" / "x.txt").write_bytes(b"x" * 123)
    (root / ".hidden").write_bytes(b"")
    (tmp_path / "outside.txt").write_bytes(b"secret")
    (root / "link").symlink_to("../outside.txt")
    for p in (root / "sub" / "x.txt", root / "sub", root / "data.bin"):
        os.utime(p, (MTIME, MTIME))
    return root


@pytest.fixture
def server(root, tmp_path):
    with TestServer(root, tmp_path) as srv:
        yield srv


def request(srv, path, headers=None, method="GET", host="127.0.0.1"):
    """One request on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection(host, srv.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def read_cut(srv, path, headers=None):
    """GET a response that the server cuts short: (status, body received)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead) as exc:
            resp.read()
        return resp.status, exc.value.partial
    finally:
        conn.close()


def test_head_get_and_keepalive(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("HEAD", "/data.bin")
    head = conn.getresponse()
    assert head.read() == b""
    conn.request("GET", "/data.bin", headers={"Authorization": "Bearer t0k"})
    get = conn.getresponse()
    assert get.status == 200 and get.read() == DATA
    conn.close()

    assert head.status == 200
    assert head.headers["Content-Length"] == str(len(DATA))
    assert head.headers["Content-Type"] == "application/octet-stream"
    assert head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["Last-Modified"] == "Mon, 23 Nov 2026 18:00:00 GMT"
    etag = head.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    int(etag.strip('"'), 16)
    assert get.headers["ETag"] == etag

    h, g = server.log(min_entries=2)
    assert (h["method"], h["status"], h["bytes"], h["auth"]) == \
        ("HEAD", 200, 0, False)
    assert (g["method"], g["status"], g["bytes"], g["auth"]) == \
        ("GET", 200, len(DATA), True)
    assert g["authorization"] == "Bearer t0k"
    assert g["host"] == f"127.0.0.1:{server.port}"
    assert h["client_port"] == g["client_port"]  # one kept-alive connection


def test_paths(server):
    status, _, body = request(server, urllib.parse.quote("/a b/é ü.bin"))
    assert (status, body) == (200, b"unicode")
    for path in ("/../outside.txt", "/%2e%2e/outside.txt", "/link",
                 "/missing", "/data.bin/", "/sub/%00"):
        assert request(server, path)[0] == 404, path
    status, _, _ = request(server, "/data.bin?x=1&y=2")
    assert status == 200
    # Each request is logged by its own thread once answered: the order of
    # the lines is not the order of the requests.
    entries = server.log(min_entries=8)
    assert ("/data.bin", "x=1&y=2") in [(e["path"], e["query"])
                                        for e in entries]
    assert "/a b/é ü.bin" in [e["path"] for e in entries]


@pytest.mark.parametrize("header, status, content_range, start, end", [
    ("bytes=0-99", 206, "bytes 0-99/300000", 0, 100),
    ("bytes=299990-", 206, "bytes 299990-299999/300000", 299990, 300000),
    ("bytes=-10", 206, "bytes 299990-299999/300000", 299990, 300000),
    ("bytes=-400000", 206, "bytes 0-299999/300000", 0, 300000),
    ("bytes=100-999999", 206, "bytes 100-299999/300000", 100, 300000),
    ("bytes=300000-", 416, "bytes */300000", None, None),
    ("bytes=-0", 416, "bytes */300000", None, None),
    ("bytes=5-1", 200, None, 0, 300000),
    ("bytes=0-1,5-6", 200, None, 0, 300000),
    ("bytes=x-1", 200, None, 0, 300000),
    ("items=0-1", 200, None, 0, 300000),
])
def test_range(server, header, status, content_range, start, end):
    got, headers, body = request(server, "/data.bin", {"Range": header})
    assert got == status
    assert headers["Content-Range"] == content_range
    if start is not None:
        assert body == DATA[start:end]
        assert headers["Content-Length"] == str(end - start)


def test_if_range(server):
    etag = request(server, "/data.bin", method="HEAD")[1]["ETag"]
    ranged = {"Range": "bytes=0-9"}
    assert request(server, "/data.bin", {**ranged, "If-Range": etag})[0] == 206
    assert request(server, "/data.bin", {**ranged, "If-Range": '"old"'})[0] == 200
    date = "Mon, 23 Nov 2026 18:00:00 GMT"
    assert request(server, "/data.bin", {**ranged, "If-Range": date})[0] == 206


def test_json_listing(server):
    status, headers, body = request(server, "/sub/")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body == (b'[\n{ "name":"x.txt", "type":"file", '
                    b'"mtime":"Mon, 23 Nov 2026 18:00:00 GMT", "size":123 }\n]\n')
    status, headers, _ = request(server, "/sub?q=1")
    assert (status, headers["Location"]) == (301, "/sub/?q=1")
    status, _, body = request(server, "/")
    names = [line.split('"')[3] for line in body.decode().splitlines()[1:-1]]
    assert names == ["a b", "sub", "data.bin", "link", "other.bin"]


def test_html_listing(root, tmp_path):
    with TestServer(root, tmp_path, index="html") as srv:
        status, headers, body = request(srv, "/sub/")
        assert status == 200 and headers["Content-Type"] == "text/html"
        assert body.decode() == (
            "<html>\n<head><title>Index of /sub/</title></head>\n"
            "<body>\n<h1>Index of /sub/</h1><hr><pre>"
            '<a href="../">../</a>\n'
            '<a href="x.txt">x.txt</a>' + " " * 45 +
            " 23-Nov-2026 18:00" + " " * 17 + "123\n"
            "</pre><hr></body>\n</html>\n")
        body = request(srv, "/")[2].decode()
        assert '<a href="a%20b/">a b/</a> ' in body
        assert '<a href="sub/">sub/</a> ' in body


def test_listing_fault(server):
    hostile = [{"name": "..", "type": "file", "size": 1},
               {"name": "a/b", "type": "directory"}]
    server.set_faults({"/sub/": {"listing": hostile},
                       "/fake/": {"listing": "<a href=\"x\">x</a>"}})
    assert request(server, "/sub/")[2] == (b'[{"name": "..", "type": "file", '
                                           b'"size": 1}, {"name": "a/b", '
                                           b'"type": "directory"}]')
    assert request(server, "/fake/")[2] == b'<a href="x">x</a>'


def test_status_count_methods_and_reload(server):
    server.set_faults({"/data.bin": {"status": 503, "retry_after": 2,
                                     "count": 2}})
    status, headers, _ = request(server, "/data.bin")
    assert (status, headers["Retry-After"]) == (503, "2")
    assert request(server, "/data.bin", method="HEAD")[0] == 503
    assert request(server, "/data.bin")[0] == 200  # count used up

    ratelimit = '"resolvers";r=0;t=2'
    server.set_faults({"/data.bin": {"status": 429, "ratelimit": ratelimit,
                                     "methods": ["GET"]}})
    assert request(server, "/data.bin", method="HEAD")[0] == 200
    status, headers, _ = request(server, "/data.bin")
    assert (status, headers["RateLimit"]) == (429, ratelimit)

    server.set_faults({})
    assert request(server, "/data.bin")[0] == 200
    with pytest.raises(ValueError):
        server.set_faults({"/data.bin": {"stauts": 500}})


def test_drop_after_and_short(server):
    server.set_faults({"/data.bin": {"drop_after": 1000},
                       "/other.bin": {"short": 10}})
    assert read_cut(server, "/data.bin") == (200, DATA[:1000])
    status, body = read_cut(server, "/other.bin", {"Range": "bytes=0-99"})
    assert (status, body) == (206, OTHER[:90])
    assert [e["bytes"] for e in server.log(min_entries=2)] == [1000, 90]


def test_stall(server):
    server.set_faults({"/data.bin": {"stall": True, "stall_after": 100,
                                     "stall_seconds": 0.3},
                       "/other.bin": {"stall": True, "stall_after": 50}})
    began = time.monotonic()
    assert request(server, "/data.bin")[2] == DATA
    assert time.monotonic() - began >= 0.3

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=0.5)
    conn.request("GET", "/other.bin")
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(socket.timeout):
        resp.read()
    conn.close()
    entry = server.log(min_entries=2)[-1]  # logged once the client is gone
    assert (entry["path"], entry["bytes"]) == ("/other.bin", 50)


def test_ignore_range_etag_content_file(server):
    server.set_faults({"/data.bin": {"ignore_range": True},
                       "/other.bin": {"etag": "v2", "content_file": "data.bin"}})
    status, _, body = request(server, "/data.bin", {"Range": "bytes=0-9"})
    assert (status, body) == (200, DATA)
    status, headers, body = request(server, "/other.bin", {"Range": "bytes=5-9"})
    assert (status, headers["ETag"], body) == (206, '"v2"', DATA[5:10])


def test_rate(server):
    server.set_faults({"/data.bin": {"rate": 500_000}})
    began = time.monotonic()
    body = request(server, "/data.bin", {"Range": "bytes=0-199999"})[2]
    assert body == DATA[:200_000]
    assert time.monotonic() - began >= 0.35


def test_bad_content_range(server):
    server.set_faults({"/data.bin": {"bad_content_range": True}})
    status, headers, body = request(server, "/data.bin", {"Range": "bytes=0-99"})
    assert (status, headers["Content-Range"]) == (206, "bytes 1024-1123/300000")
    assert body == DATA[:100]


def test_cdn_redirect(server):
    server.set_faults({"/data.bin": {"redirect": "cdn"},
                       "/other.bin": {"redirect": "cdn", "expires_in": -1}})
    status, headers, _ = request(server, "/data.bin",
                                 {"Authorization": "Bearer t0k"})
    assert status == 302
    url = urllib.parse.urlsplit(headers["Location"])
    assert (url.hostname, url.port, url.path) == \
        ("localhost", server.port, "/__cdn/data.bin")
    query = urllib.parse.parse_qs(url.query)
    expires = int(query["expires"][0])
    assert 3590 < expires - time.time() <= 3600
    assert query["sig"] == [sign(server.secret, "/data.bin", expires)]

    cdn_path = f"{url.path}?{url.query}"
    status, _, body = request(server, cdn_path, host="localhost")
    assert (status, body) == (200, DATA)
    assert request(server, cdn_path.replace("sig=", "sig=0"))[0] == 403

    location = request(server, "/other.bin")[1]["Location"]
    status, _, body = request(server, location[location.index("/__cdn"):])
    assert (status, body) == (403, b"403 Request has expired\n")

    server.set_faults({"/__cdn/data.bin": {"status": 500}})
    assert request(server, cdn_path)[0] == 500
    log = server.log(min_entries=6)
    assert (log[0]["auth"], log[1]["auth"]) == (True, False)
    assert log[1]["host"] == f"localhost:{server.port}"
    assert log[1]["path"] == "/__cdn/data.bin"


def test_relative_redirect(server):
    server.set_faults({"/a b/é ü.bin": {"redirect": "relative"}})
    path = urllib.parse.quote("/a b/é ü.bin")
    status, headers, _ = request(server, path, method="HEAD")
    assert (status, headers["Location"]) == (302, "/__rel" + path)
    assert request(server, headers["Location"])[2] == b"unicode"


def test_many_concurrent_connections(server):
    # Each answer stalls 1 s, so 40 of them only finish in time in parallel.
    server.set_faults({"/data.bin": {"stall": True, "stall_after": 10,
                                     "stall_seconds": 1}})
    results = []

    def fetch(i):
        headers = {"Range": f"bytes={i}-{i + 99}"}
        results.append(request(server, "/data.bin", headers)[2] ==
                       DATA[i:i + 100])

    began = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 40
    assert time.monotonic() - began < 5
    assert len({e["client_port"] for e in server.log(min_entries=40)}) == 40


def test_large_file_flat_memory(root, tmp_path):
    size = 1 << 30
    with open(root / "big.bin", "wb") as f:
        f.truncate(size)  # sparse: no disk space used
    with TestServer(root, tmp_path) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/big.bin")
        resp = conn.getresponse()
        received = 0
        while chunk := resp.read(1 << 20):
            received += len(chunk)
        conn.close()
        assert received == size
        with open(f"/proc/{srv.proc.pid}/status") as f:
            hwm_kib = int(next(line for line in f if line.startswith("VmHWM"))
                          .split()[1])
        assert hwm_kib < 100 * 1024


def test_stop_with_stalled_client(server):
    server.set_faults({"/data.bin": {"stall": True}})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/data.bin")
    assert conn.getresponse().status == 200
    began = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - began < 3
    conn.close()
    assert server.log()[-1]["bytes"] == 0


def test_start_failure_reports_stderr(tmp_path):
    with pytest.raises(RuntimeError, match="is not a directory"):
        TestServer(tmp_path / "missing", tmp_path)
