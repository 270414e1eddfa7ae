"""Which cards a sweep measures: patterns (ids, aliases, wildcards) to cards, duplicates collapsed."""
from __future__ import annotations

from zoo.artifacts.choose import runs_here
from zoo.errors import CardNotFoundError, UsageError


def expand(registry, patterns: list[str]) -> tuple[list, list[str]]:
    """(entries in the order first matched, notes). A pattern with a wildcard matches every card it fits; any
    other resolves like a card reference (the alias rule). A pattern matching nothing fails the whole command
    before anything is measured."""
    if not patterns:
        raise UsageError("give at least one card id, alias or wildcard", "e.g. zoo eval 'coral/*' --data DIR")
    entries, seen, notes = [], set(), []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            matched = registry.find(pattern, copy_cards=False)
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
