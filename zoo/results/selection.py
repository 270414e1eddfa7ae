"""Which stored runs a comparison uses, and the footing each stands on: the one place that decides.

A footing is everything that makes two figures comparable. Latency: the device (an accelerator's own name when
one ran, else the host CPU, or a target board), the execution provider, the runtime and its version, the
precision of the file that ran, the batch and the threads. Accuracy: the images (a dataset's fingerprint, shown
as its folder's name and image count) and the device that ran them. Figures on different footings are never
ranked together.

A measurement belongs to the card it was made on. When another card publishes the very same bytes (Axis
republishes coral's files), its eval run may be shown beside that card's claim, but marked as made on the other
card (`Run.card_id` says which); bench runs are never lent, so a CPU measurement never stands in for another
card's claimed accelerator figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zoo.cards.catalog import CardTable
from zoo.measure.runtimes import is_cpu
from zoo.results.records import Run

UNKNOWN_DEVICE = "footing unknown (an accelerator run recorded before zoo named accelerators)"


@dataclass
class Selection:
    """The runs beside each card, and whether claims rank where nothing was measured."""

    evals: dict[str, Run] = field(default_factory=dict)          # card id -> the run "yours" shows beside its claim
    measured: list[Run] = field(default_factory=list)            # each card's latest eval per accuracy footing
    benches: dict[str, list[Run]] = field(default_factory=dict)  # card id -> its latest bench run per footing
    use_claims: bool = True                                      # latency/fps claims rank beside the runs
    claim_device: str | None = None                              # keep only claims whose device contains this
    host_fingerprint: str | None = None                          # runs with it were measured here
    target_names: frozenset = frozenset()                        # runs on these devices were measured on a board


def provider_name(provider: str | None) -> str:
    """'CUDAExecutionProvider' -> 'cuda'; None -> 'cpu' (older runs recorded none for the CPU)."""
    return "cpu" if provider is None else str(provider).removesuffix("ExecutionProvider").lower()


def bench_footing(run: Run, precision: str | None) -> tuple:
    """(device, provider, runtime, runtime version, precision, batch, threads) of a bench run. `precision`: that of
    the card artifact the run timed, for runs recorded before runs stored their own."""
    precision = run.precision or ("fp32" if run.synthetic_weights else precision)
    device = run.device
    if run.precision is None and not is_cpu(run.provider) and run.machine.get("target") is None:
        device = UNKNOWN_DEVICE  # its device field names the host CPU, not the accelerator that ran it
    return (device, provider_name(run.provider), run.runtime, run.runtime_version, precision, run.batch or 1,
            run.threads)


def dataset_name(run: Run) -> str:
    """The folder's name of an eval's images ('imagenet-sample')."""
    return str((run.dataset or {}).get("path", "")).rstrip("/").rsplit("/", 1)[-1] or "data"


def accuracy_footing(run: Run) -> tuple:
    """(dataset fingerprint, dataset name, image count, device) of an eval run."""
    return run.dataset_fingerprint, dataset_name(run), run.n_images, run.device


def _folder(run: Run) -> str:
    path = str((run.dataset or {}).get("path", ""))
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return path


def chosen_folder(evals: list[Run], data: Path | None) -> str | None:
    """The folder whose runs "yours" shows beside the claims: `data` (any subset of it), else the folder of the
    largest run (most images; then the most cards measured on it)."""
    if not evals:
        return None
    if data is not None:
        return str(Path(data).resolve())
    folders = {id(run): _folder(run) for run in evals}  # each resolved once
    cards: dict[str, set] = {}
    for run in evals:
        cards.setdefault(folders[id(run)], set()).add(run.card_id)
    return folders[id(max(evals, key=lambda r: (r.n_images or 0, len(cards[folders[id(r)]]), r.id or 0)))]


def yours(table: CardTable, evals: list[Run], folder: str | None) -> dict[str, Run]:
    """Each card's largest eval on the chosen folder (a --limit subset never hides a whole-folder run; of equal
    size, the newest), on this host or an accelerator (a board's is in its own section); a card with none gets the
    largest of a file it publishes with a full sha256, made on another card: run.card_id names that card."""
    if folder is None:
        return {}
    mine = sorted((r for r in evals if _folder(r) == folder and r.machine.get("target") is None),
                  key=lambda r: (r.n_images or 0, r.id or 0), reverse=True)
    best, by_sha = {}, {}
    for run in mine:
        best.setdefault(run.card_id, run)
        if not run.synthetic_weights:
            by_sha.setdefault(run.artifact_sha256, run)
    ids = set(table.cards["id"])
    for card_id, sha256 in zip(table.artifacts["id"], table.artifacts["sha256"]):  # in card order: the first lends
        if card_id in ids and card_id not in best and sha256 in by_sha:
            best[card_id] = by_sha[sha256]
    return {card_id: run for card_id, run in best.items() if card_id in ids}


def latest_per_footing(table: CardTable, evals: list[Run]) -> list[Run]:
    """Each card's own newest eval per accuracy footing (the same images on the same device), and per runtime
    and precision within it: the same file on LiteRT and on ONNX Runtime are two rows of one section."""
    ids = set(table.cards["id"])
    chosen: dict[tuple, Run] = {}
    for run in evals:  # newest first
        if run.card_id in ids and run.top1 is not None:
            chosen.setdefault((run.card_id, *accuracy_footing(run), run.runtime, run.precision), run)
    return list(chosen.values())


def latest_benches(table: CardTable, runs: list[Run]) -> dict[str, list[Run]]:
    """Each card's own newest bench run per footing."""
    ids = set(table.cards["id"])
    precision = table.precisions
    chosen: dict[str, dict[tuple, Run]] = {}
    for run in runs:
        if run.card_id in ids and run.latency_ms is not None:
            footing = bench_footing(run, precision.get((run.card_id, run.artifact_file)))
            chosen.setdefault(run.card_id, {}).setdefault(footing, run)
    return {card_id: list(by_footing.values()) for card_id, by_footing in chosen.items()}


def select(table: CardTable, runs: list[Run], *, device: str | None, host: dict, target_names: set[str],
           data: Path | None = None) -> Selection:
    """The runs a comparison shows. device: None shows runs here and on targets beside every claim; "host"
    or a target's name, runs there only; other text, claims and runs whose device contains it (any case).
    data: the folder whose evals "yours" shows (default: that of the largest eval)."""
    benches = [r for r in runs if r.kind == "bench"]
    here = [r for r in benches if r.machine_fingerprint == host["fingerprint"]]
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
    return Selection(yours(table, evals, chosen_folder(evals, data)), latest_per_footing(table, evals),
                     latest_benches(table, benches), use_claims, claim_device, host["fingerprint"],
                     frozenset(target_names))
