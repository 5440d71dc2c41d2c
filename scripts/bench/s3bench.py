#!/usr/bin/env python3
"""s3bench.py: the "S3 (s3rver on loopback)" part of the benchmark.

Starts @20minutes/s3rver (scripts/s3/serve.js, SigV4 checked) on 127.0.0.1
with a key pair generated for the run, uploads one incompressible object
with boto3, and reads it cold with three contenders:

  hollowfs  s3://bench with -o endpoint=URL, AWS_* credentials in its env
  curl      --aws-sigv4 "aws:amz:us-east-1:s3" --user KEY:SECRET (same
            signing as hollowfs: libcurl's SigV4)
  s3fs      Debian's s3fs-fuse, -o url=URL,use_path_request_style,
            passwd_file=FILE, its default of no use_cache (no disk cache
            kept between mounts; it stages reads in unlinked temp files)

Cases: cold `cat` of the object (median of N; page cache dropped and a fresh
mount / cache dir before each), time to the first 1 MiB near the end, 100
random 1 MiB reads (both cold, on a fresh mount), peak RSS of the daemon or
of curl, client CPU seconds during the cat.

  s3bench.py run    --data DIR --hollowfs BIN [--quick] [--reps N]
  s3bench.py report --data DIR --out BENCHMARKS.md [--quick]

`report` puts the section into OUT, replacing an older one and keeping
everything else. Needs root (mounts, drop_caches). stdlib + python3-boto3.
"""
import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (same directory: op runners, mounts, helpers)
from bench import MiB, GiB, OpFailed, drop_caches, log, proc_cpu, proc_hwm_mib  # noqa: E402

S3DIR = ROOT / "scripts" / "s3"
CONTENDERS = ["hollowfs", "curl", "s3fs"]
SIZES = {"full": 1 * GiB, "quick": 128 * MiB}
BUCKET, KEY = "bench", "big.bin"
TITLE = "## S3 (s3rver on loopback)"
REGION = "us-east-1"
SIGV4 = f"aws:amz:{REGION}:s3"
# SigV4 for S3 signs the payload hash; curl 7.88 leaves the header to the
# caller (hollowfs' engine sends the same one, fetch/engine.c)
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class S3rver:
    def __init__(self, work):
        self.key_id = "HB" + secrets.token_hex(8).upper()
        self.secret = secrets.token_urlsafe(30)
        self.logf = open(work / "s3rver.log", "wb")
        self.proc = subprocess.Popen(
            ["node", "--openssl-legacy-provider", str(HERE / "s3serve.js"),
             str(work / "s3data"), self.key_id],
            cwd=S3DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.logf, start_new_session=True,
            env=dict(os.environ, S3RVER_SECRET=self.secret))
        (work / "s3rver.pid").write_text(f"{self.proc.pid}\n")
        line = self.proc.stdout.readline().decode()
        m = re.fullmatch(r"port (\d+)\n", line)
        if not m:
            self.stop()
            raise SystemExit(f"s3rver did not start ({line!r}); see {work}/s3rver.log")
        self.url = f"http://127.0.0.1:{m.group(1)}"

    def client(self):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=self.key_id,
                            aws_secret_access_key=self.secret,
                            config=Config(s3={"addressing_style": "path"}))

    def wchar(self):
        """Bytes s3rver has written (sockets included: it runs silent, so
        this is what it sent), from /proc/PID/io."""
        for line in Path(f"/proc/{self.proc.pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def hwm_of(pid, name):
    """VmHWM of pid in MiB once it runs `name` (after exec), else None."""
    try:
        st = dict(x.split(":", 1) for x in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return None
    if st.get("Name", "").strip() != name or "VmHWM" not in st:
        return None
    return int(st["VmHWM"].split()[0]) / 1024


def wait_proc(cmd, timeout, stdin_text=None, stdout=subprocess.DEVNULL):
    """Runs cmd; returns wall s, CPU s (wait4 rusage), peak RSS MiB.
    The RSS is VmHWM polled after exec: rusage's ru_maxrss would count the
    forked Python parent (about 90 MiB with boto3 loaded)."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin_text else subprocess.DEVNULL,
                         stdout=stdout, stderr=subprocess.PIPE)
    if stdin_text:
        p.stdin.write(stdin_text.encode())
        p.stdin.close()
    deadline = t + timeout
    name = os.path.basename(cmd[0])
    hwm = 0.0
    while True:
        h = hwm_of(p.pid, name)
        if h is not None:
            hwm = max(hwm, h)
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            p.kill()
            p.wait()
            raise OpFailed(f"timeout: {cmd[0]}")
        time.sleep(0.005)
    s = time.monotonic() - t
    rc = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace").strip()
    p.stderr.close()
    if rc != 0:
        raise OpFailed(f"{cmd[0]} exit {rc}: {err[-200:]}")
    return {"s": s, "cpu": ru.ru_utime + ru.ru_stime, "rss": hwm or None}


class Runner:
    def __init__(self, a):
        self.a = a
        self.size = SIZES[a.mode]
        self.base = Path(a.data)
        self.base.mkdir(parents=True, exist_ok=True)
        self.work = self.base / f"run-{os.getpid()}"
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir()
        (self.work / "home").mkdir()
        self.res = {c: {} for c in CONTENDERS}
        self.errors = []

    def put(self, who, key, val):
        self.res[who].setdefault(key, []).append(val)

    def fresh(self, name):
        d = self.work / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        return d

    # -- contenders ------------------------------------------------------
    def mount(self, who):
        mnt = self.fresh("mnt")
        logf = open(self.work / f"{who}.log", "ab")
        if who == "hollowfs":
            cache = self.fresh("cache")
            cmd = [self.a.hollowfs, "-f", "-o", f"cache={cache}",
                   "-o", f"endpoint={self.s3.url}", f"s3://{BUCKET}", str(mnt)]
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(HOME=str(self.work / "home"), AWS_ACCESS_KEY_ID=self.s3.key_id,
                       AWS_SECRET_ACCESS_KEY=self.s3.secret)
        else:
            cmd = ["s3fs", BUCKET, str(mnt), "-f", "-o", f"url={self.s3.url}",
                   "-o", "use_path_request_style", "-o", f"passwd_file={self.pw}",
                   "-o", f"endpoint={REGION}", "-o", "sigv4", "-o", "ro"]
            env = None
        old = os.environ.copy()
        try:
            if env is not None:
                os.environ.clear()
                os.environ.update(env)
            m = bench.Mount(who, cmd, str(mnt), logf)
        finally:
            os.environ.clear()
            os.environ.update(old)
            logf.close()
        return m, mnt / KEY

    def curl_cfg(self, ranges=None):
        """curl's config on stdin: the key pair stays out of argv."""
        url = f"{self.s3.url}/{BUCKET}/{KEY}"
        common = (f'aws-sigv4 = "{SIGV4}"\nuser = "{self.s3.key_id}:{self.s3.secret}"\n'
                  f'header = "x-amz-content-sha256: {EMPTY_SHA256}"\n'
                  'noproxy = "*"\nsilent\nshow-error\nfail\n')
        if ranges is None:
            return common + f'url = "{url}"\noutput = "{self.work / "dl" / KEY}"\n'
        blocks = [common + f'url = "{url}"\nrange = "{o}-{o + MiB - 1}"\noutput = "/dev/null"\n'
                  for o in ranges]
        return "next\n".join(blocks)

    def guard(self, who, case, fn):
        try:
            fn()
        except OpFailed as e:
            log(f"{who} {case}: {e}")
            self.errors.append(f"{who} {case}: {e}")

    def verify(self, who, path):
        """Byte-exact check against the uploaded file (untimed, first rep)."""
        if subprocess.run(["cmp", "-s", str(self.src), str(path)]).returncode != 0:
            raise OpFailed(f"{who}: content differs from the uploaded object")

    def cold_cat(self, who, check):
        drop_caches()
        tmo = bench.timeout_for(self.size)
        if who == "curl":
            self.fresh("dl")
            w0 = self.s3.wchar()
            r = wait_proc(["curl", "-K", "-"], tmo, self.curl_cfg())
            self.put(who, "sent_cat", (self.s3.wchar() - w0) / MiB)
            if check:
                self.verify(who, self.work / "dl" / KEY)
            shutil.rmtree(self.work / "dl")
            self.put(who, "cat", r["s"])
            self.put(who, "cpu", r["cpu"])
            if r["rss"]:
                self.put(who, "rss", r["rss"])
            return
        m, path = self.mount(who)
        try:
            if os.stat(path).st_size != self.size:
                raise OpFailed(f"{who}: size {os.stat(path).st_size}")
            c0 = proc_cpu(m.pid)
            drop_caches()
            w0 = self.s3.wchar()
            r = wait_proc(["cat", str(path)], tmo)
            c1 = proc_cpu(m.pid)
            self.put(who, "sent_cat", (self.s3.wchar() - w0) / MiB)
            self.put(who, "cat", r["s"])
            if c0 is not None and c1 is not None:
                self.put(who, "cpu", c1 - c0 + r["cpu"])
            hwm = proc_hwm_mib(m.pid)
            if hwm is not None:
                self.put(who, "rss", hwm)
            if check:
                self.verify(who, path)
        finally:
            m.close()

    def random(self, who):
        drop_caches()
        tmo = bench.timeout_for(self.size)
        if who == "curl":
            w0 = self.s3.wchar()
            r = wait_proc(["curl", "-K", "-"], tmo, self.curl_cfg([self.size - 3 * MiB]))
            self.put(who, "ttfb", r["s"])
            # the same 100 offsets as bench.py op random, one curl process
            # (one connection) for all of them
            rnd = bench.random.Random(bench.SEED)
            offs = [rnd.randrange(0, self.size - MiB) // bench.PAGE * bench.PAGE
                    for _ in range(100)]
            r = wait_proc(["curl", "-K", "-"], tmo, self.curl_cfg(offs))
            self.put(who, "sent_rand", (self.s3.wchar() - w0) / MiB)
            self.put(who, "rand", r["s"])
            if r["rss"]:
                self.put(who, "rss", r["rss"])
            return
        m, path = self.mount(who)
        try:
            drop_caches()
            w0 = self.s3.wchar()
            r = bench.run_op(["random", path, bench.SEED], tmo)
            self.put(who, "sent_rand", (self.s3.wchar() - w0) / MiB)
            self.put(who, "ttfb", r["ttfb"])
            self.put(who, "rand", r["total"])
            hwm = proc_hwm_mib(m.pid)
            if hwm is not None:
                self.put(who, "rss", hwm)
        finally:
            m.close()

    def run(self):
        self.src = src = self.base / f"object-{self.size // MiB}MiB.bin"
        if not src.exists() or src.stat().st_size != self.size:
            log(f"s3: generating {src}")
            bench.gen_big(src, self.size)
        self.s3 = S3rver(self.work)
        try:
            self.pw = self.work / "s3fs-passwd"
            self.pw.write_text(f"{self.s3.key_id}:{self.s3.secret}\n")
            self.pw.chmod(0o600)
            log(f"s3: s3rver at {self.s3.url}; uploading {self.size // MiB} MiB with boto3")
            t = time.monotonic()
            c = self.s3.client()
            c.create_bucket(Bucket=BUCKET)
            c.upload_file(str(src), BUCKET, KEY)
            up = time.monotonic() - t
            log(f"s3: uploaded in {up:.1f} s")
            for rep in range(self.a.reps):
                for who in CONTENDERS:
                    log(f"s3: {who} cold cat, rep {rep + 1}/{self.a.reps}")
                    self.guard(who, "cat", lambda w=who, c=rep == 0: self.cold_cat(w, c))
            for who in CONTENDERS:
                log(f"s3: {who} ttfb + random reads")
                self.guard(who, "random", lambda w=who: self.random(w))
        finally:
            self.s3.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        out = {"mode": self.a.mode, "size": self.size, "reps": self.a.reps,
               "upload_s": up, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "cmdline": self.a.cmdline, "res": self.res, "errors": self.errors,
               "versions": versions(self.a.hollowfs)}
        p = self.base / "results-s3.json"
        p.write_text(json.dumps(out, indent=1))
        log(f"s3: results in {p}")


def first_line(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return ((p.stdout or p.stderr).strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def versions(hbin):
    pkg = json.loads((S3DIR / "node_modules" / "@20minutes" / "s3rver" /
                      "package.json").read_text())["version"]
    return {"hollowfs": first_line([hbin, "--version"]),
            "curl": first_line(["curl", "--version"]),
            "s3fs": first_line(["s3fs", "--version"]),
            "s3rver": f"@20minutes/s3rver {pkg}, node {first_line(['node', '--version'])}"}


ROWS = [  # key, label, unit, how many reps are summarised
    ("cat", "cold `cat` of the object", "s"),
    ("mibs", "… as throughput (higher is better)", "MiB/s"),
    ("cpu", "client CPU during the cat (daemon + cat, or curl)", "s"),
    ("ttfb", "time to first 1 MiB near the end (cold)", "s"),
    ("rand", "100 random 1 MiB reads (cold mount, after the first)", "s"),
    ("sent_cat", "bytes s3rver sent for the cat", "MiB"),
    ("sent_rand", "bytes s3rver sent for the first + 100 random reads (100 MiB asked)", "MiB"),
    ("rss", "peak RSS of the daemon / curl", "MiB"),
]


def section(r):
    size = r["size"]
    med = {}
    for who, d in r["res"].items():
        med[who] = {k: statistics.median(v) for k, v in d.items() if k != "rss" and v}
        if d.get("rss"):
            med[who]["rss"] = max(d["rss"])
        if "cat" in med[who]:
            med[who]["mibs"] = size / MiB / med[who]["cat"]
    L = [TITLE, ""]
    L.append(f"Measured {r['date']} by `{r['cmdline']}` (`scripts/bench/s3bench.py`); "
             f"one {size // MiB} MiB incompressible object uploaded with boto3 "
             f"(multipart, {r['upload_s']:.0f} s) to {r['versions']['s3rver']} on "
             "127.0.0.1 with a key pair made for the run and SigV4 checking on. "
             f"Cold `cat`: median of {r['reps']}, page cache dropped and a fresh mount "
             "(hollowfs: fresh cache dir) before each. Ratios are to hollowfs "
             "(×2.00 = twice hollowfs' time or size; for MiB/s, twice its throughput). "
             "The machine has 2 cores, shared with s3rver (node, one thread) and with "
             "CI jobs running at the same time: numbers are noisy, differences under "
             "about 20 % mean nothing.\n")
    L.append("| case | unit | " + " | ".join(CONTENDERS) + " |")
    L.append("| --- | --- | " + " | ".join("---:" for _ in CONTENDERS) + " |")
    for key, label, unit in ROWS:
        cells = []
        h = med.get("hollowfs", {}).get(key)
        for who in CONTENDERS:
            v = med.get(who, {}).get(key)
            if v is None:
                cells.append("—")
                continue
            s = f"{v:.0f}" if unit in ("MiB", "MiB/s") else f"{v:.3f}" if v < 1 else f"{v:.2f}"
            if who != "hollowfs" and h:
                s += f" **×{v / h:.2f}**"
            cells.append(s)
        L.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("Per run (s, cold `cat`): " + "; ".join(
        f"{who} " + ", ".join(f"{x:.2f}" for x in r["res"][who].get("cat", []))
        for who in CONTENDERS) + ".\n")
    L.append("""How to read it:

- On the first run each contender's copy is compared with the uploaded file
  (`cmp`, untimed); a mismatch would be listed under Failures.
- curl's first-MiB time includes starting a process and a connection; the
  mounts were already up and connected (mount time is not counted).
- "bytes s3rver sent" is the growth of s3rver's `wchar` (/proc/PID/io: it runs
  silent, so its writes are its socket sends). For the random reads both
  mounts fetch far more than the 100 MiB asked: hollowfs goes on filling the
  file in the background after a cold read (as on the HTTP profiles above),
  s3fs downloads ahead in parallel; curl asks only for the ranges.
- s3fs stages what it downloads in unlinked temporary files (page cache and
  disk, not its RSS); hollowfs writes its cache dir; curl writes FILE.
- s3fs 1.90 signs bucket-level requests with the URI it sends (`/bench/`),
  s3rver 4.0.4 checks them against `/bench` and answers SignatureDoesNotMatch;
  `scripts/bench/s3serve.js` starts s3rver with the URI taken as sent in that
  one case, signatures still checked. curl 7.88 does not send
  `x-amz-content-sha256`, which s3rver requires: it is given the same
  empty-payload hash that hollowfs sends.
""")
    if r["errors"]:
        L.append("Failures (cells left out):\n")
        L.extend(f"- `{e}`" for e in r["errors"])
        L.append("")
    L.append("Versions: " + "; ".join(f"{k}: `{v}`" for k, v in r["versions"].items()) + ".\n")
    L.append("""Commands (`URL` is `http://127.0.0.1:PORT`, the key pair is in the
environment, in curl's config on stdin, or in s3fs' passwd file, never in argv):

```sh
AWS_ACCESS_KEY_ID=KEY AWS_SECRET_ACCESS_KEY=SECRET \\
  hollowfs -f -o cache=CACHE -o endpoint=URL s3://bench MNT; cat MNT/big.bin >/dev/null
curl -sSf --noproxy '*' --aws-sigv4 "aws:amz:us-east-1:s3" --user KEY:SECRET \\
  -H "x-amz-content-sha256: e3b0c442...b855" -o FILE URL/bench/big.bin
s3fs bench MNT -f -o url=URL -o use_path_request_style -o passwd_file=FILE \\
  -o endpoint=us-east-1 -o sigv4 -o ro
cat MNT/big.bin >/dev/null
# s3fs runs with its defaults otherwise: no use_cache (nothing kept on disk
# between mounts), parallel_count 5, multipart_size 10 MB
# first 1 MiB near the end + 100 random 1 MiB reads: bench.py op random on the
# mounts; curl: one range request, then one curl process with 100 ranged
# requests (--next, one connection), at the same seeded offsets
```
""")
    return "\n".join(L)


def report(a):
    p = Path(a.data) / "results-s3.json"
    if not p.exists():
        log(f"s3 report: no {p}; section left as it is")
        return
    sec = section(json.loads(p.read_text()))
    out = Path(a.out)
    text = out.read_text() if out.exists() else "# hollowfs benchmarks\n"
    i = text.find(TITLE)
    if i >= 0:
        j = text.find("\n## ", i + len(TITLE))
        text = text[:i] + sec + ("\n" + text[j + 1:] if j >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + sec
    out.write_text(text.rstrip("\n") + "\n")
    log(f"s3 report: wrote the section into {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["run", "report"])
    ap.add_argument("--data", default="/var/tmp/hollowfs-bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--hollowfs", default=str(ROOT / "build/hollowfs"))
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--cmdline", default="scripts/bench/run.sh --s3")
    a = ap.parse_args()
    a.mode = "quick" if a.quick else "full"
    a.data = str(Path(a.data) / f"s3-{a.mode}")
    if a.reps is None:
        a.reps = 1 if a.quick else 3
    if a.cmd == "run":
        # run.sh's trap sends TERM to the group: unwind (stop s3rver, unmount)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        Runner(a).run()
    else:
        report(a)


if __name__ == "__main__":
    sys.exit(main())
