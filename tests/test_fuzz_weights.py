"""Property-based fuzzing (hypothesis) of the torch-free weight readers and the TFLite reader: whatever a pickle
(in a .pth zip, a legacy .pth, a .pdparams), a MindSpore .ckpt, a .safetensors or a .tflite file holds, reading it
returns plain arrays within the limits, or raises ConversionError with one line, within a second. Never another
exception. And a .tflite operator code is read as LiteRT reads it, whatever its two fields say.

Bounded: a fixed number of examples per property, no example database, each property a few seconds."""
from __future__ import annotations

import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import tflite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mutations import mutated
from tflite_files import litert_op_names, one_op_model
from weights_files import ckpt_value, global_, integer, pickle2, state_dict, storage, string, tensor, torch_zip, tup
from zoo.artifacts.convert import builder, readers, tflite_onnx
from zoo.errors import ConversionError, UsageError

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LIMITS = readers.Limits.for_plan(builder.plan_for("timm", 1.0, 1.0, 1000))
DATA = np.arange(12, dtype=np.float32)


def read_checked(path: Path, fmt: str) -> None:
    """The property: arrays within the limits, or one ConversionError line, within a second."""
    start = time.perf_counter()
    try:
        pairs = readers.read(path, fmt, limits=LIMITS)
    except ConversionError as exc:
        line = exc.one_line()
        assert "\n" not in line and len(line) < 1200, line
    else:
        assert all(isinstance(name, str) and isinstance(array, np.ndarray) for name, array in pairs)
        assert len(pairs) <= LIMITS.tensors and sum(a.nbytes for _, a in pairs) <= 2 * LIMITS.data_bytes
        assert all(not a.dtype.hasobject for _, a in pairs)
    assert time.perf_counter() - start < 1.0


# ---------------------------------------------------------------- pickles

STATE_DICT_PICKLE = pickle2(state_dict((string("a.weight"), tensor("0", 12, (3, 4), (4, 1))),
                                       (string("a.bias"), tensor("0", 12, (4,), (1,))),
                                       (string("b.weight"), tensor("1", 12, (12,), (1,)))))
PDPARAMS = {protocol: pickle.dumps({"a.weight": DATA.reshape(3, 4), "b": ("b", DATA[:2].astype(np.float64)),
                                    "StructuredToParameterName@@": {"a": "a"}}, protocol=protocol)
            for protocol in (2, 4, 5)}

# Opcodes and arguments a hostile pickle is made of: containers, memo, marks, globals allowed and not, bombs.
OPCODE = st.one_of(
    st.sampled_from([b"]", b"}", b")", b"(", b"e", b"a", b"u", b"s", b"t", b"l", b"d", b"\x85", b"\x86", b"\x87",
                     b"R", b"b", b"Q", b"0", b"2", b"1", b"N", b"\x88", b"\x89", b"\x81", b"\x92", b"\x8f", b"\x90",
                     b"\x91", b"\x94", b"\x82\x01", b"\x93"]),
    st.integers(0, 6).map(lambda k: b"h" + bytes([k])),
    st.integers(0, 6).map(lambda k: b"q" + bytes([k])),
    st.sampled_from([b"r\xff\xff\xff\x7f", b"j\xff\xff\xff\x7f", b"\x95" + struct.pack("<Q", 2**40),
                     b"\x96" + struct.pack("<Q", 2**40), b"\x8e" + struct.pack("<Q", 2**40), b"X\xff\xff\xff\x7f",
                     b"B\xff\xff\xff\x7f", b"\x8a\x7f" + b"\xff" * 127]),
    st.integers(-2**31, 2**31 - 1).map(integer),
    st.text(max_size=8).map(string),
    st.sampled_from([global_("torch._utils", "_rebuild_tensor_v2"), global_("torch._utils", "_rebuild_parameter"),
                     global_("torch", "FloatStorage"), global_("collections", "OrderedDict"), global_("os", "system"),
                     global_("numpy", "ndarray"), global_("numpy.core.multiarray", "_reconstruct"),
                     global_("numpy", "dtype"), global_("_codecs", "encode"), global_("builtins", "tuple"),
                     global_("builtins", "eval"), global_("numpy._core.numeric", "_frombuffer"),
                     storage("0", 4), storage("0", 2**31 - 1), tup(integer(16384), integer(16384)), tup(integer(0))]),
)
hostile_pickle = st.lists(OPCODE, max_size=40).map(lambda ops: pickle2(b"".join(ops)))


@FUZZ
@given(pkl=st.one_of(hostile_pickle, mutated(STATE_DICT_PICKLE)))
def test_any_pickle_in_a_pth_zip(tmp_path, pkl):
    read_checked(torch_zip(tmp_path / "m.pth", pkl, {"0": DATA.tobytes(), "1": DATA.tobytes()}), "pth")


@FUZZ
@given(pkl=st.one_of(hostile_pickle, mutated(PDPARAMS[2]), mutated(PDPARAMS[4]), mutated(PDPARAMS[5])))
def test_any_pickle_as_pdparams(tmp_path, pkl):
    path = tmp_path / "m.pdparams"
    path.write_bytes(pkl)
    read_checked(path, "pdparams")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_numpy_pickles_read_as_pdparams(tmp_path, protocol):
    path = tmp_path / "m.pdparams"
    path.write_bytes(PDPARAMS[protocol])
    pairs = dict(readers.read(path, "pdparams", limits=LIMITS))
    assert pairs["a.weight"].tolist() == DATA.reshape(3, 4).tolist() and pairs["b"].dtype == np.float64


def legacy_pth(obj_pickle: bytes, keys: list[str], storages: list[bytes]) -> bytes:
    """torch's legacy format: magic, protocol, sys_info, the object pickle, the storage keys, each storage."""
    head = pickle.dumps(readers.LEGACY_MAGIC, protocol=2) + pickle.dumps(readers.LEGACY_PROTOCOL, protocol=2) \
        + pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}, protocol=2)
    body = b"".join(struct.pack("<q", len(data) // 4) + data for data in storages)
    return head + obj_pickle + pickle.dumps(keys, protocol=2) + body


LEGACY = legacy_pth(STATE_DICT_PICKLE, ["0", "1"], [DATA.tobytes(), DATA.tobytes()])


def test_a_legacy_pth_written_by_hand_reads(tmp_path):
    path = tmp_path / "legacy.pth"
    path.write_bytes(LEGACY)
    assert [(n, a.shape) for n, a in readers.read(path, "pth", limits=LIMITS)] == [
        ("a.weight", (3, 4)), ("a.bias", (4,)), ("b.weight", (12,))]


@FUZZ
@given(data=st.one_of(mutated(LEGACY), hostile_pickle.map(lambda p: legacy_pth(p, ["0"], [DATA.tobytes()]))))
def test_any_legacy_pth(tmp_path, data):
    path = tmp_path / "m.pth"
    path.write_bytes(data)
    read_checked(path, "pth")


# ---------------------------------------------------------------- MindSpore .ckpt, safetensors

CKPT = ckpt_value("a.weight", [3, 4], DATA.tobytes()) + ckpt_value("a.bias", [4], DATA[:4].tobytes()) \
    + ckpt_value("moments.a", [2], DATA[:2].astype(np.float16).tobytes(), "Float16")


@FUZZ
@given(data=mutated(CKPT))
def test_any_ckpt(tmp_path, data):
    path = tmp_path / "m.ckpt"
    path.write_bytes(data)
    read_checked(path, "mindspore-ckpt")


def _safetensors() -> bytes:
    from safetensors.numpy import save

    return save({"a.weight": DATA.reshape(3, 4), "a.bias": DATA[:4]})


@FUZZ
@given(data=mutated(_safetensors()))
def test_any_safetensors(tmp_path, data):
    path = tmp_path / "m.safetensors"
    path.write_bytes(data)
    read_checked(path, "safetensors")


# ---------------------------------------------------------------- TFLite

OP = tflite.BuiltinOperator


@settings(max_examples=60, deadline=None, database=None)
@given(builtin=st.one_of(st.none(), st.integers(-3, 210)), deprecated=st.one_of(st.none(), st.integers(-128, 127)),
       n_inputs=st.integers(1, 3))
def test_operator_codes_are_read_as_litert_reads_them(builtin, deprecated, n_inputs):
    data = one_op_model(builtin, deprecated, n_inputs=n_inputs)
    try:
        litert = litert_op_names(data)
    except (ValueError, RuntimeError):  # LiteRT has no such operator, or not with these inputs
        litert = None
    if litert is not None:
        assert tflite_onnx.operator_names(data) == litert
    try:
        tflite_onnx.convert(data, "float")
    except ConversionError as exc:
        assert "\n" not in exc.one_line()


SMALL_TFLITE = [one_op_model(OP.ADD, OP.ADD, n_inputs=2), one_op_model(OP.SOFTMAX, None, shape=(1, 10)),
                one_op_model(OP.RESHAPE, OP.RESHAPE, n_inputs=1)]


@FUZZ
@given(data=st.one_of(*[mutated(seed) for seed in SMALL_TFLITE]), mode=st.sampled_from(["qdq", "float"]))
def test_any_tflite_converts_or_is_one_line(data, mode):
    start = time.perf_counter()
    try:
        tflite_onnx.convert(data, mode, name="fuzz.tflite")
    except (ConversionError, UsageError) as exc:
        assert "\n" not in exc.one_line()
    assert time.perf_counter() - start < 2.0
