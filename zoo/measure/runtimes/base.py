"""The interface every host runtime implements (onnxruntime.py, litert.py): raw tensors in, raw outputs out."""
from __future__ import annotations


class Runtime:
    """Runs batches of raw input tensors; subclasses fill in the attributes below."""

    name: str = ""
    version: str = ""
    provider: str | None = None
    threads: int | None = None
    input_shape: tuple = ()              # None for a dynamic dimension
    input_dtype: str = ""
    input_quant: tuple[float, int] | None = None   # (scale, zero point) the model file declares
    output_quant: tuple[float, int] | None = None
    max_batch: int | None = None         # None: any batch size
    thread_safe: bool = False            # whether several threads may call run() at once

    def run(self, batch):
        """The model's first output for a batch of input tensors."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "provider": self.provider, "threads": self.threads}
