"""Which stored runs a comparison uses: the one place that decides, for every metric and device.

A measurement belongs to the card it was made on. When another card publishes the very same bytes
(Axis republishes coral's files), its eval run may be shown beside that card, but marked as made on the
other card (`Run.card_id` says which); bench runs are never lent, so a CPU measurement never stands in
for another card's claimed accelerator figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from zoo.cards.catalog import CardTable
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


def bench_footing(run: Run, precision: str | None) -> tuple:
    """(device, batch, precision, runtime) of a bench run; precision: that of the card artifact that was timed."""
    return run.device, run.batch or 1, "fp32" if run.synthetic_weights else precision, run.runtime


def latest_evals(table: CardTable, runs: list[Run]) -> dict[str, Run]:
    """Each card's newest eval run (runs come newest first); a card with none gets the newest eval of a file it
    publishes with a full sha256, made on another card: run.card_id names that card, and readers say so."""
    latest, by_sha = {}, {}
    for run in runs:
        latest.setdefault(run.card_id, run)
        if not run.synthetic_weights:
            by_sha.setdefault(run.artifact_sha256, run)
    ids = set(table.cards["id"])
    for card_id, sha256 in zip(table.artifacts["id"], table.artifacts["sha256"]):  # in card order: the first lends
        if card_id in ids and card_id not in latest and sha256 in by_sha:
            latest[card_id] = by_sha[sha256]
    return {card_id: run for card_id, run in latest.items() if card_id in ids}


def latest_benches(table: CardTable, runs: list[Run]) -> dict[str, list[Run]]:
    """Each card's own newest bench run per footing (device, batch, precision, runtime)."""
    ids = set(table.cards["id"])
    precision = table.precisions
    chosen: dict[str, dict[tuple, Run]] = {}
    for run in runs:
        if run.card_id in ids and run.latency_ms is not None:
            footing = bench_footing(run, precision.get((run.card_id, run.artifact_file)))
            chosen.setdefault(run.card_id, {}).setdefault(footing, run)
    return {card_id: list(by_footing.values()) for card_id, by_footing in chosen.items()}


def select(table: CardTable, runs: list[Run], *, device: str | None, host: dict,
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
    return Selection(latest_evals(table, evals), latest_benches(table, benches), use_claims, claim_device,
                     host["fingerprint"], frozenset(target_names))
