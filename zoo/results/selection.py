"""Which stored runs a comparison uses: the one place that decides, for every metric and device.

A measurement belongs to the card it was made on. When another card publishes the very same bytes
(Axis republishes coral's files), its eval run may be shown beside that card, but marked as made on the
other card (`Run.card_id` says which); bench runs are never lent, so a CPU measurement never stands in
for another card's claimed accelerator figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from zoo.cards.index import Entry
from zoo.results.records import Run


@dataclass
class Selection:
    """The runs beside each card, and whether claims rank where nothing was measured."""

    evals: dict[str, Run] = field(default_factory=dict)         # card id -> latest eval (its own, else the same file's)
    benches: dict[str, list[Run]] = field(default_factory=dict)  # card id -> its latest bench run per footing
    use_claims: bool = True                                      # latency/fps claims rank beside the runs
    claim_device: str | None = None                              # keep only claims whose device contains this
    host_fingerprint: str | None = None                          # runs with it were measured here
    target_names: frozenset = frozenset()                        # runs on these devices were measured on a board


def bench_footing(run: Run, card: dict) -> tuple:
    """(device, batch, precision, runtime) of a bench run; precision from the card artifact that was timed."""
    precision = "fp32" if run.synthetic_weights else next(
        (a["precision"] for a in card.get("artifacts", []) if a["file"] == run.artifact_file), None)
    return run.device, run.batch or 1, precision, run.runtime


def latest_evals(entries: list[Entry], runs: list[Run]) -> dict[str, Run]:
    """Each card's newest eval run (runs come newest first); a card with none gets the newest eval of a file it
    publishes with a full sha256, made on another card: run.card_id names that card, and readers say so."""
    latest, by_sha = {}, {}
    for run in runs:
        latest.setdefault(run.card_id, run)
        if not run.synthetic_weights:
            by_sha.setdefault(run.artifact_sha256, run)
    for entry in entries:
        if entry.id not in latest:
            for artifact in entry.card.get("artifacts", []):
                if artifact.get("sha256") in by_sha:
                    latest[entry.id] = by_sha[artifact["sha256"]]
                    break
    return latest


def latest_benches(entries: list[Entry], runs: list[Run]) -> dict[str, list[Run]]:
    """Each card's own newest bench run per footing (device, batch, precision, runtime)."""
    cards = {e.id: e.card for e in entries}
    chosen: dict[str, dict[tuple, Run]] = {}
    for run in runs:
        if run.card_id in cards and run.latency_ms is not None:
            chosen.setdefault(run.card_id, {}).setdefault(bench_footing(run, cards[run.card_id]), run)
    return {card_id: list(by_footing.values()) for card_id, by_footing in chosen.items()}


def select(entries: list[Entry], runs: list[Run], *, device: str | None, host: dict,
           target_names: set[str]) -> Selection:
    """The runs a comparison shows. device: None shows runs here and on targets beside every claim; "host"
    or a target's name, runs there only; other text, claims and runs whose device contains it (any case)."""
    benches = [r for r in runs if r.kind == "bench"]
    here = [r for r in benches if r.machine_fingerprint == host["fingerprint"] and r.device == host["device"]]
    if device is None:
        benches = here + [r for r in benches if r.device in target_names and r not in here]
        benches.sort(key=lambda r: -(r.id or 0))
        use_claims, claim_device = True, None
    elif device.lower() == "host":
        benches, use_claims, claim_device = here, False, None
    elif device in target_names:
        benches = [r for r in benches if r.device == device]
        use_claims, claim_device = False, None
    else:
        benches = [r for r in benches if device.lower() in r.device.lower()]
        use_claims, claim_device = True, device
    evals = [r for r in runs if r.kind == "eval"]
    return Selection(latest_evals(entries, evals), latest_benches(entries, benches), use_claims, claim_device,
                     host["fingerprint"], frozenset(target_names))
