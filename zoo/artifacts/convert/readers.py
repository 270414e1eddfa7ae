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

import io
import math
import pickle
import pickletools
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import ConversionError, excerpt


REFUSED_HINT = "The file was not loaded; a weights file holds tensors only, do not trust its source"
CONTAINER_KEYS = ("state_dict", "model", "net", "network")  # training checkpoints wrap the state dict
FORMATS = ("pth", "safetensors", "pdparams", "mindspore-ckpt")


# ---------------------------------------------------------------- bounds

@dataclass(frozen=True)
class Limits:
    """What a weights file may declare, checked before anything is allocated for it: how many tensors, and how many
    bytes of tensor data in all. for_plan() derives both from the network the file must fill: a training
    checkpoint holds it a few times over (optimizer moments, an EMA copy), nothing holds it 4 times and more."""

    tensors: int = 16_384
    data_bytes: int = 2**30
    depth: int = 64  # nesting of a pickle's marks (a state dict needs about 5)
    basis: str = "zoo's default bound"

    @classmethod
    def for_plan(cls, plan, copies: int = 4) -> "Limits":
        from zoo.artifacts.convert.builder import expected

        shapes = [shape for *_, shape in expected(plan)]
        return cls(tensors=copies * len(shapes) + 64, data_bytes=copies * 4 * sum(math.prod(s) for s in shapes) + 2**24,
                   basis=f"{copies} x what {plan.name} needs")

    @property
    def pickle_bytes(self) -> int:
        """A torch pickle describes tensors (a few hundred bytes each); their data lies beside it."""
        return 2**20 + 4096 * self.tensors

    @property
    def pickle_ops(self) -> int:
        return 10_000 + 512 * self.tensors


class _Budget:
    """Tensors and bytes a file has declared so far, refused as soon as they pass the limits."""

    def __init__(self, limits: Limits, name: str):
        self.limits, self.name, self.tensors, self.bytes = limits, name, 0, 0

    def take(self, nbytes: int, count: int = 1) -> None:
        self.tensors += count
        self.bytes += nbytes
        if self.tensors > self.limits.tensors:
            raise ConversionError(f"{self.name} holds more than {self.limits.tensors} tensors ({self.limits.basis}); "
                                  "refused before reading them", REFUSED_HINT)
        if self.bytes > self.limits.data_bytes:
            raise ConversionError(f"{self.name} declares more than {self.limits.data_bytes} bytes of tensors "
                                  f"({self.limits.basis}); refused before reading them", REFUSED_HINT)


def _numel(shape, name: str, where: str) -> int:
    """The element count of a declared shape: at most 8 non-negative ints (Python ints: no overflow)."""
    if not isinstance(shape, (tuple, list)) or len(shape) > 8 or not all(type(d) is int and d >= 0 for d in shape):
        raise ConversionError(f"{name}: {where} has an invalid shape (a {type(shape).__name__})", REFUSED_HINT)
    return math.prod(shape)


def _dotted(value) -> str:
    """A global's module or name for a message: as it is when it looks like one, else escaped and shortened."""
    plain = isinstance(value, str) and 0 < len(value) <= 80 and value.replace(".", "").replace("_", "").isalnum()
    return value if plain and value.isascii() else excerpt(value, 40)


def _file_size(path: Path, limit: int, what: str) -> int:
    size = path.stat().st_size
    if size > limit:
        raise ConversionError(f"{path.name} is {size} bytes, more than the {limit} a {what} of this network may be",
                              REFUSED_HINT)
    return size


# ---------------------------------------------------------------- a bounded unpickler

class _Source:
    """A pickle's bytes, read exactly: a read past the end, or past `budget` bytes in all, is refused before
    anything is allocated for it (12 bytes of pickle may declare a 2**40-byte string)."""

    def __init__(self, file, budget: int, name: str):
        self.file, self.left, self.budget, self.name = file, budget, budget, name

    def _take(self, n: int) -> None:
        if n > self.left:
            raise ConversionError(f"{self.name}: its pickle declares more than {self.budget} bytes", REFUSED_HINT)
        self.left -= n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ConversionError(f"{self.name}: an unbounded read of its pickle", REFUSED_HINT)
        self._take(n)
        data = self.file.read(n)
        if len(data) < n and n > 1:  # one byte short at the end is the opcode loop's EOF, reported as such
            raise ConversionError(f"{self.name} is truncated (its pickle ends inside a value)")
        return data

    def readline(self) -> bytes:
        line = self.file.readline(self.left + 1)
        self._take(len(line))
        return line


_SCALARS = (str, int, float, bool, bytes, type(None))


class _BoundedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (its memo is a dict, not an array sized by the largest index a pickle names),
    each opcode counted, and nothing built that a weights file does not need: no NEWOBJ/INST/OBJ, no sets,
    dict keys and attribute names that are plain scalars (hashing a nested tuple shared many times over is
    exponential), BUILD only on the types a subclass admits, marks nested at most limits.depth deep.
    Globals are the subclass's find_class's business."""

    BUILD_TYPES: tuple = (OrderedDict,)

    def __init__(self, file, path: Path, limits: Limits):
        super().__init__(file)
        self.path, self.limits, self.ops = path, limits, 0
        table = dict(pickle._Unpickler.dispatch)
        refused = {pickle.NEWOBJ[0], pickle.NEWOBJ_EX[0], pickle.INST[0], pickle.OBJ[0], pickle.ADDITEMS[0],
                   pickle.FROZENSET[0], pickle.EXT1[0], pickle.EXT2[0], pickle.EXT4[0]}
        for code in refused:
            table[code] = _BoundedUnpickler._refuse
        table[pickle.BUILD[0]] = _BoundedUnpickler._build
        table[pickle.SETITEM[0]] = _BoundedUnpickler._setitem
        table[pickle.SETITEMS[0]] = _BoundedUnpickler._setitems
        table[pickle.DICT[0]] = _BoundedUnpickler._dict
        table[pickle.MARK[0]] = _BoundedUnpickler._mark
        table[pickle.BYTEARRAY8[0]] = _BoundedUnpickler._bytearray8
        self.dispatch = {code: self._counted(code, fn) for code, fn in table.items()}

    def _counted(self, code: int, fn):
        def run(unpickler):
            unpickler.ops += 1
            if unpickler.ops > unpickler.limits.pickle_ops:
                raise ConversionError(f"{unpickler.path.name}: its pickle runs more than {unpickler.limits.pickle_ops} "
                                      "operations; a state dict needs far fewer", REFUSED_HINT)
            unpickler.opcode = code
            fn(unpickler)
        return run

    def _refuse(self):
        name = next((op.name for op in pickletools.opcodes if op.code.encode("latin-1")[0] == self.opcode), "?")
        raise ConversionError(f"{self.path.name}: its pickle uses {name}, which a weights file never needs", REFUSED_HINT)

    def _keys(self, keys) -> None:
        for key in keys:
            if not isinstance(key, _SCALARS):
                raise ConversionError(f"{self.path.name}: a dict key in its pickle is a {type(key).__name__}, not a name "
                                      "or a number", REFUSED_HINT)

    def _setitem(self):
        self._keys(self.stack[-2:-1])
        pickle._Unpickler.load_setitem(self)

    def _setitems(self):
        self._keys(self.stack[0::2])
        pickle._Unpickler.load_setitems(self)

    def _dict(self):
        self._keys(self.stack[0::2])
        pickle._Unpickler.load_dict(self)

    def _mark(self):
        if len(self.metastack) >= self.limits.depth:
            raise ConversionError(f"{self.path.name}: its pickle nests deeper than {self.limits.depth} levels", REFUSED_HINT)
        pickle._Unpickler.load_mark(self)

    def _bytearray8(self):
        size = struct.unpack("<Q", self.read(8))[0]
        self.append(bytearray(self.read(size)))  # read (bounded by the source) before anything is allocated

    def _build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if type(inst) not in self.BUILD_TYPES:
            raise ConversionError(f"{self.path.name}: its pickle sets the state of a {type(inst).__name__}", REFUSED_HINT)
        if isinstance(inst, OrderedDict):  # torch's state dict: its `_metadata` attribute
            if not isinstance(state, dict) or not all(type(k) is str for k in state):
                raise ConversionError(f"{self.path.name}: a dict's state in its pickle is not attributes by name",
                                      REFUSED_HINT)
        else:
            self.check_build(inst, state)
        pickle._Unpickler.load_build(self)

    def check_build(self, inst, state) -> None:
        """A subclass checks a BUILD on one of its other BUILD_TYPES."""
        raise ConversionError(f"{self.path.name}: unexpected state in its pickle", REFUSED_HINT)


def _unpickle(unpickler) -> object:
    try:
        return unpickler.load()
    except RecursionError:
        raise ConversionError(f"{unpickler.path.name}: its pickle nests too deeply", REFUSED_HINT) from None


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
    """A tensor to cut out of a storage once its storage is read (legacy files store them after the pickle); its
    geometry is checked when the pickle names it, before any storage is read."""

    def __init__(self, storage, offset, size, stride, name: str = "the file"):
        if not isinstance(storage, _Storage):
            raise ConversionError(f"a tensor in the pickle is built from a {type(storage).__name__}, not a storage",
                                  REFUSED_HINT)
        ok = isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and len(size) == len(stride) <= 8
        if not (ok and all(type(v) is int and v >= 0 for v in (offset, *size, *stride))):
            raise ConversionError(f"{name}: storage {storage.key}: invalid tensor geometry (size {_shape_text(size)}, "
                                  f"stride {_shape_text(stride)}, offset {_shape_text(offset)})", REFUSED_HINT)
        numel = math.prod(size)
        if numel:
            # as_strided reads raw memory: the view must stay inside its storage, and a state dict's tensor never
            # has more elements than its storage (a zero stride would declare [16384, 16384] over one element).
            last = offset + sum((n - 1) * st for n, st in zip(size, stride))
            if last >= storage.numel:
                raise ConversionError(f"{name}: storage {storage.key}: a tensor reaches element {last} of {storage.numel}")
            if numel > storage.numel:
                raise ConversionError(f"{name}: storage {storage.key}: a tensor of {numel} elements views a storage of "
                                      f"{storage.numel} (an expanded or overlapping view)", REFUSED_HINT)
        self.storage, self.offset, self.size, self.stride, self.numel = storage, offset, tuple(size), tuple(stride), numel

    def array(self) -> np.ndarray:
        s = self.storage
        if self.numel == 0:
            out = np.zeros(self.size, s.dtype)
        else:
            base = s.array[self.offset:]
            out = np.lib.stride_tricks.as_strided(base, self.size, [st * s.dtype.itemsize for st in self.stride]).copy()
        if s.bfloat16:
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _shape_text(value) -> str:
    """A declared size or stride for a message, never formatted whole: a hostile one may be a nested structure."""
    if type(value) is int or (isinstance(value, (tuple, list)) and len(value) <= 8 and all(type(v) is int for v in value)):
        return str(tuple(value) if isinstance(value, list) else value)
    return f"a {type(value).__name__}"


def _rebuild_parameter(data, *_rest):
    """torch._utils._rebuild_parameter: an nn.Parameter is its tensor here."""
    if not isinstance(data, _TensorRef):
        raise ConversionError(f"a parameter in the pickle wraps a {type(data).__name__}, not a tensor", REFUSED_HINT)
    return data


def _ordered_dict(*args):
    """collections.OrderedDict as pickles build it: empty, then filled item by item (keys checked)."""
    if args:
        raise ConversionError("the pickle builds an OrderedDict from arguments", REFUSED_HINT)
    return OrderedDict()


class _TorchUnpickler(_BoundedUnpickler):
    """Rebuilds a state dict of tensors; any other global is refused, naming it, before anything runs."""

    def __init__(self, file, path: Path, storages: dict, limits: Limits, budget: _Budget):
        super().__init__(file, path, limits)
        self.storages, self.budget = storages, budget

    def _rebuild_tensor(self, storage, storage_offset, size, stride, *_rest):
        """Stands in for torch._utils._rebuild_tensor_v2 / _rebuild_tensor (requires_grad, hooks are ignored)."""
        return _TensorRef(storage, storage_offset, size, stride, self.path.name)

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return self._rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("collections", "OrderedDict"):
            return _ordered_dict
        raise ConversionError(f"refused to unpickle {_dotted(module)}.{_dotted(name)} from {self.path.name}: "
                              "only tensors and dicts are allowed in a .pth read without torch", REFUSED_HINT)

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata]) in both formats; never formatted with
        # str(): a hostile id may be a structure whose text is exponentially long.
        ok = (type(pid) is tuple and len(pid) in (5, 6) and pid[0] == "storage" and isinstance(pid[1], _StorageType)
              and type(pid[2]) in (str, int) and len(str(pid[2])) <= 64 and type(pid[4]) is int and pid[4] >= 0)
        if not ok:
            raise ConversionError(f"{self.path.name}: unsupported persistent id (a {type(pid).__name__}, not a torch "
                                  "storage)", REFUSED_HINT)
        _, kind, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise ConversionError(f"{self.path.name}: storage views (torch < 0.4 files) are not supported")
        key = str(key)
        if key not in self.storages:
            self.budget.take(numel * kind.dtype.itemsize)
            self.storages[key] = _Storage(key, kind.dtype, numel, kind.name == "BFloat16Storage")
        elif self.storages[key].dtype != kind.dtype or self.storages[key].numel != numel:
            raise ConversionError(f"{self.path.name}: storage {key} is declared twice, differently", REFUSED_HINT)
        return self.storages[key]


def _zip_entries(path: Path) -> int:
    """How many members a zip's central directory lists, from its end record: zipfile would build them all first."""
    with open(path, "rb") as f:
        end = zipfile._EndRecData(f)  # handles zip64; None when there is no end record
    if end is None:
        raise zipfile.BadZipFile("no end of central directory (truncated?)")
    return end[zipfile._ECD_ENTRIES_TOTAL]


def _read_pth_zip(path: Path, limits: Limits):
    budget = _Budget(limits, path.name)
    if _zip_entries(path) > limits.tensors + 16:  # data.pkl, version, byteorder, ... and one member per storage
        raise ConversionError(f"{path.name} is a zip of more than {limits.tensors + 16} members ({limits.basis})",
                              REFUSED_HINT)
    with zipfile.ZipFile(path) as zf:
        pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ConversionError(f"{path.name} is a zip archive without exactly one data.pkl: not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "byteorder" in zf.namelist():
            order = zf.open(prefix + "byteorder").read(16).decode().strip()
            if order != "little":
                raise ConversionError(f"{path.name} was saved on a big-endian machine; not supported")
        info = zf.getinfo(pickles[0])
        if info.file_size > limits.pickle_bytes:  # declared, and zipfile never inflates past it: no deflate bomb
            raise ConversionError(f"{path.name}: its data.pkl is {info.file_size} bytes unpacked, more than the "
                                  f"{limits.pickle_bytes} of a state dict's ({limits.basis})", REFUSED_HINT)
        storages: dict[str, _Storage] = {}
        with zf.open(info) as raw:
            source = _Source(io.BytesIO(raw.read(info.file_size)), limits.pickle_bytes, path.name)
        obj = _unpickle(_TorchUnpickler(source, path, storages, limits, budget))
        pairs = _state_dict(obj, path)
        for s in {id(t.storage): t.storage for _, t in pairs if isinstance(t, _TensorRef)}.values():
            info = zf.getinfo(f"{prefix}data/{s.key}")  # KeyError -> caught by read()
            if info.file_size != s.numel * s.dtype.itemsize:  # checked before reading: no zip bombs either
                raise ConversionError(f"{path.name}: storage {s.key} holds {info.file_size} bytes, the pickle says "
                                      f"{s.numel} x {s.dtype.itemsize}")
            with zf.open(info) as raw:
                s.array = np.frombuffer(raw.read(info.file_size), s.dtype)
    return _arrays(pairs)


class _PlainUnpickler(_BoundedUnpickler):
    """For the legacy header pickles (an int, an int, a dict of ints): no globals at all."""

    def find_class(self, module, name):
        raise ConversionError(f"refused to unpickle {_dotted(module)}.{_dotted(name)} in a .pth header",
                              REFUSED_HINT)


def _read_pth_legacy(path: Path, limits: Limits):
    budget = _Budget(limits, path.name)
    with open(path, "rb") as f:
        header = _Source(f, 2**16, path.name)
        try:
            magic = _unpickle(_PlainUnpickler(header, path, limits))
        except ConversionError as exc:
            if "refused" in exc.message:
                raise
            magic = None
        except Exception:
            magic = None
        if magic != LEGACY_MAGIC:
            raise ConversionError(f"{path.name} is neither a zip nor a legacy torch.save file (no magic number)")
        protocol = _unpickle(_PlainUnpickler(header, path, limits))
        sys_info = _unpickle(_PlainUnpickler(header, path, limits))
        if protocol != LEGACY_PROTOCOL or not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise ConversionError(f"{path.name}: unsupported legacy torch format (protocol {excerpt(protocol, 30)}, "
                                  f"{excerpt(sys_info, 80)})")
        storages: dict[str, _Storage] = {}
        obj = _unpickle(_TorchUnpickler(_Source(f, limits.pickle_bytes, path.name), path, storages, limits, budget))
        keys = _unpickle(_PlainUnpickler(_Source(f, 64 * (limits.tensors + 16), path.name), path, limits))
        if not isinstance(keys, list) or len(keys) != len(storages) or set(map(str, keys)) != set(storages):
            raise ConversionError(f"{path.name}: the storage list does not match the tensors in the pickle")
        pairs = _state_dict(obj, path)
        wanted = {id(t.storage) for _, t in pairs if isinstance(t, _TensorRef)}
        for key in keys:  # each: int64 element count, then the raw little-endian elements
            s = storages[str(key)]
            (count,) = struct.unpack("<q", f.read(8))
            nbytes = count * s.dtype.itemsize
            if count != s.numel:
                raise ConversionError(f"{path.name}: storage {key} holds {count} elements, the pickle says {s.numel}")
            if id(s) not in wanted:  # optimizer state and the like: skipped, never read
                f.seek(nbytes, io.SEEK_CUR)
                continue
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise ConversionError(f"{path.name} is truncated (storage {key})")
            s.array = np.frombuffer(data, s.dtype)
        if any(s.array is None for s in storages.values() if id(s) in wanted):
            raise ConversionError(f"{path.name} is truncated (a storage is missing)")
    return _arrays(pairs)


def read_pth(path: Path, limits: Limits | None = None) -> list[tuple[str, np.ndarray]]:
    path, limits = Path(path), limits or Limits()
    _file_size(path, limits.data_bytes + limits.pickle_bytes + 2**20, ".pth")
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"  # a zip, even a truncated one (is_zipfile needs its end)
    return _read_pth_zip(path, limits) if zipped else _read_pth_legacy(path, limits)


def _state_dict(obj, path: Path) -> list[tuple[str, object]]:
    """The (name, tensor) items of a state dict, unwrapping training checkpoints ({"state_dict": ..., "epoch": ...});
    only these are read: optimizer state beside them never is."""
    for _ in range(2):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
            obj = inner if inner is not None else obj
    if not isinstance(obj, dict):
        raise ConversionError(f"{path.name} holds a {type(obj).__name__}, not a state dict of tensors")
    pairs = [(str(k), v) for k, v in obj.items() if isinstance(v, _TensorRef)]
    if not pairs:
        raise ConversionError(f"{path.name} holds no tensors: it is not a state dict")
    return pairs


def _arrays(pairs) -> list[tuple[str, np.ndarray]]:
    return [(name, ref.array()) for name, ref in pairs]


# ---------------------------------------------------------------- safetensors

def read_safetensors(path: Path, limits: Limits | None = None) -> list[tuple[str, np.ndarray]]:
    from safetensors import safe_open
    from safetensors.numpy import load_file  # numpy only: does not import torch

    path, limits = Path(path), limits or Limits()
    size = _file_size(path, limits.data_bytes + 2**20 + 512 * limits.tensors, ".safetensors")
    with open(path, "rb") as f:
        (header,) = struct.unpack("<Q", f.read(8).ljust(8, b"\0"))
    if header > min(size, 2**16 + 512 * limits.tensors):  # a JSON entry per tensor: about 100 bytes each
        raise ConversionError(f"{path.name}: its header declares {header} bytes ({limits.basis})", REFUSED_HINT)
    budget = _Budget(limits, path.name)
    with safe_open(str(path), framework="numpy") as f:  # parses the header only
        for key in f.keys():
            view = f.get_slice(key)
            budget.take(_numel(view.get_shape(), path.name, f"tensor {excerpt(key, 60)}") * _SAFETENSORS_SIZES.get(
                view.get_dtype(), 8))
    try:
        data = load_file(str(path))
    except KeyError as exc:  # safetensors.numpy has no bfloat16
        raise ConversionError(f"{path.name}: tensor dtype {exc} has no numpy equivalent") from None
    return list(data.items())


_SAFETENSORS_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
                      "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}


# ---------------------------------------------------------------- PaddleClas .pdparams

_NDARRAY = object()  # what numpy.ndarray becomes: accepted by _reconstruct, never called (ndarray(shape) allocates)
_PLAIN_DTYPES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1", "?"}


def _plain_dtype(dtype, where: str) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.itemsize > 8:
        raise ConversionError(f"{where}: an array of dtype {excerpt(str(dtype), 40)}, not plain numbers", REFUSED_HINT)
    return dtype


class _ArrayUnpickler(_BoundedUnpickler):
    """Paddle's state-dict container (a dict of numpy arrays); every other global is refused, and each numpy
    callable is a checked stand-in: arrays come only from data in the pickle, counted against the limits."""

    BUILD_TYPES = (OrderedDict, np.ndarray, np.dtype, *{type(np.dtype(c)) for c in _PLAIN_DTYPES})

    def __init__(self, file, path: Path, limits: Limits, budget: _Budget):
        super().__init__(file, path, limits)
        self.budget = budget
        self.stand_ins = {"_reconstruct": self._reconstruct, "_frombuffer": self._frombuffer, "ndarray": _NDARRAY,
                          "dtype": self._dtype, "encode": self._encode, "OrderedDict": _ordered_dict,
                          "tuple": self._tuple}

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict"),
               ("builtins", "tuple")}  # Paddle reduces a bare tensor to tuple((name, ndarray))

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise ConversionError(f"refused to unpickle {_dotted(module)}.{_dotted(name)} from {self.path.name}: "
                                  "only numpy arrays are allowed in Paddle weights", REFUSED_HINT)
        return self.stand_ins[name]

    def _reconstruct(self, subtype, shape, dtype):
        """numpy's ndarray.__reduce__ makes an empty array here, filled by BUILD (check_build)."""
        if subtype is not _NDARRAY or tuple(shape) != (0,):
            raise ConversionError(f"{self.path.name}: an array reconstructed other than as numpy pickles it", REFUSED_HINT)
        return np.ndarray((0,), np.uint8)

    def _frombuffer(self, buffer, dtype, shape, order):
        dtype = _plain_dtype(dtype, self.path.name)
        numel = _numel(tuple(shape), self.path.name, "an array")
        if not isinstance(buffer, (bytes, bytearray)) or numel * dtype.itemsize != len(buffer) or order not in "CF":
            raise ConversionError(f"{self.path.name}: an array's data does not match its shape", REFUSED_HINT)
        self.budget.take(len(buffer))
        return np.frombuffer(buffer, dtype).reshape(shape, order=order)

    def _dtype(self, spec, align=False, copy=False):
        if not isinstance(spec, str) or spec.lstrip("<>|=") not in _PLAIN_DTYPES:
            raise ConversionError(f"{self.path.name}: an array of dtype {excerpt(spec, 40)}, not plain numbers",
                                  REFUSED_HINT)
        return np.dtype(spec)

    def _encode(self, text, encoding="utf-8"):
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise ConversionError(f"{self.path.name}: its pickle encodes other than bytes as latin-1", REFUSED_HINT)
        return text.encode("latin-1")

    def _tuple(self, items=()):
        if not isinstance(items, (list, tuple)):
            raise ConversionError(f"{self.path.name}: a tuple built from a {type(items).__name__}", REFUSED_HINT)
        return tuple(items)

    def check_build(self, inst, state) -> None:
        if isinstance(inst, np.dtype):  # (version, byte order, subarray, names, fields, itemsize, alignment, flags)
            if not (isinstance(state, tuple) and len(state) in (8, 9) and state[2:5] == (None, None, None)):
                raise ConversionError(f"{self.path.name}: a dtype's state is not that of plain numbers", REFUSED_HINT)
            return
        # ndarray: (version, shape, dtype, Fortran order, data); the data must be in the pickle, its size exact.
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], (bytes, bytearray))):
            raise ConversionError(f"{self.path.name}: an array's state holds no raw data", REFUSED_HINT)
        dtype = _plain_dtype(state[2], self.path.name)
        if _numel(state[1], self.path.name, "an array") * dtype.itemsize != len(state[4]):
            raise ConversionError(f"{self.path.name}: an array's data does not match its shape", REFUSED_HINT)
        self.budget.take(len(state[4]))


def read_pdparams(path: Path, limits: Limits | None = None) -> list[tuple[str, np.ndarray]]:
    path, limits = Path(path), limits or Limits()
    size = _file_size(path, limits.data_bytes + limits.pickle_bytes, ".pdparams")
    with open(path, "rb") as f:  # the arrays are in the pickle: its budget is the file
        data = _unpickle(_ArrayUnpickler(_Source(f, size, path.name), path, limits, _Budget(limits, path.name)))
    if not isinstance(data, dict):
        raise ConversionError(f"{path.name} holds a {type(data).__name__}, not Paddle's dict of parameters")
    out = []
    for name, value in data.items():
        if name == "StructuredToParameterName@@":  # Paddle's map of structured to parameter names
            continue
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]
        if not isinstance(value, np.ndarray):
            raise ConversionError(f"{path.name}: entry {excerpt(str(name), 60)} is a {type(value).__name__}, not an array")
        out.append((str(name), value))
    if not out:
        raise ConversionError(f"{path.name} holds no arrays: it is not Paddle weights")
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


def read_ckpt(path: Path, limits: Limits | None = None) -> list[tuple[str, np.ndarray]]:
    """`Checkpoint { repeated Value value = 1; }`, `Value { string tag = 1; TensorProto tensor = 2; }`,
    `TensorProto { repeated int64 dims = 1; string tensor_type = 2; bytes tensor_content = 3; }`
    (mindspore/ccsrc/utils/checkpoint.proto). A large tensor may be split over consecutive values with the
    same tag; they are joined. The file is mapped, not read: parsing stops at the first value past the limits,
    having touched only the pages before it (a million one-element tensors are refused after a few thousand)."""
    import mmap

    path, limits = Path(path), limits or Limits()
    size = _file_size(path, limits.data_bytes + 256 * limits.tensors + 2**20, "MindSpore checkpoint")
    if size == 0:
        raise ConversionError(f"{path.name} holds no tensors: it is not a MindSpore checkpoint")
    budget = _Budget(limits, path.name)
    with open(path, "rb") as f:
        # Unmapped when the last slice goes (the arrays are copies); never closed by hand while a slice of it may
        # still live in a traceback.
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    out = _ckpt_tensors(memoryview(mapped), path, budget)
    if not out:
        raise ConversionError(f"{path.name} holds no tensors: it is not a MindSpore checkpoint")
    return out


def _ckpt_tensors(buf, path: Path, budget: _Budget) -> list[tuple[str, np.ndarray]]:
    entries: list[list] = []  # [tag, dims, type, [chunks]]
    try:
        for number, wire, value in _fields(buf):
            if number != 1 or wire != 2:
                continue  # fields a newer MindSpore adds beside the values (e.g. a checksum)
            tag, tensor = None, None
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    if len(v) > 1024:
                        raise ValueError(f"a tensor name of {len(v)} bytes")
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
                    while p < len(v) and len(dims) <= 8:
                        d, p = _varint(v, p)
                        dims.append(d)
                elif n == 2 and w == 2:
                    dtype = bytes(v[:16]).decode("ascii") if len(v) <= 16 else f"({len(v)} bytes)"
                elif n == 3 and w == 2:
                    content = v
                if len(dims) > 8:
                    raise ConversionError(f"{path.name}: tensor {excerpt(tag, 60)} has more than 8 dimensions",
                                          REFUSED_HINT)
            if entries and entries[-1][0] == tag:
                entries[-1][3].append(content)
                budget.take(len(content), count=0)
            else:
                budget.take(len(content))  # counted before anything is made of it
                entries.append([tag, dims, dtype, [content]])
    except ConversionError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path.name} is not a readable MindSpore checkpoint ({exc})") from None
    out = []
    for tag, dims, dtype, chunks in entries:
        if dtype not in _CKPT_DTYPES:
            raise ConversionError(f"{path.name}: tensor {excerpt(tag, 60)} has unknown type {excerpt(dtype, 20)}")
        itemsize = np.dtype(_CKPT_DTYPES[dtype]).itemsize
        nbytes = sum(len(c) for c in chunks)
        if nbytes % itemsize or nbytes // itemsize != math.prod(dims):
            raise ConversionError(f"{path.name}: tensor {excerpt(tag, 60)} holds {nbytes} bytes for shape {dims} "
                                  f"of {dtype}")
        array = np.frombuffer(b"".join(chunks), dtype=_CKPT_DTYPES[dtype])  # a copy: the mapping is closed after
        if dtype == "BFloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        out.append((tag, array.reshape(dims)))
    return out


# ---------------------------------------------------------------- entry point

SUFFIXES = {".pth": "pth", ".pt": "pth", ".bin": "pth", ".tar": "pth", ".safetensors": "safetensors",
            ".pdparams": "pdparams", ".ckpt": "mindspore-ckpt"}


def read(path: Path, fmt: str | None = None, *, limits: Limits | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, array) pairs of a native weights file in file order, `module.` prefixes removed.

    fmt: pth | safetensors | pdparams | mindspore-ckpt (None: from the suffix). limits: what the file may declare
    (Limits.for_plan(plan) for a conversion), checked before anything is allocated for it. Nothing in the file is
    executed; any problem is a ConversionError naming the file."""
    path = Path(path)
    fmt = fmt or SUFFIXES.get(path.suffix.lower())
    readers = {"pth": read_pth, "safetensors": read_safetensors, "pdparams": read_pdparams, "mindspore-ckpt": read_ckpt}
    if fmt not in readers:
        raise ConversionError(f"{path.name}: {fmt or path.suffix!r} is not a format zoo converts",
                              f"Convertible formats: {', '.join(FORMATS)}")
    try:
        if not path.is_file():
            raise ConversionError(f"{path.name} is not a regular file")
        pairs = readers[fmt](path, limits)
    except ConversionError:
        raise
    except MemoryError:
        raise ConversionError(f"{path.name} declares more than memory holds", REFUSED_HINT) from None
    except Exception as exc:  # truncated pickles, bad zips, bad headers: one line, never a traceback
        text = str(exc)[:400].strip()  # exceptions here never carry the file's objects (keys are scalars)
        first = text.splitlines()[0][:200] if text else ""
        raise ConversionError(f"{path.name} is not a readable {fmt} file ({type(exc).__name__}: {first})",
                              REFUSED_HINT) from None
    return [(n[len("module."):] if n.startswith("module.") else n, a) for n, a in pairs]
