#!/usr/bin/python3
"""cachecheck: an independent checker of a hollowfs cache directory.

For every blob under CACHE/blobs/ab/HEX it reads the sidecar (HEX.state,
the format of state/sidecar.h, version 2) the way the daemon would trust
it, and verifies every set bit: the chunk's entry in HEX.sums (u64 LE at
idx * 8) is not 0 and equals the xxh3-64 of the chunk's bytes in the data
file HEX (0 is stored as 1, as cache_chunk_sum() does). It shares no code
with hollowfs (Python, python3-xxhash), so a bug in the daemon's
encoder cannot hide itself.

A sidecar the daemon would not trust (bound to another data file, of
another blob, data file missing or short) says nothing about any bytes and
is only counted. A sidecar that cannot be decoded at all (bad magic,
checksum, unknown version, inconsistent fields) is a problem: sidecars
are replaced atomically, so none should ever be seen half written.

    cachecheck.py CACHE          exit 0 when every set bit is right, else 1

From a test: check_cache(CACHE) -> Report (.problems, .bits_checked,
.blobs, .trusted, .untrusted, .ok).
"""

import ctypes
import ctypes.util
import os
import struct
import sys
from pathlib import Path

import xxhash

MAGIC = b"HOLWSCAR"
VERSION = 2
HEADER_LEN = 96
TRAILER_LEN = 8
SUFFIXES = (".state", ".sums", ".lock", ".verified")

# ---- statx, for the data file's birth time (os.stat has none) -----------

_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_INO = 0x100
_STATX_SIZE = 0x200
_STATX_BTIME = 0x800
_STATX_TYPE = 0x1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def statx_binding(path):
    """(inode number, birth time in ns or 0, size, is a regular file) of
    path, not following a symbolic link."""
    buf = ctypes.create_string_buffer(256)
    mask = _STATX_INO | _STATX_SIZE | _STATX_BTIME | _STATX_TYPE
    rc = _libc.statx(_AT_FDCWD, os.fsencode(str(path)),
                     _AT_SYMLINK_NOFOLLOW, mask, buf)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(path))
    raw = buf.raw
    got_mask, = struct.unpack_from("<I", raw, 0)
    mode, = struct.unpack_from("<H", raw, 28)
    ino, size = struct.unpack_from("<QQ", raw, 32)
    btime_ns = 0
    if got_mask & _STATX_BTIME:
        sec, nsec = struct.unpack_from("<qI", raw, 80)
        btime_ns = sec * 1_000_000_000 + nsec
    return ino, btime_ns, size, (mode & 0o170000) == 0o100000


# ---- the sidecar ----------------------------------------------------------

class Sidecar:
    pass


def chunk_sum(data):
    h = xxhash.xxh3_64_intdigest(data)
    return h if h else 1


def decode_sidecar(img):
    """A Sidecar from an image, or raises ValueError saying what is
    wrong."""
    if len(img) < 8 or img[:8] != MAGIC:
        raise ValueError("bad magic")
    if len(img) < HEADER_LEN + TRAILER_LEN:
        raise ValueError(f"truncated ({len(img)} bytes)")
    version, flags = struct.unpack_from("<II", img, 8)
    if version != VERSION or flags != 0:
        raise ValueError(f"unknown version {version} flags {flags} (this "
                         f"checker knows version {VERSION})")
    (size, chunk, reserved, nchunks, done, ) = struct.unpack_from(
        "<QIIQQ", img, 16)
    ident = img[48:64]
    data_ino, birth_ns, prefix, bmlen = struct.unpack_from("<QQQQ", img, 64)
    if len(img) != HEADER_LEN + bmlen + TRAILER_LEN:
        raise ValueError(f"length {len(img)} does not fit a bitmap of "
                         f"{bmlen} bytes")
    want, = struct.unpack_from("<Q", img, len(img) - TRAILER_LEN)
    if xxhash.xxh3_64_intdigest(img[:len(img) - TRAILER_LEN]) != want:
        raise ValueError("checksum mismatch")
    if chunk == 0 or chunk % 4096 or reserved:
        raise ValueError(f"bad chunk size {chunk} or reserved {reserved}")
    if nchunks != (size + chunk - 1) // chunk:
        raise ValueError(f"{nchunks} chunks for size {size} and chunk "
                         f"{chunk}")
    if prefix > nchunks:
        raise ValueError(f"prefix {prefix} past {nchunks} chunks")
    bitmap = img[HEADER_LEN:HEADER_LEN + bmlen]
    bits = set(range(prefix))
    for j, byte in enumerate(bitmap):
        for i in range(8):
            if byte >> i & 1:
                idx = prefix + 8 * j + i
                if idx >= nchunks:
                    raise ValueError(f"bit {idx} past {nchunks} chunks")
                bits.add(idx)
    if len(bits) != done:
        raise ValueError(f"done count {done} but {len(bits)} bits set")
    sc = Sidecar()
    sc.size, sc.chunk, sc.nchunks = size, chunk, nchunks
    sc.identity, sc.data_ino, sc.birth_ns = ident, data_ino, birth_ns
    sc.bits = sorted(bits)
    return sc


# ---- the whole cache -----------------------------------------------------

class Report:
    def __init__(self):
        self.problems = []  # one line each
        self.blobs = 0  # data files seen
        self.trusted = 0  # sidecars the daemon would trust
        self.untrusted = {}  # why -> count
        self.bits_checked = 0
        self.bytes_checked = 0

    @property
    def ok(self):
        return not self.problems

    def summary(self):
        return (f"{self.blobs} blobs, {self.trusted} trusted sidecars, "
                f"{self.bits_checked} set bits checked "
                f"({self.bytes_checked} bytes), untrusted "
                f"{self.untrusted}, {len(self.problems)} problems")

    def __str__(self):
        return "\n".join([self.summary()] + self.problems)


def _untrusted(rep, why):
    rep.untrusted[why] = rep.untrusted.get(why, 0) + 1


def check_blob(rep, folder, hexname):
    data = folder / hexname
    state = folder / (hexname + ".state")
    sums = folder / (hexname + ".sums")
    try:
        img = state.read_bytes()
    except FileNotFoundError:
        _untrusted(rep, "no sidecar")
        return
    try:
        sc = decode_sidecar(img)
    except ValueError as e:
        rep.problems.append(f"{state}: {e}")
        return
    if sc.identity.hex() != hexname:
        _untrusted(rep, "identity is another blob's")
        return
    try:
        ino, birth, size, regular = statx_binding(data)
    except FileNotFoundError:
        _untrusted(rep, "data file gone")
        return
    if not regular or size < sc.size:
        _untrusted(rep, "data file short")
        return
    if (ino, birth) != (sc.data_ino, sc.birth_ns):
        _untrusted(rep, "bound to another data file")
        return
    rep.trusted += 1
    if not sc.bits:
        return
    try:
        sums_img = sums.read_bytes()
    except FileNotFoundError:
        rep.problems.append(f"{sums}: missing, {len(sc.bits)} bits set")
        return
    with open(data, "rb") as f:
        for idx in sc.bits:
            off = idx * sc.chunk
            length = min(sc.chunk, sc.size - off)
            if len(sums_img) < idx * 8 + 8:
                rep.problems.append(f"{hexname} chunk {idx}: bit set, "
                                    f"sums file too short")
                continue
            want, = struct.unpack_from("<Q", sums_img, idx * 8)
            f.seek(off)
            got = f.read(length)
            rep.bits_checked += 1
            rep.bytes_checked += len(got)
            if want == 0:
                rep.problems.append(f"{hexname} chunk {idx}: bit set, no "
                                    f"sums entry")
            elif len(got) != length:
                rep.problems.append(f"{hexname} chunk {idx}: bit set, data "
                                    f"ends at {off + len(got)}")
            elif chunk_sum(got) != want:
                rep.problems.append(f"{hexname} chunk {idx}: bit set, bytes "
                                    f"do not match their sums entry")


def check_cache(cache):
    """Checks every blob of the cache folder; returns a Report."""
    rep = Report()
    blobs = Path(cache) / "blobs"
    if not blobs.is_dir():
        return rep
    for folder in sorted(p for p in blobs.iterdir() if p.is_dir()):
        for name in sorted(os.listdir(folder)):
            if "." in name:
                continue  # a suffixed file, or a temporary
            rep.blobs += 1
            check_blob(rep, folder, name)
    return rep


def main(argv):
    if len(argv) != 2:
        print("usage: cachecheck.py CACHE", file=sys.stderr)
        return 2
    rep = check_cache(argv[1])
    print(rep)
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
