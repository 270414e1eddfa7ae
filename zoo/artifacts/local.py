"""An artifact's verified local model file: the file itself, its archive member, or the ONNX converted from it;
and which sha256 a run on that file records."""
from __future__ import annotations

from pathlib import Path

from zoo.artifacts import fetch
from zoo.artifacts.convert import convert_card, source_sha256
from zoo.artifacts.hashes import file_sha256
from zoo.cards.formats import CONVERTIBLE_FORMATS


def as_onnx(artifact: dict) -> dict:
    """A .tflite artifact to be run as the QDQ ONNX converted from it (`local_model` converts it)."""
    return {**artifact, "runs_as": "onnx"}


def converted(artifact: dict) -> bool:
    """Whether the model file run from this artifact is the ONNX zoo converts from it."""
    return artifact["format"] in CONVERTIBLE_FORMATS or artifact.get("runs_as") == "onnx"


def local_model(card: dict, artifact: dict, *, mirrors: list[str] | None = None, progress=None) -> Path:
    """The verified local model file of `artifact`: the file itself, its member when it is an archive
    (unpacked after it verified), or the ONNX converted from native weights or from a .tflite (cached)."""
    if converted(artifact):
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
