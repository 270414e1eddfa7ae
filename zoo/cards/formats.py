"""The vocabulary cards share with the code that reads them: formats, runtimes, metrics.

Kept free of pydantic so that fast paths (`zoo list`) can use it.
"""
ARTIFACT_FORMATS = (
    "onnx", "tflite", "pth", "safetensors", "pdparams", "paddle-inference-tar", "mindspore-ckpt",
    "rdk-bin", "rdk-hbm", "tgz", "keras-h5", "ambarella-bin",
)
# Native weights that zoo turns into ONNX before running (timm's MobileNetV2 as the canonical architecture).
CONVERTIBLE_FORMATS = frozenset({"pth", "safetensors", "pdparams", "mindspore-ckpt"})
ARCHIVE_FORMATS = frozenset({"tgz", "paddle-inference-tar"})
PRECISIONS = ("fp32", "fp16", "int8", "uint8")
RUNTIMES = (
    "onnxruntime", "litert", "rdk-bpu", "edgetpu", "ambarella-cavalry", "stm32-npu",
    "paddle-inference", "keras", "pytorch",
)
METRIC_UNITS = {"top1": "%", "top5": "%", "latency_ms": "ms", "fps": "images/s"}
