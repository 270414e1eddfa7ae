"""Latency of cards on this host or a target board: one card (`bench_card`) or many (`bench_sweep`), one path.

Each card is prepared (`prepare`: which model file to time, its settings, a stored run measured the same way to
reuse); then every model still to measure is timed in the same interleaved rounds (zoo.measure.latency
.bench_models: a new random order each round, same provider, threads and batch), so drift hits them alike and
each p50 gets an interval that says which cards noise cannot separate; then each card is finished (`finish`: the
run recorded and reported). Cards that carry the very same file are timed once and shown together
(`same_file_as`). A quantized card is timed beside its float parent in those rounds, and its run carries
`speed_vs_float`. A card without weights is timed with synthetic weights of its architecture (fp32, marked),
unless it is an int8 card: no fp32 stand-in is ever timed for an int8 card.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from zoo.artifacts.local import run_sha256
from zoo.engine.sweep import Sweep, result_of
from zoo.errors import UnsupportedArtifactError, UsageError, ZooError
from zoo.measure import latency
from zoo.measure.choose import board_runtime, model_to_time
from zoo.measure.runtimes import RUNTIMES, runtime_for_path
from zoo.results import store
from zoo.results.records import Run

@dataclass(frozen=True)
class BenchOptions:
    """How every card of a bench is timed (the same for all, so their figures share a footing)."""

    runtime: str | None = None
    provider: str | None = None
    threads: int | None = None
    batch: int = 1
    warmup: int = latency.DEFAULT_WARMUP
    iters: int | None = None
    seconds: float | None = None
    synthetic: bool = False
    target: dict | None = None
    cpus: tuple | None = None
    mirrors: tuple = ()
    rounds: int = latency.DEFAULT_ROUNDS
    engine: str = "local"   # "ray": each card on a whole node of a Ray cluster
    cooldown: float = 0.0   # seconds idle before each card's round but the first
    profile: bool = False   # ONNX Runtime's per-operator profile too, after the timed rounds (zoo.measure.profile)

    def settings(self, synthetic: bool) -> dict:
        """What decides a bench's figures besides the artifact, runtime and machine: a stored run is reused when
        it matches (older runs were migrated to the same shape: zoo.results.store)."""
        return {"provider": self.provider or "cpu", "threads": self.threads, "batch": self.batch,
                "warmup": self.warmup, "iters": self.iters, "seconds": self.seconds, "synthetic_weights": synthetic,
                "cpus": sorted(self.cpus) if self.cpus else None,
                "target": self.target["name"] if self.target else None, "rounds": self.rounds} | (
                   {"engine": self.engine} if self.engine != "local" else {}) | (
                   {"cooldown": self.cooldown} if self.cooldown else {}) | (
                   {"profile": True} if self.profile else {})  # a run without a profile is not reused for one

    def check(self) -> None:
        """Option combinations no card could satisfy: refused before any card is looked at."""
        if self.runtime and self.synthetic:
            raise UsageError("--runtime picks a card's artifact; leave it out with --synthetic-weights")
        if self.target:
            board_runtime(self.target, self.runtime)  # litert on an ONNX Runtime board, else the board's own
        if self.synthetic and self.target and self.target["runtime"] != "onnxruntime":
            raise UsageError("--synthetic-weights builds an ONNX model; target "
                             f"{self.target['name']} runs {self.target['runtime']}")
        if self.cpus and self.target:
            raise UsageError("--cpus pins the timed loop on this host; leave it out with --target")
        if self.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, got {self.rounds}")

    def timing(self) -> dict:
        return {"target": self.target, "provider": self.provider, "threads": self.threads, "batch": self.batch,
                "warmup": self.warmup, "iters": self.iters, "seconds": self.seconds,
                "cpus": list(self.cpus) if self.cpus else None, "rounds": self.rounds, "cooldown": self.cooldown}


@dataclass
class BenchItem:
    """One model file to time for one card (or for a quantized card's float parent)."""

    card: dict
    artifact: dict | None
    path: Path
    synthetic: bool
    note: str | None
    settings: dict
    runtime: str
    parent: BenchItem | None = None
    reported: bool = True                      # False: a parent timed only beside its int8 card
    shares: list = field(default_factory=list)  # other items of the same file, timed once with this one
    same_file: list = field(default_factory=list)  # the other cards whose file this is too
    result: dict | BaseException | None = None
    run: Run | None = None

    @property
    def precision(self) -> str:
        return "fp32" if self.synthetic or self.artifact is None else self.artifact.get("precision") or "fp32"


def prepare(sweep: Sweep, card: dict, options: BenchOptions, *, force: bool, host: dict | None,
            parent_id: str | None = None) -> BenchItem | None:
    """The card's item when it needs timing; None when it was reused, skipped or failed (reported)."""
    try:
        artifact, path, synthetic, note = model_to_time(card, synthetic=options.synthetic, runtime=options.runtime,
                                                        target=options.target, mirrors=list(options.mirrors))
        runtime = board_runtime(options.target, options.runtime) if options.target else runtime_for_path(path).name
    except UnsupportedArtifactError as error:
        sweep.finish("skipped", card["id"], error=error)
        return None
    except ZooError as error:
        sweep.finish("failed", card["id"], error=error)
        return None
    item = BenchItem(card, artifact, path, synthetic, note, options.settings(synthetic), runtime)
    sweep.runs_as_onnx(artifact, options.runtime or (options.target or {}).get("runtime"))
    if parent_id and not synthetic:
        item.settings["float_parent"] = parent_id
    if not force:
        found = store.find_run("bench", card["id"], artifact_sha256=run_sha256(path), runtime=runtime,
                               runtime_version=None if options.target else RUNTIMES[runtime].version(),
                               settings=item.settings, machine_fingerprint=host["fingerprint"] if host else None)
        if found is not None:
            sweep.finish("reused", card["id"], run=found, note=note, result=result_of(found, card, path))
            return None
    return item


def bench_card(card: dict, options: BenchOptions, *, parent: dict | None = None, force: bool = False,
               store_runs: bool = True, progress=None) -> dict:
    """One card timed (beside its float parent when it is quantized and `parent` is given): the sweep's path for
    one card. Returns its record (see zoo.engine.sweep); raises the card's own error."""
    summary = bench_sweep([card], options, parents={card["id"]: parent} if parent else None, force=force,
                          store_runs=store_runs, progress=progress)
    return summary["records"][0]


def bench_sweep(cards: list[dict], options: BenchOptions = BenchOptions(), *, force: bool = False,
                store_runs: bool = True, progress=None, ray: bool = False, parents: dict | None = None) -> dict:
    """Time every card in interleaved rounds on this host or `options.target`; ray=True: each on a whole node of
    the Ray cluster joined already (zoo.engine.cluster), one after another, not interleaved.

    `parents` (card id -> its float parent's card, engine.plan.float_parents): a quantized card is timed in the
    same rounds as its parent; both runs are stored, the int8 one with `speed_vs_float`."""
    from zoo.measure import machine

    parents = parents or {}
    options.check()
    latency.check_cpus(list(options.cpus) if options.cpus else None)  # a bad --cpus fails the command
    sweep = Sweep("bench", progress)
    if ray:
        return _bench_on_ray(sweep, cards, options, force=force, store_runs=store_runs, parents=parents)
    host = None if options.target else machine.host()
    items: list[BenchItem] = []
    for card in cards:
        parent_card = parents.get(card["id"])
        item = prepare(sweep, card, options, force=force, host=host,
                       parent_id=parent_card["id"] if parent_card else None)
        if item is None:
            continue
        if parent_card and not item.synthetic:
            item.parent = _parent_item(sweep, item, parent_card, items, options)
            if item.parent is None:
                item.settings.pop("float_parent", None)
        items.append(item)
    timed = _timed_once(items)
    units = len(timed) * options.rounds
    sweep.emit({"event": "start", "kind": "bench", "cards": len(items), "units": units})
    if timed:
        results = latency.bench_models(
            [latency.Timed(i.card, i.path, i.artifact, i.synthetic, i.precision, i.runtime) for i in timed],
            **options.timing(), progress=lambda done, total: sweep.emit({"event": "advance", "done": done,
                                                                          "units": total}))
        for item, result in zip(timed, results):
            item.result = result
            for other in item.shares:
                other.result = result if isinstance(result, BaseException) else _for_card(result, other)
    if options.profile:
        _profile(sweep, timed, options)
    for item in sorted(items, key=lambda i: i.parent is not None):  # parents first: the int8 run links theirs
        finish(sweep, item, store_runs, cards=len(cards))
    return sweep.summary()


def _profile(sweep: Sweep, timed: list[BenchItem], options: BenchOptions) -> None:
    """`--profile`: each timed card's ONNX Runtime profile in its result (an int8 card's with its float
    parent's beside it), run after every timed round so that profiling never slows a timed call."""
    from zoo.measure.profile import profile_run

    for item in timed:
        if not item.reported or isinstance(item.result, BaseException):
            continue
        if options.target or item.runtime != "onnxruntime":
            sweep.note(f"{item.card['id']}: --profile profiles ONNX Runtime on this host only; timed without one")
            continue
        parent = item.parent.path if item.parent is not None and not isinstance(item.parent.result, BaseException) \
            else None
        item.result["profile"] = profile_run(item.path, parent, threads=options.threads, batch=options.batch,
                                             provider=options.provider)


def _timed_once(items: list[BenchItem]) -> list[BenchItem]:
    """The items to time: one per model file; the others share its figures (same bytes, same options)."""
    first: dict[Path, BenchItem] = {}
    for item in items:
        key = Path(item.path).resolve()
        if key in first:
            first[key].shares.append(item)
        else:
            first[key] = item
    for owner in first.values():
        group = [owner, *owner.shares]
        for item in group:
            item.same_file = [other.card["id"] for other in group if other is not item]
    return list(first.values())


def _for_card(result: dict, item: BenchItem) -> dict:
    """A result timed for another card of the same file, as this card's."""
    return {**result, "card_id": item.card["id"], "synthetic_weights": item.synthetic,
            "claims": [c for c in item.card.get("claims", []) if c["metric"] in ("latency_ms", "fps")],
            "artifact": {**result["artifact"], "file": item.artifact["file"] if item.artifact else item.path.name}}


def _parent_item(sweep: Sweep, item: BenchItem, parent: dict, items: list[BenchItem],
                 options: BenchOptions) -> BenchItem | None:
    """The float parent's item on the same runtime (shared when already in the sweep), or None with a note
    saying why the int8 card is timed alone."""
    mine = next((i for i in items if i.card["id"] == parent["id"]), None)
    if mine is not None:
        return mine
    try:
        artifact, path, synthetic, _ = model_to_time(parent, synthetic=False, target=options.target,
                                                     runtime=item.runtime,
                                                     mirrors=list(options.mirrors))
    except ZooError as error:
        why = error.one_line()
    else:
        if not synthetic:
            found = BenchItem(parent, artifact, path, False, None,
                              {**options.settings(False), "int8_card": item.card["id"]}, item.runtime,
                              reported=False)
            items.append(found)
            return found
        why = "its weights are unavailable"
    sweep.note(f"{item.card['id']}: timed alone, its float parent {parent['id']} cannot be timed beside it ({why})")
    return None


def finish(sweep: Sweep, item: BenchItem, store_runs: bool, *, cards: int) -> None:
    """Record one item's run and report it (a parent timed only beside its int8 card gets a note)."""
    result = item.result
    card_id = item.card["id"]
    if isinstance(result, BaseException):
        if not item.reported:
            sweep.note(f"float parent {card_id} could not be timed: {result}")
        elif isinstance(result, UsageError) and cards == 1:
            raise result
        elif isinstance(result, UnsupportedArtifactError):
            sweep.finish("skipped", card_id, error=result)
        else:
            sweep.finish("failed", card_id, error=result)
        return
    if item.same_file:
        result["same_file_as"] = item.same_file
    parent = item.parent
    if parent is not None and isinstance(parent.result, dict) and parent.run is not None:
        result["speed_vs_float"] = {**latency.speed_against_float(parent.card["id"], result, parent.result),
                                    "parent_run_id": parent.run.id}
    elif parent is not None:
        item.settings.pop("float_parent", None)
    result["settings"] = item.settings
    item.run = sweep.store(Run.from_bench(result), store_runs, result)
    note = item.note
    throttled = (result.get("conditions") or {}).get("throttled")
    if throttled:  # the clocks fell or the heat rose while it was timed: its figures are not the board's steady state
        note = "; ".join(filter(None, [note, f"throttled ({', '.join(throttled)}): rerun with a cool-down "
                                             "(--cooldown SECONDS)"]))
    if item.reported:
        sweep.finish("measured", card_id, run=item.run, result=result, note=note)


def _bench_on_ray(sweep: Sweep, cards: list[dict], options: BenchOptions, *, force, store_runs, parents) -> dict:
    """Each card on a whole node of the Ray cluster (every CPU of it), so none shares its node's cores."""
    from zoo.engine import cluster

    if options.target:
        raise UsageError("--ray times cards on the cluster's nodes; leave out --target")
    if any(card["id"] in parents for card in cards):
        sweep.note("--ray times each card on its own node: int8 cards are not compared with their float parents "
                   "(run without --ray)")
    sweep.emit({"event": "start", "kind": "bench", "cards": len(cards), "units": len(cards)})
    todo, items = [], {}
    options = replace(options, engine="ray")
    for card in cards:
        item = prepare(sweep, card, options, force=force, host=None)
        if item is not None:
            items[card["id"]] = item
            todo.append(card)
    finished = [len(sweep.records)]

    def done(card, outcome):
        items[card["id"]].result = outcome
        finish(sweep, items[card["id"]], store_runs, cards=len(cards))
        finished[0] += 1
        sweep.emit({"event": "advance", "done": finished[0], "units": len(cards)})

    if todo:
        cluster.bench_cards(todo, {**options.timing(), "runtime": options.runtime, "synthetic": options.synthetic,
                                   "mirrors": list(options.mirrors)}, done)
    return sweep.summary()
