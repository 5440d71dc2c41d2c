"""The fetch engine and scheduler against scripts/testserver.py, without FUSE.

Each test serves files with testserver.py on 127.0.0.1, runs the fetchdrv
driver (tests/drivers/fetchdrv.c: engine + scheduler + cache, one JSON line
of outcome) against them, and checks the bytes, the outcome and the server's
access log.

Run with: pytest-3 -q tests/integration/test_fetch.py
Environment: HOLLOWFS_BUILD, the meson build dir (default REPO/build).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(os.environ.get("HOLLOWFS_SOURCE")
            or Path(__file__).resolve().parents[2])
BUILD = Path(os.environ.get("HOLLOWFS_BUILD") or REPO / "build")
FETCHDRV = BUILD / "tests" / "drivers" / "fetchdrv"

sys.path.insert(0, str(REPO / "scripts"))
from testserver import TestServer  # noqa: E402

try:  # keeps the logs of a failed test (tests/integration/conftest.py)
    from conftest import register_log
except ImportError:
    def register_log(request, label, path):
        pass

MiB = 1024 * 1024
CHUNK = 1 * MiB          # most tests: many small chunks
RUN = 4 * CHUNK          # max_run_chunks (default 4) chunks in one request
SIZE_A = 20 * MiB + 12345  # the last chunk is short
SIZE_K = 60 * MiB

EIO, ENOENT, EPROTO, ETIMEDOUT, ECANCELED, ESTALE = 5, 2, 71, 110, 125, 116

# Fast failure settings for the fault cases (the defaults are slow).
FAST = ["--stall-timeout-ms", "1000", "--backoff-ms", "50", "--retries", "2"]

# Lines of the driver's stderr that fail any test.
SANITIZER = re.compile(r"Sanitizer|runtime error|LeakSanitizer|SUMMARY:")
# Log lines of hollowfs that fail a test unless it allows them.
BAD_LINE = re.compile(r"hollowfs (error|warning):")


# ---- fixtures --------------------------------------------------------------

@pytest.fixture(scope="module")
def fetchdrv():
    if not os.access(FETCHDRV, os.X_OK):
        pytest.skip(f"no fetchdrv at {FETCHDRV} (build it with meson, or "
                    f"set HOLLOWFS_BUILD)")
    return FETCHDRV


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The served files: random bytes, and a sparse one for stalls."""
    root = tmp_path_factory.mktemp("root")
    for name, size in (("a.bin", SIZE_A), ("k.bin", SIZE_K)):
        with open(root / name, "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MiB)
                f.write(os.urandom(n))
                left -= n
    with open(root / "sparse.bin", "wb") as f:
        f.truncate(64 * MiB)
    return root


@pytest.fixture
def srv(request, root, tmp_path):
    with TestServer(root, tmp_path) as s:
        register_log(request, "access.log", s.log_path)
        register_log(request, "testserver.stderr", s.stderr_path)
        yield s
        # The server must still be up at the end: it never crashes on us.
        assert s.proc.poll() is None, s.stderr()


# ---- helpers ---------------------------------------------------------------

def run_drv(drv, srv, path, cache, *args, size=None, out=None, timeout=60,
            allow=()):
    """Runs fetchdrv to the end; returns its JSON outcome (plus "rc",
    "wall_ms" and "stderr"). Fails on sanitizer output and on error or
    warning lines that no regex of allow matches."""
    cmd = [str(drv), "--cache", str(cache)]
    if size is not None:
        cmd += ["--size", str(size)]
    if out is not None:
        cmd += ["--out", str(out)]
    cmd += [str(a) for a in args]
    cmd.append(srv.url + path)
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    wall_ms = (time.monotonic() - t0) * 1000
    return outcome(p.returncode, p.stdout, p.stderr, wall_ms, allow)


def outcome(rc, stdout, stderr, wall_ms, allow=()):
    assert not SANITIZER.search(stderr), stderr
    lines = stdout.strip().splitlines()
    assert lines, f"no outcome line (exit {rc}):\n{stderr}"
    res = json.loads(lines[-1])
    res.update(rc=rc, wall_ms=wall_ms, stderr=stderr)
    assert rc == (0 if res["err"] == 0 else 1), res
    for line in stderr.splitlines():
        if BAD_LINE.search(line) and not any(re.search(a, line)
                                             for a in allow):
            pytest.fail(f"unexpected log line: {line}\n{stderr}")
    return res


def gets(log, prefix="/"):
    return [e for e in log if e["method"] == "GET"
            and e["path"].startswith(prefix)]


def range_start(e):
    """Where the body of a logged GET began in the file."""
    if e["status"] == 206:
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", e["range"])
        return int(m.group(1))
    return 0


def range_asked(e):
    """[start, end) the request asked for."""
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", e["range"])
    return int(m.group(1)), int(m.group(2)) + 1


def spans(entries):
    """[start, end) of the file bytes each 200/206 GET sent, sorted."""
    return sorted((range_start(e), range_start(e) + e["bytes"])
                  for e in entries if e["status"] in (200, 206)
                  and e["bytes"])


def union_len(sp):
    total, cur_s, cur_e = 0, None, None
    for s, e in sorted(sp):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def overlap_len(a, b):
    """Bytes in both span lists (each may overlap itself)."""
    ua, ub = merge(a), merge(b)
    total = 0
    for s1, e1 in ua:
        for s2, e2 in ub:
            total += max(0, min(e1, e2) - max(s1, s2))
    return total


def merge(sp):
    out = []
    for s, e in sorted(sp):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [tuple(x) for x in out]


def assert_served_once(entries, size):
    """Every byte of [0, size) was sent exactly once."""
    pos = 0
    for s, e in spans(entries):
        assert s == pos, f"gap or overlap at {pos}: span {s}-{e}"
        pos = e
    assert pos == size


def settled_log(srv, quiet_s=0.3, timeout_s=10):
    """The access log once no line was added for quiet_s."""
    deadline = time.monotonic() + timeout_s
    last = srv.log()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = srv.log()
        if len(now) == len(last):
            return now
        last = now
    return last


def assert_same(out, src, length=None):
    a = Path(out).read_bytes()
    b = Path(src).read_bytes()
    if length is not None:
        a, b = a[:length], b[:length]
    assert len(a) == len(b)
    if a != b:
        first = next(i for i in range(len(a)) if a[i] != b[i])
        pytest.fail(f"bytes differ from offset {first}")


def blob_files(cache):
    """The data file of the single blob in a cache, and its .state."""
    data = [p for p in Path(cache, "blobs").glob("*/*")
            if p.suffix not in (".state", ".sums", ".lock")
            and not p.name.endswith(".tmp")]
    assert len(data) == 1, data
    return data[0], data[0].with_name(data[0].name + ".state")


# ---- byte-exact fetches ----------------------------------------------------

def test_fetch_exact_default_chunks_with_head(fetchdrv, srv, root, tmp_path):
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache", out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["nchunks"] == 6 and res["done"] == 6 and res["durable"] == 6
    assert res["bytes_fetched"] == SIZE_A
    log = srv.log(min_entries=3)
    assert [e["method"] for e in log if e["method"] == "HEAD"] == ["HEAD"]
    assert_served_once(gets(log), SIZE_A)
    # One request per run of at most 4 chunks of 4 MiB.
    for e in gets(log):
        s, end = range_asked(e)
        assert e["status"] == 206 and end - s <= 16 * MiB


def test_fetch_exact_many_chunks(fetchdrv, srv, root, tmp_path):
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["nchunks"] == 21 and res["done"] == 21 and res["durable"] == 21
    log = srv.log(min_entries=6)
    assert_served_once(gets(log), SIZE_A)
    assert len(gets(log)) == 6   # ceil(21 / 4) runs
    assert res["requests"] == 6 and res["retries"] == 0


def test_second_run_fetches_only_what_is_missing(fetchdrv, srv, root,
                                                 tmp_path):
    cache = tmp_path / "cache"
    res = run_drv(fetchdrv, srv, "/a.bin", cache, "--chunk-size", CHUNK,
                  "--first", 0, "--last", 9, size=SIZE_A)
    assert res["err"] == 0 and res["done"] == 10 and res["durable"] == 10
    n1 = len(srv.log(min_entries=3))
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", cache, "--chunk-size", CHUNK,
                  size=SIZE_A, out=out)
    assert res["err"] == 0 and res["done"] == 21
    assert_same(out, root / "a.bin")
    assert res["bytes_fetched"] == SIZE_A - 10 * CHUNK
    second = gets(settled_log(srv)[n1:])
    assert spans(second)[0][0] == 10 * CHUNK
    assert union_len(spans(second)) == SIZE_A - 10 * CHUNK


def test_16_readers_fetch_each_byte_once(fetchdrv, srv, root, tmp_path):
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--readers", 16, "--connections", 16,
                  size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["bytes_fetched"] == SIZE_A
    log = settled_log(srv)
    assert sum(e["bytes"] for e in gets(log)) == SIZE_A
    assert_served_once(gets(log), SIZE_A)


# ---- faults that a retry gets past: byte-exact data ------------------------

def test_drop_mid_chunk_resumes_at_the_dropped_byte(fetchdrv, srv, root,
                                                   tmp_path):
    drop = CHUNK + CHUNK // 2 + 12345   # in the middle of a run's 2nd chunk
    srv.set_faults({"/a.bin": {"drop_after": drop, "count": 1}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--connections", 4, *FAST,
                  size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["retries"] == 1
    log = settled_log(srv)
    dropped = [e for e in gets(log) if e["bytes"] == drop]
    assert len(dropped) == 1
    start, end = range_asked(dropped[0])
    resumed = [e for e in gets(log) if e is not dropped[0]
               and range_asked(e)[0] == start + drop]
    assert len(resumed) == 1, "the retry did not resume at the dropped byte"
    assert range_asked(resumed[0])[1] == end
    # Neither the run nor the dropped chunk was asked for again.
    starts = [range_asked(e)[0] for e in gets(log)]
    assert starts.count(start) == 1
    assert start + CHUNK not in starts
    assert_served_once(gets(log), SIZE_A)


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_with_retry_after_is_retried_after_the_wait(fetchdrv, srv, root,
                                                        tmp_path, status):
    srv.set_faults({"/a.bin": {"status": status, "retry_after": 1,
                               "count": 1}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, *FAST, size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["retries"] == 1
    log = settled_log(srv)
    failed = [e for e in gets(log) if e["status"] == status]
    assert len(failed) == 1
    again = [e for e in gets(log) if e["status"] == 206
             and e["range"] == failed[0]["range"]]
    assert len(again) == 1
    # The retry came at least Retry-After later (the log stamps a
    # request's end: the 206 took at least as long as the wait).
    assert again[0]["t"] - failed[0]["t"] >= 1.0
    assert res["elapsed_ms"] >= 1000


def test_500_without_retry_after_uses_the_backoff(fetchdrv, srv, root,
                                                  tmp_path):
    srv.set_faults({"/a.bin": {"status": 500, "count": 2}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, *FAST, size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["retries"] == 2
    assert res["elapsed_ms"] < 1000   # backoff 50 ms, no 1 s wait


def test_retry_after_is_capped_by_max_wait(fetchdrv, srv, root, tmp_path):
    srv.set_faults({"/a.bin": {"status": 503, "retry_after": 30,
                               "count": 1}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--max-wait-ms", 300, *FAST,
                  size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["retries"] == 1
    assert 300 <= res["elapsed_ms"] < 5000


def test_429_with_ratelimit_waits(fetchdrv, srv, root, tmp_path):
    srv.set_faults({"/a.bin": {"status": 429,
                               "ratelimit": '"default";r=0;t=1',
                               "count": 1}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, *FAST, size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["retries"] == 1
    log = settled_log(srv)
    limited = [e for e in gets(log) if e["status"] == 429]
    assert len(limited) == 1
    again = [e for e in gets(log) if e["status"] == 206
             and e["range"] == limited[0]["range"]]
    assert len(again) == 1
    assert again[0]["t"] - limited[0]["t"] >= 1.0
    assert res["elapsed_ms"] >= 1000


def test_ignored_range_still_exact(fetchdrv, srv, root, tmp_path):
    srv.set_faults({"/a.bin": {"ignore_range": True}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, *FAST, size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["bytes_fetched"] == SIZE_A   # skipped bytes are not counted
    log = settled_log(srv)
    assert gets(log) and all(e["status"] == 200 for e in gets(log))
    assert res["done"] == res["nchunks"] == 21


def test_short_bodies_are_completed(fetchdrv, srv, root, tmp_path):
    srv.set_faults({"/a.bin": {"short": 1000, "count": 3}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, *FAST, size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["retries"] == 3
    log = settled_log(srv)
    short = [e for e in gets(log)
             if e["bytes"] == range_asked(e)[1] - range_asked(e)[0] - 1000]
    assert len(short) == 3
    for e in short:   # each is finished by a request for its last 1000 bytes
        end = range_asked(e)[1]
        assert any(range_asked(x) == (end - 1000, end) for x in gets(log))
    assert_served_once(gets(log), SIZE_A)


def test_bad_content_range_once_is_retried(fetchdrv, srv, root, tmp_path):
    srv.set_faults({"/a.bin": {"bad_content_range": True, "count": 1}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, *FAST, size=SIZE_A, out=out,
                  allow=[r"Content-Range .* does not match"])
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert res["retries"] == 1


# ---- faults that stay: a clean error, nothing mixed into the blob ----------

def assert_blob_untouched(cache):
    """No chunk was marked done and no byte landed in the data file."""
    data, state = blob_files(cache)
    with open(data, "rb") as f:
        while True:
            block = f.read(4 * MiB)
            if not block:
                break
            assert block.count(0) == len(block), "bytes landed in the blob"


def test_bad_content_range_fails_cleanly(fetchdrv, srv, tmp_path):
    srv.set_faults({"/a.bin": {"bad_content_range": True}})
    cache = tmp_path / "cache"
    res = run_drv(fetchdrv, srv, "/a.bin", cache, "--chunk-size", CHUNK,
                  "--last", 3, *FAST, size=SIZE_A,
                  allow=[r"Content-Range .* does not match",
                         r"failed: .* after 3 tries"])
    assert res["err"] == -EPROTO
    assert res["done"] == 0 and res["bytes_fetched"] == 0
    assert res["requests"] == 3   # 1 + --retries 2
    assert_blob_untouched(cache)


def test_persistent_500_fails_with_eio(fetchdrv, srv, tmp_path):
    srv.set_faults({"/a.bin": {"status": 500}})
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--last", 3, *FAST, size=SIZE_A,
                  allow=[r"HTTP 500 after 3 tries"])
    assert res["err"] == -EIO
    assert res["requests"] == 3 and res["retries"] == 2
    assert res["done"] == 0
    assert res["elapsed_ms"] < 3000
    assert len(gets(settled_log(srv))) == 3


def test_404_fails_at_once(fetchdrv, srv, tmp_path):
    srv.set_faults({"/a.bin": {"status": 404}})
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--last", 3, *FAST, size=SIZE_A,
                  allow=[r"HTTP 404"])
    assert res["err"] == -ENOENT
    assert res["requests"] == 1 and res["retries"] == 0


@pytest.mark.parametrize("after", [0, 64 * 1024])
def test_stall_fails_within_the_stall_timeout(fetchdrv, srv, tmp_path, after):
    # A stall right after the headers, or after some data has flowed: at
    # that offset in every answer, so only the first try makes progress
    # (a try that lands new bytes earns its retry back: test_hostile.py).
    srv.set_faults({"/a.bin": {"stall": True, "stall_from": after}})
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--last", 0, *FAST, size=SIZE_A,
                  allow=[r"after 3 tries"], timeout=30)
    assert res["err"] == -ETIMEDOUT
    assert res["requests"] == 3
    assert res["bytes_fetched"] == after
    # 3 tries of a 1 s stall timeout plus the backoffs: bounded, never a
    # hang.
    assert 3 * 1000 <= res["elapsed_ms"] <= 3 * (1000 + 1000) + 1000
    assert res["done"] == 0
    # Each try resumed after the bytes the last one wrote.
    starts = sorted(range_asked(e)[0] for e in gets(settled_log(srv)))
    assert starts == [0, after, after]


def test_changed_etag_fails_with_estale_at_once(fetchdrv, srv, tmp_path):
    cache = tmp_path / "cache"
    res = run_drv(fetchdrv, srv, "/a.bin", cache, "--chunk-size", CHUNK,
                  "--connections", 4, "--readers", 4,
                  "--etag", '"not-the-servers-etag"', *FAST, size=SIZE_A,
                  allow=[r"changed on the server",
                         r"failed: Stale file handle"])
    assert res["err"] == -ESTALE
    assert res["elapsed_ms"] < 2000
    assert res["retries"] == 0
    assert res["done"] == 0 and res["bytes_fetched"] == 0
    # Only the first requests went out (4 connections, 6 runs): the
    # failure stopped the others and nothing was fetched after it.
    assert len(gets(settled_log(srv))) <= 4
    assert_blob_untouched(cache)


def test_etag_changing_mid_download_stops_the_blob(fetchdrv, srv, root,
                                                   tmp_path):
    rate = 4 * MiB   # a 4 MiB run takes 1 s
    srv.set_faults({"/a.bin": {"rate": rate}})
    cmd = [str(fetchdrv), "--cache", str(tmp_path / "cache"), "--size",
           str(SIZE_A), "--chunk-size", str(CHUNK), "--connections", "2",
           *FAST, srv.url + "/a.bin"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(0.5)
    srv.set_faults({"/a.bin": {"rate": rate, "etag": "v2"}})
    stdout, stderr = p.communicate(timeout=30)
    res = outcome(p.returncode, stdout, stderr, 0,
                  allow=[r"changed on the server",
                         r"failed: Stale file handle"])
    assert res["err"] == -ESTALE
    # The 2 runs validated before the change may finish; nothing after.
    assert res["done"] <= 8
    assert res["elapsed_ms"] < 4000
    log = settled_log(srv)
    assert len(gets(log)) <= 4
    assert not any(range_asked(e)[0] >= 16 * CHUNK for e in gets(log))


# ---- redirects --------------------------------------------------------------

AUTH = "Authorization: Bearer hf_s3cret"


def test_redirect_to_cdn_never_carries_the_token(fetchdrv, srv, root,
                                                 tmp_path):
    srv.set_faults({"/a.bin": {"redirect": "cdn"}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--auth", AUTH, *FAST, size=SIZE_A,
                  out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    assert "hf_s3cret" not in res["stderr"]
    log = settled_log(srv)
    origin = [e for e in log if e["host"].startswith("127.0.0.1:")]
    cdn = [e for e in log if e["host"].startswith("localhost:")]
    assert origin and cdn and len(origin) + len(cdn) == len(log)
    assert all(e["auth"] and e["authorization"] == "Bearer hf_s3cret"
               for e in origin)
    assert not any(e["auth"] for e in cdn)
    assert all(e["status"] == 302 for e in origin)
    assert all(e["path"] == "/__cdn/a.bin" for e in cdn)
    assert_served_once(cdn, SIZE_A)


def test_relative_redirect_keeps_the_token(fetchdrv, srv, root, tmp_path):
    srv.set_faults({"/a.bin": {"redirect": "relative"}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--auth", AUTH, *FAST, size=SIZE_A,
                  out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    log = settled_log(srv)
    assert any(e["path"] == "/__rel/a.bin" for e in log)
    assert all(e["authorization"] == "Bearer hf_s3cret" for e in log)


def test_expired_cdn_url_is_resolved_again(fetchdrv, srv, root, tmp_path):
    # The signed URL lives 1 s; its first download is slow and cut after
    # 1.5 MiB, so the retry meets an expired URL (403) and must go back to
    # the origin for a new one, then resume where it was.
    drop = CHUNK + CHUNK // 2
    srv.set_faults({
        "/a.bin": {"redirect": "cdn", "expires_in": 1},
        "/__cdn/a.bin": {"rate": 1 * MiB, "drop_after": drop, "count": 1},
    })
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--connections", 1, "--last", 3,
                  "--auth", AUTH, *FAST, size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin", length=4 * CHUNK)
    assert res["done"] == 4
    log = settled_log(srv)
    expired = [i for i, e in enumerate(log) if e["status"] == 403]
    assert len(expired) == 1, log
    after = log[expired[0] + 1:]
    assert after[0]["path"] == "/a.bin" and after[0]["status"] == 302
    resumed = [e for e in after if e["path"] == "/__cdn/a.bin"
               and e["status"] == 206]
    assert [range_asked(e) for e in resumed] == [(drop, 4 * CHUNK)]
    signed = {e["query"] for e in log if e["path"] == "/__cdn/a.bin"}
    assert len(signed) == 2   # the first URL, then a new one
    assert not any(e["auth"] for e in log if e["path"] == "/__cdn/a.bin")


# ---- shutdown and crashes --------------------------------------------------

def test_shutdown_with_16_stalled_transfers(fetchdrv, srv, tmp_path):
    srv.set_faults({"/sparse.bin": {"stall": True}})
    res = run_drv(fetchdrv, srv, "/sparse.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--connections", 16, "--readers", 16,
                  "--stall-timeout-ms", 60000, "--shutdown-after-ms", 500,
                  size=64 * MiB, timeout=30)
    assert res["err"] == -ECANCELED   # every reader woke, with ECANCELED
    assert res["shutdown_ms"] < 2000
    assert res["elapsed_ms"] < 500 + 2000
    assert res["wall_ms"] < 10000
    assert res["done"] == 0
    assert res["requests"] == 16   # 16 transfers were running
    log = settled_log(srv)
    assert gets(log) and all(e["bytes"] == 0 for e in gets(log))


def test_one_stalled_transfer_does_not_hold_up_the_others(fetchdrv, srv,
                                                          root, tmp_path):
    srv.set_faults({"/a.bin": {"stall": True, "count": 1}})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--connections", 8,
                  "--stall-timeout-ms", 2000, "--backoff-ms", 50,
                  size=SIZE_A, out=out)
    assert res["err"] == 0
    assert_same(out, root / "a.bin")
    log = settled_log(srv)
    stalled = [e for e in gets(log) if e["bytes"] == 0]
    assert len(stalled) == 1
    # The other 5 runs were done while the first one stalled.
    others = [e for e in gets(log) if e is not stalled[0]
              and range_asked(e) != range_asked(stalled[0])]
    assert len(others) == 5
    assert all(e["t"] < stalled[0]["t"] - 1.0 for e in others)
    # In parallel: the other runs wait up to 0.3 s for the first answer
    # (does the server honour Range?), then one of them may reuse the
    # connection of another that finished. Under a sanitizer (TSan runs
    # several times slower) the runs that waited come back one by one and
    # may each find a connection free: only more than one in use is sure.
    ports = len({e["client_port"] for e in gets(log)})
    print(f"{ports} connections for {len(gets(log))} requests")
    assert ports >= (2 if os.environ.get("HOLLOWFS_SANITIZE", "none")
                     not in ("", "none") else 5)


def test_one_stalled_transfer_fails_alone(fetchdrv, srv, tmp_path):
    srv.set_faults({"/a.bin": {"stall": True, "count": 1}})
    res = run_drv(fetchdrv, srv, "/a.bin", tmp_path / "cache",
                  "--chunk-size", CHUNK, "--connections", 8, "--retries", 0,
                  "--stall-timeout-ms", 1000, size=SIZE_A,
                  allow=[r"after 1 tries"])
    assert res["err"] == -ETIMEDOUT
    assert res["requests"] == 6
    assert res["done"] == res["nchunks"] - 4   # only the stalled run failed
    assert len(gets(settled_log(srv))) == 6


def window_bytes(entries, rate, t_from, t_to):
    """Bytes the rate-limited server sent within [t_from, t_to]: each
    logged GET sent its bytes evenly until its logged end."""
    total = 0.0
    for e in entries:
        if not e["bytes"]:
            continue
        end = e["t"]
        begin = end - e["bytes"] / rate
        inside = max(0.0, min(end, t_to) - max(begin, t_from))
        total += inside * rate
    return int(total)


def test_kill_9_then_resume(fetchdrv, srv, root, tmp_path):
    rate = 8 * 1000 * 1000   # per request; 2 connections: 16 MB/s
    srv.set_faults({"/k.bin": {"rate": rate}})
    cache = tmp_path / "cache"
    cmd = [str(fetchdrv), "--cache", str(cache), "--size", str(SIZE_K),
           "--chunk-size", str(CHUNK), "--connections", "2",
           srv.url + "/k.bin"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)
    assert p.poll() is None, "the first run finished before the kill"
    p.send_signal(signal.SIGKILL)
    t_kill = time.time()
    p.wait(timeout=10)
    first = gets(settled_log(srv))
    n1 = len(srv.log())
    fetched1 = union_len(spans(first))
    assert 20 * MiB < fetched1 < SIZE_K
    data, state = blob_files(cache)
    assert state.exists(), "no sidecar saved in 2.5 s"

    srv.set_faults({})
    out = tmp_path / "out"
    res = run_drv(fetchdrv, srv, "/k.bin", cache, "--chunk-size", CHUNK,
                  "--connections", 2, size=SIZE_K, out=out)
    assert res["err"] == 0
    assert_same(out, root / "k.bin")
    second = gets(settled_log(srv)[n1:])
    # The second run fetched what the first had not ...
    assert union_len(spans(first) + spans(second)) == SIZE_K
    assert res["bytes_fetched"] < SIZE_K - 20 * MiB
    # ... and re-fetched at most what the first got in its last 1.5 s
    # (the saver runs every second) plus one run of chunks.
    refetched = overlap_len(spans(first), spans(second))
    bound = window_bytes(first, rate, t_kill - 1.5, t_kill) + RUN
    assert refetched <= bound, (refetched, bound)


def test_resume_does_not_refetch_chunks_complete_on_disk(fetchdrv, srv, root,
                                                         tmp_path):
    # Chunks 0 and 2 complete on disk, but not in the sidecar (a run that
    # was killed before its save): the next run must take them from disk.
    cache = tmp_path / "cache"
    for c in (0, 2):
        res = run_drv(fetchdrv, srv, "/a.bin", cache, "--chunk-size", CHUNK,
                      "--first", c, "--last", c, size=SIZE_A)
        assert res["err"] == 0
    n1 = len(srv.log(min_entries=2))
    data, state = blob_files(cache)
    state.unlink()
    res = run_drv(fetchdrv, srv, "/a.bin", cache, "--chunk-size", CHUNK,
                  "--first", 0, "--last", 3, size=SIZE_A)
    assert res["err"] == 0 and res["done"] == 4
    second = gets(settled_log(srv)[n1:])
    assert merge(spans(second)) == [(1 * CHUNK, 2 * CHUNK),
                                    (3 * CHUNK, 4 * CHUNK)]
