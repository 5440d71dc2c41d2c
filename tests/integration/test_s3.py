"""s3:// sources against a real S3 server and, where it falls short of real
S3, against a small fake (s3fake.py).

The real server is @20minutes/s3rver (scripts/s3/, pinned with npm), a fork
of s3rver that verifies SigV4 signatures (plain s3rver 3.x accepts any
signature). Each test starts it on 127.0.0.1 with a key pair of its own
(the built-in S3RVER pair is revoked) and uploads objects with boto3, a
real client. s3rver ignores If-Match, gives multipart uploads plain MD5
ETags, never names a bucket's region and lets anonymous requests read any
bucket: the If-Match 412, "-N" ETags, the region hint and AccessDenied are
tested against s3fake.py.

Skipped, with the reason, when node or the npm package is missing (run
scripts/setup.sh) or Debian's python3-boto3 is not installed.
"""

import concurrent.futures
import errno
import os
import re
import secrets
import shutil
import subprocess
import time

import pytest

from conftest import (MiB, REPO, cached_at_least, daemon_env, expect_errno,
                      fusermount_u, is_mounted, randbytes, sha256_file,
                      tree_files)
from s3fake import S3Fake

S3RVER_DIR = REPO / "scripts" / "s3"
S3RVER_PKG = S3RVER_DIR / "node_modules" / "@20minutes" / "s3rver"

try:
    import boto3
    from botocore.config import Config
except ImportError:  # pragma: no cover
    boto3 = None


def clean_env(tmp_path, **extra):
    """The daemon's environment: no AWS variable of the machine, HOME in
    tmp_path (no ~/.aws), then extra."""
    env = {k: None for k in os.environ if k.startswith("AWS_")}
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir(exist_ok=True)
    env.update(extra)
    return env


class S3rver:
    """@20minutes/s3rver on 127.0.0.1, with its own key pair."""

    def __init__(self, tmp_path):
        if not shutil.which("node"):
            pytest.skip("no node (apt-get install nodejs npm; "
                        "scripts/setup.sh)")
        if not S3RVER_PKG.is_dir():
            pytest.skip(f"{S3RVER_PKG} missing: run scripts/setup.sh "
                        "(npm ci --prefix scripts/s3)")
        if boto3 is None:
            pytest.skip("no boto3 (apt-get install python3-boto3)")
        self.key_id = "HF" + secrets.token_hex(8).upper()
        self.secret = secrets.token_urlsafe(30)
        self.dir = tmp_path / "s3rver"
        self.dir.mkdir()
        self.log = open(tmp_path / "s3rver.log", "wb")
        self.proc = subprocess.Popen(
            # The legacy provider: s3rver makes continuation tokens with
            # a cipher OpenSSL 3 keeps there.
            ["node", "--openssl-legacy-provider",
             str(S3RVER_DIR / "serve.js"), str(self.dir / "data"),
             self.key_id], cwd=S3RVER_DIR, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self.log,
            env=dict(os.environ, S3RVER_SECRET=self.secret))
        line = self.proc.stdout.readline().decode()
        m = re.fullmatch(r"port (\d+)\n", line)
        if not m:
            self.stop()
            raise AssertionError(f"s3rver did not start: {line!r}; see "
                                 f"{tmp_path}/s3rver.log")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            config=Config(s3={"addressing_style": "path"},
                          retries={"max_attempts": 2}))

    def env(self, tmp_path, **extra):
        return clean_env(tmp_path, **{"AWS_ACCESS_KEY_ID": self.key_id,
                                      "AWS_SECRET_ACCESS_KEY": self.secret,
                                      **extra})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


@pytest.fixture
def s3rver(tmp_path):
    srv = S3rver(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def s3fake():
    fake = S3Fake()
    yield fake
    fake.stop()


def run_failing_mount(mount, source, opts, env, timeout_s=60):
    """Runs `hollowfs -f ... SOURCE MNT`, expecting it to fail before
    mounting: (exit status, stderr lines)."""
    r = subprocess.run(mount.command(source, opts), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout_s,
                       env=daemon_env(env))
    if r.returncode == 0 or is_mounted(mount.mnt):
        fusermount_u(mount.mnt, lazy=True)
    return r.returncode, r.stderr.splitlines()


def error_lines(lines):
    """What the daemon said on stderr, without debug and info lines."""
    return [ln for ln in lines if ln.strip()
            and not re.match(r"[\d:.]+ hollowfs (info|debug):", ln)]


def listing_ms(mount):
    m = re.search(r"listed 's3://[^']*': (\d+) files, \d+ bytes, (\d+) "
                  r"pages in (\d+) ms", mount.log_text())
    assert m, mount.log_text()
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


# ---- s3rver: signed requests, a real client -----------------------------

def test_listing_2500_keys_three_pages(s3rver, make_mount, tmp_path):
    c = s3rver.client
    c.create_bucket(Bucket="models")
    keys = {f"top/d{i % 10}/e{i % 7}/k{i:04d}.txt": f"object {i}\n".encode()
            for i in range(2500)}
    keys["other/outside.txt"] = b"not under the prefix\n"
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda kv: c.put_object(Bucket="models", Key=kv[0],
                                            Body=kv[1]), keys.items()))
    mount = make_mount()
    t0 = time.monotonic()
    mount.start("s3://models/top", [f"endpoint={s3rver.url}"],
                env=s3rver.env(tmp_path))
    took = time.monotonic() - t0
    nfiles, pages, ms = listing_ms(mount)
    print(f"\nlisting of 2500 keys: {pages} pages in {ms} ms "
          f"(mount ready in {took:.2f} s)")
    assert (nfiles, pages) == (2500, 3)
    files, dirs = tree_files(mount.path())
    assert len(files) == 2500
    assert {"d0", "d9/e6"} <= dirs
    assert "other" not in dirs
    for i in (0, 1234, 2499):
        rel = f"d{i % 10}/e{i % 7}/k{i:04d}.txt"
        assert (mount.path() / rel).read_bytes() == keys["top/" + rel]
    mount.umount()


def test_large_object_range_and_cp(s3rver, make_mount, tmp_path):
    size = 300 * MiB
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for i in range(size // (16 * MiB)):
            f.write(randbytes(16 * MiB, seed=i))
        f.write(randbytes(size % (16 * MiB), seed=99))
    c = s3rver.client
    c.create_bucket(Bucket="big")
    c.upload_file(str(src), "big", "w/big.bin")  # multipart, as boto3 does
    mount = make_mount()
    mount.start("s3://big", [f"endpoint={s3rver.url}"],
                env=s3rver.env(tmp_path))
    path = mount.path("w/big.bin")
    assert path.stat().st_size == size
    off = 157 * MiB + 12345
    with open(path, "rb") as f, open(src, "rb") as ref:
        got = os.pread(f.fileno(), MiB, off)
        assert got == os.pread(ref.fileno(), MiB, off)
    # Answered once its bytes landed: its chunk completes a moment later.
    cached = cached_at_least(path, 1)
    assert 0 < cached < 100 * MiB, "a range read fetched the whole object"
    out = tmp_path / "copy.bin"
    t0 = time.monotonic()
    subprocess.run(["cp", str(path), str(out)], check=True)
    print(f"\ncp of 300 MiB: {time.monotonic() - t0:.2f} s")
    assert sha256_file(out) == sha256_file(src)
    mount.umount()


def test_wrong_secret_one_line(s3rver, make_mount, tmp_path):
    s3rver.client.create_bucket(Bucket="bkt")
    env = s3rver.env(tmp_path, AWS_SECRET_ACCESS_KEY="wrong" + "x" * 30)
    rc, lines = run_failing_mount(make_mount(), "s3://bkt",
                                  [f"endpoint={s3rver.url}"], env)
    assert rc == 1
    errs = error_lines(lines)
    assert len(errs) == 1, lines
    assert "SignatureDoesNotMatch" in errs[0]
    assert "the environment (AWS_ACCESS_KEY_ID)" in errs[0]
    assert "check the secret key and the clock" in errs[0]
    assert "wrongxxx" not in "\n".join(lines)


def test_unknown_key_id_from_profile(s3rver, make_mount, tmp_path):
    s3rver.client.create_bucket(Bucket="bkt")
    creds = tmp_path / "credentials"
    creds.write_text("[ci]\naws_access_key_id = NOPE\n"
                     "aws_secret_access_key = whatever\n")
    env = clean_env(tmp_path, AWS_PROFILE="ci",
                    AWS_SHARED_CREDENTIALS_FILE=str(creds))
    rc, lines = run_failing_mount(make_mount(), "s3://bkt",
                                  [f"endpoint={s3rver.url}"], env)
    assert rc == 1
    errs = error_lines(lines)
    assert len(errs) == 1, lines
    assert "InvalidAccessKeyId" in errs[0] and "profile 'ci'" in errs[0]


def test_profile_credentials(s3rver, make_mount, tmp_path):
    c = s3rver.client
    c.create_bucket(Bucket="pbk")
    c.put_object(Bucket="pbk", Key="a.txt", Body=b"from a profile\n")
    conf = tmp_path / "config"
    conf.write_text(f"[profile dev]\nregion = us-east-1\n"
                    f"aws_access_key_id = {s3rver.key_id}\n"
                    f"aws_secret_access_key = {s3rver.secret}\n")
    mount = make_mount()
    mount.start("s3://pbk", [f"endpoint={s3rver.url}"],
                env=clean_env(tmp_path, AWS_PROFILE="dev",
                              AWS_CONFIG_FILE=str(conf)))
    assert mount.path("a.txt").read_bytes() == b"from a profile\n"
    mount.umount()
    assert s3rver.secret not in mount.log_text()
    assert s3rver.secret not in "".join(
        p.read_text(errors="replace") for p in mount.cache.rglob("*.json"))


def test_missing_bucket_one_line(s3rver, make_mount, tmp_path):
    rc, lines = run_failing_mount(make_mount(), "s3://nosuchbucket",
                                  [f"endpoint={s3rver.url}"],
                                  s3rver.env(tmp_path))
    assert rc == 1
    errs = error_lines(lines)
    assert len(errs) == 1, lines
    assert "bucket 'nosuchbucket' does not exist" in errs[0]
    assert "NoSuchBucket" in errs[0]


def test_endpoint_unreachable_one_line(make_mount, tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, lines = run_failing_mount(make_mount(), "s3://bkt",
                                  [f"endpoint=http://127.0.0.1:{port}"],
                                  clean_env(tmp_path))
    assert rc == 1
    errs = error_lines(lines)
    assert len(errs) == 1, lines
    assert "'s3://bkt' unreachable" in errs[0]


def test_anonymous_public_bucket(s3rver, make_mount, tmp_path):
    # s3rver serves every bucket to unsigned requests: a public bucket.
    s3rver.client.create_bucket(Bucket="pub")
    s3rver.client.put_object(Bucket="pub", Key="x/readme.md", Body=b"hi\n")
    mount = make_mount()
    mount.start("s3://pub", [f"endpoint={s3rver.url}", "debug=fetch"],
                env=clean_env(tmp_path))
    assert mount.path("x/readme.md").read_bytes() == b"hi\n"
    mount.umount()


def test_overwritten_while_mounted(s3rver, make_mount, tmp_path):
    c = s3rver.client
    c.create_bucket(Bucket="wbk")
    first = randbytes(8 * MiB, seed=1)
    c.put_object(Bucket="wbk", Key="f.bin", Body=first)
    mount = make_mount()
    mount.start("s3://wbk", [f"endpoint={s3rver.url}", "chunk_size=1M",
                           "readahead=0"], env=s3rver.env(tmp_path))
    with open(mount.path("f.bin"), "rb") as f:
        assert os.pread(f.fileno(), 4096, 0) == first[:4096]
        c.put_object(Bucket="wbk", Key="f.bin", Body=randbytes(8 * MiB, 2))
        expect_errno(errno.EIO, os.pread, f.fileno(), 4096, 5 * MiB)
        expect_errno(errno.EIO, os.pread, f.fileno(), 4096, 6 * MiB)
    mount.allow(r"changed on the server", r"read failed for 'f.bin'")
    mount.umount()
    assert len(re.findall(r"changed on the server", mount.log_text())) == 1


def test_offline_remount(s3rver, make_mount, tmp_path):
    c = s3rver.client
    c.create_bucket(Bucket="obk")
    c.put_object(Bucket="obk", Key="a/b.txt", Body=b"kept\n")
    mount = make_mount()
    mount.start("s3://obk", [f"endpoint={s3rver.url}"],
                env=s3rver.env(tmp_path))
    assert mount.path("a/b.txt").read_bytes() == b"kept\n"
    mount.umount()
    s3rver.stop()
    mount.start("s3://obk", [f"endpoint={s3rver.url}"],
                env=s3rver.env(tmp_path))
    assert mount.path("a/b.txt").read_bytes() == b"kept\n"
    mount.allow(r"unreachable|snapshot")
    mount.umount()


# ---- s3fake: what s3rver does not do like S3 ------------------------------

def test_if_match_412_and_multipart_etag(s3fake, make_mount, tmp_path):
    s3fake.bucket("f")
    data = randbytes(6 * MiB, seed=5)
    etag = '"3858f62230ac3c915f300c664312c11f-2"'  # a multipart ETag
    s3fake.put("f", "m/part.bin", data, etag=etag)
    mount = make_mount()
    mount.start("s3://f/m", [f"endpoint={s3fake.url}", "chunk_size=1M",
                             "readahead=0"], env=clean_env(tmp_path))
    with open(mount.path("part.bin"), "rb") as f:
        assert os.pread(f.fileno(), MiB, MiB) == data[MiB:2 * MiB]
        gets = [e for e in s3fake.log if e["path"] == "/f/m/part.bin"]
        assert gets and all(e["headers"].get("if-match") == etag
                            for e in gets)
        s3fake.put("f", "m/part.bin", data, etag='"0000-2"')
        expect_errno(errno.EIO, os.pread, f.fileno(), 4096, 4 * MiB)
    assert any(e["headers"].get("if-match") and e["path"] == "/f/m/part.bin"
               for e in s3fake.log[len(gets):])
    mount.allow(r"changed on the server", r"read failed for 'part.bin'")
    mount.umount()
    assert "HTTP 412" in mount.log_text()


def test_uncached_reads_pin_the_etag_too(s3fake, make_mount, tmp_path):
    """With the cache disk full, reads are answered from memory; those
    range requests carry If-Match with the pinned ETag as well, so an
    object overwritten meanwhile gives EIO, never mixed bytes."""
    s3fake.bucket("u")
    data = randbytes(6 * MiB, seed=9)
    etag = '"6f0c36a9b5bd1bb20f1e5d2f0e8a7c11"'
    s3fake.put("u", "w.bin", data, etag=etag)
    cache = tmp_path / "small-cache"
    cache.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700",
                        "tmpfs", str(cache)], capture_output=True,
                       text=True, timeout=30)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {r.stderr.strip()}")
    try:
        mount = make_mount(cache=cache)
        mount.start("s3://u", [f"endpoint={s3fake.url}", "chunk_size=1M",
                               "readahead=0"], env=clean_env(tmp_path))
        mount.allow(r"hollowfs warning: .*(No space left|disk|full)",
                    r"changed on the server", r"read failed for 'w\.bin'",
                    r"HTTP 412")
        with open(mount.path("w.bin"), "rb") as f:
            assert os.pread(f.fileno(), MiB, 4 * MiB) == \
                data[4 * MiB:5 * MiB]
            first = len(s3fake.log)
            assert os.pread(f.fileno(), MiB, 5 * MiB) == data[5 * MiB:]
            gets = [e for e in s3fake.log if e["path"] == "/u/w.bin"]
            assert gets and all(e["headers"].get("if-match") == etag
                                for e in gets), gets
            s3fake.put("u", "w.bin", data, etag='"0000"')
            expect_errno(errno.EIO, os.pread, f.fileno(), 4096, 3 * MiB)
        assert any(e["headers"].get("if-match") == etag
                   for e in s3fake.log[first:])
        mount.umount()
    finally:
        subprocess.run(["umount", "-l", str(cache)], capture_output=True,
                       timeout=30)


def test_access_denied_names_credentials(s3fake, make_mount, tmp_path):
    s3fake.bucket("priv", private=True)
    rc, lines = run_failing_mount(make_mount(), "s3://priv",
                                  [f"endpoint={s3fake.url}"],
                                  clean_env(tmp_path))
    assert rc == 1
    errs = error_lines(lines)
    assert len(errs) == 1, lines
    assert "access denied (HTTP 403 AccessDenied) with no credentials " \
           "(anonymous)" in errs[0]


def test_region_hint_followed(s3fake, make_mount, tmp_path):
    s3fake.bucket("eu", region="eu-west-3")
    s3fake.put("eu", "x.txt", b"bonjour\n")
    mount = make_mount()
    env = clean_env(tmp_path, AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
                    AWS_SECRET_ACCESS_KEY="not-checked-by-the-fake")
    mount.start("s3://eu", [f"endpoint={s3fake.url}"], env=env)
    assert mount.path("x.txt").read_bytes() == b"bonjour\n"
    mount.umount()
    assert "bucket 'eu' is in region 'eu-west-3', not 'us-east-1'" in \
        mount.log_text()
    last = s3fake.log[-1]["headers"]["authorization"]
    assert "/eu-west-3/s3/aws4_request" in last
