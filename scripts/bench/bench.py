#!/usr/bin/python3
"""hollowfs benchmark: hollowfs against rclone mount, httpdirfs, curl, aria2c.

Driven by scripts/bench/run.sh (which installs what is missing, builds the
delay line and sets traps); this file holds all the measuring, stdlib only.

  bench.py gen   --data DIR [--quick]           generate the served tree
  bench.py run   --data DIR --profile P ...     measure one network profile
  bench.py report --data DIR --out BENCHMARKS.md [--quick]
  bench.py op KIND ARGS...                       one measured operation, run
                                                 in a child so a hung FUSE
                                                 read can be killed

Profiles: loopback (nginx on 127.0.0.1), rtt20 (nginx in a network
namespace 20 ms away, scripts/bench/netns.sh), rate50 (loopback, nginx
limit_rate 50m: 50 MB/s per connection).

Every byte count from the server comes from nginx's access log
($body_bytes_sent), read after the tool has unmounted so that readahead
still in flight is counted too.
"""
import argparse
import concurrent.futures
import datetime
import json
import mmap
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MiB = 1 << 20
GiB = 1 << 30
PAGE = 4096

SIZES = {
    "full": dict(big=4 * GiB, st=1 * GiB, gguf=1 * GiB, small=2000),
    "quick": dict(big=256 * MiB, st=128 * MiB, gguf=128 * MiB, small=200),
}
CONTENDERS = ["hollowfs", "rclone", "httpdirfs", "curl", "aria2c"]
FUSE = {"hollowfs", "rclone", "httpdirfs"}
# httpdirfs alone takes longer than all the others together (about 0.1 s a
# small file); --quick runs it on loopback only, to stay within minutes.
QUICK_LOOPBACK_ONLY = {"httpdirfs"}
SEED = 20261206


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# data generation


def write_random(f, n):
    """Writes n incompressible bytes (fresh kernel randomness, 16 MiB at a time)."""
    while n > 0:
        k = min(n, 16 * MiB)
        f.write(os.urandom(k))
        n -= k


def gen_big(path, size):
    with open(path, "wb") as f:
        write_random(f, size)


def gen_safetensors(path, target):
    """A llama-like safetensors file: 8-byte LE header length, JSON header
    (dtype, shape, data_offsets per tensor), then the tensor data."""
    hid, inter, kv, vocab = 2048, 5632, 512, 32000
    tensors = [("model.embed_tokens.weight", "F16", [vocab, hid])]
    layer = 0
    total = vocab * hid * 2
    while True:
        p = f"model.layers.{layer}."
        block = [
            (p + "input_layernorm.weight", "F32", [hid]),
            (p + "self_attn.q_proj.weight", "F16", [hid, hid]),
            (p + "self_attn.k_proj.weight", "F16", [kv, hid]),
            (p + "self_attn.v_proj.weight", "F16", [kv, hid]),
            (p + "self_attn.o_proj.weight", "F16", [hid, hid]),
            (p + "post_attention_layernorm.weight", "F32", [hid]),
            (p + "mlp.gate_proj.weight", "BF16", [inter, hid]),
            (p + "mlp.up_proj.weight", "BF16", [inter, hid]),
            (p + "mlp.down_proj.weight", "BF16", [hid, inter]),
        ]
        bsize = sum(nbytes(d, s) for _, d, s in block)
        if total + bsize + hid * 4 > target:
            break
        tensors += block
        total += bsize
        layer += 1
    tensors.append(("model.norm.weight", "F32", [hid]))
    header = {"__metadata__": {"format": "pt", "generator": "hollowfs bench"}}
    off = 0
    for name, dt, shape in tensors:
        n = nbytes(dt, shape)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        write_random(f, off)


def nbytes(dtype, shape):
    n = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    for d in shape:
        n *= d
    return n


GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
GGUF_ALIGN = 32


def ggml_nbytes(t, dims):
    n = 1
    for d in dims:
        n *= d
    if t == GGML_F32:
        return n * 4
    if t == GGML_F16:
        return n * 2
    if t == GGML_Q8_0:
        return n // 32 * 34
    raise ValueError(t)


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gen_gguf(path, target):
    """A GGUF v3 file: header, metadata KVs, tensor infos, aligned data."""
    hid, inter, vocab = 2048, 5632, 32000
    tensors = [("token_embd.weight", GGML_Q8_0, [hid, vocab])]
    total = ggml_nbytes(GGML_Q8_0, [hid, vocab])
    layer = 0
    while True:
        p = f"blk.{layer}."
        block = [
            (p + "attn_norm.weight", GGML_F32, [hid]),
            (p + "attn_q.weight", GGML_F16, [hid, hid]),
            (p + "attn_k.weight", GGML_Q8_0, [hid, 512]),
            (p + "attn_v.weight", GGML_Q8_0, [hid, 512]),
            (p + "attn_output.weight", GGML_F16, [hid, hid]),
            (p + "ffn_norm.weight", GGML_F32, [hid]),
            (p + "ffn_gate.weight", GGML_F16, [hid, inter]),
            (p + "ffn_up.weight", GGML_F16, [hid, inter]),
            (p + "ffn_down.weight", GGML_F16, [inter, hid]),
        ]
        bsize = sum(ggml_nbytes(t, d) + GGUF_ALIGN for _, t, d in block)
        if total + bsize + hid * 4 > target:
            break
        tensors += block
        total += bsize
        layer += 1
    tensors.append(("output_norm.weight", GGML_F32, [hid]))
    kvs = [
        ("general.architecture", 8, gguf_str("llama")),
        ("general.name", 8, gguf_str("hollowfs bench synthetic")),
        ("general.alignment", 4, struct.pack("<I", GGUF_ALIGN)),
        ("llama.block_count", 4, struct.pack("<I", layer)),
        ("llama.embedding_length", 4, struct.pack("<I", hid)),
        ("llama.feed_forward_length", 4, struct.pack("<I", inter)),
        ("llama.attention.head_count", 4, struct.pack("<I", 16)),
        ("llama.context_length", 4, struct.pack("<I", 4096)),
        ("tokenizer.ggml.model", 8, gguf_str("llama")),
        ("tokenizer.ggml.tokens", 9,
         struct.pack("<IQ", 8, 4) + b"".join(gguf_str(t) for t in ["<unk>", "<s>", "</s>", "a"])),
    ]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for k, t, v in kvs:
        out += gguf_str(k) + struct.pack("<I", t) + v
    off = 0
    layout = []
    for name, t, dims in tensors:
        out += gguf_str(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", t, off)
        n = ggml_nbytes(t, dims)
        layout.append((off, n))
        off += n + (-n % GGUF_ALIGN)
    out += b"\0" * (-len(out) % GGUF_ALIGN)
    with open(path, "wb") as f:
        f.write(out)
        for o, n in layout:
            write_random(f, n)
            f.write(b"\0" * (-n % GGUF_ALIGN))


def gen(data, mode):
    sz = SIZES[mode]
    www = data / "www"
    (www / "small").mkdir(parents=True, exist_ok=True)
    stamp = www / ".complete"
    if stamp.exists() and json.loads(stamp.read_text()) == sz:
        log(f"data: {www} already generated")
        return
    t = time.monotonic()
    log(f"data: generating into {www} ({mode})")
    gen_big(www / "big.bin", sz["big"])
    gen_safetensors(www / "model.safetensors", sz["st"])
    gen_gguf(www / "model.gguf", sz["gguf"])
    rnd = random.Random(SEED)
    shutil.rmtree(www / "small")
    (www / "small").mkdir()
    for i in range(sz["small"]):
        n = rnd.randrange(4 * 1024, 64 * 1024 + 1)
        (www / "small" / f"f{i:05d}.bin").write_bytes(os.urandom(n))
    stamp.write_text(json.dumps(sz))
    log(f"data: done in {time.monotonic() - t:.0f} s")


# --------------------------------------------------------------------------
# file formats, for the mmap loaders


def safetensors_tensors(mm):
    (hlen,) = struct.unpack_from("<Q", mm, 0)
    h = json.loads(bytes(mm[8:8 + hlen]))
    base = 8 + hlen
    out = []
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out.append((base + a, b - a))
    out.sort()
    return out


def gguf_tensors(mm):
    pos = 4  # after the magic

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, mm, pos)
        pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def rstr():
        nonlocal pos
        n = rd("<Q")
        s = bytes(mm[pos:pos + n])
        pos += n
        return s.decode()

    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
              10: "<Q", 11: "<q", 12: "<d"}

    def rval(t):
        if t in scalar:
            return rd(scalar[t])
        if t == 8:
            return rstr()
        if t == 9:
            et, n = rd("<I"), rd("<Q")
            return [rval(et) for _ in range(n)]
        raise ValueError(f"gguf type {t}")

    if bytes(mm[0:4]) != b"GGUF":
        raise ValueError("not GGUF")
    _ver, nt, nkv = rd("<I"), rd("<Q"), rd("<Q")
    align = 32
    for _ in range(nkv):
        k = rstr()
        v = rval(rd("<I"))
        if k == "general.alignment":
            align = v
    infos = []
    for _ in range(nt):
        rstr()
        nd = rd("<I")
        dims = [rd("<Q") for _ in range(nd)]
        t = rd("<I")
        off = rd("<Q")
        infos.append((off, ggml_nbytes(t, dims)))
    base = pos + (-pos % align)
    return [(base + o, n) for o, n in infos]


# --------------------------------------------------------------------------
# measured operations (run in a child process: `bench.py op ...`)


def op_seq(path):
    buf = bytearray(MiB)
    n = 0
    t = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            n += k
    return {"s": time.monotonic() - t, "bytes": n}


def op_cp(path, out):
    t = time.monotonic()
    subprocess.run(["cp", path, out], check=True)
    subprocess.run(["sync", out], check=True)
    return {"s": time.monotonic() - t}


def op_random(path, seed):
    """TTFB of a 1 MiB read near the end, then 100 random 1 MiB reads."""
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    off = size - 3 * MiB
    b = os.pread(fd, MiB, off)
    ttfb = time.monotonic() - t0
    assert len(b) == MiB
    rnd = random.Random(seed)
    lat = []
    t1 = time.monotonic()
    for _ in range(100):
        o = rnd.randrange(0, size - MiB) // PAGE * PAGE
        t = time.monotonic()
        b = os.pread(fd, MiB, o)
        lat.append(time.monotonic() - t)
        assert len(b) == MiB
    total = time.monotonic() - t1
    os.close(fd)
    return {"ttfb": ttfb, "total": total, "lat": lat}


def op_small(d, readers):
    t = time.monotonic()
    names = sorted(os.listdir(d))

    def rd(name):
        with open(os.path.join(d, name), "rb", buffering=0) as f:
            return len(f.read())

    if readers == 1:
        n = sum(rd(x) for x in names)
    else:
        with concurrent.futures.ThreadPoolExecutor(readers) as ex:
            n = sum(ex.map(rd, names))
    return {"s": time.monotonic() - t, "files": len(names), "bytes": n}


def touch_ranges(mm, ranges):
    """Reads one byte of every page of each range (faults every page in)."""
    mv = memoryview(mm)
    acc = 0
    for off, n in ranges:
        a = off // PAGE * PAGE
        acc += len(bytes(mv[a:off + n:PAGE]))
    mv.release()
    return acc


def op_mmap(path, kind, seed):
    t = time.monotonic()
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    if kind == "st_tensor":
        pages = touch_ranges(mm, safetensors_tensors(mm))
    elif kind == "gguf":
        pages = touch_ranges(mm, gguf_tensors(mm))
    elif kind == "st_random":
        ts = safetensors_tensors(mm)
        lo, hi = ts[0][0] // PAGE, (ts[-1][0] + ts[-1][1] - 1) // PAGE
        order = list(range(lo, hi + 1))
        random.Random(seed).shuffle(order)
        acc = 0
        for p in order:
            acc ^= mm[p * PAGE]
        pages = len(order)
    else:
        raise ValueError(kind)
    s = time.monotonic() - t
    mm.close()
    return {"s": s, "pages": pages}


def op_main(argv):
    kind = argv[0]
    if kind == "seq":
        r = op_seq(argv[1])
    elif kind == "cp":
        r = op_cp(argv[1], argv[2])
    elif kind == "random":
        r = op_random(argv[1], int(argv[2]))
    elif kind == "small":
        r = op_small(argv[1], int(argv[2]))
    elif kind == "mmap":
        r = op_mmap(argv[1], argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown op {kind}")
    print(json.dumps(r))


# --------------------------------------------------------------------------
# helpers for the parent


def drop_caches():
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as e:
        log(f"drop_caches: {e}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    """utime+stime of pid in seconds, from /proc/PID/stat."""
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = st[st.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class OpFailed(Exception):
    pass


def run_op(args, timeout):
    cmd = [sys.executable, str(Path(__file__).resolve()), "op"] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise OpFailed(f"{args[0]}: timeout after {timeout} s")
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        raise OpFailed(f"{' '.join(map(str, args[:1]))}: {last[-200:]}")
    return json.loads(p.stdout)


class Nginx:
    """nginx serving DOCROOT twice: on PORT with a JSON autoindex (hollowfs),
    on HPORT with the HTML autoindex (rclone's http backend and httpdirfs
    only read HTML indexes). One access log with $body_bytes_sent."""

    def __init__(self, work, docroot, addr, port, hport, rate=None, netns=None):
        self.work, self.addr, self.port = work, addr, port
        self.log = work / "access.log"
        conf = work / "nginx.conf"
        limit = f"limit_rate {rate};" if rate else ""
        conf.write_text(f"""
worker_processes 2;
daemon off;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    log_format bench '$body_bytes_sent $status $request_length "$request" "$http_range"';
    access_log {self.log} bench;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp;
    scgi_temp_path {work}/tmp;
    server {{
        listen {addr}:{port};
        root {docroot};
        {limit}
        autoindex on;
        autoindex_format json;
    }}
    server {{
        listen {addr}:{hport};
        root {docroot};
        {limit}
        autoindex on;
        autoindex_exact_size on;
    }}
}}
""")
        (work / "tmp").mkdir(exist_ok=True)
        cmd = ["nginx", "-p", str(work), "-c", str(conf)]
        if netns:
            cmd = [str(HERE / "netns.sh"), "exec"] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection((addr, port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise SystemExit("nginx did not start; see " + str(work / "nginx-error.log"))

    def mark(self):
        return self.log.stat().st_size if self.log.exists() else 0

    def since(self, mark):
        """(bytes sent, requests) logged after mark."""
        time.sleep(0.3)
        with open(self.log, "rb") as f:
            f.seek(mark)
            data = f.read().decode(errors="replace")
        sent = reqs = 0
        for line in data.splitlines():
            try:
                sent += int(line.split(" ", 1)[0])
                reqs += 1
            except ValueError:
                pass
        return sent, reqs

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------
# contenders


def fuse_cmd(name, hbin, base, hbase, mnt, cache, rclone_conf):
    if name == "hollowfs":
        return [hbin, "-f", "-o", f"cache={cache}", base + "/", mnt]
    if name == "rclone":
        return ["rclone", "mount", ":http:", mnt, "--http-url", hbase + "/",
                "--vfs-cache-mode", "full", "--cache-dir", cache, "--read-only",
                "--config", rclone_conf]
    if name == "httpdirfs":
        # --no-range-check: httpdirfs 1.2.5 checks Range support on the index
        # page, which nginx answers without Accept-Ranges, and then refuses
        # every read (github.com/fangfufu/httpdirfs issue 188).
        return ["httpdirfs", "-f", "--cache", "--cache-location", cache, "--no-range-check",
                hbase + "/", mnt]
    raise ValueError(name)


class Mount:
    def __init__(self, name, cmd, mnt, logf):
        self.name, self.mnt = name, mnt
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.ismount(mnt):
                try:
                    os.listdir(mnt)
                    return
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise OpFailed(f"{name} exited with {self.proc.returncode} at mount")
            time.sleep(0.05)
        self.close()
        raise OpFailed(f"{name}: mount timed out")

    @property
    def pid(self):
        return self.proc.pid

    def close(self):
        r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
        if r.returncode != 0 and os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if os.path.ismount(self.mnt):
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)


def timeout_for(nbytes):
    return int(min(1200, 90 + nbytes / (8 * MiB)))


class Runner:
    def __init__(self, a, profile):
        self.a = a
        self.profile = profile
        self.data = Path(a.data)
        self.www = self.data / "www"
        self.sz = json.loads((self.www / ".complete").read_text())
        self.work = Path(tempfile.mkdtemp(prefix=f"run-{profile}-", dir=self.data))
        self.mnt = str(self.work / "mnt")
        os.mkdir(self.mnt)
        self.rclone_conf = str(self.work / "rclone.conf")
        Path(self.rclone_conf).write_text("")
        self.res = {}
        self.errors = []
        self.hbin = a.hollowfs

    def save(self, done=False):
        """Writes the results so far (after every contender's repetition)."""
        a = self.a
        out = {"profile": self.profile, "mode": a.mode, "reps": a.reps, "reps_of": a.reps_of,
               "complete": done,
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "sizes": self.sz, "results": self.res, "errors": self.errors}
        p = self.data / f"results-{a.mode}-{self.profile}.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.rename(p)
        return p

    def put(self, who, key, val):
        if val is None:
            return
        self.res.setdefault(who, {}).setdefault(key, []).append(val)

    def fresh_cache(self, who):
        c = self.work / f"cache-{who}"
        shutil.rmtree(c, ignore_errors=True)
        c.mkdir()
        return str(c)

    # ---- FUSE contenders: one fresh mount (empty cache, dropped page cache) per case
    def session(self, who, fn):
        cache = self.fresh_cache(who)
        drop_caches()
        logf = open(self.work / f"{who}.log", "ab")
        mark = self.ngx.mark()
        m = Mount(who, fuse_cmd(who, self.hbin, self.base, self.hbase, self.mnt, cache, self.rclone_conf),
                  self.mnt, logf)
        try:
            fn(m)
        finally:
            hwm = proc_hwm_mib(m.pid)
            m.close()
            logf.close()
            shutil.rmtree(cache, ignore_errors=True)
        if hwm is not None:
            self.put(who, "_hwm", hwm)
        return self.ngx.since(mark)

    def fuse_rep(self, who):
        sz = self.sz
        mnt = self.mnt
        big = f"{mnt}/big.bin"

        def seq(m):
            c0 = proc_cpu(m.pid)
            r = run_op(["seq", big], timeout_for(sz["big"]))
            c1 = proc_cpu(m.pid)
            assert r["bytes"] == sz["big"], r
            self.put(who, "seq", r["s"])
            if c0 is not None and c1 is not None:
                self.put(who, "cpu_gib", (c1 - c0) / (sz["big"] / GiB))
            r = run_op(["seq", big], timeout_for(sz["big"]))
            self.put(who, "warm_page", r["s"])
            drop_caches()
            r = run_op(["seq", big], timeout_for(sz["big"]))
            self.put(who, "warm_own", r["s"])

        sent = self.guard(who, "seq", lambda: self.session(who, seq))
        if sent:  # the whole session: cold read + both re-reads
            self.put(who, "seq_server", sent[0] / sz["big"])

        out = str(self.work / "cp.out")

        def cp(m):
            r = run_op(["cp", big, out], timeout_for(sz["big"]))
            self.put(who, "cp", r["s"])
        self.guard(who, "cp", lambda: self.session(who, cp))
        Path(out).unlink(missing_ok=True)

        def rand(m):
            r = run_op(["random", big, SEED], timeout_for(200 * MiB))
            self.put(who, "ttfb", r["ttfb"])
            self.put_rand(who, r)
        sent = self.guard(who, "random", lambda: self.session(who, rand))
        if sent:
            self.put(who, "rand_server", sent[0] / MiB)
            self.put(who, "rand_reqs", sent[1])

        small_bytes = sum(p.stat().st_size for p in (self.www / "small").iterdir())
        for n in (1, 8):
            def small(m, n=n):
                r = run_op(["small", f"{mnt}/small", n], timeout_for(small_bytes * 4))
                assert r["files"] == sz["small"], r
                self.put(who, f"small{n}", r["s"])
            sent = self.guard(who, f"small{n}", lambda: self.session(who, small))
            if sent and n == 1:
                self.put(who, "small_amp", sent[0] / small_bytes)

        for kind, fname, size in (("st_tensor", "model.safetensors", sz["st"]),
                                  ("st_random", "model.safetensors", sz["st"]),
                                  ("gguf", "model.gguf", sz["gguf"])):
            def mm(m, kind=kind, fname=fname, size=size):
                r = run_op(["mmap", f"{mnt}/{fname}", kind, SEED], timeout_for(size * 2))
                self.put(who, kind, r["s"])
            sent = self.guard(who, kind, lambda: self.session(who, mm))
            if sent:
                fsize = (self.www / fname).stat().st_size
                self.put(who, kind + "_amp", sent[0] / fsize)

        hw = self.res.get(who, {}).pop("_hwm", [])
        if hw:
            self.put(who, "rss", max(hw))

    def put_rand(self, who, r):
        lat = sorted(r["lat"])
        self.put(who, "rand_total", r["total"])
        self.put(who, "rand_p50", statistics.median(lat) * 1000)
        self.put(who, "rand_p90", lat[int(0.9 * len(lat)) - 1] * 1000)
        self.put(who, "rand_max", lat[-1] * 1000)

    def guard(self, who, case, fn):
        try:
            return fn()
        except (OpFailed, AssertionError, OSError) as e:
            msg = f"{self.profile}/{who}/{case}: {e}"
            log("FAILED " + msg)
            self.errors.append(msg)
            return None

    # ---- download-first contenders: download, then use the local copy
    def download(self, who, name, dest):
        url = f"{self.base}/{name}"
        if who == "curl":
            cmd = ["curl", "-sSf", "--noproxy", "*", "-o", dest, url]
        else:
            cmd = ["aria2c", "-x8", "-s8", "-k4M", "-q", "--allow-overwrite=true",
                   "--auto-file-renaming=false", "--no-conf",
                   "-d", os.path.dirname(dest), "-o", os.path.basename(dest), url]
        return self.timed_proc(cmd, timeout_for(os.path.getsize(self.www / name)))

    def timed_proc(self, cmd, timeout):
        mark = self.ngx.mark()
        t = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = t + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                p.wait()
                raise OpFailed(f"timeout: {' '.join(cmd)}")
            time.sleep(0.005)
        s = time.monotonic() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise OpFailed(f"exit {p.returncode}: {' '.join(cmd)}")
        sent = self.ngx.since(mark)
        return {"s": s, "cpu": ru.ru_utime + ru.ru_stime, "rss": ru.ru_maxrss / 1024,
                "sent": sent[0], "reqs": sent[1]}

    def dl_rep(self, who):
        sz = self.sz
        d = self.work / f"dl-{who}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        rss = []

        def big():
            dest = str(d / "big.bin")
            drop_caches()
            r = self.download(who, "big.bin", dest)
            rss.append(r["rss"])
            t = time.monotonic()
            subprocess.run(["sync", dest], check=True)
            synced = time.monotonic() - t
            self.put(who, "seq", r["s"])
            self.put(who, "cp", r["s"] + synced)
            self.put(who, "cpu_gib", r["cpu"] / (sz["big"] / GiB))
            self.put(who, "seq_server", r["sent"] / sz["big"])
            # the local copy is the tool's own cache
            self.put(who, "warm_page", run_op(["seq", dest], 600)["s"])
            drop_caches()
            self.put(who, "warm_own", run_op(["seq", dest], 600)["s"])
            # a read near the end / random reads: download first, then read
            # (the download above, then the reads on the local copy)
            drop_caches()
            rr = run_op(["random", dest, SEED], 600)
            self.put(who, "ttfb", r["s"] + rr["ttfb"])
            rr["total"] += r["s"]
            rr["lat"][0] += r["s"]
            self.put_rand(who, rr)
            self.put(who, "rand_server", r["sent"] / MiB)
            self.put(who, "rand_reqs", r["reqs"])
            os.unlink(dest)
        self.guard(who, "big", big)

        def small():
            small_names = sorted(os.listdir(self.www / "small"))
            small_bytes = sum((self.www / "small" / x).stat().st_size for x in small_names)
            for n in (1, 8):
                out = d / f"small{n}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                drop_caches()
                groups = [small_names[i::n] for i in range(n)]
                cmds = []
                for gi, g in enumerate(groups):
                    lst = d / f"list{n}-{gi}"
                    if who == "curl":
                        lst.write_text("".join(
                            f'url = "{self.base}/small/{x}"\noutput = "{out}/{x}"\n' for x in g))
                        cmds.append(["curl", "-sSf", "--noproxy", "*", "-K", str(lst)])
                    else:
                        lst.write_text("".join(
                            f"{self.base}/small/{x}\n  out={x}\n" for x in g))
                        cmds.append(["aria2c", "-x8", "-s8", "-k4M", "-q", "--no-conf",
                                     "--allow-overwrite=true", "--auto-file-renaming=false",
                                     "-j1", "-d", str(out), "-i", str(lst)])
                mark = self.ngx.mark()
                t = time.monotonic()
                ps = [subprocess.Popen(c, stdin=subprocess.DEVNULL) for c in cmds]
                rcs = [p.wait(timeout_for(small_bytes * 4)) for p in ps]
                s = time.monotonic() - t
                if any(rcs):
                    raise OpFailed(f"small{n}: exit codes {rcs}")
                got = sum(p.stat().st_size for p in out.iterdir())
                assert got == small_bytes, (got, small_bytes)
                self.put(who, f"small{n}", s)
                if n == 1:
                    self.put(who, "small_amp", self.ngx.since(mark)[0] / small_bytes)
                shutil.rmtree(out)
        self.guard(who, "small", small)

        def models():
            for fname, kinds in (("model.safetensors", ("st_tensor", "st_random")),
                                 ("model.gguf", ("gguf",))):
                dest = str(d / fname)
                drop_caches()
                r = self.download(who, fname, dest)
                rss.append(r["rss"])
                fsize = os.path.getsize(dest)
                for kind in kinds:
                    lo = run_op(["mmap", dest, kind, SEED], 600)
                    self.put(who, kind, r["s"] + lo["s"])
                    self.put(who, kind + "_amp", r["sent"] / fsize)
                os.unlink(dest)
        self.guard(who, "models", models)
        if rss:
            self.put(who, "rss", max(rss))
        shutil.rmtree(d, ignore_errors=True)

    def run(self):
        a = self.a
        if self.profile == "rtt20":
            subprocess.run([str(HERE / "netns.sh"), "up", "20"], check=True)
            addr = subprocess.run([str(HERE / "netns.sh"), "ip"], check=True,
                                  capture_output=True, text=True).stdout.strip()
            netns = True
        else:
            addr, netns = "127.0.0.1", False
        port, hport = free_port(), free_port()
        rate = "50m" if self.profile == "rate50" else None
        try:
            self.ngx = Nginx(self.work, self.www, addr, port, hport, rate, netns)
            self.base = f"http://{addr}:{port}"
            self.hbase = f"http://{addr}:{hport}"
            try:
                # measure the round trip as the tools see it
                out = subprocess.run(["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w",
                                      "%{time_connect} %{time_starttransfer}",
                                      f"{self.base}/small/f00000.bin"],
                                     capture_output=True, text=True, check=True).stdout.split()
                self.res["_net"] = {"connect_ms": float(out[0]) * 1000,
                                    "ttfb_ms": float(out[1]) * 1000}
                for rep in range(a.reps):
                    for who in a.contenders:
                        if rep >= a.reps_of.get(who, a.reps):
                            continue
                        if a.mode == "quick" and who in QUICK_LOOPBACK_ONLY and \
                                self.profile != "loopback" and not a.explicit_contenders:
                            continue
                        log(f"{self.profile}: rep {rep + 1}/{a.reps}: {who}")
                        t = time.monotonic()
                        if who in FUSE:
                            self.fuse_rep(who)
                        else:
                            self.dl_rep(who)
                        log(f"{self.profile}: {who} took {time.monotonic() - t:.0f} s")
                        self.save()
            finally:
                self.ngx.stop()
        finally:
            if netns:
                subprocess.run([str(HERE / "netns.sh"), "down"], check=False)
            if os.path.ismount(self.mnt):
                subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
        p = self.save(done=True)
        log(f"{self.profile}: results in {p}")
        logs = self.data / f"logs-{self.profile}"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        for f in self.work.glob("*.log"):
            shutil.copy(f, logs / f.name)
        shutil.rmtree(self.work, ignore_errors=True)


# --------------------------------------------------------------------------
# report

ROWS = [
    # key, label, unit, format, lower is better
    ("seq", "cold sequential read of big.bin", "s", "{:.2f}"),
    ("seq_mbps", "  = throughput", "MB/s", "{:.0f}"),
    ("warm_page", "re-read, page cache warm", "s", "{:.2f}"),
    ("warm_own", "re-read from the tool's cache, page cache dropped", "s", "{:.2f}"),
    ("cp", "`cp` out to local disk (+ sync)", "s", "{:.2f}"),
    ("ttfb", "time to first 1 MiB near the end (cold)", "s", "{:.3f}"),
    ("rand_total", "100 random 1 MiB reads, total", "s", "{:.2f}"),
    ("rand_p50", "  p50 per read", "ms", "{:.1f}"),
    ("rand_p90", "  p90 per read", "ms", "{:.1f}"),
    ("rand_max", "  max per read", "ms", "{:.1f}"),
    ("rand_server", "  bytes fetched from the server (TTFB + 100 reads)", "MiB", "{:.0f}"),
    ("small1", "all small files, 1 reader", "s", "{:.2f}"),
    ("small8", "all small files, 8 readers", "s", "{:.2f}"),
    ("st_tensor", "mmap safetensors, tensor order", "s", "{:.2f}"),
    ("st_random", "mmap safetensors, random page order", "s", "{:.2f}"),
    ("gguf", "mmap GGUF, touch every tensor", "s", "{:.2f}"),
    ("rss", "peak RSS of the daemon / download process", "MiB", "{:.0f}"),
    ("cpu_gib", "CPU seconds per GiB (cold sequential read)", "s/GiB", "{:.2f}"),
    ("seq_server", "read amplification, sequential (server bytes / bytes read)", "×", "{:.3f}"),
    ("small_amp", "read amplification, small files", "×", "{:.3f}"),
    ("st_tensor_amp", "read amplification, safetensors tensor order", "×", "{:.3f}"),
    ("st_random_amp", "read amplification, safetensors random pages", "×", "{:.3f}"),
]

PROFILE_TITLE = {
    "loopback": "Loopback (nginx on 127.0.0.1)",
    "rtt20": "20 ms RTT (nginx in a network namespace behind scripts/bench/delayline.c)",
    "rate50": "50 MB/s per connection (loopback, nginx `limit_rate 50m`)",
}


def derived(res, sizes):
    for who, r in res.items():
        if who.startswith("_"):
            continue
        if "seq" in r:
            r["seq_mbps"] = [sizes["big"] / 1e6 / s for s in r["seq"]]


def fmt_cell(vals, f, ratio):
    if not vals:
        return "—"
    m = statistics.median(vals)
    s = f.format(m)
    if len(vals) > 1:
        s += f" ({f.format(min(vals))}–{f.format(max(vals))})"
    if ratio is not None:
        s += f" **×{ratio:.2f}**" if ratio < 100 else f" **×{ratio:.0f}**"
    return s


def timeouts(errors):
    """{(contender, row key): seconds} for the cases that timed out."""
    out = {}
    for e in errors:
        m = re.match(r"\w+/(\w+)/(\w+): \w+: timeout after (\d+) s", e)
        if m:
            keys = {"random": ["ttfb", "rand_total"]}.get(m[2], [m[2]])
            for k in keys:
                out[(m[1], k)] = int(m[3])
    return out


def table(res, contenders, tmo=None):
    tmo = tmo or {}
    cols = [c for c in contenders if c in res]
    lines = ["| case | unit | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols),
             "| repetitions | n | " + " | ".join(
                 str(max((len(v) for v in res[c].values()), default=0)) for c in cols) + " |"]
    h = res.get("hollowfs", {})
    for key, label, unit, f in ROWS:
        if not any(key in res[c] or (c, key) in tmo for c in cols):
            continue
        cells = []
        for c in cols:
            vals = res[c].get(key)
            ratio = None
            if c != "hollowfs" and vals and h.get(key):
                hm = statistics.median(h[key])
                if hm > 0:
                    ratio = statistics.median(vals) / hm
            if not vals and (c, key) in tmo:
                cells.append(f"> {tmo[(c, key)]} (timed out)")
                continue
            cells.append(fmt_cell(vals, f, ratio))
        lines.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gaps(res, n=3):
    """The n rows where hollowfs trails the best other contender most."""
    h = res.get("hollowfs", {})
    out = []
    for key, label, unit, f in ROWS:
        if key == "seq_mbps" or not h.get(key):
            continue
        hm = statistics.median(h[key])
        # per-read latencies of download-first tools are local reads of a
        # file downloaded beforehand: compare those among the mounts only
        local = key in ("rand_p50", "rand_p90", "rand_max")
        best = min(((statistics.median(v[key]), c) for c, v in res.items()
                    if c != "hollowfs" and v.get(key) and not (local and c not in FUSE)),
                   default=None)
        if best and best[0] < hm and hm > 0:
            out.append((hm / max(best[0], 1e-9), label.strip(), unit, f.format(hm),
                        f.format(best[0]), best[1], "rand" if key.startswith("rand") else key))
    out.sort(reverse=True)
    seen, top = set(), []
    for g in out:  # one line per case: the random-read rows count once
        if g[-1] not in seen:
            seen.add(g[-1])
            top.append(g[:-1])
    return top[:n]


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=True,
                              timeout=20).stdout.strip()
    except Exception:
        return "?"


def machine():
    mem = sh("awk '/MemTotal/{printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    disk = sh("df -h --output=source,fstype,size /var/tmp | tail -1")
    rota = sh("lsblk -dno NAME,ROTA,SIZE $(findmnt -no SOURCE -T /var/tmp) 2>/dev/null")
    return [f"nproc {os.cpu_count()} ({cpu}), memory {mem}",
            f"kernel {platform.release()} ({platform.machine()}), "
            f"{sh('. /etc/os-release; echo $PRETTY_NAME')}",
            f"disk for data, caches and copies: {disk} (lsblk NAME ROTA SIZE: {rota})"]


def versions(hbin):
    return {
        "hollowfs": sh(f"{hbin} --version 2>&1 | head -1") +
        f" (binary {hbin}; git HEAD when reported: "
        f"{sh(f'git -C {ROOT} rev-parse --short HEAD')})",
        "rclone": sh("rclone version 2>/dev/null | head -1"),
        "httpdirfs": sh("httpdirfs --version 2>&1 | head -1"),
        "curl": sh("curl --version | head -1"),
        "aria2c": sh("aria2c --version | head -1"),
        "nginx": sh("nginx -v 2>&1"),
        "libfuse": sh("fusermount3 --version 2>&1"),
    }


def report(a):
    data = Path(a.data)
    runs = []
    for prof in ("loopback", "rtt20", "rate50"):
        p = data / f"results-{a.mode}-{prof}.json"
        q = data.parent / "quick" / f"results-quick-{prof}.json"
        if p.exists():
            runs.append(json.loads(p.read_text()))
        elif a.mode == "full" and q.exists():
            runs.append(json.loads(q.read_text()))  # labelled as quick below
    if not runs:
        raise SystemExit("no results to report")
    sz = runs[0]["sizes"]
    L = []
    L.append("# hollowfs benchmarks\n")
    L.append("Generated by `scripts/bench/run.sh" + (" --quick" if a.mode == "quick" else "") +
             "` (measuring code: `scripts/bench/bench.py`). Benchmarks report; they never "
             "pass or fail CI.\n")
    for c in a.cmdline:
        L.append(f"Command: `{c}`\n")
    for n in a.note:
        L.append(n + "\n")
    dates = ", ".join(f"{r['profile']} {r['date']}" for r in runs)
    L.append(f"- Date (UTC): {dates}")
    for m in machine():
        L.append(f"- {m}")
    www = data / "www"
    st = (www / "model.safetensors").stat().st_size if (www / "model.safetensors").exists() else 0
    gg = (www / "model.gguf").stat().st_size if (www / "model.gguf").exists() else 0
    L.append(f"- Mode: {a.mode}; big.bin {sz['big'] / MiB:.0f} MiB, "
             f"model.safetensors {st / MiB:.0f} MiB, model.gguf {gg / MiB:.0f} MiB, "
             f"{sz['small']} small files of 4–64 KiB (random bytes from the kernel)")
    L.append("")
    L.append("Versions:\n")
    for k, v in versions(a.hollowfs).items():
        L.append(f"- {k}: {v}")
    L.append("")
    L.append(NOTES)
    for r in runs:
        res = r["results"]
        derived(res, r["sizes"])
        net = res.pop("_net", None)
        L.append(f"## {PROFILE_TITLE[r['profile']]}\n")
        if net:
            L.append(f"curl to the server: connect {net['connect_ms']:.1f} ms, "
                     f"first byte {net['ttfb_ms']:.1f} ms.\n")
        if r["mode"] != a.mode:
            L.append(f"**These figures come from the `--quick` run** (big.bin "
                     f"{r['sizes']['big'] / MiB:.0f} MiB, safetensors/GGUF "
                     f"{r['sizes']['st'] / MiB:.0f}/{r['sizes']['gguf'] / MiB:.0f} MiB, "
                     f"{r['sizes']['small']} small files): the full-size run of this profile "
                     "did not fit in the time available.\n")
        if not r.get("complete", True):
            L.append("**This run was stopped before its last repetition**; the "
                     "repetitions row says how many each contender completed.\n")
        L.append("Median over the repetitions (min–max); **×N** = contender ÷ hollowfs "
                 "(for times: above 1 means hollowfs is faster).\n")
        L.append(table(res, CONTENDERS, timeouts(r["errors"])))
        L.append("")
        g = gaps(res)
        if g:
            L.append("Where hollowfs trails the best other contender most:\n")
            for ratio, label, unit, hv, bv, who in g:
                L.append(f"- {label}: hollowfs {hv} {unit}, {who} {bv} {unit} (×{ratio:.1f})")
            L.append("")
        if r["errors"]:
            L.append("Failures (cells left out):\n")
            for e in r["errors"]:
                L.append(f"- `{e}`")
            L.append("")
    missing = [p for p in ("loopback", "rtt20", "rate50") if p not in [r["profile"] for r in runs]]
    if missing:
        L.append(f"Not run this time: {', '.join(missing)}.\n")
    L.append(COMMANDS)
    Path(a.out).write_text("\n".join(L) + "\n")
    log(f"report: wrote {a.out}")


NOTES = """\
How to read this:

- **Noise.** The machine is small and was shared while these numbers were
  taken (other builds and test runs on the same cores), so single figures
  can be off by tens of percent; the min–max spread shows how much. Compare
  contenders by the ratios, which were measured in the same run, interleaved.
- **Cold** means: an empty cache directory for the tool, a fresh mount,
  `sync; echo 3 > /proc/sys/vm/drop_caches` before the case. Each FUSE
  contender is mounted afresh for every case.
- **curl and aria2c** are "download it first": every case that reads the file
  includes downloading the whole file first (the time to first byte of a
  read near the end is the download time, random reads and mmap loads are
  download + reading the local copy; the download counts in their first
  read's latency, so their p50/p90 are local reads). Their "re-read from the tool's cache"
  is a read of the downloaded file; their `cp` is the download plus `sync`.
  Their peak RSS and CPU are those of the download process (wait4 rusage);
  the FUSE tools' are the daemon's (`VmHWM` from /proc/PID/status, utime +
  stime from /proc/PID/stat over the cold sequential read).
- **Server bytes** are summed from nginx's access log (`$body_bytes_sent`)
  after the tool unmounted, so readahead still in flight counts too.
- **50 MB/s profile**: nginx's `limit_rate` paces each response on each
  connection; it only binds large responses (a small file or a short range
  goes out in one burst through the socket buffer), and a tool with N
  connections gets up to N × 50 MB/s. It models a per-stream-limited server
  or CDN, not a thin pipe.
- **20 ms profile**: the server runs in a network namespace; packets from
  the client pass a userspace delay line (scripts/bench/delayline.c) that
  holds them 20 ms; replies come straight back over a veth pair. One TCP
  stream is then bound by the server's socket send buffer over the RTT.
- rclone and httpdirfs read the HTML autoindex of the same tree (a second
  `server` block of the same nginx, `HURL`); hollowfs reads the JSON
  autoindex (`URL`). Same files, same nginx, same access log.
"""

COMMANDS = """\
## Exact commands

`URL` is `http://127.0.0.1:PORT` (loopback, 50 MB/s) or `http://10.203.0.2:PORT`
(20 ms), `HURL` the same host on the port with the HTML index, `MNT` a mount point, `CACHE` a fresh empty directory per cold run.

```sh
hollowfs -f -o cache=CACHE URL/ MNT
rclone mount :http: MNT --http-url HURL/ --vfs-cache-mode full --cache-dir CACHE --read-only --config EMPTY_FILE
httpdirfs -f --cache --cache-location CACHE --no-range-check HURL/ MNT
curl -sSf --noproxy '*' -o FILE URL/big.bin
aria2c -x8 -s8 -k4M -q --allow-overwrite=true --auto-file-renaming=false --no-conf -d DIR -o FILE URL/big.bin
# small files: curl -K LIST (url/output pairs; 1 or 8 processes, each reusing
# its connection), aria2c ... -j1 -i LIST (1 or 8 processes)
# reads through the mounts: scripts/bench/bench.py op seq|cp|random|small|mmap ...
#   seq: read() in 1 MiB blocks; cp: cp FILE OUT && sync OUT;
#   random: pread 1 MiB at size-3MiB, then 100 preads of 1 MiB at seeded
#   random 4 KiB-aligned offsets; small: listdir + read every file (1 or 8
#   threads); mmap: touch one byte per 4 KiB page of every tensor, in file
#   order or in a seeded random page order
```
"""


# --------------------------------------------------------------------------


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "op":
        return op_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["gen", "run", "report"])
    ap.add_argument("--data", default="/var/tmp/hollowfs-bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", choices=["loopback", "rtt20", "rate50"])
    ap.add_argument("--reps", type=int)
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--reps-of", default="",
                    help="fewer repetitions for some contenders: NAME=N[,NAME=N]")
    ap.add_argument("--hollowfs", default=str(ROOT / "build/hollowfs"))
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--cmdline", action="append", default=[],
                    help="the run.sh command lines that produced the results (report)")
    ap.add_argument("--note", action="append", default=[],
                    help="a line to add under the header (report)")
    a = ap.parse_args()
    a.mode = "quick" if a.quick else "full"
    a.data = str(Path(a.data) / a.mode)
    a.explicit_contenders = a.contenders != ",".join(CONTENDERS)
    a.contenders = [c for c in a.contenders.split(",") if c]
    a.reps_of = {k: int(v) for k, v in (x.split("=") for x in a.reps_of.split(",") if x)}
    if a.reps is None:
        a.reps = 1 if a.quick else 3
    if a.cmd == "gen":
        Path(a.data).mkdir(parents=True, exist_ok=True)
        gen(Path(a.data), a.mode)
    elif a.cmd == "run":
        if not a.profile:
            raise SystemExit("--profile is required")
        Runner(a, a.profile).run()
    else:
        report(a)


if __name__ == "__main__":
    sys.exit(main())
