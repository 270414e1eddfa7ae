"""LiteRT (the TFLite interpreter, package ai-edge-litert) for .tflite models, batch 1.

The interpreter is not thread-safe: one instance runs in one thread. Its XNNPACK delegate
cannot reshape most quantized graphs, so batches are run image by image.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from zoo.errors import UnsupportedArtifactError
from zoo.measure.runtimes.base import Runtime


class LiteRtRuntime(Runtime):
    name = "litert"
    provider = "cpu"

    @staticmethod
    def installed_version() -> str:
        from importlib.metadata import version

        return version("ai-edge-litert")

    def __init__(self, path: Path, *, threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UnsupportedArtifactError(f"{path.name} needs LiteRT, which is not installed",
                                           "Install it with: pip install ai-edge-litert") from None
        self.threads = threads or os.cpu_count() or 1
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=self.threads)
            with _quiet_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every model
                self.interpreter.allocate_tensors()
            inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        except (ValueError, RuntimeError, IndexError) as exc:  # UnicodeDecodeError: a tensor name not in UTF-8
            raise UnsupportedArtifactError(f"{path.name}: LiteRT cannot load it ({str(exc).splitlines()[0][:200]})",
                                           "Check the file (zoo fetch --force re-downloads it) or report the card") from None
        self.version = self.installed_version()
        self.input_index, self.output_index = inp["index"], out["index"]
        self.input_shape = tuple(int(d) if d > 0 else None for d in inp["shape_signature"])
        self.input_dtype = inp["dtype"].__name__
        self.input_quant = _quant(inp)
        self.output_quant = _quant(out)
        self.max_batch = None  # run() takes any batch, one image at a time

    def run(self, batch):
        import numpy as np

        outputs = []
        for x in batch:
            self.interpreter.set_tensor(self.input_index, x[None])
            self.interpreter.invoke()
            outputs.append(self.interpreter.get_tensor(self.output_index)[0].copy())
        return np.stack(outputs)


def _quant(detail: dict) -> tuple[float, int] | None:
    scale, zero_point = detail["quantization"]
    return (float(scale), int(zero_point)) if scale else None


@contextlib.contextmanager
def _quiet_stderr():
    """The process's stderr (file descriptor 2, where LiteRT's C++ logs) sent to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
