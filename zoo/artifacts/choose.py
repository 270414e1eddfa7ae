"""Which artifact of a card runs here (or on a target), and its local model file: the one place that decides.

The table of runtimes says, for each runtime zoo drives on a host: the model-file suffixes it loads,
the Python package whose presence means it is installed, and its loader (the class in
zoo.measure.runtimes that opens a file; named, not imported, so this stage never imports a later one).
Native weights (pth, safetensors, pdparams, MindSpore ckpt) run on ONNX Runtime after conversion; a .tflite
model runs on LiteRT, or on ONNX Runtime (`--runtime onnxruntime`, an ONNX target board) as its QDQ conversion.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from zoo.artifacts import fetch
from zoo.artifacts.convert import convert_card, source_sha256
from zoo.artifacts.hashes import file_sha256
from zoo.cards.formats import CONVERTIBLE_FORMATS
from zoo.errors import TargetError, UnsupportedArtifactError, UsageError


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    suffixes: tuple[str, ...]   # model files it loads
    package: str                # importable when the runtime is installed
    loader: str                 # "module:Class" of the zoo.measure.runtimes class that opens a file
    install_hint: str
    label: str                  # its name in messages

    def installed(self) -> bool:
        try:
            return find_spec(self.package) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules (blocked)
            return False


def runtimes() -> dict[str, RuntimeSpec]:
    """The runtimes zoo runs on a host, by name (built when asked: installing one mid-session is seen)."""
    return {
        "onnxruntime": RuntimeSpec("onnxruntime", (".onnx",), "onnxruntime",
                                   "zoo.measure.runtimes.onnxruntime:OnnxRuntime", "pip install onnxruntime", "ONNX Runtime"),
        "litert": RuntimeSpec("litert", (".tflite",), "ai_edge_litert",
                              "zoo.measure.runtimes.litert:LiteRtRuntime", "pip install 'zoo[litert]'", "LiteRT"),
    }


def runtime_for_path(path: Path) -> RuntimeSpec:
    """The runtime that loads this model file, from its suffix; UnsupportedArtifactError when none does."""
    suffix = Path(path).suffix.lower()
    for spec in runtimes().values():
        if suffix in spec.suffixes:
            return spec
    raise UnsupportedArtifactError(f"{Path(path).name}: no runtime on this host runs {suffix or 'this'} files",
                                   "zoo runs .onnx (ONNX Runtime) and .tflite (LiteRT) models")


def model_suffix(artifact: dict) -> str | None:
    """The suffix of the model file a runtime loads from this artifact (itself, its archive member, or the
    ONNX converted from native weights); None when no host runtime loads it."""
    if artifact["format"] in CONVERTIBLE_FORMATS or artifact.get("runs_as") == "onnx":
        return ".onnx"
    loaded = (artifact.get("member") or artifact["file"]).lower()
    return next((s for spec in runtimes().values() for s in spec.suffixes if loaded.endswith(s)), None)


def runs_here(artifact: dict) -> bool:
    """Whether this host can run the artifact: the runtime that loads its model file is installed."""
    if artifact["runtime"] not in runtimes():
        return False
    suffix = model_suffix(artifact)
    if suffix == ".tflite" and runtimes()["onnxruntime"].installed():
        return True  # LiteRT runs it, or ONNX Runtime its QDQ conversion
    spec = next((s for s in runtimes().values() if suffix in s.suffixes), None)
    return spec is not None and spec.installed()


def choose(card: dict, runtime: str | None = None, target: dict | None = None) -> dict:
    """The card's artifact to run: on a target board (its runtime decides), with a named host runtime, or
    by default its first artifact that a host runtime loads, else its first native weights (converted)."""
    artifacts = card.get("artifacts", [])
    if target is not None:
        return _for_target(card, target)
    if runtime is not None:
        spec = runtimes().get(runtime)
        if spec is None:
            raise UsageError(f"unknown --runtime {runtime!r}",
                             f"Use {' or '.join(runtimes())} (or --target for a board)")
        for artifact in artifacts:
            if model_suffix(artifact) in spec.suffixes:
                return artifact
        if runtime == "onnxruntime":
            tflite = next((a for a in artifacts if model_suffix(a) == ".tflite"), None)
            if tflite is not None:
                return as_onnx(tflite)
        raise UnsupportedArtifactError(f"{card['id']} has no artifact that {runtime} runs",
                                       "Leave out --runtime, or use --synthetic-weights for an ONNX model")
    if not artifacts:
        raise UnsupportedArtifactError(f"{card['id']} has no artifact (architecture only)",
                                       "Pick a card with weights (`zoo list`), or use --synthetic-weights")
    for artifact in artifacts:
        if artifact["format"] not in CONVERTIBLE_FORMATS and model_suffix(artifact):
            if model_suffix(artifact) == ".tflite" and not runtimes()["litert"].installed():
                return as_onnx(artifact)  # no LiteRT here: ONNX Runtime runs its QDQ conversion
            return artifact
    formats = ", ".join(sorted({a["format"] for a in artifacts}))
    native = next((a for a in artifacts if a["format"] in CONVERTIBLE_FORMATS), None)
    if native is not None:
        return native
    tflite = next((a for a in artifacts if model_suffix(a) == ".tflite"), None)
    if tflite is not None:  # LiteRT is not installed here: ONNX Runtime runs its QDQ conversion
        return as_onnx(tflite)
    if all(a["runtime"] == "rdk-bpu" for a in artifacts):
        raise UnsupportedArtifactError(f"{card['id']} runs on an RDK BPU only, not on this host",
                                       "Add the board with `zoo target add NAME --ssh USER@HOST --runtime rdk-bpu`, "
                                       "then `zoo bench ID --target NAME`")
    names = ", ".join(sorted({a["runtime"] for a in artifacts}))
    raise UnsupportedArtifactError(f"{card['id']}: its artifact ({formats}) runs only on {names}, not on this host")


def _for_target(card: dict, target: dict) -> dict:
    artifacts = card.get("artifacts", [])
    if target["runtime"] == "rdk-bpu":
        artifact = next((a for a in artifacts if a["runtime"] == "rdk-bpu"), None)
        if artifact is None:
            raise TargetError(f"{card['id']} has no artifact for the RDK BPU (target {target['name']})",
                              "Pick an rdk/ card (`zoo list --source rdk`)")
        return artifact
    artifact = choose(card)
    if model_suffix(artifact) == ".tflite":
        return as_onnx(artifact)  # the board runs the QDQ ONNX converted from it (same uint8 interface)
    if model_suffix(artifact) != ".onnx":
        raise TargetError(f"{card['id']}: target {target['name']} runs ONNX models; this card's artifact is "
                          f"{artifact['format']}", "Use --synthetic-weights, or a card with an .onnx artifact")
    return artifact


def as_onnx(artifact: dict) -> dict:
    """A .tflite artifact to be run as the QDQ ONNX converted from it (`local_model` converts it)."""
    return {**artifact, "runs_as": "onnx"}


def local_model(card: dict, artifact: dict, *, mirrors: list[str] | None = None, progress=None) -> Path:
    """The verified local model file of `artifact`: the file itself, its member when it is an archive
    (unpacked after it verified), or the ONNX converted from native weights or from a .tflite (cached)."""
    if artifact["format"] in CONVERTIBLE_FORMATS or artifact.get("runs_as") == "onnx":
        plain = {k: v for k, v in artifact.items() if k != "runs_as"}
        return Path(convert_card(card, artifact=plain, mirrors=mirrors, progress=progress)["path"])
    return fetch.artifact_member(card, artifact, mirrors=mirrors, progress=progress)


def synthetic_model(card: dict) -> Path:
    """The card's architecture (its own layer plan) with random weights as ONNX, cached under ZOO_HOME."""
    return Path(convert_card(card, synthetic=True)["path"])


def run_sha256(model_path: Path, model_sha256: str | None = None) -> str:
    """The artifact sha256 a run records: the card's native file for a converted ONNX, else the file itself
    (`model_sha256` when the caller hashed it already)."""

    return source_sha256(model_path) or model_sha256 or file_sha256(model_path)
