"""zoo: a registry of validated MobileNetV2 model cards, and the tools to compare them.

The public Python API mirrors the CLI. Heavy modules are imported inside the
functions that need them, so `import zoo` stays cheap.
"""
from __future__ import annotations

from pathlib import Path

from .errors import ZooError

__version__ = "0.1.0"
__all__ = ["ZooError", "list_cards", "get", "resolve", "compare", "lint_cards", "build_registry", "card_schema"]


def _registry(registries: list[Path] | None = None):
    from .registry import load_registry

    return load_registry(registries)


def list_cards(pattern: str | None = None, *, source: str | None = None, width: float | None = None,
               resolution: int | None = None, fmt: str | None = None, sort: str = "id",
               registries: list[Path] | None = None) -> list[dict]:
    """Summaries of the matching cards (the records `zoo list --json` prints)."""
    from .summary import sort_summaries, summarize

    entries = _registry(registries).find(pattern, source=source, width=width, resolution=resolution, fmt=fmt)
    return sort_summaries([summarize(e) for e in entries], sort)


def resolve(ref: str, *, registries: list[Path] | None = None):
    """(Entry, note) for an id, `NAME@source`, alias or upstream name; note says why when several matched."""
    return _registry(registries).resolve(ref)


def get(ref: str, *, registries: list[Path] | None = None) -> dict:
    """A copy of one card, resolved like `resolve`."""
    return resolve(ref, registries=registries)[0].card


def compare(patterns: list[str] | None = None, metric: str = "accuracy", *, device: str | None = None,
            top: int | None = None, pareto: bool = False, registries: list[Path] | None = None):
    """A pandas DataFrame ranking the matching cards on `metric` (see zoo.ranking)."""
    from .ranking import compare as rank

    registry = _registry(registries)
    if patterns:
        seen, entries = set(), []
        for pattern in patterns:
            matched = registry.find(pattern)
            if not matched:
                from .errors import CardNotFoundError

                raise CardNotFoundError(f"no card matches {pattern!r}", registry.suggest(pattern))
            entries += [e for e in matched if not (e.id in seen or seen.add(e.id))]
    else:
        entries = registry.entries()
    return rank(entries, metric, device=device, top=top, pareto=pareto)


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
