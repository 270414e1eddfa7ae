"""zoo reads a .tflite file's operators as LiteRT does (the TFLite schema's rule: the larger of builtin_code and
deprecated_builtin_code), so that it never converts a file into another network than the one LiteRT runs."""
from __future__ import annotations

import pytest
import tflite

from tflite_files import litert_op_names, one_op_model
from zoo.artifacts.convert import tflite_onnx
from zoo.errors import ConversionError

OP = tflite.BuiltinOperator


@pytest.mark.parametrize("builtin, deprecated", [
    (OP.LOGISTIC, OP.CONV_2D),        # a new field saying one thing, the old one another
    (OP.CONV_2D, OP.LOGISTIC),
    (None, OP.LOGISTIC),              # a file from before schema v3a: only the old field
    (OP.LOGISTIC, None),              # only the new field
    (OP.LOGISTIC, OP.LOGISTIC),
    (OP.GELU, OP.PLACEHOLDER_FOR_GREATER_OP_CODES),  # a code above 127: the old field holds the placeholder
    (OP.GELU, OP.ADD),
])
def test_operator_codes_read_as_litert_reads_them(builtin, deprecated):
    data = one_op_model(builtin, deprecated)
    assert tflite_onnx.operator_names(data) == litert_op_names(data)


def test_a_file_that_says_logistic_is_never_converted_as_a_convolution():
    data = one_op_model(OP.LOGISTIC, OP.CONV_2D, n_inputs=3)
    assert litert_op_names(data) == ["LOGISTIC"]
    with pytest.raises(ConversionError, match=r"unsupported TFLite operator\(s\): LOGISTIC; supported:"):
        tflite_onnx.convert(data, "qdq", name="relabelled.tflite")


def test_the_published_files_read_the_same_in_zoo_and_litert(coral_dir):
    for path in sorted(coral_dir.glob("*.tflite")):
        data = path.read_bytes()
        assert tflite_onnx.operator_names(data) == litert_op_names(data), path.name


def _conv_options(b):
    tflite.Conv2DOptionsStart(b)
    tflite.Conv2DOptionsAddStrideH(b, 2)
    tflite.Conv2DOptionsAddStrideW(b, 2)
    return tflite.Conv2DOptionsEnd(b)


def test_builtin_options_of_another_type_are_refused_not_reinterpreted():
    # ADD whose options table is declared (and laid out) as Conv2DOptions: read as AddOptions, its stride would
    # become a fused activation; LiteRT takes the options as absent.
    data = one_op_model(OP.ADD, OP.ADD, n_inputs=2, options=(tflite.BuiltinOptions.Conv2DOptions, _conv_options))
    assert litert_op_names(data) == ["ADD"]
    with pytest.raises(ConversionError, match=r"ADD with builtin options Conv2DOptions \(expected AddOptions\)"):
        tflite_onnx.convert(data, "float")


def test_an_operator_naming_a_missing_operator_code_is_refused():
    data = bytearray(one_op_model(OP.ADD, OP.ADD, n_inputs=2))
    model = tflite.Model.GetRootAsModel(data, 0)
    op = model.Subgraphs(0).Operators(0)
    slot = op._tab.Offset(4)  # opcode_index, uint32
    assert slot  # the builder wrote it (0 would be left out as the default)
    data[op._tab.Pos + slot: op._tab.Pos + slot + 4] = (7).to_bytes(4, "little")
    with pytest.raises(ConversionError, match="operator code 7 of 1"):
        tflite_onnx.convert(bytes(data), "float")
