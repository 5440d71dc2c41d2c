"""scripts/demo.sh, the README's first command, end to end: it must pass
with the hollowfs binary under test (plain or sanitizer build) and leave
nothing behind: no mount, no process, no files.

The demo calls scripts/setup.sh unless HOLLOWFS_DEMO_SKIP_SETUP is set;
here the build under test is already there, so it is skipped and
HOLLOWFS_BIN points the demo at conftest's binary.
"""

import os
import signal
import subprocess

from conftest import HOLLOWFS, REPO

DEMO_TIMEOUT_S = 240  # about 6 s plain, about 25 s under ASan

# One fragment of each step's line, in order.
STEPS = [
    "setup",
    "generate the model repo",
    "3 safetensors shards (LFS)",
    "start the test Hub",
    "mount ",
    "ls -la",
    "user.hollowfs.cached 0 on all, nothing downloaded",
    "model-00003-of-00003.safetensors",
    "read config.json",
    "llama, 8 layers",
    "read a safetensors header",
    "format pt",
    "mmap and check all tensors",
    "75 tensors, 297.0 MiB in 3 shards: every sha256 matches",
    "the Hub sent 1.00x the bytes read",
    "again, from the cache",
    "nothing downloaded",
    "getfattr user.hollowfs.*",
    "26/26",
    'user.hollowfs.chunks="26/26"',
    "hollowfs status",
    "per-file progress",
    "cp a shard out, sha256sum",
    "= its LFS sha256",
    "unmount",
    "hollowfs exited 0, log clean",
    "stop the test Hub",
    "mount again, -o offline",
    "10 files listed from the snapshot in the cache",
    "check all tensors, offline",
    "every sha256 matches",
    "read an uncached file",
    # until a background fill caches every file:
    "README.md (never read) fails at once: Input/output error",
    "unmount",
    "hollowfs exited 0, log clean",
    "demo: all 18 steps passed",
]


def leftovers(top):
    """Mounts and processes that mention top."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8",
              errors="replace") as f:
        found += [line.strip() for line in f if str(top) in line]
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(top) in cmd:
            found.append(f"pid {pid}: {cmd}")
    return found


def test_demo(hollowfs_bin, tmp_path):
    work = tmp_path / "tmp"
    work.mkdir()
    env = dict(os.environ, HOLLOWFS_DEMO_SKIP_SETUP="1",
               HOLLOWFS_BIN=str(HOLLOWFS), TMPDIR=str(work))
    env.pop("HOLLOWFS_DEMO_KEEP", None)
    r = subprocess.run([str(REPO / "scripts" / "demo.sh")], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=DEMO_TIMEOUT_S)
    out = f"--- stdout:\n{r.stdout}\n--- stderr:\n{r.stderr}"
    assert r.returncode == 0, f"demo.sh exited {r.returncode}\n{out}"
    pos = 0
    for frag in STEPS:
        i = r.stdout.find(frag, pos)
        assert i >= 0, f"no {frag!r} (in order) in the output\n{out}"
        pos = i + len(frag)
    assert "FAILED" not in r.stdout + r.stderr, out
    assert not leftovers(work), leftovers(work)
    assert list(work.iterdir()) == [], "the demo left files behind"


def test_demo_cleans_up_when_interrupted(hollowfs_bin, tmp_path):
    """SIGTERM while mounted: the demo unmounts, stops its server, removes
    its work dir and exits 143."""
    work = tmp_path / "tmp"
    work.mkdir()
    env = dict(os.environ, HOLLOWFS_DEMO_SKIP_SETUP="1",
               HOLLOWFS_BIN=str(HOLLOWFS), TMPDIR=str(work))
    env.pop("HOLLOWFS_DEMO_KEEP", None)
    p = subprocess.Popen([str(REPO / "scripts" / "demo.sh")], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in p.stdout:
            seen.append(line)
            if "cached 0 on all" in line:
                assert leftovers(work), "mounted, yet nothing to clean up?"
                p.send_signal(signal.SIGTERM)
                break
        rest = p.communicate(timeout=60)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = "".join(seen) + (rest or "")
    assert any("cached 0 on all" in line for line in seen), out
    assert p.returncode == 143, out
    assert not leftovers(work), leftovers(work)
    assert list(work.iterdir()) == [], out


def test_demo_fails_cleanly(tmp_path):
    """A failing step (here: no binary) exits non-zero, names the step and
    still removes its work dir."""
    work = tmp_path / "tmp"
    work.mkdir()
    env = dict(os.environ, HOLLOWFS_DEMO_SKIP_SETUP="1",
               HOLLOWFS_BIN=str(tmp_path / "no-such-hollowfs"),
               TMPDIR=str(work))
    r = subprocess.run([str(REPO / "scripts" / "demo.sh")], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "FAILED at step 1 (setup)" in r.stderr, r.stderr
    assert not leftovers(work)
    assert list(work.iterdir()) == []
