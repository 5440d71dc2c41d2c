#!/usr/bin/python3
"""hollowfs benchmark, the targets of the prefetcher and cache issues (11, 10).

Driven by `scripts/bench/run.sh --targets [--quick]` (which installs what is
missing and sets traps); shares bench.py's data tree, nginx and mount code.

  targets.py gen    --data DIR [--quick]     add the extra files to the tree
  targets.py run    --data DIR [--quick] [--reps N] [--cases a,b]
  targets.py report --data DIR --out BENCHMARKS.md [--quick]
  targets.py op KIND ARGS...                 one measured operation, run in a
                                             child so a hung read can be killed

Cases (names for --cases):
  random  100 random 1 MiB reads of big.bin: hollowfs (default, and
          -o prefetch=none) vs rclone mount; loopback and 20 ms RTT
  small   every small file (4-64 KiB) read in folder order by one reader at
          20 ms RTT: hollowfs (prefetch=open default, and -o connections=32),
          rclone, local cold copy, and `curl --parallel --parallel-max 16`
          fetching the same files (the most 16 connections carry: hollowfs
          makes one GET per file); per hollowfs run the requests per file and
          how many files the reader waited for (a read taking over half the
          round trip). Alone: run.sh --targets --cases small --profiles rtt20
          [--no-rclone] (about a minute without rclone)
  seq     cold sequential read of stream.bin vs `curl -o FILE` (loopback) and
          `aria2c -x8` (20 ms); time to first byte vs one curl range request
  load    model loads: cold mount vs local cold copy vs cp + local load, for
          safetensors (mmap, tensors in file order), GGUF (mmap, tensors in
          tensor-info order, as llama.cpp's mmap loader) and a zip checkpoint
          (torch.load when python3-torch is installed, else zipfile reads of
          every record in record order); loopback and 20 ms RTT
  fill    demand latency of 1 MiB reads of uncached chunks of zz-demand.bin
          while -o prefetch=all fills the whole tree, vs the same reads with
          -o prefetch=none; peak RSS over the whole fill; 20 ms RTT
  share   bytes fetched by 2 and 4 hollowfs processes on one cache reading
          stream.bin at once; a streaming read of stream.bin with
          -o cache_max=half its size vs no limit; loopback

Every byte count comes from nginx's access log ($body_bytes_sent), read after
the mount is gone. "Cold": empty cache dir, fresh mount, page cache dropped.
"""
import argparse
import datetime
import importlib.util
import json
import mmap
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench as B  # noqa: E402

MiB, GiB, PAGE = B.MiB, B.GiB, B.PAGE
SEED = B.SEED
EXTRA = {
    "full": dict(stream=1 * GiB, ckpt=1 * GiB, demand=512 * MiB),
    "quick": dict(stream=256 * MiB, ckpt=128 * MiB, demand=128 * MiB),
}
CASES = ["random", "small", "seq", "load", "fill", "share"]
TITLE = "## Targets of the prefetcher and cache issues (11, 10)"
END = "<!-- end of the targets section (scripts/bench/targets.py) -->"


def log(*a):
    B.log(*a)


def have_torch():
    return importlib.util.find_spec("torch") is not None


# --------------------------------------------------------------------------
# data


def gen_ckpt(path, size):
    """A zip checkpoint of 32 MiB fp16 tensors (records 32 MiB apart), written
    by torch.save when torch is there, else the same layout by zipfile."""
    n = max(1, size // (32 * MiB))
    per = size // n
    tmp = path.with_suffix(".tmp")
    if have_torch():
        import torch
        sd = {}
        for i in range(n):
            sd[f"layers.{i}.weight"] = torch.frombuffer(
                bytearray(os.urandom(per)), dtype=torch.float16)
        torch.save(sd, tmp)
    else:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")  # placeholder pickle
            for i in range(n):
                z.writestr(f"archive/data/{i}", os.urandom(per))
    tmp.rename(path)


def gen(a):
    B.gen(Path(a.data), a.mode)
    www = Path(a.data) / "www"
    ex = EXTRA[a.mode]
    stamp = www / ".targets"
    want = dict(ex, torch=have_torch())
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        log("targets data: already generated")
        return
    t = time.monotonic()
    for name, key in (("stream.bin", "stream"), ("zz-demand.bin", "demand")):
        with open(www / name, "wb") as f:
            B.write_random(f, ex[key])
    gen_ckpt(www / "ckpt.pt", ex["ckpt"])
    stamp.write_text(json.dumps(want))
    log(f"targets data: done in {time.monotonic() - t:.0f} s")


# --------------------------------------------------------------------------
# measured operations (children)


def op_randlat(path, seed, n, align, gap):
    """n preads of 1 MiB: random offsets aligned to `align` (distinct when
    align > 4 KiB), `gap` seconds idle between reads. Latencies in s."""
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    rnd = random.Random(seed)
    if align == 0:  # n slots spread over the file, in a shuffled order
        slot = (size - MiB) // n // MiB * MiB
        offs = [i * slot for i in range(n)]
        rnd.shuffle(offs)
    elif align > PAGE:
        offs = rnd.sample(range(0, (size - MiB) // align), n)
        offs = [o * align for o in offs]
    else:
        offs = [rnd.randrange(0, size - MiB) // PAGE * PAGE for _ in range(n)]
    lat = []
    t1 = time.monotonic()
    for o in offs:
        if gap:
            time.sleep(gap)
        t = time.monotonic()
        b = os.pread(fd, MiB, o)
        lat.append(time.monotonic() - t)
        assert len(b) == MiB
    total = time.monotonic() - t1 - gap * n
    os.close(fd)
    return {"total": total, "lat": lat}


def op_ttfb(path):
    """stat + open + one 4 KiB pread at the middle, cold."""
    t = time.monotonic()
    size = os.stat(path).st_size
    fd = os.open(path, os.O_RDONLY)
    b = os.pread(fd, PAGE, size // 2 // PAGE * PAGE)
    s = time.monotonic() - t
    os.close(fd)
    assert len(b) == PAGE
    return {"s": s}


def op_small(d, wait_ms=None):
    """find | xargs cat: every file under d in sorted (folder) order, one reader.
    With wait_ms: also how many files took longer than that (open to close)."""
    t = time.monotonic()
    n = files = waited = 0
    for name in sorted(os.listdir(d)):
        t1 = time.monotonic()
        with open(os.path.join(d, name), "rb", buffering=0) as f:
            while True:
                b = f.read(MiB)
                if not b:
                    break
                n += len(b)
        files += 1
        if wait_ms is not None and (time.monotonic() - t1) * 1000 > wait_ms:
            waited += 1
    return {"s": time.monotonic() - t, "files": files, "bytes": n, "waited": waited}


def op_curl_parallel(base, d, names, par):
    """curl fetching every file of names from base/d, par transfers at once
    (kept-alive connections): the most par connections carry."""
    with tempfile.NamedTemporaryFile("w", suffix=".curl") as cfg:
        for name in names:
            cfg.write(f'url = "{base}/{d}/{name}"\noutput = "/dev/null"\n')
        cfg.flush()
        t = time.monotonic()
        subprocess.run(["curl", "-sSf", "--noproxy", "*", "--parallel", "--parallel-max",
                        str(par), "-K", cfg.name], check=True, capture_output=True)
        return {"s": time.monotonic() - t, "files": len(names)}


def op_load(kind, path):
    if kind == "torch":
        import torch
        t = time.monotonic()
        sd = torch.load(path, map_location="cpu")
        n = sum(v.numel() * v.element_size() for v in sd.values())
        return {"s": time.monotonic() - t, "bytes": n}
    if kind == "zip":
        t = time.monotonic()
        n = 0
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():  # record order
                with z.open(info) as f:
                    while True:
                        b = f.read(MiB)
                        if not b:
                            break
                        n += len(b)
        return {"s": time.monotonic() - t, "bytes": n}
    t = time.monotonic()
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    if kind == "st":
        ranges = B.safetensors_tensors(mm)  # sorted by offset: file order
    elif kind == "gguf":
        ranges = B.gguf_tensors(mm)  # tensor-info order, as llama.cpp
    else:
        raise ValueError(kind)
    pages = B.touch_ranges(mm, ranges)
    s = time.monotonic() - t
    mm.close()
    return {"s": s, "pages": pages}


def op_main(argv):
    k = argv[0]
    if k == "randlat":
        r = op_randlat(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5]))
    elif k == "ttfb":
        r = op_ttfb(argv[1])
    elif k == "small":
        r = op_small(argv[1], float(argv[2]) if len(argv) > 2 else None)
    elif k == "load":
        r = op_load(argv[1], argv[2])
    elif k == "seq":
        r = B.op_seq(argv[1])
    else:
        raise SystemExit(f"unknown op {k}")
    print(json.dumps(r))


def run_op(args, timeout):
    cmd = [sys.executable, str(Path(__file__).resolve()), "op"] + [str(x) for x in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise B.OpFailed(f"{args[0]}: timeout after {timeout} s")
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        raise B.OpFailed(f"{args[0]}: {last[-200:]}")
    return json.loads(p.stdout)


class Bg:
    """A measured op running in a child while the parent watches the daemon."""

    def __init__(self, args):
        cmd = [sys.executable, str(Path(__file__).resolve()), "op"] + [str(x) for x in args]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self, timeout):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
            raise B.OpFailed("timeout")
        if self.p.returncode != 0:
            raise B.OpFailed((err.strip().splitlines() or ["?"])[-1][-200:])
        return json.loads(out)


def pct(lat, q):
    s = sorted(lat)
    return s[max(0, min(len(s) - 1, int(round(q * len(s))) - 1))]


# --------------------------------------------------------------------------
# the runner


class Runner:
    def __init__(self, a):
        self.a = a
        self.data = Path(a.data)
        self.www = self.data / "www"
        self.work = Path(tempfile.mkdtemp(prefix="run-targets-", dir=self.data))
        self.mnt = str(self.work / "mnt")
        os.mkdir(self.mnt)
        self.rclone_conf = str(self.work / "rclone.conf")
        Path(self.rclone_conf).write_text("")
        self.res = {}  # case -> profile -> column -> metric -> [values]
        self.errors = []
        self.meta = {}
        self.hbin = a.hollowfs
        self.ngx = None
        self.profile = None
        self.torch_version = None

    # ---- bookkeeping
    def put(self, case, col, key, val):
        if val is None:
            return
        (self.res.setdefault(case, {}).setdefault(self.profile, {})
         .setdefault(col, {}).setdefault(key, []).append(val))

    def save(self, done=False):
        out = {"mode": self.a.mode, "reps": self.a.reps, "complete": done,
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "sizes": {n: (self.www / n).stat().st_size for n in
                         ("big.bin", "stream.bin", "model.safetensors", "model.gguf",
                          "ckpt.pt", "zz-demand.bin")},
               "small": len(os.listdir(self.www / "small")),
               "torch": have_torch(), "torch_version": self.torch_version,
               "meta": self.meta,
               "results": self.res, "errors": self.errors}
        p = self.data / f"results-targets-{self.a.mode}.json"
        p.with_suffix(".tmp").write_text(json.dumps(out, indent=1))
        p.with_suffix(".tmp").rename(p)
        return p

    def guard(self, what, fn):
        try:
            return fn()
        except (B.OpFailed, AssertionError, OSError, subprocess.CalledProcessError) as e:
            msg = f"{self.profile}/{what}: {e}"
            log("FAILED " + msg)
            self.errors.append(msg)
            return None

    def fresh(self, name):
        c = self.work / name
        shutil.rmtree(c, ignore_errors=True)
        c.mkdir()
        return str(c)

    # ---- mounts
    def cmd(self, who, mnt, cache, opts=()):
        if who == "rclone":
            return B.fuse_cmd("rclone", self.hbin, self.base, self.hbase, mnt, cache,
                              self.rclone_conf)
        c = [self.hbin, "-f", "-o", f"cache={cache}"]
        for o in opts:
            c += ["-o", o]
        return c + [self.base + "/", mnt]

    def session(self, who, fn, opts=(), cache=None):
        """Fresh cache, dropped page cache, one mount; returns (fn's result,
        server bytes, requests, daemon VmHWM MiB)."""
        cache = cache or self.fresh("cache")
        B.drop_caches()
        logf = open(self.work / f"{who}.log", "ab")
        mark = self.ngx.mark()
        m = B.Mount(who, self.cmd(who, self.mnt, cache, opts), self.mnt, logf)
        try:
            r = fn(m)
        finally:
            hwm = B.proc_hwm_mib(m.pid)
            m.close()
            logf.close()
            shutil.rmtree(cache, ignore_errors=True)
        sent, reqs = self.ngx.since(mark)
        return r, sent, reqs, hwm

    # ---- servers
    def start(self, profile):
        self.profile = profile
        if profile == "rtt20":
            subprocess.run([str(HERE / "netns.sh"), "up", "20"], check=True)
            addr = subprocess.run([str(HERE / "netns.sh"), "ip"], check=True,
                                  capture_output=True, text=True).stdout.strip()
        else:
            addr = "127.0.0.1"
        w = self.work / f"nginx-{profile}"
        w.mkdir(exist_ok=True)
        port, hport = B.free_port(), B.free_port()
        self.ngx = B.Nginx(w, self.www, addr, port, hport, None, profile == "rtt20")
        self.base = f"http://{addr}:{port}"
        self.hbase = f"http://{addr}:{hport}"
        out = subprocess.run(["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w",
                              "%{time_connect} %{time_starttransfer}",
                              f"{self.base}/small/f00000.bin"],
                             capture_output=True, text=True, check=True).stdout.split()
        self.meta[profile] = {"connect_ms": float(out[0]) * 1000,
                              "ttfb_ms": float(out[1]) * 1000}

    def stop(self):
        if self.ngx:
            self.ngx.stop()
            self.ngx = None
        if self.profile == "rtt20":
            subprocess.run([str(HERE / "netns.sh"), "down"], check=False)
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False)

    # ---- case 1: random reads
    def case_random(self, rep):
        big = f"{self.mnt}/big.bin"
        for col, who, opts in (("hollowfs", "hollowfs", ()),
                               ("hollowfs prefetch=none", "hollowfs", ("prefetch=none",)),
                               ("rclone", "rclone", ())):
            if who == "rclone" and not self.rclone:
                continue

            def fn(m):
                return run_op(["randlat", big, SEED, 100, PAGE, 0], 600)
            r = self.guard(f"random/{col}", lambda: self.session(who, fn, opts))
            if not r:
                continue
            rr, sent, reqs, hwm = r
            lat = rr["lat"]
            self.put("random", col, "total", rr["total"])
            self.put("random", col, "p50", pct(lat, .5) * 1000)
            self.put("random", col, "p90", pct(lat, .9) * 1000)
            self.put("random", col, "max", max(lat) * 1000)
            self.put("random", col, "mib_per_read", sent / MiB / 100)
            self.put("random", col, "reqs", reqs)
            self.put("random", col, "rss", hwm)

    # ---- case 2: small files
    def case_small(self, rep):
        d = f"{self.mnt}/small"
        nfiles = len(os.listdir(self.www / "small"))
        nbytes = sum(p.stat().st_size for p in (self.www / "small").iterdir())
        tmo = B.timeout_for(nbytes * 8) + nfiles // 10
        # a read waited for the network: over half a round trip
        wait_ms = self.meta.get(self.profile, {}).get("connect_ms", 20) / 2
        cols = [("hollowfs", "hollowfs", ()),
                ("hollowfs connections=32", "hollowfs", ("connections=32",))]
        if self.rclone and (rep == 0 or self.a.mode == "quick"):
            cols.append(("rclone", "rclone", ()))  # ~60 s a run at 2,000 files
        for col, who, opts in cols:
            def fn(m):
                return run_op(["small", d, wait_ms], tmo)
            r = self.guard(f"small/{col}", lambda: self.session(who, fn, opts))
            if r:
                rr, sent, reqs, hwm = r
                assert rr["files"] == nfiles and rr["bytes"] == nbytes, rr
                self.put("small", col, "files_s", rr["files"] / rr["s"])
                self.put("small", col, "s", rr["s"])
                self.put("small", col, "amp", sent / nbytes)
                if who == "hollowfs":
                    self.put("small", col, "reqs_file", reqs / nfiles)
                    self.put("small", col, "waited", rr["waited"])
                self.put("small", col, "rss", hwm)
        # what 16 connections carry: hollowfs's default, one GET per file
        names = sorted(os.listdir(self.www / "small"))
        r = self.guard("small/curl", lambda: op_curl_parallel(self.base, "small", names, 16))
        if r:
            self.put("small", "curl --parallel-max 16", "files_s", r["files"] / r["s"])
            self.put("small", "curl --parallel-max 16", "s", r["s"])
        # local cold copy
        B.drop_caches()
        r = self.guard("small/local", lambda: run_op(["small", self.local / "small"], tmo))
        if r:
            self.put("small", "local cold copy", "files_s", r["files"] / r["s"])
            self.put("small", "local cold copy", "s", r["s"])

    # ---- case 3: sequential, TTFB
    def case_seq(self, rep):
        size = (self.www / "stream.bin").stat().st_size
        tmo = B.timeout_for(size)

        def fn(m):
            c0 = B.proc_cpu(m.pid)
            r = run_op(["seq", f"{self.mnt}/stream.bin"], tmo)
            r["cpu"] = (B.proc_cpu(m.pid) or 0) - (c0 or 0)
            return r
        r = self.guard("seq/hollowfs", lambda: self.session("hollowfs", fn))
        if r:
            rr, sent, reqs, hwm = r
            assert rr["bytes"] == size, rr
            self.put("seq", "hollowfs", "mbps", size / 1e6 / rr["s"])
            self.put("seq", "hollowfs", "s", rr["s"])
            self.put("seq", "hollowfs", "amp", sent / size)
            self.put("seq", "hollowfs", "cpu_gib", rr["cpu"] / (size / GiB))
            self.put("seq", "hollowfs", "rss", hwm)
        # the download tools, onto the same disk
        d = Path(self.fresh("dl"))
        url = f"{self.base}/stream.bin"
        tools = [("curl -o FILE", ["curl", "-sSf", "--noproxy", "*", "-o", str(d / "f"), url])]
        if self.profile == "rtt20" or self.a.mode == "quick":
            tools.append(("aria2c -x8", ["aria2c", "-x8", "-s8", "-k4M", "-q", "--no-conf",
                                         "--allow-overwrite=true", "--auto-file-renaming=false",
                                         "-d", str(d), "-o", "f", url]))
        for col, c in tools:
            def dl(c=c):
                B.drop_caches()
                mark = self.ngx.mark()
                t = time.monotonic()
                p = subprocess.run(c, stdin=subprocess.DEVNULL, timeout=tmo)
                s = time.monotonic() - t
                if p.returncode:
                    raise B.OpFailed(f"exit {p.returncode}: {c[0]}")
                assert (d / "f").stat().st_size == size
                sent, _ = self.ngx.since(mark)
                self.put("seq", col, "mbps", size / 1e6 / s)
                self.put("seq", col, "s", s)
                self.put("seq", col, "amp", sent / size)
                (d / "f").unlink()
            self.guard(f"seq/{col}", dl)
        # time to first byte: fresh mount vs one curl range request
        if self.profile == "rtt20":
            def fn2(m):
                return run_op(["ttfb", f"{self.mnt}/stream.bin"], 60)
            r = self.guard("ttfb/hollowfs", lambda: self.session("hollowfs", fn2))
            if r:
                self.put("seq", "hollowfs", "ttfb_ms", r[0]["s"] * 1000)
            off = size // 2 // PAGE * PAGE
            out = self.guard("ttfb/curl", lambda: subprocess.run(
                ["curl", "-sSf", "--noproxy", "*", "-o", "/dev/null", "-r",
                 f"{off}-{off + PAGE - 1}", "-w", "%{time_starttransfer}", url],
                capture_output=True, text=True, check=True, timeout=60).stdout)
            if out:
                self.put("seq", "curl -o FILE", "ttfb_ms", float(out) * 1000)
        shutil.rmtree(d, ignore_errors=True)

    # ---- case 4: model loads
    def case_load(self, rep):
        loads = [("safetensors (mmap, file order)", "st", "model.safetensors"),
                 ("GGUF (mmap, tensor-info order)", "gguf", "model.gguf"),
                 ("zip checkpoint (" + ("torch.load" if self.torch else
                                        "zipfile, record order") + ")",
                  "torch" if self.torch else "zip", "ckpt.pt")]
        for label, kind, fname in loads:
            size = (self.www / fname).stat().st_size
            tmo = B.timeout_for(size * 2)
            case = "load:" + label

            def fn(m):
                return run_op(["load", kind, f"{self.mnt}/{fname}"], tmo)
            r = self.guard(f"load/{kind}/hollowfs", lambda: self.session("hollowfs", fn))
            if r:
                rr, sent, reqs, hwm = r
                self.put(case, "cold mount", "s", rr["s"])
                self.put(case, "cold mount", "amp", sent / size)
                self.put(case, "cold mount", "rss", hwm)
            # local cold copy: the tree nginx serves is on the same disk
            B.drop_caches()
            r = self.guard(f"load/{kind}/local",
                           lambda: run_op(["load", kind, self.local / fname], tmo))
            if r:
                self.put(case, "local cold copy", "s", r["s"])

            # cp out of a cold mount, then the load from that copy
            def fn3(m):
                dst = self.work / "cp" / fname
                dst.parent.mkdir(exist_ok=True)
                t = time.monotonic()
                subprocess.run(["cp", f"{self.mnt}/{fname}", str(dst)], check=True, timeout=tmo)
                cp = time.monotonic() - t
                lo = run_op(["load", kind, dst], tmo)
                dst.unlink()
                return cp, lo["s"]
            r = self.guard(f"load/{kind}/cp", lambda: self.session("hollowfs", fn3))
            if r:
                self.put(case, "cp + local load", "s", r[0][0] + r[0][1])
                self.put(case, "cp + local load", "cp_s", r[0][0])

    # ---- case 5 + 6: demand latency during a fill, RSS of the fill
    def case_fill(self, rep):
        n, gap = (24, 0.1) if self.a.mode == "full" else (12, 0.1)
        demand = f"{self.mnt}/zz-demand.bin"
        files = [p for p in self.www.rglob("*") if p.is_file() and not p.name.startswith(".")]
        tree = sum(p.stat().st_size for p in files)
        for col, opts in (("no fill (prefetch=none)", ("prefetch=none",)),
                          ("during prefetch=all", ("prefetch=all",))):
            def fn(m, col=col):
                hwm = []
                t0 = time.monotonic()
                mark = self.ngx.mark()
                if col.startswith("during"):
                    # let the fill get going: 100 MiB through, or 15 s
                    while time.monotonic() < t0 + 15:
                        if self.ngx.since(mark)[0] >= 100 * MiB:
                            break
                        time.sleep(0.2)
                bg = Bg(["randlat", demand, SEED, n, 0, gap])
                while bg.p.poll() is None:
                    hwm.append(B.proc_hwm_mib(m.pid) or 0)
                    time.sleep(0.2)
                rr = bg.result(600)
                fill = None
                if col.startswith("during"):
                    # wait for the fill to finish (server log stops growing
                    # and holds the tree), at most fill_wait seconds
                    last, still = -1, 0
                    deadline = t0 + self.a.fill_wait
                    while time.monotonic() < deadline:
                        sent, _ = self.ngx.since(mark)
                        hwm.append(B.proc_hwm_mib(m.pid) or 0)
                        if sent >= tree:
                            fill = time.monotonic() - t0
                            break
                        still = still + 1 if sent == last else 0
                        if still >= 10:
                            break
                        last = sent
                        time.sleep(0.7)
                rr["fill_s"] = fill
                rr["hwm"] = max(hwm + [B.proc_hwm_mib(m.pid) or 0])
                return rr
            r = self.guard(f"fill/{col}", lambda: self.session("hollowfs", fn, opts))
            if not r:
                continue
            rr, sent, reqs, hwm = r
            lat = rr["lat"]
            self.put("fill", col, "reads", len(lat))
            self.put("fill", col, "p50", pct(lat, .5) * 1000)
            self.put("fill", col, "p90", pct(lat, .9) * 1000)
            self.put("fill", col, "max", max(lat) * 1000)
            self.put("fill", col, "rss", max(rr["hwm"], hwm or 0))
            self.put("fill", col, "fetched_gib", sent / GiB)
            if col.startswith("during"):
                self.put("fill", col, "tree_gib", tree / GiB)
                if rr["fill_s"]:
                    self.put("fill", col, "fill_mbps", tree / 1e6 / rr["fill_s"])

    # ---- case 7: several processes on one cache; cache_max
    def case_share(self, rep):
        size = (self.www / "stream.bin").stat().st_size
        tmo = B.timeout_for(size * 2)
        for nproc in (2, 4):
            def go(nproc=nproc):
                cache = self.fresh("cache-shared")
                B.drop_caches()
                mark = self.ngx.mark()
                mounts, logs = [], []
                try:
                    for i in range(nproc):
                        mnt = self.work / f"mnt{i}"
                        mnt.mkdir(exist_ok=True)
                        lf = open(self.work / f"hollowfs-share{i}.log", "ab")
                        logs.append(lf)
                        mounts.append(B.Mount("hollowfs", self.cmd("hollowfs", str(mnt), cache),
                                              str(mnt), lf))
                    t = time.monotonic()
                    bgs = [Bg(["seq", f"{m.mnt}/stream.bin"]) for m in mounts]
                    rs = [b.result(tmo) for b in bgs]
                    s = time.monotonic() - t
                    hwm = max(B.proc_hwm_mib(m.pid) or 0 for m in mounts)
                finally:
                    for m in mounts:
                        m.close()
                    for lf in logs:
                        lf.close()
                for r in rs:
                    assert r["bytes"] == size, r
                sent, _ = self.ngx.since(mark)
                col = f"{nproc} processes, one cache"
                self.put("share", col, "ratio", sent / size)
                self.put("share", col, "s", s)
                self.put("share", col, "rss", hwm)
                shutil.rmtree(cache, ignore_errors=True)
            self.guard(f"share/{nproc}", go)
        half = size // 2
        tmo = B.timeout_for(size) // 2 + 60  # a stalled read fails in minutes
        for col, opts in (("no limit", ()), (f"cache_max={half // MiB}M", (f"cache_max={half}",))):
            def fn(m, opts=opts):
                r = run_op(["seq", f"{self.mnt}/stream.bin"], tmo)
                du = sum(p.stat().st_blocks * 512 for p in Path(self.cache_dir).rglob("*")
                         if p.is_file())
                return r, du
            self.cache_dir = self.fresh("cache-max")
            r = self.guard(f"cache_max/{col}", lambda: self.session(
                "hollowfs", fn, opts, cache=self.cache_dir))
            if r:
                (rr, du), sent, reqs, hwm = r
                assert rr["bytes"] == size, rr
                c = "stream, " + col
                self.put("share", c, "ratio", sent / size)
                self.put("share", c, "refetch_mib", max(0, sent - size) / MiB)
                self.put("share", c, "s", rr["s"])
                self.put("share", c, "mbps", size / 1e6 / rr["s"])
                self.put("share", c, "cache_mib", du / MiB)
                self.put("share", c, "rss", hwm)

    # ---- driver
    def run(self):
        a = self.a
        self.rclone = shutil.which("rclone") is not None and not a.no_rclone
        self.torch = have_torch()
        self.torch_version = B.sh(f"{sys.executable} -c 'import torch; "
                                  "print(torch.__version__)'") if self.torch else None
        # the local cold copies: the tree nginx serves sits on the same disk
        self.local = self.www
        B.drop_caches()
        r = run_op(["seq", self.www / "stream.bin"], 600)
        self.meta["disk"] = {"mbps": r["bytes"] / 1e6 / r["s"]}
        plan = {"loopback": [c for c in ("random", "seq", "load", "share") if c in a.cases],
                "rtt20": [c for c in ("random", "small", "seq", "load", "fill") if c in a.cases]}
        try:
            for prof in ("loopback", "rtt20"):
                if not plan[prof] or prof not in a.profiles:
                    continue
                self.start(prof)
                try:
                    for case in plan[prof]:
                        reps = 1 if case in ("fill", "share") else a.reps
                        for rep in range(reps):
                            log(f"targets: {prof} {case} rep {rep + 1}/{reps}")
                            t = time.monotonic()
                            getattr(self, "case_" + case)(rep)
                            log(f"targets: {prof} {case} took {time.monotonic() - t:.0f} s")
                            self.save()
                finally:
                    self.stop()
        finally:
            self.stop()
        p = self.save(done=True)
        log(f"targets: results in {p}")
        logs = self.data / "logs-targets"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        for f in self.work.glob("*.log"):
            shutil.copy(f, logs / f.name)
        shutil.rmtree(self.work, ignore_errors=True)


# --------------------------------------------------------------------------
# report

METRICS = {
    "reads": ("1 MiB reads", "n", "{:.0f}"),
    "total": ("100 reads, total", "s", "{:.2f}"),
    "p50": ("p50 per read", "ms", "{:.1f}"),
    "p90": ("p90 per read", "ms", "{:.1f}"),
    "max": ("max per read", "ms", "{:.1f}"),
    "mib_per_read": ("fetched from the server per read", "MiB", "{:.2f}"),
    "reqs": ("requests to the server", "n", "{:.0f}"),
    "files_s": ("files per second", "files/s", "{:.0f}"),
    "reqs_file": ("requests to the server per file", "n", "{:.3f}"),
    "waited": ("files the reader waited for (read > ½ RTT)", "n", "{:.0f}"),
    "s": ("time", "s", "{:.2f}"),
    "cp_s": ("  of which cp", "s", "{:.2f}"),
    "mbps": ("throughput", "MB/s", "{:.0f}"),
    "ttfb_ms": ("time to first byte (4 KiB at the middle, cold)", "ms", "{:.1f}"),
    "cpu_gib": ("daemon CPU per GiB", "s/GiB", "{:.2f}"),
    "amp": ("fetched from the server ÷ size", "×", "{:.3f}"),
    "ratio": ("fetched from the server ÷ file size", "×", "{:.3f}"),
    "refetch_mib": ("fetched beyond the file size", "MiB", "{:.0f}"),
    "cache_mib": ("cache on disk at the end (allocated)", "MiB", "{:.0f}"),
    "fetched_gib": ("fetched from the server while mounted", "GiB", "{:.2f}"),
    "tree_gib": ("size of the tree", "GiB", "{:.2f}"),
    "fill_mbps": ("fill throughput (whole tree)", "MB/s", "{:.0f}"),
    "rss": ("peak RSS of the daemon (VmHWM)", "MiB", "{:.0f}"),
}
HIGHER_BETTER = {"files_s", "mbps", "fill_mbps"}
CASE_TEXT = {
    "random": ("100 random 1 MiB reads of big.bin",
               "One process, one handle, 100 `pread`s of 1 MiB at seeded random 4 KiB-aligned "
               "offsets on a cold mount. Targets: total ≤ ½ of rclone's, ≤ 4.5 MiB fetched per "
               "read, p90 ≤ 3× p50. The default mount (`prefetch=open`) also completes the file "
               "in the background while the reads run, so its fetched bytes include that fill; "
               "the `prefetch=none` column is the readahead alone."),
    "small": ("Small files in folder order, one reader",
              "`sorted(listdir)` then read each file to its end (as `find | xargs cat`), cold. "
              "Target at 20 ms RTT: ≥ 500 files/s. The local cold copy is the served tree "
              "itself, read after dropping the page cache. `curl --parallel-max 16`: curl "
              "fetching the same files over 16 kept-alive connections, the most hollowfs's "
              "default 16 connections can carry (one GET per file, one per round trip per "
              "connection)."),
    "seq": ("Cold sequential read of stream.bin",
            "`read()` in 1 MiB blocks through a cold mount vs the download tools writing the "
            "file to the same disk. Targets: ≥ 1.0× `curl -o FILE` on loopback, ≥ 1.0× "
            "`aria2c -x8` at 20 ms RTT; time to first byte ≤ 1.5× one curl range request "
            "(curl's `time_starttransfer` of a fresh connection; hollowfs: `stat` + `open` + "
            "one 4 KiB `pread` on a fresh mount, listing already done)."),
    "load": ("Model load",
             "Cold mount vs the same load from a local cold copy (page cache dropped) vs `cp` "
             "out of a cold mount followed by the local load. Target: cold mount ≤ 1.5× local "
             "cold copy and ≤ cp + local load."),
    "fill": ("Demand latency during a background fill, and the fill's memory",
             "1 MiB `pread`s of zz-demand.bin (the last file of the tree in name order, so "
             "the fill reaches it last) at N offsets spread evenly over the file (1/N of it "
             "apart, so no read should find its chunk cached) in a shuffled order, 0.1 s "
             "apart, starting once a `-o prefetch=all` mount has fetched 100 MiB of the "
             "whole tree (or after 15 s); the same reads on a `prefetch=none` mount. Afterwards the fill is "
             "waited for (up to the `--fill-wait` limit). Peak RSS is sampled every 0.2–0.7 s "
             "and read from VmHWM."),
    "share": ("One cache shared by several processes; a size-limited cache",
              "N hollowfs processes, each its own mount point, all with the same `-o cache=`, "
              "`cat` stream.bin at once (target: each byte fetched about once, ≤ 1.25×). Then a "
              "streaming read of stream.bin on a mount whose `-o cache_max=` is half its size "
              "vs no limit (bytes refetched, throughput, what the cache holds at the end)."),
}
PROFILE = {"loopback": "loopback", "rtt20": "20 ms RTT"}


def cell(vals, f, base, key):
    if not vals:
        return "—"
    m = statistics.median(vals)
    s = f.format(m)
    if len(vals) > 1:
        s += f" ({f.format(min(vals))}–{f.format(max(vals))})"
    if base and key not in ("reqs", "reads"):
        bm = statistics.median(base)
        if bm > 0 and m != 0:
            s += f" ×{m / bm:.2f}"
    return s


def case_table(cols, base):
    """cols: {column: {metric: [values]}}; ratios are column ÷ base column."""
    names = list(cols)
    keys = [k for k in METRICS if any(k in cols[c] for c in names)]
    reps = max((len(v) for c in names for v in cols[c].values()), default=0)
    L = ["| | unit | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for k in keys:
        label, unit, f = METRICS[k]
        row = []
        for c in names:
            b = cols.get(base, {}).get(k) if c != base else None
            row.append(cell(cols[c].get(k), f, b, k))
        L.append(f"| {label} | {unit} | " + " | ".join(row) + " |")
    return "\n".join(L), reps


def base_of(case, cols):
    for b in ("rclone", "local cold copy", "curl -o FILE", "no fill (prefetch=none)",
              "stream, no limit"):
        if b in cols:
            return b
    return None


def med(res, case, prof, col, key):
    try:
        return statistics.median(res[case][prof][col][key])
    except (KeyError, statistics.StatisticsError):
        return None


def summary(r):
    """One line per target of the issues: what it asks, what was measured."""
    res = r["results"]
    rows = []

    def add(target, where, got, ok):
        mark = "—" if ok is None else ("met" if ok else "**not met**")
        rows.append(f"| {target} | {where} | {got} | {mark} |")

    for prof, name in (("loopback", "curl -o FILE"), ("rtt20", "aria2c -x8")):
        h, c = med(res, "seq", prof, "hollowfs", "mbps"), med(res, "seq", prof, name, "mbps")
        if h and c:
            add(f"cold sequential read ≥ 1.0× `{name}`", PROFILE[prof],
                f"{h:.0f} vs {c:.0f} MB/s = {h / c:.2f}×", h / c >= 1.0)
    h, c = med(res, "seq", "rtt20", "hollowfs", "ttfb_ms"), med(res, "seq", "rtt20",
                                                              "curl -o FILE", "ttfb_ms")
    if h and c:
        add("time to first byte ≤ 1.5× one curl range request", "20 ms RTT",
            f"{h:.0f} vs {c:.0f} ms = {h / c:.2f}×", h / c <= 1.5)
    for prof in ("loopback", "rtt20"):
        for col in ("hollowfs", "hollowfs prefetch=none"):
            t, rc = med(res, "random", prof, col, "total"), med(res, "random", prof, "rclone",
                                                                "total")
            if t and rc:
                add(f"100 random reads ({col}): total ≤ ½ rclone's", PROFILE[prof],
                    f"{t:.2f} vs {rc:.2f} s = {t / rc:.2f}×", t / rc <= 0.5)
            m = med(res, "random", prof, col, "mib_per_read")
            if m is not None:
                add(f"100 random reads ({col}): ≤ 4.5 MiB fetched per read", PROFILE[prof],
                    f"{m:.2f} MiB", m <= 4.5)
            p50, p90 = (med(res, "random", prof, col, "p50"),
                        med(res, "random", prof, col, "p90"))
            if p50 and p90:
                add(f"100 random reads ({col}): p90 ≤ 3× p50", PROFILE[prof],
                    f"{p90:.1f} / {p50:.1f} ms = {p90 / p50:.1f}×", p90 / p50 <= 3)
    f = med(res, "small", "rtt20", "hollowfs", "files_s")
    if f:
        add(f"{r['small']} small files, one reader, ≥ 500 files/s", "20 ms RTT",
            f"{f:.0f} files/s", f >= 500)
    for case in [k for k in res if k.startswith("load:")]:
        for prof in res[case]:
            m = med(res, case, prof, "cold mount", "s")
            lo = med(res, case, prof, "local cold copy", "s")
            cp = med(res, case, prof, "cp + local load", "s")
            if m and lo:
                add(f"{case[5:]}: cold mount ≤ 1.5× local cold copy", PROFILE[prof],
                    f"{m:.2f} vs {lo:.2f} s = {m / lo:.2f}×", m / lo <= 1.5)
            if m and cp:
                add(f"{case[5:]}: cold mount ≤ cp + local load", PROFILE[prof],
                    f"{m:.2f} vs {cp:.2f} s", m <= cp)
    for prof in res.get("fill", {}):
        a = med(res, "fill", prof, "during prefetch=all", "max")
        b = med(res, "fill", prof, "no fill (prefetch=none)", "max")
        p = med(res, "fill", prof, "during prefetch=all", "p50")
        fa = med(res, "fill", prof, "during prefetch=all", "fetched_gib")
        fb = med(res, "fill", prof, "no fill (prefetch=none)", "fetched_gib")
        ran = "" if fa is None or fb is None or fa > fb * 1.1 + 0.05 else \
            " — **no fill ran**: the prefetch=all mount fetched no more than the reads alone"
        if a and b:
            add("demand read during a saturating fill: about two chunks' transfer",
                PROFILE[prof], f"p50 {p:.0f} ms, max {a:.0f} ms (no fill: max {b:.0f} ms)"
                + ran, None)
        fr = med(res, "fill", prof, "during prefetch=all", "fill_mbps")
        if fr:
            add("prefetch=all fills the whole tree", PROFILE[prof],
                f"{med(res, 'fill', prof, 'during prefetch=all', 'tree_gib'):.2f} GiB "
                f"at {fr:.0f} MB/s", None)
    rss = [v for case in res.values() for prof in case.values() for col, m in prof.items()
           if col != "rclone" for v in m.get("rss", [])]
    if rss:
        add("peak RSS of the daemon ≤ 64 MiB throughout", "every case above",
            f"{max(rss):.0f} MiB", max(rss) <= 64)
    for n in (2, 4):
        x = med(res, "share", "loopback", f"{n} processes, one cache", "ratio")
        if x:
            add(f"{n} processes on one cache: bytes fetched ≤ 1.25× the file", "loopback",
                f"{x:.3f}×", x <= 1.25)
    for col in [c for c in res.get("share", {}).get("loopback", {}) if "cache_max" in c]:
        lim = int(col.split("=")[1].rstrip("M"))
        du = med(res, "share", "loopback", col, "cache_mib")
        ref = med(res, "share", "loopback", col, "refetch_mib")
        s0 = med(res, "share", "loopback", "stream, no limit", "mbps")
        s1 = med(res, "share", "loopback", col, "mbps")
        if du is not None:
            add(f"streaming a file twice `cache_max` ({lim} MiB): cache stays under the limit",
                "loopback", f"{du:.0f} MiB on disk at the end, {ref:.0f} MiB refetched, "
                f"{s1:.0f} vs {s0:.0f} MB/s unlimited", du <= lim * 1.1)
    if not rows:
        return ""
    return "\n".join(["| target | where | measured (median) | |", "|---|---|---|---|"] + rows)


def section(r, a):
    L = [TITLE, ""]
    L.append("The cases the prefetcher (issue 11) and cache (issue 10) work is held to, "
             "from one run of their own; the sections after this one come from the longer "
             "`run.sh` runs named in them (their own dates and binaries).\n")
    L.append(f"Generated by `scripts/bench/run.sh --targets{' --quick' if r['mode'] == 'quick' else ''}` "
             "(measuring code: `scripts/bench/targets.py`), "
             f"{r['date']}, hollowfs commit {B.sh(f'git -C {B.ROOT} rev-parse --short HEAD')}"
             f"{' (tree with uncommitted changes)' if B.sh(f'git -C {B.ROOT} status --porcelain -uno') else ''}"
             f", binary `{a.hollowfs}`.\n")
    for n in a.note:
        L.append(n + "\n")
    for m in B.machine():
        L.append(f"- {m}")
    v = B.versions(a.hollowfs)
    vs = [v["hollowfs"].split(" (binary")[0], v["rclone"], v["curl"].split(" (")[0],
          v["aria2c"], v["nginx"].replace("nginx version: ", "")]
    if r.get("torch_version"):
        vs.append("torch " + r["torch_version"])
    L.append("- Versions: " + "; ".join(vs))
    sz = r["sizes"]
    L.append(f"- Files: big.bin {sz['big.bin'] / MiB:.0f} MiB, stream.bin "
             f"{sz['stream.bin'] / MiB:.0f} MiB, model.safetensors "
             f"{sz['model.safetensors'] / MiB:.0f} MiB, model.gguf {sz['model.gguf'] / MiB:.0f} MiB, "
             f"ckpt.pt {sz['ckpt.pt'] / MiB:.0f} MiB "
             f"({'written by torch.save' if r['torch'] else 'zip written by zipfile'}: "
             f"fp16 tensors of 32 MiB), zz-demand.bin {sz['zz-demand.bin'] / MiB:.0f} MiB, "
             f"{r['small']} small files of 4–64 KiB; random bytes")
    if "disk" in r["meta"]:
        L.append(f"- Local cold read on this disk (stream.bin, page cache dropped, `read()` "
                 f"of 1 MiB): {r['meta']['disk']['mbps']:.0f} MB/s; the virtual disk may be "
                 "cached by the host, so \"cold\" local copies can read fast")
    for p, m in r["meta"].items():
        if p == "disk":
            continue
        L.append(f"- {PROFILE[p]}: curl connect {m['connect_ms']:.1f} ms, first byte "
                 f"{m['ttfb_ms']:.1f} ms")
    L.append(f"- Median of {r['reps']} repetitions (min–max) unless a column has fewer "
             "(rclone's small-file run and the fill and sharing cases: 1). `×N` = this "
             "column ÷ the baseline column of the same table, measured in the same run "
             "(for times, below 1 means faster than the baseline).")
    if not r.get("complete", True):
        L.append("- **The run was stopped before the end**; missing cells were not measured.")
    L.append("")
    sm = summary(r)
    if sm:
        L.append("### The targets at a glance\n")
        L.append(sm)
        L.append("")
    res = r["results"]
    order = ["random", "small", "seq"] + [k for k in res if k.startswith("load:")] + \
        ["fill", "share"]
    for case in order:
        if case not in res:
            continue
        key = "load" if case.startswith("load:") else case
        title, text = CASE_TEXT[key]
        if key == "load":
            title = f"{title}: {case[5:]}"
        for prof, cols in res[case].items():
            base = base_of(case, cols)
            t, reps = case_table(cols, base)
            L.append(f"### {title}, {PROFILE[prof]}\n")
            if prof == next(iter(res[case])) or key == "load":
                L.append(text + (f" Baseline for `×`: {base}." if base else "") + "\n")
            L.append(t)
            L.append("")
    if r["errors"]:
        L.append("Failures (cells left out):\n")
        for e in r["errors"]:
            L.append(f"- `{e}`")
        L.append("")
    L.append(COMMANDS)
    L.append(END)
    return "\n".join(L) + "\n"


COMMANDS = """\
Commands of this section (`URL`: the nginx JSON index, `HURL`: its HTML index
for rclone, on 127.0.0.1 or 10.203.0.2 behind the delay line; `CACHE` a fresh
empty directory per cold run; page cache dropped before each cold run):

```sh
hollowfs -f -o cache=CACHE [-o prefetch=none|all] [-o cache_max=N] URL/ MNT
rclone mount :http: MNT --http-url HURL/ --vfs-cache-mode full --cache-dir CACHE --read-only --config EMPTY_FILE
curl -sSf --noproxy '*' -o FILE URL/stream.bin
aria2c -x8 -s8 -k4M -q --no-conf -d DIR -o FILE URL/stream.bin
curl -sSf --noproxy '*' -o /dev/null -r A-B -w '%{time_starttransfer}' URL/stream.bin
# the reads: scripts/bench/targets.py op randlat|ttfb|small|load|seq ...
#   randlat: preads of 1 MiB (seeded offsets); small: sorted listdir, read each
#   file; load st|gguf: mmap, one byte per 4 KiB page of every tensor (file
#   order | GGUF tensor-info order); load torch: torch.load(map_location=cpu);
#   load zip: zipfile, every record in order; seq: read() in 1 MiB blocks
```
"""


def report(a):
    p = Path(a.data) / f"results-targets-{a.mode}.json"
    if not p.exists():
        log(f"targets report: no {p}; section left as it is")
        return
    r = json.loads(p.read_text())
    sec = section(r, a)
    print(sec)
    out = Path(a.out)
    text = out.read_text() if out.exists() else "# hollowfs benchmarks\n"
    i = text.find(TITLE)
    if i >= 0:
        j = text.find(END, i)
        if j >= 0:
            j += len(END)
        else:
            j = text.find("\n## ", i + len(TITLE))
        text = text[:i] + sec + ("\n" + text[j:].lstrip("\n") if j >= 0 else "")
    else:
        # first, under the title: the other sections come from longer runs
        j = text.find("\n")
        text = text[:j + 1] + "\n" + sec + "\n" + text[j + 1:].lstrip("\n")
    out.write_text(text.rstrip("\n") + "\n")
    log(f"targets report: wrote the section into {out}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "op":
        return op_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["gen", "run", "report"])
    ap.add_argument("--data", default="/var/tmp/hollowfs-bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--profiles", default="loopback,rtt20")
    ap.add_argument("--no-rclone", action="store_true",
                    help="leave rclone out (its small-file run takes about a minute)")
    ap.add_argument("--fill-wait", type=float, default=None,
                    help="longest wait for the prefetch=all fill to finish, s")
    ap.add_argument("--hollowfs", default=str(B.ROOT / "build/hollowfs"))
    ap.add_argument("--out", default=str(B.ROOT / "BENCHMARKS.md"))
    ap.add_argument("--note", action="append", default=[])
    a = ap.parse_args()
    a.mode = "quick" if a.quick else "full"
    a.data = str(Path(a.data) / a.mode)
    a.cases = [c for c in a.cases.split(",") if c]
    a.profiles = [p for p in a.profiles.split(",") if p]
    bad = [c for c in a.cases if c not in CASES]
    if bad:
        raise SystemExit(f"targets: unknown case {bad[0]}; cases: {', '.join(CASES)}")
    if a.reps is None:
        a.reps = 1 if a.quick else 3
    if a.fill_wait is None:
        a.fill_wait = 60 if a.quick else 150
    if a.cmd == "gen":
        Path(a.data).mkdir(parents=True, exist_ok=True)
        gen(a)
    elif a.cmd == "run":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        Runner(a).run()
    else:
        report(a)


if __name__ == "__main__":
    sys.exit(main())
