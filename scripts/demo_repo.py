#!/usr/bin/python3
"""The demo model repo: a small Llama-shaped model that looks like a real
Hugging Face repo, and the checks scripts/demo.sh runs on it.

    demo_repo.py generate OUT HUB EXPECTED [--repo OWNER/NAME] [--layers N]
        writes the repo's files to OUT (config.json, tokenizer.json, ...,
        model-0000N-of-0000M.safetensors, model.safetensors.index.json),
        publishes them on the fake Hub in HUB (testserver.py --hub HUB;
        the shards as LFS files, hashed in place, not copied) and writes
        EXPECTED: the sha256 of every file and of every tensor's bytes
    demo_repo.py header FILE
        prints a summary of a safetensors file's header (reads only it)
    demo_repo.py check DIR EXPECTED
        mmaps every shard named by DIR/model.safetensors.index.json and
        compares the sha256 of each tensor's bytes with EXPECTED
    demo_repo.py sha256 FILE
        prints the sha256 of FILE
    demo_repo.py served ACCESS_LOG
        prints "REQUESTS BYTES": the file GETs (/resolve/ and the LFS CDN)
        in testserver.py's access log, and the bytes they sent

Python 3 standard library only. The tensor bytes are deterministic: tensor
NAME holds SHAKE-128("hollowfs-demo:SEED:NAME"), with the exponent of every
bfloat16 squeezed so each value is finite, between 2**-7 and 2 in magnitude,
as trained weights are. About 300 MB with the default 8 layers, written in
a few seconds. Tests import generate() and check().
"""

import argparse
import hashlib
import json
import mmap
import os
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testserver import make_hub_repo  # noqa: E402

SEED = 12
REPO_ID = "demo-org/tiny-model"
LAYERS = 8
HIDDEN = 1024
INTERMEDIATE = 2816
VOCAB = 32000
HEADS = 16
KV_HEADS = 4
MAX_SHARD_BYTES = 110 * 1000 * 1000  # "110MB", as transformers counts it

DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4}
# High byte of a little-endian bfloat16: keep the sign and the two low
# exponent bits, force the rest to an exponent of 2**-7 .. 2**0.
BF16_HIGH = bytes((b & 0x83) | 0x3C for b in range(256))


def tensor_specs(layers):
    """(name, dtype, shape) of every tensor, in state_dict order."""
    head_dim = HIDDEN // HEADS
    specs = [("model.embed_tokens.weight", "BF16", [VOCAB, HIDDEN])]
    for i in range(layers):
        p = f"model.layers.{i}."
        specs += [
            (p + "self_attn.q_proj.weight", "BF16", [HIDDEN, HIDDEN]),
            (p + "self_attn.k_proj.weight", "BF16",
             [KV_HEADS * head_dim, HIDDEN]),
            (p + "self_attn.v_proj.weight", "BF16",
             [KV_HEADS * head_dim, HIDDEN]),
            (p + "self_attn.o_proj.weight", "BF16", [HIDDEN, HIDDEN]),
            (p + "mlp.gate_proj.weight", "BF16", [INTERMEDIATE, HIDDEN]),
            (p + "mlp.up_proj.weight", "BF16", [INTERMEDIATE, HIDDEN]),
            (p + "mlp.down_proj.weight", "BF16", [HIDDEN, INTERMEDIATE]),
            (p + "input_layernorm.weight", "BF16", [HIDDEN]),
            (p + "post_attention_layernorm.weight", "BF16", [HIDDEN]),
        ]
    specs += [("model.norm.weight", "BF16", [HIDDEN]),
              ("lm_head.weight", "BF16", [VOCAB, HIDDEN])]
    return specs


def nbytes(dtype, shape):
    n = DTYPE_BYTES[dtype]
    for d in shape:
        n *= d
    return n


def tensor_bytes(name, dtype, shape, seed=SEED):
    """The deterministic content of one tensor."""
    n = nbytes(dtype, shape)
    data = bytearray(hashlib.shake_128(
        f"hollowfs-demo:{seed}:{name}".encode()).digest(n))
    if dtype == "BF16":
        data[1::2] = data[1::2].translate(BF16_HIGH)
    return data


def shard_plan(specs, max_bytes=MAX_SHARD_BYTES):
    """Splits the tensors into shards of at most max_bytes each (a tensor
    larger than that gets a shard of its own), as save_pretrained does."""
    shards, cur, size = [], [], 0
    for spec in specs:
        n = nbytes(spec[1], spec[2])
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(spec)
        size += n
    if cur:
        shards.append(cur)
    return shards


def write_safetensors(path, tensors, seed=SEED):
    """Writes a safetensors file of tensors [(name, dtype, shape)] (laid out
    sorted by name, as safetensors does); returns {name: sha256 of its
    bytes}."""
    tensors = sorted(tensors)
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, dtype, shape in tensors:
        n = nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [off, off + n]}
        off += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    sums = {}
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, dtype, shape in tensors:
            data = tensor_bytes(name, dtype, shape, seed)
            sums[name] = hashlib.sha256(data).hexdigest()
            f.write(data)
    os.replace(tmp, path)
    return sums


# GPT-2's byte-to-unicode table: the vocabulary of a byte-level BPE.
def byte_level_vocab():
    printable = (list(range(ord("!"), ord("~") + 1))
                 + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def small_files(layers, repo_id):
    """The repo's small files: {path: bytes}."""
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]
    vocab = {tok: i for i, tok in enumerate(byte_level_vocab())}
    added = [{"id": 256 + i, "content": s, "single_word": False,
              "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, s in enumerate(specials)]
    for a in added:
        vocab[a["content"]] = a["id"]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                           "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                    "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": layers, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "bos_token_id": 256, "eos_token_id": 257,
        "transformers_version": "4.44.0",
    }
    generation = {"_from_model_config": True, "bos_token_id": 256,
                  "eos_token_id": 257, "do_sample": True,
                  "temperature": 0.7, "top_p": 0.9,
                  "transformers_version": "4.44.0"}
    tokenizer_config = {"bos_token": specials[0], "eos_token": specials[1],
                        "pad_token": specials[2],
                        "model_max_length": 2048,
                        "tokenizer_class": "PreTrainedTokenizerFast"}
    card = (f"---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n\n"
            f"# {repo_id}\n\nA {layers}-layer Llama-shaped model with "
            f"pseudo-random weights, generated by hollowfs's "
            f"scripts/demo_repo.py for its demo. It generates nonsense.\n")
    attributes = "".join(f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n"
                         for ext in ("bin", "gguf", "pt", "safetensors"))

    def js(v):
        return (json.dumps(v, indent=2, ensure_ascii=False) + "\n").encode()

    return {".gitattributes": attributes.encode(), "README.md": card.encode(),
            "config.json": js(config),
            "generation_config.json": js(generation),
            "tokenizer.json": js(tokenizer),
            "tokenizer_config.json": js(tokenizer_config)}


def generate(out_dir, layers=LAYERS, seed=SEED, repo_id=REPO_ID,
             max_shard_bytes=MAX_SHARD_BYTES):
    """Writes the repo into out_dir. Returns {"files": {path: bytes or the
    absolute path of a big file}, "tensors": {name: {"file", "sha256",
    "dtype", "shape"}}}."""
    os.makedirs(out_dir, exist_ok=True)
    files = small_files(layers, repo_id)
    for rel, data in files.items():
        with open(os.path.join(out_dir, rel), "wb") as f:
            f.write(data)
    shards = shard_plan(tensor_specs(layers), max_shard_bytes)
    tensors, weight_map, total = {}, {}, 0
    for i, shard in enumerate(shards):
        rel = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        path = os.path.abspath(os.path.join(out_dir, rel))
        sums = write_safetensors(path, shard, seed)
        for name, dtype, shape in shard:
            tensors[name] = {"file": rel, "sha256": sums[name],
                             "dtype": dtype, "shape": shape}
            weight_map[name] = rel
            total += nbytes(dtype, shape)
        files[rel] = path
    index = {"metadata": {"total_size": total},
             "weight_map": dict(sorted(weight_map.items()))}
    data = (json.dumps(index, indent=2) + "\n").encode()
    with open(os.path.join(out_dir, "model.safetensors.index.json"),
              "wb") as f:
        f.write(data)
    files["model.safetensors.index.json"] = data
    return {"files": files, "tensors": tensors}


def publish(hub_dir, repo_id, gen):
    """Puts a generated repo on the fake Hub in hub_dir; returns the
    expected-values dict: {"repo", "commit", "files": {path: {"size",
    "sha256", "lfs"}}, "tensors": gen's}."""
    info = make_hub_repo(hub_dir, repo_id, gen["files"])
    files = {p: {"size": f["size"], "sha256": f["sha256"], "lfs": f["lfs"]}
             for p, f in info.files().items()}
    return {"repo": repo_id, "commit": info.commit, "files": files,
            "tensors": gen["tensors"]}


def read_header(f):
    """(header dict, data start offset) of an open safetensors file."""
    raw = f.read(8)
    if len(raw) != 8:
        raise ValueError("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw)
    if n > 100 << 20:
        raise ValueError(f"header length {n} is implausible")
    text = f.read(n)
    if len(text) != n:
        raise ValueError("truncated header")
    return json.loads(text), 8 + n


def check(top, expected):
    """mmaps every shard in top's index and compares each tensor's bytes
    with expected["tensors"]; returns (tensors, bytes, shards) checked.
    Raises ValueError at the first mismatch."""
    with open(os.path.join(top, "model.safetensors.index.json"), "rb") as f:
        index = json.load(f)
    want = expected["tensors"]
    if set(index["weight_map"]) != set(want):
        raise ValueError("the index names other tensors than expected")
    by_file = {}
    for name, rel in index["weight_map"].items():
        by_file.setdefault(rel, []).append(name)
    ntensors = nbytes_total = 0
    for rel in sorted(by_file):
        with open(os.path.join(top, rel), "rb") as f:
            header, start = read_header(f)
            mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        try:
            view = memoryview(mm)
            for name in sorted(by_file[rel],
                               key=lambda n: header[n]["data_offsets"][0]):
                t = header[name]
                a, b = t["data_offsets"]
                if (t["dtype"], t["shape"]) != (want[name]["dtype"],
                                                want[name]["shape"]):
                    raise ValueError(f"{rel}: {name}: dtype or shape differ")
                if b - a != nbytes(t["dtype"], t["shape"]) or \
                        start + b > len(mm):
                    raise ValueError(f"{rel}: {name}: bad data_offsets")
                got = hashlib.sha256(view[start + a:start + b]).hexdigest()
                if got != want[name]["sha256"]:
                    raise ValueError(f"{rel}: {name}: sha256 {got}, "
                                     f"expected {want[name]['sha256']}")
                ntensors += 1
                nbytes_total += b - a
            view.release()
        finally:
            mm.close()
    return ntensors, nbytes_total, len(by_file)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
    return h.hexdigest()


def served(log_path):
    """(requests, bytes) of the file content GETs in an access log."""
    n = size = 0
    try:
        with open(log_path, encoding="utf-8") as f:
            lines = f.read().split("\n")[:-1]  # complete lines only
    except FileNotFoundError:
        lines = []
    for line in lines:
        e = json.loads(line)
        if e["method"] == "GET" and e["status"] in (200, 206) and (
                "/resolve/" in e["path"] or e["path"].startswith("/__lfs/")):
            n += 1
            size += e["bytes"] or 0
    return n, size


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    g.add_argument("hub")
    g.add_argument("expected")
    g.add_argument("--repo", default=REPO_ID)
    g.add_argument("--layers", type=int, default=LAYERS)
    h = sub.add_parser("header")
    h.add_argument("file")
    c = sub.add_parser("check")
    c.add_argument("dir")
    c.add_argument("expected")
    s = sub.add_parser("sha256")
    s.add_argument("file")
    v = sub.add_parser("served")
    v.add_argument("log")
    args = p.parse_args(argv)

    if args.cmd == "generate":
        t0 = time.monotonic()
        gen = generate(args.out, layers=args.layers, repo_id=args.repo)
        exp = publish(args.hub, args.repo, gen)
        with open(args.expected, "w", encoding="utf-8") as f:
            json.dump(exp, f, indent=1)
        total = sum(f["size"] for f in exp["files"].values())
        nshards = sum(1 for p in exp["files"] if p.endswith(".safetensors"))
        print(f"{len(exp['files'])} files, {nshards} safetensors shards "
              f"(LFS), {len(exp['tensors'])} tensors, {mib(total)}; "
              f"{time.monotonic() - t0:.1f} s")
    elif args.cmd == "header":
        with open(args.file, "rb") as f:
            header, start = read_header(f)
        meta = header.pop("__metadata__", {})
        dtypes = sorted({t["dtype"] for t in header.values()})
        first = min(header, key=lambda n: header[n]["data_offsets"][0])
        print(f"{start - 8}-byte header, {len(header)} "
              f"{'/'.join(dtypes)} tensors, format "
              f"{meta.get('format', '?')}, first {first} "
              f"{header[first]['shape']}")
    elif args.cmd == "check":
        with open(args.expected, encoding="utf-8") as f:
            exp = json.load(f)
        t0 = time.monotonic()
        try:
            n, size, nfiles = check(args.dir, exp)
        except (OSError, ValueError) as e:
            print(f"check failed: {e}", file=sys.stderr)
            return 1
        dt = time.monotonic() - t0
        print(f"{n} tensors, {mib(size)} in {nfiles} shards: every "
              f"sha256 matches, "
              f"{size / (1 << 20) / max(dt, 1e-6):.0f} MiB/s")
    elif args.cmd == "sha256":
        print(sha256_file(args.file))
    elif args.cmd == "served":
        print("%d %d" % served(args.log))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # ^C: no traceback
    sys.exit(main())
