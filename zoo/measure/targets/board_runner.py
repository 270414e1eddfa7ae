"""The runner copied to a target board and run there with the board's own Python, numpy and runtime.

Standalone on purpose: the board has only its runtime and numpy, so this file imports nothing from zoo but
machine.py (standard library only), which is copied beside it; the board's facts and its clocks and
temperatures are then read as the host's are. One runner process holds one model open for as long as the host
needs it (every batch of an eval, every round of a bench), over one SSH connection:

    python3 board_runner.py MODEL --runtime onnxruntime|litert [--threads N] [--provider cpu]
    python3 board_runner.py --conditions        # the board's clocks, governor and temperatures now, as JSON

Protocol, stdin to stdout, one binary frame per message: two big-endian uint32 (the JSON header's length, the
payload's length), the header, the payload. The runner speaks first, then answers each request in order:

    (start)                                  -> {ready, runtime, version, provider, threads, input, output,
                                                 machine, conditions, load_ms, pid} or {error, detail}
    {op: run, shape, dtype} + packed batch   -> {shape, dtype} + the packed output (pack(): compressed)
    {op: time, batch, warmup, iters, seconds} -> {latencies_ms, first_inference_ms}
    {op: conditions}                         -> {conditions}
    {op: close}                              -> {conditions}, and the runner exits
    (a request that fails)                   -> {error, detail}

Every answer carries `peak_rss_bytes` (the runner's peak resident memory so far), `rss_before_load_bytes` and
`cpu_s` (the CPU seconds the runner has used: zoo's own share of the board's CPU time).

Backends: a class with `name`, `version`, `provider`, `input` {shape, dtype, quant}, `output` {quant} and
`run(batch) -> first output`, listed in BACKENDS. ONNX Runtime and LiteRT ship; an RDK BPU backend (the board's
Python inference API, NV12 input) would be one more class here (README: "Accuracy on a target board").
"""
import argparse
import json
import os
import resource
import struct
import sys
import time
import zlib

HEADER = struct.Struct(">II")
ONNX_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
               "tensor(int8)": "int8"}


# ---------------------------------------------------------------- frames (the host imports these too)

def write_frame(stream, header, payload=b""):
    body = json.dumps(header).encode()
    stream.write(HEADER.pack(len(body), len(payload)) + body + payload)
    stream.flush()


def read_exact(stream, size):
    """`size` bytes from a blocking stream; EOFError when it ends first."""
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the stream ended mid-frame" if chunks or left != size else "the stream ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream):
    head, size = HEADER.unpack(read_exact(stream, HEADER.size))
    header = json.loads(read_exact(stream, head).decode())
    return header, read_exact(stream, size) if size else b""


def pack(array, level=1):
    """({shape, dtype}, bytes) of an array: its bytes regrouped by position within each element (the bytes of
    float32 exponents then compress; 15% fewer bytes than plain zlib on image tensors, in less time), then
    zlib at level 1 (most of zlib's gain at a fraction of its CPU time). Never pickled."""
    import numpy as np

    array = np.ascontiguousarray(array)
    grouped = array.reshape(-1).view(np.uint8).reshape(-1, array.itemsize).T.tobytes()
    return {"shape": list(array.shape), "dtype": array.dtype.str}, zlib.compress(grouped, level)


def unpack(meta, payload):
    import numpy as np

    dtype = np.dtype(meta["dtype"])
    if dtype.kind not in "fiub":
        raise ValueError("not a numeric tensor: %s" % meta["dtype"])
    grouped = np.frombuffer(zlib.decompress(payload), dtype=np.uint8).reshape(dtype.itemsize, -1)
    return grouped.T.copy().view(dtype).reshape(meta["shape"])


# ---------------------------------------------------------------- runtimes on the board

class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path, threads, provider):
        import onnxruntime as ort

        wanted = (provider or "cpu").lower().replace("executionprovider", "")
        names = [p for p in ort.get_available_providers() if p.lower().replace("executionprovider", "") == wanted]
        if not names:
            raise LookupError("execution provider %r is not in this onnxruntime (%s)"
                              % (provider, ", ".join(ort.get_available_providers())))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=names)
        self.version, self.provider = ort.__version__, self.session.get_providers()[0]
        meta = self.session.get_inputs()[0]
        self.input_name = meta.name
        self.input = {"shape": [d if isinstance(d, int) and d > 0 else None for d in meta.shape],
                      "dtype": ONNX_DTYPES.get(meta.type, meta.type), "quant": None}
        self.output = {"quant": None}

    def run(self, batch):
        return self.session.run(None, {self.input_name: batch})[0]


class LiteRtBackend:
    """LiteRT (ai-edge-litert), or the older tflite-runtime a board may have; one image per invoke, as on the
    host (XNNPACK cannot resize most quantized graphs)."""

    name = "litert"
    provider = "cpu"

    def __init__(self, path, threads, provider):
        from importlib.metadata import version

        try:
            from ai_edge_litert.interpreter import Interpreter
            self.version = version("ai-edge-litert")
        except ImportError:
            from tflite_runtime.interpreter import Interpreter
            self.version = "tflite-runtime " + version("tflite-runtime")
        self.interpreter = Interpreter(model_path=path, num_threads=threads or os.cpu_count() or 1)
        self.interpreter.allocate_tensors()
        source, sink = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self.input_index, self.output_index = source["index"], sink["index"]
        self.input = {"shape": [int(d) if d > 0 else None for d in source["shape_signature"]],
                      "dtype": source["dtype"].__name__, "quant": _quant(source)}
        self.input["shape"][0] = None  # run() takes any batch, one image at a time
        self.output = {"quant": _quant(sink)}

    def run(self, batch):
        import numpy as np

        outputs = []
        for x in batch:
            self.interpreter.set_tensor(self.input_index, x[None])
            self.interpreter.invoke()
            outputs.append(self.interpreter.get_tensor(self.output_index)[0].copy())
        return np.stack(outputs)


def _quant(detail):
    scale, zero_point = detail["quantization"]
    return [float(scale), int(zero_point)] if scale else None


BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "litert": LiteRtBackend}


# ---------------------------------------------------------------- serving

def _rss_now():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_seconds():
    own = os.times()
    return own.user + own.system


def _peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def random_input(model, batch):
    import numpy as np

    shape = [batch] + [d or 1 for d in model.input["shape"][1:]]
    rng = np.random.default_rng(0)
    dtype = model.input["dtype"]
    if dtype in ("uint8", "int8"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)
    return rng.random(shape, dtype=np.float32).astype(dtype)


def time_calls(model, batch, warmup, iters, seconds, state):
    """Per-call latencies in ms of model.run on a fixed-seed input, after `warmup` uncounted calls; the very
    first call of the process is timed apart (allocations, kernel choice)."""
    tensor = state.get(batch)
    if tensor is None:
        tensor = state[batch] = random_input(model, batch)
    first = None
    if not state.get("warm"):
        started = time.perf_counter()
        model.run(tensor)
        first, state["warm"] = (time.perf_counter() - started) * 1000.0, True
        warmup = max(0, warmup - 1)
    for _ in range(warmup):
        model.run(tensor)
    latencies, deadline, clock = [], time.perf_counter() + seconds, time.perf_counter
    while len(latencies) < iters or clock() < deadline:
        started = clock()
        model.run(tensor)
        latencies.append((clock() - started) * 1000.0)
    return {"latencies_ms": latencies, "first_inference_ms": first}


def serve(model, conditions, stdin, stdout, before):
    state = {}
    while True:
        try:
            request, payload = read_frame(stdin)
        except EOFError:
            return 0  # the host closed the connection
        op = request.get("op")
        try:
            if op == "run":
                answer, data = pack(model.run(unpack(request, payload)))
            elif op == "time":
                answer, data = time_calls(model, request["batch"], request["warmup"], request["iters"],
                                          request["seconds"], state), b""
            elif op in ("conditions", "close"):
                answer, data = {"conditions": conditions()}, b""
            else:
                answer, data = {"error": "bad-request", "detail": "unknown op %r" % op}, b""
        except Exception as exc:  # the runtime's own error types: reported, and the runner stays up
            answer, data = {"error": "run-failed", "detail": ("%s: %s" % (type(exc).__name__, exc))[:500]}, b""
        answer.update(peak_rss_bytes=_peak_rss(), rss_before_load_bytes=before, cpu_s=_cpu_seconds())
        write_frame(stdout, answer, data)
        if op == "close":
            return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--runtime", default="onnxruntime", choices=sorted(BACKENDS))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--provider", default="cpu")
    parser.add_argument("--conditions", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import machine  # copied beside this file; see the docstring

    facts = machine.facts
    if args.conditions:
        print(json.dumps({"conditions": machine.conditions(), "machine": facts()}))
        return 0
    # The frames own stdout: whatever a runtime prints goes to stderr instead.
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer
    before = _rss_now()
    try:
        import numpy  # noqa: F401  (every backend needs it; a board without it is told so)

        started = time.perf_counter()
        model = BACKENDS[args.runtime](args.model, args.threads, args.provider)
        load_ms = (time.perf_counter() - started) * 1000.0
    except ImportError as exc:
        write_frame(stdout, {"error": "missing-runtime", "detail": str(exc)})
        return 3
    except Exception as exc:  # the runtime's own error types
        write_frame(stdout, {"error": "cannot-load", "detail": ("%s: %s" % (type(exc).__name__, exc))[:500]})
        return 4
    write_frame(stdout, {"ready": True, "runtime": model.name, "version": model.version,
                         "provider": model.provider, "threads": args.threads or None, "input": model.input,
                         "output": model.output, "machine": facts(), "conditions": machine.conditions(),
                         "load_ms": round(load_ms, 3), "pid": os.getpid(), "cpu_s": _cpu_seconds(), "peak_rss_bytes": _peak_rss(),
                         "rss_before_load_bytes": before})
    return serve(model, machine.conditions, stdin, stdout, before)


if __name__ == "__main__":
    sys.exit(main())
