"""ONNX Runtime: any installed execution provider, dynamic or fixed batch."""
from __future__ import annotations

from pathlib import Path

from zoo.errors import UnsupportedArtifactError, UsageError
from zoo.measure.runtimes.base import Runtime

DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


def resolve_provider(requested: str | None) -> str:
    """The full provider name for 'cpu', 'cuda', 'CUDAExecutionProvider', ...; UsageError if not installed."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested is None:
        return "CPUExecutionProvider"
    wanted = requested.lower().removesuffix("executionprovider")
    for name in available:
        if name.lower().removesuffix("executionprovider") == wanted:
            return name
    raise UsageError(f"execution provider {requested!r} is not available in this onnxruntime",
                     f"Installed: {', '.join(available)}; install the matching onnxruntime package for others")


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called from several threads at once

    @staticmethod
    def installed_version() -> str:
        import onnxruntime  # the module's own version: onnxruntime-gpu installs under another distribution name

        return onnxruntime.__version__

    def __init__(self, path: Path, *, provider: str | None = None, threads: int | None = None, spinning: bool = True):
        import onnxruntime as ort

        self.provider = resolve_provider(provider)
        options = ort.SessionOptions()
        options.log_severity_level = 4  # fatal only: its warnings print C++ source locations, its errors come back as
        # exceptions (one line per card); logged too, they were a second, raw line
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [self.provider] + (["CPUExecutionProvider"] if self.provider != "CPUExecutionProvider" else [])
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own unrelated exception classes
            raise UnsupportedArtifactError(f"{path.name}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})",
                                           "Check the file (zoo fetch --force re-downloads it) or report the card") from None
        # The provider that took the graph: an accelerator that failed to load falls back to the CPU, silently.
        self.provider = self.session.get_providers()[0]
        self.version = self.installed_version()
        self.threads = threads
        meta = self.session.get_inputs()[0]
        self.input_name = meta.name
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in meta.shape)
        self.input_dtype = DTYPES.get(meta.type, meta.type)
        self.max_batch = self.input_shape[0] if self.input_shape else None

    def run(self, batch):
        return self.session.run(None, {self.input_name: batch})[0]

    def describe(self) -> dict:
        described = super().describe()
        if self.provider != "CPUExecutionProvider":  # the accelerator itself, read once from its driver
            if not hasattr(self, "_accelerator"):
                from zoo.measure.machine import accelerator

                options = self.session.get_provider_options().get(self.provider, {})
                self._accelerator = accelerator(self.provider, int(options.get("device_id", 0) or 0))
            described["accelerator"] = self._accelerator
        return described
