"""Convert the quantized MobileNetV2 .tflite files of the TF-family cards to ONNX.

    convert(tflite_bytes, mode="qdq" | "float") -> (onnx.ModelProto, record)

mode="qdq":   every quantized TFLite tensor stays quantized in ONNX. Each op becomes
              DequantizeLinear(inputs) -> float op -> QuantizeLinear(output) with the TFLite
              scales/zero points, weights stored as int8/uint8 (per-channel where TFLite is),
              biases as int32 with scale = input_scale * weight_scale. ONNX Runtime fuses these
              groups into QLinearConv / QLinearAdd / ..., i.e. integer kernels like LiteRT's.
              Input and output keep the TFLite interface: uint8 NHWC in, uint8 [N,1001] out
              (dequantize with the declared scale / zero point, as for LiteRT).
mode="float": weights and biases dequantized (scale * (q - zero_point)) into float32 constants,
              no activation quantization at all (QUANTIZE / DEQUANTIZE become no-ops, the
              quantized ranges no longer clip). Input float32 NHWC holding the real value
              scale * (q - zero_point) of the uint8 input, output float32 probabilities.
              Meant as the starting point for int8 re-quantization experiments.

Why our own converter: tflite2onnx 0.4.1 (last release 2021, issue #76 open since 2022) asserts
on per-channel quantization ("Per-tensor support only currently"), so it cannot read the TF2
PTQ file, and it changes the interface to float NCHW; tf2onnx needs TensorFlow.

Scope: only the operators MobileNetV2 files use (see CONVERTERS); anything else raises
UnsupportedOperatorError naming the operator, before any output is written.

Layout: TFLite is NHWC. Every rank-4 activation is held in ONNX as NCHW; rank-4 graph inputs and
outputs keep NHWC and are transposed at the boundary. Other ranks keep the TFLite layout.
"""
from __future__ import annotations

import time
from collections import Counter

import flatbuffers
import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

from zoo.errors import ConversionError, UsageError

MAX_TFLITE_BYTES = 512 * 2**20  # the largest MobileNetV2 .tflite is under 15 MB
OPSET = 13  # per-channel Q/DQ (axis) and int32 DequantizeLinear need >= 13; ORT's QDQ fusions all handle 13

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_OPTION_NAMES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
_NP_TYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.INT32: np.int32,
             tflite.TensorType.UINT8: np.uint8, tflite.TensorType.INT8: np.int8,
             tflite.TensorType.INT64: np.int64}
_ACT = tflite.ActivationFunctionType
NHWC_TO_NCHW, NCHW_TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class UnsupportedOperatorError(ConversionError):
    """The .tflite file uses something this converter does not translate."""


def builtin_code(oc) -> int:
    """An OperatorCode's operator, read as LiteRT reads it: the larger of builtin_code (int32, schema v3a and
    later) and deprecated_builtin_code (int8; older files fill only this one). The `tflite` package's own
    BuiltinCode() returns deprecated_builtin_code whenever builtin_code is below 127, so a file saying
    LOGISTIC in builtin_code and CONV_2D in the deprecated field would read as CONV_2D there, while LiteRT runs
    LOGISTIC: the raw field is read here instead (vtable slot 10 of the schema's OperatorCode table)."""
    slot = oc._tab.Offset(10)
    builtin = oc._tab.Get(flatbuffers.number_types.Int32Flags, slot + oc._tab.Pos) if slot else 0
    return max(builtin, oc.DeprecatedBuiltinCode())


def operator_code_name(oc) -> str:
    code = builtin_code(oc)
    if code == tflite.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{(oc.CustomCode() or b'?').decode('utf-8', 'backslashreplace')}"
    return _OP_NAMES.get(code, f"builtin code {code}")


def operator_names(data: bytes) -> list[str]:
    """The operators of a .tflite file's first subgraph in order, named as LiteRT reads them."""
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    codes = [operator_code_name(model.OperatorCodes(k)) for k in range(model.OperatorCodesLength())]
    return [codes[graph.Operators(k).OpcodeIndex()] for k in range(graph.OperatorsLength())]


class _Converter:
    def __init__(self, data: bytes, mode: str, dynamic_batch: bool, int8: str):
        if mode not in ("qdq", "float"):
            raise UsageError(f"mode must be 'qdq' or 'float', not {mode!r}")
        if int8 not in ("uint8", "keep"):
            raise UsageError(f"int8 must be 'uint8' or 'keep', not {int8!r}")
        self.data, self.mode, self.dynamic_batch, self.int8 = data, mode, dynamic_batch, int8
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise UnsupportedOperatorError(f"{self.model.SubgraphsLength()} subgraphs (control flow); only 1 is supported")
        self.g = self.model.Subgraphs(0)
        self.nodes, self.inits, self.cache = [], [], {}
        self.counter = 0

    # ---- reading the flatbuffer -------------------------------------------------------------
    def op_name(self, op) -> str:
        index = op.OpcodeIndex()
        if not 0 <= index < self.model.OperatorCodesLength():
            raise ConversionError(f"an operator names operator code {index} of {self.model.OperatorCodesLength()}")
        return operator_code_name(self.model.OperatorCodes(index))

    def tensor(self, i):
        return self.g.Tensors(i)

    def shape(self, i) -> list[int]:
        return [int(d) for d in self.tensor(i).ShapeAsNumpy()] if self.tensor(i).ShapeLength() else []

    def np_type(self, i):
        t = self.tensor(i).Type()
        if t not in _NP_TYPES:
            raise UnsupportedOperatorError(f"tensor {self.tensor(i).Name().decode()!r} has TFLite type {t}")
        return _NP_TYPES[t]

    def quant(self, i):
        """(scale array, zero-point array, quantized_dimension) or None for a float / plain int tensor."""
        q = self.tensor(i).Quantization()
        if q is None or q.ScaleLength() == 0 or self.np_type(i) == np.float32:
            return None
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength(), np.int64)
        return q.ScaleAsNumpy().astype(np.float32), zp.astype(np.int64), q.QuantizedDimension()

    def const(self, i):
        """The constant contents of tensor i as a typed, shaped array, or None for an activation."""
        if self.tensor(i).Sparsity() is not None:
            raise UnsupportedOperatorError(f"sparse tensor {self.tensor(i).Name().decode()!r}")
        buf = self.model.Buffers(self.tensor(i).Buffer())
        if buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:  # large-model files keep buffers after the flatbuffer
            raw = self.data[buf.Offset(): buf.Offset() + buf.Size()]
        else:
            return None
        return np.frombuffer(raw, self.np_type(i)).reshape(self.shape(i)).copy()

    def options(self, op, cls, required: bool = False):
        """The operator's builtin options as `cls`. Options the file declares of another type are refused, never
        read as `cls` (LiteRT would take them as absent); options a stride depends on must be there."""
        opt, table, kind = cls(), op.BuiltinOptions(), op.BuiltinOptionsType()
        wanted = getattr(tflite.BuiltinOptions, cls.__name__)
        if table is not None and kind == wanted:
            opt.Init(table.Bytes, table.Pos)
        elif kind != tflite.BuiltinOptions.NONE or table is not None or required:
            found = _OPTION_NAMES.get(kind, f"type {kind}") if kind != tflite.BuiltinOptions.NONE else "none"
            raise UnsupportedOperatorError(f"{self.op_name(op)} with builtin options {found} (expected {cls.__name__})")
        return opt

    # ---- emitting ONNX ----------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}_{self.counter}"

    def node(self, op_type, inputs, output=None, **attrs) -> str:
        output = output or self.fresh(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output

    def rename(self, name, out) -> str:
        """Make the value `name` (just produced) be called `out`, without an Identity node when the
        last node made it: stray Identities between an op and its QuantizeLinear are avoided."""
        if self.nodes and self.nodes[-1].output[0] == name:
            self.nodes[-1].output[0] = out
            return out
        return self.node("Identity", [name], out)

    def init(self, array, base="c") -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def shifted(self, i) -> bool:
        """int8 tensor stored as uint8 (q + 128, zero point + 128): the same real values and
        clamping range. Graph inputs/outputs keep their TFLite type (see convert(int8=...))."""
        return (self.int8 == "uint8" and self.np_type(i) == np.int8
                and i not in self.g.InputsAsNumpy() and i not in self.g.OutputsAsNumpy())

    def qtype(self, i):
        """numpy type of the quantized values of tensor i in the ONNX graph."""
        return np.uint8 if self.shifted(i) else self.np_type(i)

    def qparams(self, q, i):
        """Scale / zero-point initializers for tensor i: scalars per tensor, 1-D per channel."""
        scale, zp, _ = q
        zp_type = self.qtype(i)
        zp = zp + (128 if self.shifted(i) else 0)
        if scale.size == 1:
            return self.init(np.float32(scale[0]), "scale"), self.init(np.array(zp[0]).astype(zp_type), "zp")
        if zp.size == 1:  # some files give one zero point for all channels
            zp = np.full(scale.size, zp[0])
        return self.init(scale, "scale"), self.init(zp.astype(zp_type), "zp")

    def value(self, i) -> str:
        """ONNX name of tensor i as the graph holds it (quantized in qdq mode, NCHW if rank 4)."""
        return f"t{i}"

    def real(self, i) -> str:
        """Float (real-valued) ONNX name of activation tensor i; dequantizes it once if needed."""
        if self.mode == "float" or self.quant(i) is None:
            return self.value(i)
        if ("dq", i) not in self.cache:
            s, z = self.qparams(self.quant(i), i)
            self.cache["dq", i] = self.node("DequantizeLinear", [self.value(i), s, z], f"t{i}_dq")
        return self.cache["dq", i]

    def write(self, float_name_producer, i):
        """Store a float result into tensor i: quantize it with i's parameters in qdq mode.

        float_name_producer(output_name) emits the float op writing to output_name."""
        q = self.quant(i) if self.mode == "qdq" else None
        if q is None:
            float_name_producer(self.value(i))
            return
        f = float_name_producer(f"t{i}_f")
        s, z = self.qparams(q, i)
        self.node("QuantizeLinear", [f, s, z], self.value(i))

    def weight(self, i, perm=None) -> str:
        """Float ONNX name of constant tensor i, transposed by perm.

        qdq: int8/uint8/int32 initializer + DequantizeLinear (per-channel axis follows the
        transpose) so ORT sees the integer weights; float: dequantized float32 initializer."""
        data, q = self.const(i), self.quant(i)
        if data is None:
            raise UnsupportedOperatorError(f"non-constant weights {self.tensor(i).Name().decode()!r}")
        if perm is not None:
            data = data.transpose(perm)
        if q is None:
            return self.init(data.astype(np.float32), "w")
        scale, zp, qdim = q
        axis = perm.index(qdim) if perm is not None else qdim
        if self.mode == "float":
            shape = [1] * data.ndim  # broadcast per-channel parameters along the channel axis
            if scale.size > 1:
                shape[axis] = scale.size
            zp = zp.reshape(shape) if zp.size > 1 else zp[0]
            real = scale.reshape(shape).astype(np.float64) * (data.astype(np.float64) - zp)
            return self.init(real.astype(np.float32), "w")
        if self.shifted(i):
            data = (data.astype(np.int16) + 128).astype(np.uint8)
        s, z = self.qparams(q, i)
        attrs = {"axis": axis} if scale.size > 1 else {}
        return self.node("DequantizeLinear", [self.init(data, "wq"), s, z], **attrs)

    def activation(self, name: str, fused: int) -> str:
        """Fused activation in float; before QuantizeLinear it reproduces TFLite's quantized
        clamp, and ORT drops the Clip when the output range already lies inside it."""
        if fused == _ACT.NONE:
            return name
        if fused == _ACT.RELU:
            return self.node("Relu", [name])
        bounds = {_ACT.RELU6: (0.0, 6.0), _ACT.RELU_N1_TO_1: (-1.0, 1.0)}
        if fused not in bounds:
            raise UnsupportedOperatorError(f"fused activation {fused} (only NONE/RELU/RELU6/RELU_N1_TO_1)")
        lo, hi = bounds[fused]
        return self.node("Clip", [name, self.init(np.float32(lo)), self.init(np.float32(hi))])

    def same_pads(self, in_hw, k_hw, stride, dilation, padding) -> list[int]:
        """ONNX pads [top, left, bottom, right]; TFLite SAME puts the odd pixel at the end."""
        if padding == tflite.Padding.VALID:
            return [0, 0, 0, 0]
        before, after = [], []
        for size, k, s, d in zip(in_hw, k_hw, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            before.append(total // 2)
            after.append(total - total // 2)
        return before + after

    # ---- operators ---------------------------------------------------------------------------
    def conv(self, op, depthwise: bool):
        x, w, b = (list(op.InputsAsNumpy()) + [-1])[:3]
        y = op.OutputsAsNumpy()[0]
        opt = self.options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions, required=True)
        wshape = self.shape(w)
        if depthwise:  # [1, kh, kw, C*mult] -> [C*mult, 1, kh, kw], one group per input channel
            perm, group = [3, 0, 1, 2], self.shape(x)[3]
        else:  # OHWI -> OIHW
            perm, group = [0, 3, 1, 2], 1
        inputs = [self.real(x), self.weight(w, perm)]
        if b >= 0:
            inputs.append(self.weight(b))
        stride, dil = [opt.StrideH(), opt.StrideW()], [opt.DilationHFactor(), opt.DilationWFactor()]
        pads = self.same_pads(self.shape(x)[1:3], wshape[1:3], stride, dil, opt.Padding())

        def emit(out):
            c = self.node("Conv", inputs, kernel_shape=wshape[1:3], strides=stride, dilations=dil,
                          pads=pads, group=group)
            return self.rename(self.activation(c, opt.FusedActivationFunction()), out)
        self.write(emit, y)

    def add(self, op):
        a, b = op.InputsAsNumpy()
        y = op.OutputsAsNumpy()[0]
        if self.shape(a) != self.shape(b):
            raise UnsupportedOperatorError("ADD with broadcasting")
        fused = self.options(op, tflite.AddOptions).FusedActivationFunction()
        self.write(lambda out: self.rename(self.activation(self.node("Add", [self.real(a), self.real(b)]), fused), out), y)

    def average_pool(self, op):
        x, y = op.InputsAsNumpy()[0], op.OutputsAsNumpy()[0]
        opt = self.options(op, tflite.Pool2DOptions, required=True)
        k, stride = [opt.FilterHeight(), opt.FilterWidth()], [opt.StrideH(), opt.StrideW()]
        pads = self.same_pads(self.shape(x)[1:3], k, stride, [1, 1], opt.Padding())
        fused = opt.FusedActivationFunction()
        # TFLite averages only the valid pixels under the window: count_include_pad=0.
        self.write(lambda out: self.rename(self.activation(self.node(
            "AveragePool", [self.real(x)], kernel_shape=k, strides=stride, pads=pads, count_include_pad=0), fused), out), y)

    def mean(self, op):
        x, axes_t = op.InputsAsNumpy()
        y = op.OutputsAsNumpy()[0]
        axes = sorted(int(a) % 4 for a in np.atleast_1d(self.const(axes_t)))
        keep = self.options(op, tflite.ReducerOptions).KeepDims()
        if len(self.shape(x)) != 4 or axes != [1, 2]:
            raise UnsupportedOperatorError(f"MEAN over axes {axes} of a rank-{len(self.shape(x))} tensor (only spatial axes 1,2 of NHWC)")
        if keep:
            self.write(lambda out: self.node("GlobalAveragePool", [self.real(x)], out), y)
        else:  # NCHW [N,C,H,W] -> [N,C] is the same as NHWC -> [N,C]
            self.write(lambda out: self.node("ReduceMean", [self.real(x)], out, axes=[2, 3], keepdims=0), y)

    def passthrough(self, x, y, build):
        """Data-movement op: on the quantized tensor directly when in/out parameters match (always
        true for these files), else dequantize -> op -> quantize."""
        qx, qy = self.quant(x), self.quant(y)
        same = self.mode == "float" or (qx is None and qy is None) or (
            qx is not None and qy is not None and self.qtype(x) == self.qtype(y)
            and np.array_equal(qx[0], qy[0]) and np.array_equal(qx[1], qy[1]))
        if same:
            build(self.value(x), self.value(y))
        else:
            self.write(lambda out: build(self.real(x), out), y)

    def nhwc(self, name, rank):
        return self.node("Transpose", [name], perm=NCHW_TO_NHWC) if rank == 4 else name

    def reshape(self, op):
        ins = op.InputsAsNumpy()
        x, y = ins[0], op.OutputsAsNumpy()[0]
        new = self.const(ins[1]) if len(ins) > 1 and ins[1] >= 0 else None
        if new is None:
            new = self.options(op, tflite.ReshapeOptions).NewShapeAsNumpy()
        new = [int(d) for d in new]
        in_shape = self.shape(x)
        if self.dynamic_batch and new and in_shape and new[0] == in_shape[0]:
            new[0] = 0  # ONNX: copy the (dynamic) batch size from the input

        def build(src, out):
            # Reshape in TFLite's NHWC element order, then back to NCHW if the result is rank 4.
            r = self.node("Reshape", [self.nhwc(src, len(in_shape)), self.init(np.array(new, np.int64), "shape")])
            if len(new) == 4:
                r = self.node("Transpose", [r], perm=NHWC_TO_NCHW)
            return self.rename(r, out)
        self.passthrough(x, y, build)

    def pad(self, op):
        x, p = op.InputsAsNumpy()[:2]
        y = op.OutputsAsNumpy()[0]
        pads = self.const(p).astype(np.int64)  # [[before, after]] per NHWC axis
        if len(self.shape(x)) == 4:
            pads = pads[NHWC_TO_NCHW]
        onnx_pads = self.init(np.concatenate([pads[:, 0], pads[:, 1]]), "pads")

        def build(src, out):
            # The pad value is real 0: the zero point when padding the quantized tensor itself.
            q = self.quant(x)
            on_quantized = self.mode == "qdq" and q is not None and src == self.value(x)
            fill = np.array(q[1][0] + (128 if self.shifted(x) else 0)).astype(self.qtype(x)) if on_quantized else np.float32(0)
            return self.node("Pad", [src, onnx_pads, self.init(fill)], out)
        self.passthrough(x, y, build)

    def softmax(self, op):
        x, y = op.InputsAsNumpy()[0], op.OutputsAsNumpy()[0]
        beta = self.options(op, tflite.SoftmaxOptions).Beta()
        if len(self.shape(x)) != 2:
            raise UnsupportedOperatorError(f"SOFTMAX of a rank-{len(self.shape(x))} tensor (only rank 2)")

        def emit(out):
            src = self.real(x)
            if beta != 1.0:
                src = self.node("Mul", [src, self.init(np.float32(beta))])
            return self.node("Softmax", [src], out, axis=-1)
        self.write(emit, y)

    def fully_connected(self, op):
        x, w, b = (list(op.InputsAsNumpy()) + [-1])[:3]
        y = op.OutputsAsNumpy()[0]
        opt = self.options(op, tflite.FullyConnectedOptions)
        if opt.KeepNumDims() or opt.WeightsFormat() != 0:
            raise UnsupportedOperatorError("FULLY_CONNECTED with keep_num_dims or shuffled weights")
        src = self.real(x)
        if len(self.shape(x)) != 2:  # TFLite flattens the NHWC input to [-1, in_features]
            src = self.node("Reshape", [self.nhwc(src, len(self.shape(x))),
                                        self.init(np.array([-1, self.shape(w)[1]], np.int64), "shape")])
        inputs = [src, self.weight(w)] + ([self.weight(b)] if b >= 0 else [])
        fused = opt.FusedActivationFunction()
        self.write(lambda out: self.rename(self.activation(self.node("Gemm", inputs, transB=1), fused), out), y)

    def quantize(self, op):
        """QUANTIZE (float->q or requantize q->q) and DEQUANTIZE (q->float)."""
        x, y = op.InputsAsNumpy()[0], op.OutputsAsNumpy()[0]
        qx, qy = self.quant(x), self.quant(y)
        if self.mode == "float":  # no activation quantization at all in float mode
            self.node("Identity", [self.value(x)], self.value(y))
        elif qx is not None:  # dequantize (and requantize if y is quantized, e.g. uint8 -> int8)
            s, z = self.qparams(qx, x)
            self.write(lambda out: self.node("DequantizeLinear", [self.value(x), s, z], out), y)
        elif qy is not None:  # float -> quantized
            s, z = self.qparams(qy, y)
            self.node("QuantizeLinear", [self.value(x), s, z], self.value(y))
        else:
            self.node("Identity", [self.value(x)], self.value(y))

    def relu(self, op, fused):
        x, y = op.InputsAsNumpy()[0], op.OutputsAsNumpy()[0]
        self.write(lambda out: self.rename(self.activation(self.real(x), fused), out), y)

    CONVERTERS = {
        "CONV_2D": lambda s, op: s.conv(op, depthwise=False),
        "DEPTHWISE_CONV_2D": lambda s, op: s.conv(op, depthwise=True),
        "ADD": lambda s, op: s.add(op),
        "AVERAGE_POOL_2D": lambda s, op: s.average_pool(op),
        "MEAN": lambda s, op: s.mean(op),
        "RESHAPE": lambda s, op: s.reshape(op),
        "PAD": lambda s, op: s.pad(op),
        "SOFTMAX": lambda s, op: s.softmax(op),
        "FULLY_CONNECTED": lambda s, op: s.fully_connected(op),
        "QUANTIZE": lambda s, op: s.quantize(op),
        "DEQUANTIZE": lambda s, op: s.quantize(op),
        "RELU": lambda s, op: s.relu(op, _ACT.RELU),
        "RELU6": lambda s, op: s.relu(op, _ACT.RELU6),
    }

    # ---- graph ------------------------------------------------------------------------------
    def io_type(self, i):
        if self.mode == "float":
            return TensorProto.FLOAT
        return helper.np_dtype_to_tensor_dtype(np.dtype(self.np_type(i)))

    def io_shape(self, i):
        shape = list(self.shape(i))
        if self.dynamic_batch and shape:
            shape[0] = "N"
        return shape

    def convert(self) -> onnx.ModelProto:
        ops = [self.g.Operators(k) for k in range(self.g.OperatorsLength())]
        supported = set(self.CONVERTERS)
        unsupported = sorted({self.op_name(op) for op in ops} - supported)
        if unsupported:  # refuse up front, naming every missing operator at once
            raise UnsupportedOperatorError(
                f"unsupported TFLite operator(s): {', '.join(unsupported)}; supported: {', '.join(sorted(supported))}")
        self.op_counts = Counter(self.op_name(op) for op in ops)

        inputs, outputs = [], []
        for i in self.g.InputsAsNumpy():
            name = self.tensor(i).Name().decode()
            inputs.append(helper.make_tensor_value_info(name, self.io_type(i), self.io_shape(i)))
            # Graph input keeps NHWC (the LiteRT interface); inside, rank-4 tensors are NCHW.
            perm = {"perm": NHWC_TO_NCHW} if len(self.shape(i)) == 4 else {}
            self.node("Transpose" if perm else "Identity", [name], self.value(i), **perm)
        for op in ops:
            self.CONVERTERS[self.op_name(op)](self, op)
        for i in self.g.OutputsAsNumpy():
            name = self.tensor(i).Name().decode()
            outputs.append(helper.make_tensor_value_info(name, self.io_type(i), self.io_shape(i)))
            perm = {"perm": NCHW_TO_NHWC} if len(self.shape(i)) == 4 else {}
            self.node("Transpose" if perm else "Identity", [self.value(i)], name, **perm)

        graph = helper.make_graph(self.nodes, "tflite_" + self.mode, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="zoo-tflite-onnx", producer_version="0.1")
        model.ir_version = 8  # what ORT >= 1.14 reads; helper's default may be newer than older ORT builds
        onnx.checker.check_model(model)
        return model

    def io_record(self, i):
        q = self.quant(i)
        return {"name": self.tensor(i).Name().decode(), "shape": self.io_shape(i),
                "tflite_dtype": np.dtype(self.np_type(i)).name,
                "onnx_dtype": "float32" if self.mode == "float" else np.dtype(self.np_type(i)).name,
                "scale": float(q[0][0]) if q else None, "zero_point": int(q[1][0]) if q else None}


def convert(data: bytes, mode: str = "qdq", *, dynamic_batch: bool = True, int8: str = "uint8", name: str = "the file"):
    """(onnx.ModelProto, record) for the .tflite bytes `data`; the record holds the operators and interface.

    dynamic_batch: batch dimension of inputs/outputs is symbolic ("N") instead of TFLite's 1.
    int8 (qdq mode only): "uint8" stores int8 activations and weights as uint8 with zero point
    + 128 (identical real values). ORT's x86 kernels for uint8 activations x int8 weights use
    VPMADDUBSW on CPUs without VNNI, whose int16 pair sums saturate for full-range int8 weights
    (TF2 PTQ weights use [-127, 127]): measured 95% top-1 agreement instead of 99+%. uint8 x uint8
    avoids it. "keep" writes int8 as in the .tflite (for EPs that want symmetric int8 weights).

    Raises UnsupportedOperatorError (a ConversionError) naming the operator(s) it cannot translate,
    ConversionError for a file that is not a readable TFLite flatbuffer."""
    t0 = time.perf_counter()
    try:
        conv = _Converter(data, mode, dynamic_batch, int8)
        model = conv.convert()
    except ConversionError as exc:
        raise type(exc)(f"{name}: {exc.message}", exc.hint) from None
    except UsageError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer: index errors, struct errors, bad offsets
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConversionError(f"{name} is not a readable TFLite model ({type(exc).__name__}: {first})") from None
    g = conv.g
    record = {
        "mode": mode, "int8": int8 if mode == "qdq" else None, "opset": OPSET, "seconds": round(time.perf_counter() - t0, 3),
        "tflite_ops": dict(sorted(conv.op_counts.items())),
        "onnx_ops": dict(sorted(Counter(n.op_type for n in model.graph.node).items())),
        "inputs": [conv.io_record(i) for i in g.InputsAsNumpy()],
        "outputs": [conv.io_record(i) for i in g.OutputsAsNumpy()],
    }
    return model, record
