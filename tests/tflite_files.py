"""Small .tflite files written by hand with the flatbuffers builder (the TFLite schema's generated code, package
`tflite`): one float32 operator, with its operator code's two fields set independently, for tests that set what
zoo reads beside what LiteRT reads."""
from __future__ import annotations

import flatbuffers
import tflite


def _vector(builder, start, values, prepend) -> int:
    start(builder, len(values))
    for value in reversed(values):
        prepend(value)
    return builder.EndVector()


def one_op_model(builtin_code: int | None, deprecated_code: int | None, *, n_inputs: int = 1,
                 shape: tuple[int, ...] = (1, 4), options: tuple[int, callable] | None = None) -> bytes:
    """A model of one operator reading `n_inputs` float32 tensors of `shape` and writing one; the operator
    code's builtin_code and deprecated_builtin_code fields are written only when not None. `options` is
    (BuiltinOptions type, function(builder) -> table offset) for the operator's builtin options."""
    b = flatbuffers.Builder(1024)
    b.ForceDefaults(True)  # every field written, defaults too: tests can patch them in place
    tflite.OperatorCodeStart(b)
    if deprecated_code is not None:
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, deprecated_code)
    if builtin_code is not None:
        tflite.OperatorCodeAddBuiltinCode(b, builtin_code)
    tflite.OperatorCodeAddVersion(b, 1)
    code = tflite.OperatorCodeEnd(b)
    tensors = []
    for i in range(n_inputs + 1):
        name = b.CreateString(f"t{i}")
        dims = _vector(b, tflite.TensorStartShapeVector, list(shape), b.PrependInt32)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, dims)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, 0)
        tflite.TensorAddName(b, name)
        tensors.append(tflite.TensorEnd(b))
    option_table = options[1](b) if options else None
    op_inputs = _vector(b, tflite.OperatorStartInputsVector, list(range(n_inputs)), b.PrependInt32)
    op_outputs = _vector(b, tflite.OperatorStartOutputsVector, [n_inputs], b.PrependInt32)
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, op_inputs)
    tflite.OperatorAddOutputs(b, op_outputs)
    if options:
        tflite.OperatorAddBuiltinOptionsType(b, options[0])
        tflite.OperatorAddBuiltinOptions(b, option_table)
    op = tflite.OperatorEnd(b)
    tensor_vec = _vector(b, tflite.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    in_vec = _vector(b, tflite.SubGraphStartInputsVector, list(range(n_inputs)), b.PrependInt32)
    out_vec = _vector(b, tflite.SubGraphStartOutputsVector, [n_inputs], b.PrependInt32)
    op_vec = _vector(b, tflite.SubGraphStartOperatorsVector, [op], b.PrependUOffsetTRelative)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vec)
    tflite.SubGraphAddInputs(b, in_vec)
    tflite.SubGraphAddOutputs(b, out_vec)
    tflite.SubGraphAddOperators(b, op_vec)
    subgraph = tflite.SubGraphEnd(b)
    tflite.BufferStart(b)
    empty = tflite.BufferEnd(b)
    codes = _vector(b, tflite.ModelStartOperatorCodesVector, [code], b.PrependUOffsetTRelative)
    subgraphs = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    buffers = _vector(b, tflite.ModelStartBuffersVector, [empty], b.PrependUOffsetTRelative)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddBuffers(b, buffers)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def litert_op_names(data: bytes) -> list[str]:
    """The operators LiteRT's interpreter built from the file, in order (its own reading of the operator codes)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    return [op["op_name"] for op in interpreter._get_ops_details()]
