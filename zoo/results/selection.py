"""Which stored runs a comparison uses: the one place that decides, for every metric and device."""
from __future__ import annotations

from dataclasses import dataclass, field

from zoo.cards.index import Entry
from zoo.results.records import Run


@dataclass
class Selection:
    """The runs beside each card, and whether claims rank where nothing was measured."""

    evals: dict[str, Run] = field(default_factory=dict)     # card id -> its latest eval run
    benches: dict[str, Run] = field(default_factory=dict)   # card id -> its latest bench run on the chosen device
    use_claims: bool = True                                  # latency/fps claims rank where no run does
    claim_device: str | None = None                          # keep only claims whose device contains this


def latest_by_card(entries: list[Entry], runs: list[Run]) -> dict[str, Run]:
    """Each card's newest run (runs come newest first); a card with none borrows the newest run of a
    file it publishes with a full sha256, since a measurement belongs to the bytes (Axis republishes coral's)."""
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


def select(entries: list[Entry], runs: list[Run], *, device: str | None, host: dict,
           target_names: set[str]) -> Selection:
    """The runs a comparison shows. device: None ranks latency/fps on this host's runs, claims elsewhere;
    "host" or a target's name ranks on runs there only; other text keeps claims and runs whose device
    contains it (case-insensitive)."""
    benches = [r for r in runs if r.kind == "bench"]
    if device is None or device.lower() == "host":
        benches = [r for r in benches if r.machine_fingerprint == host["fingerprint"] and r.device == host["device"]]
        use_claims, claim_device = device is None, None
    elif device in target_names:
        benches = [r for r in benches if r.device == device]
        use_claims, claim_device = False, None
    else:
        benches = [r for r in benches if device.lower() in r.device.lower()]
        use_claims, claim_device = True, device
    evals = [r for r in runs if r.kind == "eval"]
    return Selection(latest_by_card(entries, evals), latest_by_card(entries, benches), use_claims, claim_device)
