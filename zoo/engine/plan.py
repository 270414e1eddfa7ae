"""What a sweep measures: patterns (ids, aliases, wildcards) to cards, duplicates collapsed; and which model
file a bench times (the card's weights, or its architecture with synthetic weights)."""
from __future__ import annotations

from pathlib import Path

from zoo.artifacts.choose import choose, local_model, runs_here, synthetic_model
from zoo.errors import (
    CardNotFoundError,
    DownloadError,
    IntegrityError,
    OfflineError,
    UnsupportedArtifactError,
    UsageError,
)

UNAVAILABLE = (DownloadError, OfflineError, IntegrityError)  # the weights cannot be had here


def expand(registry, patterns: list[str]) -> tuple[list, list[str]]:
    """(entries in the order first matched, notes). A pattern with a wildcard matches every card it fits; any
    other resolves like a card reference (the alias rule). A pattern matching nothing fails the whole command
    before anything is measured."""
    if not patterns:
        raise UsageError("give at least one card id, alias or wildcard", "e.g. zoo eval 'coral/*' --data DIR")
    entries, seen, notes = [], set(), []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            matched = registry.find(pattern)
            if not matched:
                raise CardNotFoundError(f"no card matches {pattern!r}", registry.suggest(pattern))
        else:
            entry, note = registry.resolve(pattern, runs_here)
            matched = [entry]
            if note:
                notes.append(note)
        fresh = [e for e in matched if e.id not in seen]
        if len(fresh) < len(matched):
            notes.append(f"{pattern!r}: {len(matched) - len(fresh)} card(s) already in the sweep, measured once")
        seen.update(e.id for e in fresh)
        entries += fresh
    return entries, notes


def bench_model(card: dict, *, synthetic: bool, runtime: str | None, target: dict | None,
                mirrors) -> tuple[dict | None, Path, bool, str | None]:
    """(artifact, model file, synthetic, note) to time: the card's weights, or its architecture with random
    weights (synthetic) when it has none or they cannot be had. Raises UnsupportedArtifactError for a card
    that cannot run here at all (an RDK .bin without an RDK target)."""
    if synthetic:
        return None, synthetic_model(card), True, None
    try:
        artifact = choose(card, runtime=runtime, target=target)
        return artifact, local_model(card, artifact, mirrors=mirrors), False, None
    except UnsupportedArtifactError as error:
        artifacts = card.get("artifacts", [])
        if artifacts and all(a["runtime"] == "rdk-bpu" for a in artifacts) or runtime or target:
            raise
        why = error.one_line()
    except UNAVAILABLE as error:
        if target and target["runtime"] != "onnxruntime":
            raise
        why = f"weights unavailable: {error.one_line()}"
    return None, synthetic_model(card), True, f"synthetic weights ({why})"


def float_parents(registry, entries: list) -> dict[str, dict]:
    """card id -> its float parent's card, for each quantized card (derived_from.calibration) whose parent the
    registry holds: eval and bench measure the parent beside it."""
    from zoo.measure.quantize import calibration_of

    parents = {}
    for entry in entries:
        if calibration_of(entry.card):
            wanted = entry.card["derived_from"]["id"]
            try:
                parent, _ = registry.resolve(wanted)
            except CardNotFoundError:
                continue  # its parent was removed: measured alone
            if parent.id.lower() == wanted.lower():  # the card itself, never another one an alias picked
                parents[entry.id] = parent.card
    return parents
