"""Sharded safetensors models (issue 11, fs/shards.c): a synthetic model of
three shards (real safetensors headers, random tensor bytes) and its
model.safetensors.index.json, plus a diffusers-style subfolder whose
index also names a shard that is not there, and an index that is not
JSON, served by scripts/testserver.py and mounted with 1 MiB chunks.

Checks, from the server's access log:
- opening shard 1 (no read) has the header chunk of shard 2 fetched, and
  nothing of shard 3;
- opening and reading the index has the header chunk of shard 3 fetched
  too; no shard byte past its first chunk is fetched before the tensors
  are read, and no header chunk twice;
- then each shard's open and header read makes no request for its header;
- every tensor of every shard read through mmap is exact, each shard
  fetched about once;
- the subfolder's index has both its shards' headers fetched and says,
  in one line, which name is not in its folder; the bad index costs one
  line and its open and read still work;
- an unmount while the index's fetch stalls is prompt and clean.

Run with: pytest-3 -q tests/integration/test_shards.py
"""

import json
import mmap
import os
import random
import struct
import time

from conftest import MiB, KiB, file_gets, served_spans, settled_log

CHUNK = 1 * MiB
OPTS = [f"chunk_size={CHUNK}"]  # conftest adds prefetch=none
WAIT_S = 10.0


def make_shard(path, seed, ntensors, prefix):
    """Writes a .safetensors file of ntensors tensors of 64 KiB to 600 KiB
    (about 1.5 to 4 MiB: its header is in chunk 0, its tensors span
    several chunks). Returns ({name: (off, end)} absolute, file bytes)."""
    rnd = random.Random(seed)
    sizes = [rnd.randrange(16, 150) * 4 * KiB for _ in range(ntensors)]
    header, pos = {"__metadata__": {"format": "pt"}}, 0
    rel = {}
    for i, n in enumerate(sizes):
        name = f"{prefix}.{i}.weight"
        header[name] = {"dtype": "F32", "shape": [n // 4],
                        "data_offsets": [pos, pos + n]}
        rel[name] = (pos, pos + n)
        pos += n
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)
    data_off = 8 + len(hj)
    blob = struct.pack("<Q", len(hj)) + hj + rnd.randbytes(pos)
    path.write_bytes(blob)
    return {k: (data_off + b, data_off + e) for k, (b, e) in rel.items()}, \
        blob


def make_index(path, shards, extra=None):
    """model.safetensors.index.json for shards {file name: tensors}."""
    wmap = {t: fname for fname, tensors in shards.items() for t in tensors}
    wmap.update(extra or {})
    total = sum(e - b for tensors in shards.values()
                for b, e in tensors.values())
    path.write_text(json.dumps({"metadata": {"total_size": total},
                                "weight_map": wmap}, indent=2))


def gets_of(srv, rel, since):
    return file_gets(srv.log(), "/" + rel, since)


def wait_for(what, cond, timeout_s=WAIT_S):
    """Polls cond() until it is true; returns the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout_s, f"{what}: not within " \
            f"{timeout_s} s"
        time.sleep(0.02)
    return time.monotonic() - t0


def test_sharded_model(server, mount, tmp_path):
    root = tmp_path / "model"
    root.mkdir()
    names = [f"model-{k:05d}-of-00003.safetensors" for k in (1, 2, 3)]
    shards = {}
    for k, name in enumerate(names):
        shards[name] = make_shard(root / name, 10 + k, 12, f"layers.{k}")
    make_index(root / "model.safetensors.index.json",
               {n: t for n, (t, _) in shards.items()})
    (root / "unet").mkdir()
    unet = [f"diffusion_pytorch_model-{k:05d}-of-00002.safetensors"
            for k in (1, 2)]
    make_index(root / "unet/diffusion_pytorch_model.safetensors.index.json",
               {n: make_shard(root / "unet" / n, 20 + k, 4, f"unet.{k}")[0]
                for k, n in enumerate(unet)},
               extra={"unet.gone.weight": "gone.safetensors"})
    (root / "broken.safetensors.index.json").write_text('{"weight_map": [')

    srv = server(root)
    mount.start(srv.url + "/", OPTS)
    since = time.time()

    def head_gets(name):
        return gets_of(srv, name, since)

    # 1. Opening shard 1 (its own header is wanted at open) queues shard
    # 2's header; nothing of shard 3.
    fd = os.open(mount.path(names[0]), os.O_RDONLY)
    try:
        took = wait_for("shard 2's header after shard 1's open",
                        lambda: head_gets(names[1]))
        print(f"shard 2's header fetched {took:.3f} s after shard 1's open")
    finally:
        os.close(fd)
    log = settled_log(srv)
    assert not file_gets(log, "/" + names[2], since), \
        "shard 3 was fetched after the open of shard 1"

    # 2. The index names shard 3 too.
    t0 = time.monotonic()
    with open(mount.path("model.safetensors.index.json"), "rb") as f:
        index = json.loads(f.read())
    assert set(index["weight_map"].values()) == set(names)
    took = wait_for("shard 3's header after the index was read",
                    lambda: head_gets(names[2]))
    print(f"shard 3's header fetched {took:.3f} s after the index was "
          f"read ({time.monotonic() - t0:.3f} s after its open)")
    log = settled_log(srv)
    for name in names:
        spans = served_spans(file_gets(log, "/" + name, since))
        print(f"{name}: before any tensor read, fetched {spans}")
        assert spans and spans[0][0] == 0, f"{name}: header not fetched"
        assert len(spans) == 1, f"{name}: more than one fetch: {spans}"
        assert spans[0][1] <= CHUNK, \
            f"{name}: fetched past its header chunk: {spans}"

    # 3. What a loader does first at each open, read the header, is
    # answered from the cache: no new request for byte 0.
    mark = time.time()
    for name in names:
        t0 = time.monotonic()
        fd = os.open(mount.path(name), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            n = struct.unpack("<Q", os.pread(fd, 8, 0))[0]
            assert os.pread(fd, n, 8) == shards[name][1][8:8 + n]
        finally:
            os.close(fd)
        print(f"{name}: open and header read in "
              f"{(time.monotonic() - t0) * 1000:.1f} ms")
    log = settled_log(srv)
    for name in names:
        again = [s for s in served_spans(file_gets(log, "/" + name, mark))
                 if s[0] == 0]
        assert not again, f"{name}: header fetched again: {again}"

    # 4. Every tensor through mmap, in the index's order, shard by shard.
    t0 = time.monotonic()
    for name in names:
        tensors, blob = shards[name]
        with open(mount.path(name), "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        try:
            for t, (b, e) in tensors.items():
                assert m[b:e] == blob[b:e], f"{name}: tensor {t} differs"
        finally:
            m.close()
    print(f"every tensor of 3 shards read in "
          f"{time.monotonic() - t0:.2f} s")
    log = settled_log(srv)
    for name in names:
        size = len(shards[name][1])
        got = sum(e["bytes"] for e in file_gets(log, "/" + name, since))
        print(f"{name}: {got} bytes fetched of {size}")
        assert got <= 1.1 * size, f"{name}: fetched {got} of {size}"

    # 5. A subfolder's index, with a name not in its folder.
    mount.allow(r"not reading the shards of "
                r"'broken\.safetensors\.index\.json': bad JSON")
    uidx = "unet/diffusion_pytorch_model.safetensors.index.json"
    with open(mount.path(uidx), "rb") as f:
        f.read()
    for name in unet:
        wait_for(f"{name}'s header after its index was read",
                 lambda: gets_of(srv, "unet/" + name, since))
    wait_for("the line about gone.safetensors",
             lambda: "'gone.safetensors'" in mount.log_text())

    # 6. A bad index: one line, and it reads as any file.
    with open(mount.path("broken.safetensors.index.json"), "rb") as f:
        assert f.read() == b'{"weight_map": ['
    wait_for("the line about the bad index",
             lambda: "broken.safetensors.index.json': bad JSON"
             in mount.log_text())
    lines = [ln for ln in mount.log_lines()
             if " fs: " in ln and "index.json" in ln]
    print("\n".join(lines))
    assert len(lines) == 2, lines


def test_unmount_while_the_index_is_fetched(server, mount, tmp_path):
    """The index's fetch stalls: its open still returns at once, no shard
    is fetched, and an unmount then is prompt and clean (exit 0; under
    ASan no leak of the pending job or its blob reference)."""
    root = tmp_path / "model"
    root.mkdir()
    names = [f"model-{k:05d}-of-00002.safetensors" for k in (1, 2)]
    make_index(root / "model.safetensors.index.json",
               {n: make_shard(root / n, 30 + k, 4, f"l.{k}")[0]
                for k, n in enumerate(names)})
    srv = server(root, faults={"/model.safetensors.index.json":
                               {"stall": True}})
    mount.start(srv.url + "/", OPTS)
    since = time.time()
    t0 = time.monotonic()
    os.close(os.open(mount.path("model.safetensors.index.json"),
                     os.O_RDONLY))
    took = time.monotonic() - t0
    print(f"open of the stalled index: {took * 1000:.1f} ms")
    assert took < 2.0, f"the open of the index waited {took:.2f} s"
    time.sleep(0.5)
    took = mount.umount()
    print(f"unmount with the index's fetch stalled: {took:.2f} s")
    for name in names:
        assert not file_gets(srv.log(), "/" + name, since), \
            f"{name} fetched though the index never came"
