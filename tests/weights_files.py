"""Weights files written by hand, byte by byte (pickle opcodes, torch's zip layout, MindSpore's protobuf wire
format), for tests and fuzzers that need files no framework would write: no torch, paddle or mindspore needed."""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path


# ---------------------------------------------------------------- pickles (protocol 2 opcodes)

def string(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def integer(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


def storage(key: str, numel: int) -> bytes:
    return tup(string("storage"), global_("torch", "FloatStorage"), string(key), string("cpu"), integer(numel)) + b"Q"


def tensor(key: str, numel: int, size: tuple, stride: tuple) -> bytes:
    return (global_("torch._utils", "_rebuild_tensor_v2") + tup(storage(key, numel), integer(0),
            tup(*map(integer, size)), tup(*map(integer, stride)), b"\x89", global_("collections", "OrderedDict") + b")R")
            + b"R")


def state_dict(*items: tuple[bytes, bytes]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in items) + b"u"  # EMPTY_DICT MARK key value ... SETITEMS


def dag(levels: int, kind: bytes = b"]") -> bytes:
    """A list (or, kind=b')', a tuple) DAG: each level holds the previous one twice; memo slot k holds level k."""
    out = kind + b"q\x000"  # level 0, memoized, popped: only the last level stays on the stack
    for k in range(1, levels + 1):
        if kind == b"]":
            out += b"](h" + bytes([k - 1]) + b"h" + bytes([k - 1]) + b"eq" + bytes([k])  # [prev, prev]
        else:
            out += b"h" + bytes([k - 1]) + b"h" + bytes([k - 1]) + b"\x86q" + bytes([k])  # (prev, prev): TUPLE2
        out += b"0" if k < levels else b""
    return out


def pickle2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def torch_zip(path: Path, pkl: bytes, storages: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        for key, data in (storages or {}).items():
            zf.writestr(f"archive/data/{key}", data)
    return path


# ---------------------------------------------------------------- MindSpore .ckpt (protobuf wire format)

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def ckpt_value(tag: str, dims: list[int], data: bytes, dtype: str = "Float32") -> bytes:
    tensor = b"".join(varint(1 << 3) + varint(d) for d in dims) + field(2, dtype.encode()) + field(3, data)
    return field(1, field(1, tag.encode()) + field(2, tensor))
