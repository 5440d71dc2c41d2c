#!/usr/bin/python3
"""hollowfs benchmark: the engine and the mount against curl, on loopback.

Serves one file (default 1 GiB) with nginx on 127.0.0.1 and measures,
as medians of --runs runs each:
  curl -o /dev/null        the network ceiling
  curl -o FILE             the fair ceiling when the bytes must hit disk
  fetchdrv (engine alone)  cold fetch into an empty cache, and its peak RSS
  hollowfs cold cat        cat of the mounted file to /dev/null, empty cache
  hollowfs warm cat        the same file again, page cache dropped, bytes
                           served from the cache
and prints each with its ratio to curl -o FILE, plus the daemon's peak RSS.

Usage: scripts/bench/bench.py [--size-mib N] [--runs N] [--dir DIR]
Needs root (mount, drop_caches), nginx, curl, a built build/.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HOLLOWFS_BUILD", ROOT / "build"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


def timed(cmd, **kw):
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.monotonic() - t


def rss_of_run(cmd):
    """Runs cmd under /usr/bin/time -v semantics via wait4: (secs, maxrss KiB)."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.monotonic() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed")
    return secs, ru.ru_maxrss


def peak_rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_nginx(work, docroot, port):
    conf = work / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        autoindex on;
        autoindex_format json;
    }}
}}
""")
    p = subprocess.Popen(["nginx", "-p", str(work), "-c", str(conf)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("nginx did not start")


def mount(source, mnt, cache, log):
    p = subprocess.Popen([str(BUILD / "hollowfs"), "-f", "-o",
                          f"cache={cache}", source, str(mnt)],
                         stderr=open(log, "ab"))
    for _ in range(200):
        if os.path.ismount(mnt):
            return p
        if p.poll() is not None:
            raise SystemExit(f"hollowfs exited: see {log}")
        time.sleep(0.05)
    raise SystemExit("mount timed out")


def umount(p, mnt):
    subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
    p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    size = a.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="hollowfs-bench-", dir=a.dir))
    docroot = work / "www"
    docroot.mkdir()
    data = docroot / "big.bin"
    with open(data, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(a.size_mib):
            f.write(block[i % 7:] + block[:i % 7])
    port = free_port()
    ngx = start_nginx(work, docroot, port)
    url = f"http://127.0.0.1:{port}/big.bin"
    res = {}
    try:
        res["curl -o /dev/null"] = [timed(["curl", "-sf", "-o", "/dev/null", url])
                                    for _ in range(a.runs)]
        out = work / "curl.out"
        runs = []
        for _ in range(a.runs):
            out.unlink(missing_ok=True)
            drop_caches()
            runs.append(timed(["curl", "-sf", "-o", str(out), url]))
        out.unlink(missing_ok=True)
        res["curl -o FILE"] = runs

        runs, rss = [], []
        for _ in range(a.runs):
            cache = work / "cache-drv"
            shutil.rmtree(cache, ignore_errors=True)
            drop_caches()
            secs, kib = rss_of_run([str(BUILD / "tests/drivers/fetchdrv"),
                                    "--cache", str(cache), "--size", str(size), url])
            runs.append(secs)
            rss.append(kib)
        shutil.rmtree(work / "cache-drv", ignore_errors=True)
        res["engine (fetchdrv) cold"] = runs
        engine_rss = statistics.median(rss)

        mnt = work / "mnt"
        mnt.mkdir()
        cold, warm, drss = [], [], []
        for _ in range(a.runs):
            cache = work / "cache-mnt"
            shutil.rmtree(cache, ignore_errors=True)
            drop_caches()
            p = mount(url, mnt, cache, work / "hollowfs.log")
            try:
                cold.append(timed(["cat", str(mnt / "big.bin")]))
                drop_caches()
                warm.append(timed(["cat", str(mnt / "big.bin")]))
                drss.append(peak_rss_kib(p.pid))
            finally:
                umount(p, mnt)
        res["hollowfs cold cat"] = cold
        res["hollowfs warm cat"] = warm
    finally:
        ngx.send_signal(signal.SIGTERM)
        ngx.wait()
    mib = size / (1 << 20)
    base = statistics.median(res["curl -o FILE"])
    print(f"# {a.size_mib} MiB from nginx on 127.0.0.1, median of {a.runs} runs")
    print(f"{'what':28} {'median s':>9} {'MiB/s':>8} {'vs curl -o FILE':>16}")
    for k, v in res.items():
        m = statistics.median(v)
        print(f"{k:28} {m:9.2f} {mib / m:8.0f} {base / m:15.2f}x")
    print(f"engine peak RSS (fetchdrv, 16 connections): {engine_rss / 1024:.1f} MiB")
    if drss:
        print(f"daemon peak RSS (hollowfs, VmHWM): {statistics.median(drss) / 1024:.1f} MiB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
