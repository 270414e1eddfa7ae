"""Which artifact of a card runs here (or on a target board): the one place that decides, by the runtime table
(zoo.measure.runtimes.RUNTIMES).

Native weights (pth, safetensors, pdparams, MindSpore ckpt) run on ONNX Runtime after conversion; a .tflite
model runs on LiteRT, or on ONNX Runtime (`--runtime onnxruntime`, an ONNX target board) as its QDQ conversion.
"""
from __future__ import annotations

from pathlib import Path

from zoo.artifacts.local import as_onnx, converted, local_model, synthetic_model
from zoo.errors import (DownloadError, IntegrityError, OfflineError, TargetCannotRunError, UnsupportedArtifactError,
                        UsageError, brief)
from zoo.measure.runtimes import RUNTIMES

QUANTIZED = ("int8", "uint8")
UNAVAILABLE = (DownloadError, OfflineError, IntegrityError)  # the weights cannot be had here


def unavailable(error: Exception, file: str | None = None) -> str:
    """Why a card's weights cannot be had, in a few words for its line in a sweep (the download's own error lists
    every URL tried: `zoo fetch ID` prints it; its hint is the sweep summary's)."""
    why = ("failed verification" if isinstance(error, IntegrityError) else
           "not cached, and zoo is offline" if isinstance(error, OfflineError) else "could not be downloaded")
    return f"{file or 'its weights'} {why}"


def model_suffix(artifact: dict) -> str | None:
    """The suffix of the model file a runtime loads from this artifact (itself, its archive member, or the
    ONNX converted from native weights); None when no host runtime loads it."""
    if converted(artifact):
        return ".onnx"
    loaded = (artifact.get("member") or artifact["file"]).lower()
    return next((s for spec in RUNTIMES.values() for s in spec.suffixes if loaded.endswith(s)), None)


def runs_here(artifact: dict) -> bool:
    """Whether this host can run the artifact: the runtime that loads its model file is installed."""
    if artifact["runtime"] not in RUNTIMES:
        return False
    suffix = model_suffix(artifact)
    if suffix == ".tflite" and RUNTIMES["onnxruntime"].installed():
        return True  # LiteRT runs it, or ONNX Runtime its QDQ conversion
    spec = next((s for s in RUNTIMES.values() if suffix in s.suffixes), None)
    return spec is not None and spec.installed()


def choose(card: dict, runtime: str | None = None, target: dict | None = None) -> dict:
    """The card's artifact to run: on a target board (its runtime decides; on an ONNX Runtime board, `runtime`
    litert runs a .tflite as it is), with a named host runtime, or by default its first artifact that a host
    runtime loads, else its first native weights (converted)."""
    artifacts = card.get("artifacts", [])
    if target is not None:
        if board_runtime(target, runtime) == "litert":
            return choose(card, runtime="litert")
        return _for_target(card, target)
    if runtime is not None:
        spec = RUNTIMES.get(runtime)
        if spec is None:
            raise UsageError(f"unknown --runtime {runtime!r}",
                             f"Use {' or '.join(RUNTIMES)} (or --target for a board)")
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
        if not converted(artifact) and model_suffix(artifact):
            if model_suffix(artifact) == ".tflite" and not RUNTIMES["litert"].installed():
                return as_onnx(artifact)  # no LiteRT here: ONNX Runtime runs its QDQ conversion
            return artifact
    formats = ", ".join(sorted({a["format"] for a in artifacts}))
    native = next((a for a in artifacts if converted(a)), None)
    if native is not None:
        return native
    if all(a["runtime"] == "rdk-bpu" for a in artifacts):
        raise UnsupportedArtifactError(f"{card['id']} runs on an RDK BPU only, not on this host",
                                       "Add the board with `zoo target add NAME --ssh USER@HOST --runtime rdk-bpu`, "
                                       "then `zoo bench ID --target NAME`")
    names = ", ".join(sorted({a["runtime"] for a in artifacts}))
    raise UnsupportedArtifactError(f"{card['id']}: its artifact ({formats}) runs only on {names}, not on this host")


def board_runtime(target: dict, runtime: str | None) -> str:
    """The runtime a board runs a card on: its own, or `runtime` litert (a .tflite as it is) on an ONNX Runtime
    board; any other --runtime with --target is a UsageError."""
    if runtime in (None, target["runtime"]):
        return target["runtime"]
    if target["runtime"] == "onnxruntime" and runtime == "litert":
        return runtime
    runs = "onnxruntime, or litert for a .tflite" if target["runtime"] == "onnxruntime" else target["runtime"]
    raise UsageError(f"--runtime {runtime} with --target {target['name']}: that board runs {runs}")


def _for_target(card: dict, target: dict) -> dict:
    artifacts = card.get("artifacts", [])
    if target["runtime"] == "rdk-bpu":
        artifact = next((a for a in artifacts if a["runtime"] == "rdk-bpu"), None)
        if artifact is None:
            raise TargetCannotRunError(f"{card['id']} has no artifact for the RDK BPU (target {target['name']})",
                              "Pick an rdk/ card (`zoo list --source rdk`)")
        return artifact
    artifact = choose(card)
    if model_suffix(artifact) == ".tflite":
        return as_onnx(artifact)  # the board runs the QDQ ONNX converted from it (same uint8 interface)
    if model_suffix(artifact) != ".onnx":
        raise TargetCannotRunError(f"{card['id']}: target {target['name']} runs ONNX models; this card's artifact "
                                   f"is {artifact['format']}", "Use --synthetic-weights, or a card with an .onnx artifact")
    return artifact


def quantized_only(card: dict) -> bool:
    """Whether every artifact of the card is an integer model (an fp32 model is no stand-in for it)."""
    artifacts = card.get("artifacts", [])
    return bool(artifacts) and all(a.get("precision") in QUANTIZED for a in artifacts)


def model_to_time(card: dict, *, synthetic: bool = False, runtime: str | None = None, target: dict | None = None,
                  mirrors: list[str] | None = None) -> tuple[dict | None, Path, bool, str | None]:
    """(artifact, model file, synthetic, note): the card's weights, or its architecture with random weights
    (synthetic) when asked, or when it has none or they cannot be had. Raises UnsupportedArtifactError for a
    card that cannot run here at all (an RDK .bin without an RDK target), and for an int8 card whose int8 file
    cannot be had (timing an fp32 stand-in would put it on the wrong footing)."""
    if synthetic:
        if quantized_only(card):
            raise UnsupportedArtifactError(f"{card['id']} is an int8 model: synthetic weights would time fp32",
                                           "Time it with its own file (leave out --synthetic-weights)")
        return None, synthetic_model(card), True, None
    try:
        artifact = choose(card, runtime=runtime, target=target)
        return artifact, local_model(card, artifact, mirrors=mirrors), False, None
    except UnsupportedArtifactError as error:
        artifacts = card.get("artifacts", [])
        if artifacts and all(a["runtime"] == "rdk-bpu" for a in artifacts) or runtime or target:
            raise
        why = error.message
    except UNAVAILABLE as error:
        if target and target["runtime"] != "onnxruntime":
            raise
        why = unavailable(error, artifact["file"])
    if quantized_only(card):
        raise UnsupportedArtifactError(f"{card['id']}: no int8 file to time ({why})",
                                       "An int8 card is timed with its own file only: fetch it (zoo fetch ID)")
    return None, synthetic_model(card), True, f"synthetic weights: {brief(why, 120)}"
