"""Format-aware loading (issue 11): a synthetic .safetensors file (a real
header, a few hundred tensors of mixed sizes) and a synthetic .gguf (v3:
metadata of several types, a vocabulary array, tensor infos, aligned
data), read through mmap through a real mount of scripts/testserver.py,
in tensor order and in a random page order.

Checks: the bytes are exact; every byte is fetched about once (at most
1.1x the file size, from the server's access log); in a random page
order the planner fetches whole tensors ahead in runs of chunks, so
there are far fewer requests than chunks (without format-aware planning
each page of a new chunk is a request of its own).

Run with: pytest-3 -q tests/integration/test_formats.py
"""

import json
import mmap
import os
import random
import struct
import time

import pytest

from conftest import KiB, MiB, file_gets, settled_log

CHUNK = 1 * MiB  # small chunks: a 64 MiB file has 64 of them
OPTS = ["prefetch=none", f"chunk_size={CHUNK}"]
PAGE = mmap.PAGESIZE

_SANITIZE = os.environ.get("HOLLOWFS_SANITIZE", "none") not in ("", "none")
SIZE = (32 if _SANITIZE else 64) * MiB  # tensor bytes, about


def tensor_sizes(rnd, total):
    """Mixed sizes: many small (norms, biases), some of 1-2 MiB, a few big
    (embeddings), to about total bytes."""
    sizes = []
    left = total
    while left > 0:
        r = rnd.random()
        if r < 0.6:
            n = rnd.randrange(1, 64) * KiB
        elif r < 0.95:
            n = rnd.randrange(256, 2048) * KiB
        else:
            n = rnd.randrange(4, 9) * MiB
        n = min(n, left)
        n -= n % 4 or 0
        sizes.append(max(n, 4))
        left -= n
    return sizes


def make_safetensors(path, seed):
    """Writes a .safetensors file; returns (bytes, [(off, end)] in header
    order, absolute). The header lists tensors in an order other than
    their offsets, as loaders may walk them."""
    rnd = random.Random(seed)
    sizes = tensor_sizes(rnd, SIZE)
    offs, pos = [], 0
    for n in sizes:
        offs.append((pos, pos + n))
        pos += n
    order = list(range(len(sizes)))
    rnd.shuffle(order)
    header = {"__metadata__": {"format": "pt"}}
    for i in order:
        b, e = offs[i]
        header[f"model.layers.{i}.weight"] = {
            "dtype": "F32", "shape": [(e - b) // 4], "data_offsets": [b, e]}
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)  # writers pad to 8 bytes
    data_off = 8 + len(hj)
    body = rnd.randbytes(pos)
    blob = struct.pack("<Q", len(hj)) + hj + body
    path.write_bytes(blob)
    return blob, [(data_off + offs[i][0], data_off + offs[i][1])
                  for i in order]


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def make_gguf(path, seed, align=32):
    """Writes a GGUF v3 file; returns (bytes, [(off, end)] in info order,
    absolute; a tensor runs to its size, padding excluded)."""
    rnd = random.Random(seed)
    sizes = tensor_sizes(rnd, SIZE)
    kv = [
        gguf_str("general.architecture") + struct.pack("<I", 8)
        + gguf_str("llama"),
        gguf_str("general.alignment") + struct.pack("<II", 4, align),
        gguf_str("llama.block_count") + struct.pack("<II", 4, 32),
        gguf_str("llama.rope.freq_base") + struct.pack("<If", 6, 1e4),
        gguf_str("general.file_type") + struct.pack("<IQ", 10, 1),
        gguf_str("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3000)
        + b"".join(gguf_str(f"tok{i}") for i in range(3000)),
        gguf_str("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3000)
        + struct.pack("<3000f", *([0.5] * 3000)),
    ]
    rel, pos = [], 0
    for n in sizes:
        rel.append((pos, pos + n))
        pos += n + (-n % align)
    infos = b"".join(
        gguf_str(f"blk.{i}.weight") + struct.pack("<IQ", 1, n // 4)
        + struct.pack("<IQ", 0, rel[i][0]) for i, n in enumerate(sizes))
    head = (b"GGUF" + struct.pack("<IQQ", 3, len(sizes), len(kv))
            + b"".join(kv) + infos)
    head += b"\0" * (-len(head) % align)
    data_off = len(head)
    body = bytearray(rnd.randbytes(pos))
    blob = head + bytes(body)
    path.write_bytes(blob)
    return blob, [(data_off + b, data_off + e) for b, e in rel]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two of each (a fresh file per pass: the cache starts cold)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for i, name in enumerate(("a.safetensors", "b.safetensors")):
        out[name] = make_safetensors(root / name, 100 + i)
    for i, name in enumerate(("a.gguf", "b.gguf")):
        out[name] = make_gguf(root / name, 200 + i)
    return root, out


def fetched(srv, name, since):
    log = settled_log(srv)
    gets = file_gets(log, "/" + name, since)
    return len(gets), sum(e["bytes"] for e in gets)


def report(name, how, size, n, got, elapsed):
    nch = (size + CHUNK - 1) // CHUNK
    print(f"{name} ({how}): {size / MiB:.1f} MiB, {nch} chunks: "
          f"{n} requests, {got / MiB:.1f} MiB fetched "
          f"({got / size:.2f}x), {elapsed:.2f}s")


@pytest.mark.parametrize("name", ["a.safetensors", "a.gguf"])
def test_tensor_order(server, mount, models, name):
    """mmap, then each tensor in the header's order, as a loader copies
    them: exact bytes, each byte fetched about once."""
    root, files = models
    blob, tensors = files[name]
    srv = server(root)
    mount.start(srv.url + "/", OPTS)
    since = time.time()
    t = time.monotonic()
    with open(mount.path(name), "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        for b, e in tensors:
            assert m[b:e] == blob[b:e], f"tensor [{b}, {e}) differs"
    finally:
        m.close()
    elapsed = time.monotonic() - t
    n, got = fetched(srv, name, since)
    report(name, "tensor order", len(blob), n, got, elapsed)
    assert got <= 1.1 * len(blob)


@pytest.mark.parametrize("name", ["b.safetensors", "b.gguf"])
def test_random_page_order(server, mount, models, name):
    """mmap with MADV_RANDOM (no kernel readahead: one page a fault),
    every page touched in a random order: exact bytes, each chunk fetched
    about once, and in runs ahead of the faults (far fewer requests than
    chunks) once the tensor map is known."""
    root, files = models
    blob, _ = files[name]
    size = len(blob)
    srv = server(root)
    mount.start(srv.url + "/", OPTS)
    pages = list(range(0, size, PAGE))
    random.Random(5).shuffle(pages)
    since = time.time()
    t = time.monotonic()
    with open(mount.path(name), "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        m.madvise(mmap.MADV_RANDOM)
        for p in pages:
            assert m[p:p + PAGE] == blob[p:p + PAGE], f"page {p} differs"
    finally:
        m.close()
    elapsed = time.monotonic() - t
    n, got = fetched(srv, name, since)
    report(name, "random pages", size, n, got, elapsed)
    nch = (size + CHUNK - 1) // CHUNK
    assert got <= 1.1 * size
    assert n <= 0.85 * nch, (
        f"{n} requests for {nch} chunks: no format-aware planning")
