"""zoo: a registry of validated MobileNetV2 model cards, and the tools to compare them.

The public Python API mirrors the CLI. Heavy modules are imported inside the
functions that need them, so `import zoo` stays cheap.
"""
from __future__ import annotations

from pathlib import Path

from .errors import ZooError

__version__ = "0.1.0"
__all__ = ["ZooError", "list_cards", "get", "resolve", "compare", "plot", "lint_cards", "build_registry",
           "card_schema", "fetch", "convert", "evaluate", "runs", "bench", "inspect"]


def _registry(registries: list[Path] | None = None):
    from .registry import load_registry

    return load_registry(registries)


def list_cards(pattern: str | None = None, *, source: str | None = None, width: float | None = None,
               resolution: int | None = None, fmt: str | None = None, sort: str = "id",
               registries: list[Path] | None = None) -> list[dict]:
    """Summaries of the matching cards (the records `zoo list --json` prints)."""
    from .summary import sort_summaries, summarize

    entries = _registry(registries).find(pattern, source=source, width=width, resolution=resolution, fmt=fmt,
                                         copy_cards=False)  # summarize() builds new records
    return sort_summaries([summarize(e) for e in entries], sort)


def resolve(ref: str, *, registries: list[Path] | None = None):
    """(Entry, note) for an id, `NAME@source`, alias or upstream name; note says why when several matched."""
    return _registry(registries).resolve(ref)


def get(ref: str, *, registries: list[Path] | None = None) -> dict:
    """A copy of one card, resolved like `resolve`."""
    return resolve(ref, registries=registries)[0].card


def fetch(refs: list[str] | str, **options) -> list[dict]:
    """Download, verify and cache cards' artifacts; one record per file (see zoo.download.fetch)."""
    from .download import fetch as fetch_

    return fetch_(refs, **options)


def compare(patterns: list[str] | None = None, metric: str = "accuracy", *, device: str | None = None,
            top: int | None = None, pareto: bool = False, measured: bool = True,
            registries: list[Path] | None = None):
    """A pandas DataFrame ranking the matching cards on `metric`, claims beside measurements (see zoo.ranking).

    device: None ranks latency/fps on this host's measurements, else on claims; "host" or a target name
    ranks on measurements there only; other text keeps claims and runs whose device contains it.
    measured=False ignores the results store.
    """
    from .errors import CardNotFoundError, UsageError
    from .ranking import compare as rank

    if device and metric not in ("latency", "fps"):
        raise UsageError("--device applies to latency and fps only", "Use --metric latency or --metric fps with --device")
    registry = _registry(registries)
    if patterns:
        seen, entries = set(), []
        for pattern in patterns:
            matched = registry.find(pattern)
            if not matched:
                raise CardNotFoundError(f"no card matches {pattern!r}", registry.suggest(pattern))
            entries += [e for e in matched if not (e.id in seen or seen.add(e.id))]
    else:
        entries = registry.entries()
    evals, benches, use_claims, claim_device = {}, {}, True, device
    if measured:
        from . import store, targets

        host = store.machine()
        runs = store.list_runs(kind="bench")
        if device is None or device.lower() == "host":
            runs = [r for r in runs if r["machine_fingerprint"] == host["fingerprint"] and r["device"] == host["device"]]
            use_claims, claim_device = device is None, None
        elif device in {t["name"] for t in targets.ls()}:
            runs = [r for r in runs if r["device"] == device]
            use_claims, claim_device = False, None
        else:
            runs = [r for r in runs if device.lower() in r["device"].lower()]
        benches, evals = _latest_by_card(entries, runs), _latest_by_card(entries, store.list_runs(kind="eval"))
    return rank(entries, metric, claim_device=claim_device, use_claims=use_claims, top=top, pareto=pareto,
                evals=evals, benches=benches)


def _latest_by_card(entries, runs: list[dict]) -> dict[str, dict]:
    """Each card's newest run (runs come newest first); a card with none borrows the newest run of a
    file it publishes with a full sha256, since a measurement belongs to the bytes (Axis republishes coral's)."""
    latest, by_sha = {}, {}
    for run in runs:
        latest.setdefault(run["card_id"], run)
        if not (run.get("metrics") or {}).get("synthetic_weights"):
            by_sha.setdefault(run["artifact_sha256"], run)
    for entry in entries:
        if entry.id not in latest:
            for artifact in entry.card.get("artifacts", []):
                if artifact.get("sha256") in by_sha:
                    latest[entry.id] = by_sha[artifact["sha256"]]
                    break
    return latest


def plot(df, metric: str, path: Path) -> Path:
    """Draw a `compare` table as accuracy against `metric` in a PNG (see zoo.ranking.plot)."""
    from .ranking import plot as draw

    draw(df, metric, path)
    return Path(path)


def lint_cards(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """Validate card files: (valid cards, one problem per line naming file and field)."""
    from .registry import lint

    return lint(paths)


def build_registry(cards_dir: Path, out: Path) -> dict:
    """Validate cards_dir and write its index (every card plus its sha256) to `out`."""
    from .registry import build_index, write_index

    index = build_index(cards_dir)
    write_index(index, out)
    return index


def card_schema() -> dict:
    """The card's JSON Schema."""
    from .cards import json_schema

    return json_schema()


def convert(ref: str | dict, **options) -> dict:
    """A card's native weights as ONNX through timm's MobileNetV2, verified and cached (see zoo.converter.convert_card).

    `ref`: a card reference or a card dict. Options: artifact, output, synthetic, mirrors, force, registries.
    """
    from .converter import convert_card

    registries = options.pop("registries", None)
    card = ref if isinstance(ref, dict) else get(ref, registries=registries)
    return convert_card(card, **options)


def evaluate(ref: str, data: Path, **options) -> dict:
    """Top-1/top-5 of a card's model on a local validation set, as its source preprocesses; stored as a run.

    Options and result keys: zoo.accuracy.evaluate.
    """
    from .accuracy import evaluate as evaluate_

    return evaluate_(ref, data, **options)


def runs(*, kind: str | None = None, card: str | None = None, limit: int | None = None) -> list[dict]:
    """Stored eval and bench runs, newest first (the records `zoo runs --json` prints)."""
    from .store import list_runs

    return list_runs(kind=kind, card_id=card, limit=limit)


def bench(card: dict, **options) -> dict:
    """Latency of a card's model on this host or a target board (see zoo.latency.bench_card); the run is stored."""
    from .latency import bench_card

    return bench_card(card, **options)


def inspect(ref: str, **options) -> dict:
    """Inputs, outputs, MACs, params and size of a model file or a card's model (see zoo.complexity.inspect)."""
    from .complexity import inspect as count

    return count(ref, **options)
