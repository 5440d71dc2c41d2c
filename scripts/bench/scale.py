#!/usr/bin/python3
"""scale.py: metadata at scale, measured (issue 10).

A flat folder of N files (default 100,000, a few bytes each) is mounted
from nginx (JSON autoindex) and from file://, each with a fresh cache, and
for each this prints (and for an offline remount of the nginx one, from
its saved snapshot): the mount time (start of `hollowfs -f` until the
mountpoint is in /proc/self/mountinfo), `ls -R` time, `find | wc -l` time
and count, `ls -lR` time (a stat of every entry), and the daemon's peak
and current RSS (VmHWM, VmRSS) after the mount and after the listings.

    scripts/bench/scale.py [--files N] [--build DIR] [--dir WORKDIR]
                           [--keep] [--source nginx,file]

Run as root (FUSE, allow_other). The tree is made once in WORKDIR
(default /tmp/hollowfs-scale) and reused while it has N files.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def is_mounted(mnt):
    mnt = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mnt for line in f)


def make_tree(top, n):
    """top/big/file-NNNNNN.bin, n of them; kept when already there."""
    big = top / "big"
    if big.is_dir() and sum(1 for _ in os.scandir(big)) == n:
        return big
    shutil.rmtree(big, ignore_errors=True)
    big.mkdir(parents=True)
    for i in range(n):
        with open(big / f"file-{i:06d}.bin", "wb") as f:
            f.write(b"%d\n" % i)
    return big


def timed(cmd):
    t0 = time.monotonic()
    r = subprocess.run(cmd, shell=True, capture_output=True, timeout=1800)
    if r.returncode:
        raise RuntimeError(f"{cmd}: {r.stderr.decode().strip()}")
    return time.monotonic() - t0, r.stdout


def measure(hollowfs, source, work, label, n, cache_of=None, opts=""):
    """One row; cache_of: reuse that row's cache (else a fresh one)."""
    mnt, cache = work / f"mnt-{label}", work / f"cache-{cache_of or label}"
    if not cache_of:
        shutil.rmtree(cache, ignore_errors=True)
    mnt.mkdir(exist_ok=True)
    log = open(work / f"hollowfs-{label}.log", "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(hollowfs), "-f", "-o", f"cache={cache}"
                             + opts, source, str(mnt)], stdout=log,
                            stderr=log, stdin=subprocess.DEVNULL)
    try:
        while not is_mounted(mnt):
            if proc.poll() is not None:
                raise RuntimeError(f"hollowfs exited {proc.returncode}; "
                                   f"see {log.name}")
            time.sleep(0.01)
        row = {"source": label, "mount_s": time.monotonic() - t0,
               "hwm_mount": status_kib(proc.pid, "VmHWM"),
               "rss_mount": status_kib(proc.pid, "VmRSS")}
        row["ls_R_s"], _ = timed(f"ls -R {mnt} > /dev/null")
        row["find_s"], out = timed(f"find {mnt} | wc -l")
        row["find_n"] = int(out.strip()) - 1  # less the top
        row["ls_lR_s"], _ = timed(f"ls -lR {mnt} > /dev/null")
        row["hwm_ls"] = status_kib(proc.pid, "VmHWM")
        row["rss_ls"] = status_kib(proc.pid, "VmRSS")
        row["per_entry"] = row["hwm_ls"] * 1024 / n
        return row
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--dir", default="/tmp/hollowfs-scale")
    ap.add_argument("--source", default="nginx,file")
    ap.add_argument("--keep", action="store_true",
                    help="keep the tree for the next run")
    a = ap.parse_args()
    hollowfs = Path(a.build) / "hollowfs"
    work = Path(a.dir)
    work.mkdir(parents=True, exist_ok=True)
    big = make_tree(work / "root", a.files)
    rows = []
    ng = None
    try:
        for src in a.source.split(","):
            if src == "nginx":
                from conftest import Nginx
                ng = Nginx(work / "root", work / "nginx")
                url = ng.url + "/json/big/"
                rows.append(measure(hollowfs, url, work, "nginx", a.files))
                ng.stop()
                ng = None
                # The saved snapshot, server gone: manifest_from_json.
                rows.append(measure(hollowfs, url, work, "offline",
                                    a.files, cache_of="nginx",
                                    opts=",offline"))
            elif src == "file":
                rows.append(measure(hollowfs, f"file://{big}", work, "file",
                                    a.files))
            else:
                raise SystemExit(f"unknown source {src!r}")
    finally:
        if ng:
            ng.stop()
        if not a.keep:
            shutil.rmtree(work / "root", ignore_errors=True)
    print(f"{a.files} files in one folder ({hollowfs}):")
    print(f"{'source':8} {'mount s':>8} {'ls -R s':>8} {'find s':>7} "
          f"{'entries':>8} {'ls -lR s':>8} {'HWM mnt':>8} {'HWM ls':>8} "
          f"{'RSS ls':>8} {'B/entry':>8}")
    for r in rows:
        print(f"{r['source']:8} {r['mount_s']:8.2f} {r['ls_R_s']:8.2f} "
              f"{r['find_s']:7.2f} {r['find_n']:8d} {r['ls_lR_s']:8.2f} "
              f"{r['hwm_mount'] / 1024:7.1f}M {r['hwm_ls'] / 1024:7.1f}M "
              f"{r['rss_ls'] / 1024:7.1f}M {r['per_entry']:8.0f}")


if __name__ == "__main__":
    main()
