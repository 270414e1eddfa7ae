"""What a sweep measures: patterns (ids, aliases, wildcards) to cards, duplicates collapsed, and each quantized
card's float parent."""
from __future__ import annotations

from zoo.errors import CardNotFoundError, UsageError
from zoo.measure.choose import runs_here


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
