"""Native weight files to (name, numpy array) pairs, in file order, executing nothing from the file.

- .pth, zip format (torch >= 1.6: <archive>/data.pkl + <archive>/data/<key>) and legacy format (pickled magic
  number, protocol, sys_info, then the object, then the storage keys and raw storages), both through an
  unpickler that admits only the globals that rebuild tensors and refuses every other global by name;
- .safetensors through safetensors.numpy (no torch);
- PaddleClas .pdparams: a pickled dict of numpy arrays, through an unpickler admitting numpy arrays only;
- MindSpore .ckpt: a protobuf wire-format reader (no mindspore, no generated protobuf classes).

No torch, paddle or mindspore import anywhere. Every failure is a ConversionError naming the file.
"""
from __future__ import annotations

import importlib
import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from zoo.errors import ConversionError


REFUSED_HINT = "The file was not loaded; a weights file holds tensors only, do not trust its source"
CONTAINER_KEYS = ("state_dict", "model", "net", "network")  # training checkpoints wrap the state dict
FORMATS = ("pth", "safetensors", "pdparams", "mindspore-ckpt")


# ---------------------------------------------------------------- PyTorch .pth without torch

# torch's storage classes -> numpy dtype. BFloat16 has no numpy dtype: read as uint16, widened below.
STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
                  "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
                  "ByteStorage": "u1", "BoolStorage": "?"}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001


class _StorageType:
    """What the pickle's `torch.FloatStorage` global becomes: just a name and a dtype."""

    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])


class _Storage:
    """One storage: its dtype and element count from the pickle, its bytes filled in from the file."""

    def __init__(self, key: str, dtype: np.dtype, numel: int, bfloat16: bool):
        self.key, self.dtype, self.numel, self.bfloat16, self.array = key, dtype, numel, bfloat16, None


class _TensorRef:
    """A tensor to cut out of a storage once every storage is read (legacy files store them after the pickle)."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise ConversionError(f"a tensor in the pickle is built from a {type(storage).__name__}, not a storage",
                                  REFUSED_HINT)
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        s = self.storage
        ints = (self.offset, *self.size, *self.stride)
        if not all(isinstance(v, int) and v >= 0 for v in ints) or len(self.size) != len(self.stride):
            raise ConversionError(f"storage {s.key}: invalid tensor geometry {self.size} / {self.stride}")
        if 0 in self.size:
            out = np.zeros(self.size, s.dtype)
        else:
            # as_strided reads raw memory: check the view stays inside the storage before making it.
            last = self.offset + sum((n - 1) * st for n, st in zip(self.size, self.stride))
            if last >= s.numel:
                raise ConversionError(f"storage {s.key}: a tensor reaches element {last} of {s.numel}")
            base = s.array[self.offset:]
            out = np.lib.stride_tricks.as_strided(base, self.size, [st * s.dtype.itemsize for st in self.stride]).copy()
        if s.bfloat16:
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _rebuild_tensor(storage, storage_offset, size, stride, *_rest):
    """Stands in for torch._utils._rebuild_tensor_v2 / _rebuild_tensor (requires_grad, hooks are ignored)."""
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_rest):
    """torch._utils._rebuild_parameter: an nn.Parameter is its tensor here."""
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Rebuilds a state dict of tensors; any other global is refused, naming it, before anything runs."""

    def __init__(self, file, path: Path, storages: dict):
        super().__init__(file)
        self.path, self.storages = path, storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise ConversionError(f"refused to unpickle {module}.{name} from {self.path.name}: only tensors and "
                              "dicts are allowed in a .pth read without torch", REFUSED_HINT)

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata]) in both formats.
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise ConversionError(f"{self.path.name}: unsupported persistent id {str(pid)[:80]}", REFUSED_HINT)
        _, kind, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise ConversionError(f"{self.path.name}: storage views (torch < 0.4 files) are not supported")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(key, kind.dtype, int(numel), kind.name == "BFloat16Storage")
        return self.storages[key]


def _materialize(obj):
    """Replace every _TensorRef in nested dicts/lists by its numpy array."""
    if isinstance(obj, _TensorRef):
        return obj.array()
    if isinstance(obj, dict):
        return type(obj)((k, _materialize(v)) for k, v in obj.items()) if isinstance(obj, OrderedDict) else \
            {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _read_pth_zip(path: Path):
    with zipfile.ZipFile(path) as zf:
        pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ConversionError(f"{path.name} is a zip archive without exactly one data.pkl: not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        order = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in zf.namelist() else "little"
        if order != "little":
            raise ConversionError(f"{path.name} was saved on a big-endian machine; not supported")
        storages: dict[str, _Storage] = {}
        obj = _TorchUnpickler(io.BytesIO(zf.read(pickles[0])), path, storages).load()
        for key, s in storages.items():
            info = zf.getinfo(f"{prefix}data/{key}")  # KeyError -> caught by read()
            if info.file_size != s.numel * s.dtype.itemsize:  # checked before reading: no zip bombs either
                raise ConversionError(f"{path.name}: storage {key} holds {info.file_size} bytes, the pickle says "
                                      f"{s.numel} x {s.dtype.itemsize}")
            s.array = np.frombuffer(zf.read(info), s.dtype)
    return _materialize(obj)


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy header pickles (an int, an int, a dict of ints): no globals at all."""

    def find_class(self, module, name):
        raise ConversionError(f"refused to unpickle {module}.{name} in a .pth header", REFUSED_HINT)


def _read_pth_legacy(path: Path):
    with open(path, "rb") as f:
        try:
            magic = _PlainUnpickler(f).load()
        except ConversionError:
            raise
        except Exception:
            magic = None
        if magic != LEGACY_MAGIC:
            raise ConversionError(f"{path.name} is neither a zip nor a legacy torch.save file (no magic number)")
        protocol = _PlainUnpickler(f).load()
        sys_info = _PlainUnpickler(f).load()
        if protocol != LEGACY_PROTOCOL or not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise ConversionError(f"{path.name}: unsupported legacy torch format (protocol {protocol}, {sys_info})")
        storages: dict[str, _Storage] = {}
        obj = _TorchUnpickler(f, path, storages).load()
        keys = _PlainUnpickler(f).load()
        if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
            raise ConversionError(f"{path.name}: the storage list does not match the tensors in the pickle")
        for key in keys:  # each: int64 element count, then the raw little-endian elements
            s = storages[str(key)]
            (count,) = struct.unpack("<q", f.read(8))
            nbytes = count * s.dtype.itemsize
            if count != s.numel:
                raise ConversionError(f"{path.name}: storage {key} holds {count} elements, the pickle says {s.numel}")
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise ConversionError(f"{path.name} is truncated (storage {key})")
            s.array = np.frombuffer(data, s.dtype)
    return _materialize(obj)


def read_pth(path: Path) -> list[tuple[str, np.ndarray]]:
    path = Path(path)
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"  # a zip, even a truncated one (is_zipfile needs its end)
    obj = _read_pth_zip(path) if zipped else _read_pth_legacy(path)
    return _state_dict(obj, path)


def _state_dict(obj, path: Path) -> list[tuple[str, np.ndarray]]:
    """The arrays of a state dict, unwrapping training checkpoints ({"state_dict": ..., "epoch": ...})."""
    for _ in range(2):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
            obj = inner if inner is not None else obj
    if not isinstance(obj, dict):
        raise ConversionError(f"{path.name} holds a {type(obj).__name__}, not a state dict of tensors")
    return [(str(k), v) for k, v in obj.items() if isinstance(v, np.ndarray)]


# ---------------------------------------------------------------- safetensors

def read_safetensors(path: Path) -> list[tuple[str, np.ndarray]]:
    from safetensors.numpy import load_file  # numpy only: does not import torch

    try:
        data = load_file(str(path))
    except KeyError as exc:  # safetensors.numpy has no bfloat16
        raise ConversionError(f"{Path(path).name}: tensor dtype {exc} has no numpy equivalent") from None
    return list(data.items())


# ---------------------------------------------------------------- PaddleClas .pdparams

class _ArrayUnpickler(pickle.Unpickler):
    """Paddle's state-dict container (a dict of numpy arrays); every other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict"),
               ("builtins", "tuple")}  # Paddle reduces a bare tensor to tuple((name, ndarray))

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise ConversionError(f"refused to unpickle {module}.{name} from {self.path.name}: only numpy arrays "
                                  "are allowed in Paddle weights", REFUSED_HINT)
        if module.startswith("numpy.core."):  # written by numpy 1.x; numpy 2 moved it to numpy._core
            try:
                return getattr(importlib.import_module("numpy._core." + module.split(".")[-1]), name)
            except (ImportError, AttributeError):
                pass
        return getattr(importlib.import_module(module), name)

    def persistent_load(self, pid):
        raise ConversionError(f"refused a persistent id in {self.path.name}", REFUSED_HINT)


def read_pdparams(path: Path) -> list[tuple[str, np.ndarray]]:
    path = Path(path)
    with open(path, "rb") as f:
        data = _ArrayUnpickler(f, path).load()
    if not isinstance(data, dict):
        raise ConversionError(f"{path.name} holds a {type(data).__name__}, not Paddle's dict of parameters")
    out = []
    for name, value in data.items():
        if name == "StructuredToParameterName@@":  # Paddle's map of structured to parameter names
            continue
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]
        if not isinstance(value, np.ndarray):
            raise ConversionError(f"{path.name}: entry {name!r} is a {type(value).__name__}, not an array")
        out.append((str(name), value))
    return out


# ---------------------------------------------------------------- MindSpore .ckpt

_CKPT_DTYPES = {"Float32": "<f4", "Float16": "<f2", "Float64": "<f8", "Int8": "i1", "UInt8": "u1", "Int16": "<i2",
                "Int32": "<i4", "Int64": "<i8", "UInt16": "<u2", "UInt32": "<u4", "UInt64": "<u8", "Bool": "?",
                "BFloat16": "<u2"}


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf):
    """(field number, wire type, value) of one protobuf message; value is an int or a memoryview slice."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + width], pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def read_ckpt(path: Path) -> list[tuple[str, np.ndarray]]:
    """`Checkpoint { repeated Value value = 1; }`, `Value { string tag = 1; TensorProto tensor = 2; }`,
    `TensorProto { repeated int64 dims = 1; string tensor_type = 2; bytes tensor_content = 3; }`
    (mindspore/ccsrc/utils/checkpoint.proto). A large tensor may be split over consecutive values with the
    same tag; they are joined."""
    path = Path(path)
    buf = memoryview(path.read_bytes())  # slices of a memoryview do not copy the tensor bytes
    entries: list[list] = []  # [tag, dims, type, [chunks]]
    try:
        for number, wire, value in _fields(buf):
            if number != 1 or wire != 2:
                continue  # fields a newer MindSpore adds beside the values (e.g. a checksum)
            tag, tensor = None, None
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    tag = bytes(v).decode("utf-8")
                elif n == 2 and w == 2:
                    tensor = v
            if tag is None or tensor is None:
                continue  # a map tensor or another kind of value: not weights of this model
            dims, dtype, content = [], None, b""
            for n, w, v in _fields(tensor):
                if n == 1 and w == 0:
                    dims.append(v)
                elif n == 1 and w == 2:  # packed repeated int64
                    p = 0
                    while p < len(v):
                        d, p = _varint(v, p)
                        dims.append(d)
                elif n == 2 and w == 2:
                    dtype = bytes(v).decode("ascii")
                elif n == 3 and w == 2:
                    content = v
            if entries and entries[-1][0] == tag:
                entries[-1][3].append(content)
            else:
                entries.append([tag, dims, dtype, [content]])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path.name} is not a readable MindSpore checkpoint ({exc})") from None
    out = []
    for tag, dims, dtype, chunks in entries:
        if dtype not in _CKPT_DTYPES:
            raise ConversionError(f"{path.name}: tensor {tag!r} has unknown type {dtype!r}")
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        itemsize = np.dtype(_CKPT_DTYPES[dtype]).itemsize
        if len(raw) % itemsize:
            raise ConversionError(f"{path.name}: tensor {tag!r} has {len(raw)} bytes, not a multiple of {itemsize}")
        array = np.frombuffer(raw, dtype=_CKPT_DTYPES[dtype])
        if dtype == "BFloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if array.size != int(np.prod(dims, dtype=np.int64)):
            raise ConversionError(f"{path.name}: tensor {tag!r} holds {array.size} values for shape {dims}")
        out.append((tag, array.reshape(dims)))
    if not out:
        raise ConversionError(f"{path.name} holds no tensors: it is not a MindSpore checkpoint")
    return out


# ---------------------------------------------------------------- entry point

SUFFIXES = {".pth": "pth", ".pt": "pth", ".bin": "pth", ".tar": "pth", ".safetensors": "safetensors",
            ".pdparams": "pdparams", ".ckpt": "mindspore-ckpt"}


def read(path: Path, fmt: str | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, array) pairs of a native weights file in file order, `module.` prefixes removed.

    fmt: pth | safetensors | pdparams | mindspore-ckpt (None: from the suffix). Nothing in the file is executed;
    any problem is a ConversionError naming the file."""
    path = Path(path)
    fmt = fmt or SUFFIXES.get(path.suffix.lower())
    readers = {"pth": read_pth, "safetensors": read_safetensors, "pdparams": read_pdparams, "mindspore-ckpt": read_ckpt}
    if fmt not in readers:
        raise ConversionError(f"{path.name}: {fmt or path.suffix!r} is not a format zoo converts",
                              f"Convertible formats: {', '.join(FORMATS)}")
    try:
        pairs = readers[fmt](path)
    except ConversionError:
        raise
    except Exception as exc:  # truncated pickles, bad zips, bad headers: one line, never a traceback
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConversionError(f"{path.name} is not a readable {fmt} file ({type(exc).__name__}: {first})",
                              REFUSED_HINT) from None
    return [(n[len("module."):] if n.startswith("module.") else n, a) for n, a in pairs]
