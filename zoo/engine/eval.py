"""Accuracy of cards on the user's images: one card (`eval_card`) or many (`eval_sweep`), one path for both.

Each card is prepared (`prepare`: its model file, its settings, a stored run measured the same way to reuse),
scored in a shared-decode pass with the other cards of its preprocessing (zoo.measure.accuracy.evaluate_group,
here or as Ray shards), then finished (`finish`: the run recorded and reported). A quantized card (zoo quantize)
is scored without its calibration images (`calibration_excluded`), and its float parent is scored beside it on
the same images and compared image by image (`accuracy_vs_float`: McNemar's exact test).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from zoo.artifacts.local import local_model, run_sha256
from zoo.engine.sweep import Sweep, result_of
from zoo.errors import DatasetError, TargetCannotRunError, UnsupportedArtifactError, UsageError, ZooError, reason
from zoo.measure import accuracy, machine
from zoo.measure.choose import UNAVAILABLE, board_runtime, choose, unavailable
from zoo.measure.complexity import counted
from zoo.measure.preprocess import Preprocessor
from zoo.measure.quantize import accuracy_against_float, calibration_of, held_out
from zoo.measure.runtimes import RUNTIMES, runtime_for_path
from zoo.results import store
from zoo.results.records import Run


@dataclass(frozen=True)
class EvalOptions:
    """How every card of an eval is run: `workers` lanes, each decoding a batch and running it with `threads`
    intra-op threads (default 1 on a CPU); `runtime` a host runtime's artifact; `model` a local file (one card).
    `target`: a board's configuration (zoo.measure.targets): the host decodes with `workers` threads, the board runs
    each card with `threads` threads (default: its runtime's) and `runtime` (onnxruntime, or litert for a .tflite)."""

    batch: int | None = None
    workers: int | None = None
    provider: str | None = None
    threads: int | None = None
    runtime: str | None = None
    model: Path | None = None
    mirrors: tuple = ()
    target: dict | None = None

    def settings(self, card: dict) -> dict:
        """What decides an eval's figures besides the artifact, runtime and images: a stored run is reused when
        it matches (older runs were migrated to the same shape: zoo.results.store)."""
        return {"provider": self.provider or "cpu",
                "preprocess": Preprocessor(card["preprocess"], card["resolution"]).describe()} | (
                   {"target": self.target["name"]} if self.target else {})

    def board_runtime(self) -> str:
        """The runtime a target board runs the cards on (UsageError for one it cannot run)."""
        return board_runtime(self.target, self.runtime)


@dataclass
class EvalItem:
    """One model to score on one set of images: a card, or a quantized card's float parent."""

    card: dict
    artifact: dict | None
    path: Path
    sha256: str
    preprocessor: Preprocessor
    settings: dict
    dataset: object = None           # the images it is scored on (a quantized card's calibration images left out)
    described: dict | None = None    # dataset.describe(), plus calibration_excluded
    excluded: int = 0                # calibration images left out
    parent: EvalItem | None = None   # a quantized card's float parent, scored on the same images in the same pass
    reported: bool = True            # False: a parent measured only beside its int8 card (no line of its own)
    outcome: dict | None = None      # {figures, runtime, hits} or {error}, once its pass is done
    done: bool = False
    run: Run | None = None

    @property
    def key(self) -> tuple:
        return self.card["id"], self.described["fingerprint"]


def locate(card: dict, options: EvalOptions) -> EvalItem:
    """The card's local model and what its run is matched on; raises what choose and local_model raise."""
    if options.model is not None:
        path, artifact = Path(options.model), None
        if not path.is_file():
            raise UsageError(f"model file {path} does not exist", "Give --model an existing .onnx or .tflite file")
    elif options.target is not None:
        artifact = board_artifact(card, options)
        path = local_model(card, artifact, mirrors=list(options.mirrors))
    else:
        artifact = choose(card, runtime=options.runtime)
        path = local_model(card, artifact, mirrors=list(options.mirrors))
    return EvalItem(card, artifact, path, run_sha256(path), Preprocessor(card["preprocess"], card["resolution"]),
                    options.settings(card))


def board_artifact(card: dict, options: EvalOptions) -> dict:
    """The card's artifact a target board runs: by the board's runtime (choose), or its .tflite on LiteRT."""
    target = options.target
    if target["runtime"] == "rdk-bpu":
        raise TargetCannotRunError(f"{card['id']}: zoo evaluates on ONNX Runtime or LiteRT boards; target "
                                   f"{target['name']} is an RDK BPU, and zoo ships no BPU eval runner yet",
                                   "See the README, 'Accuracy on a target board', for what one needs")
    return choose(card, runtime=options.runtime, target=target)


def prepare(sweep: Sweep, card: dict, described: dict, options: EvalOptions, *, force: bool,
            parent_id: str | None = None) -> EvalItem | None:
    """The card's item when it needs measuring; None when it was reused, skipped or failed (reported).
    `parent_id`: the float parent a quantized card is measured beside (part of its settings)."""
    try:
        item = locate(card, options)
    except UnsupportedArtifactError as error:
        sweep.finish("skipped", card["id"], error=error)
        return None
    except UNAVAILABLE as error:
        sweep.finish("skipped", card["id"], error=error, reason=f"weights unavailable: {unavailable(error)}")
        return None
    except ZooError as error:
        sweep.finish("failed", card["id"], error=error)
        return None
    sweep.runs_as_onnx(item.artifact, options.board_runtime() if options.target else options.runtime)
    if parent_id:
        item.settings["float_parent"] = parent_id
    if not force:
        name = options.board_runtime() if options.target else runtime_for_path(item.path).name
        run = store.find_run("eval", card["id"], artifact_sha256=item.sha256, runtime=name,
                             runtime_version=None if options.target else RUNTIMES[name].version(),
                             settings=item.settings, dataset_fingerprint=described["fingerprint"])
        if run is not None:
            sweep.finish("reused", card["id"], run=run, result=result_of(run, card, item.path))
            return None
    return item


def eval_card(card: dict, dataset, options: EvalOptions, *, parent: dict | None = None, force: bool = False,
              store_runs: bool = True, progress=None) -> dict:
    """One card scored on `dataset` (its float parent beside it when it is quantized and `parent` is given): the
    sweep's path for one card. Returns its record (see zoo.engine.sweep); raises the card's own error."""
    summary = eval_sweep([card], dataset, options, parents={card["id"]: parent} if parent else None, force=force,
                         store_runs=store_runs, progress=progress)
    return summary["records"][0]


def eval_sweep(cards: list[dict], dataset, options: EvalOptions = EvalOptions(), *, force: bool = False,
               store_runs: bool = True, progress=None, ray: bool = False, data: tuple | None = None,
               parents: dict | None = None) -> dict:
    """Evaluate every card on `dataset`; cards sharing preprocessing and images share each decoded image.

    `parents` (card id -> its float parent's card, engine.plan.float_parents) are evaluated beside their int8
    cards on the same images in the same pass, stored as runs of their own, and compared image by image.
    ray=True: on the Ray cluster joined already (zoo.engine.cluster.connect); `data` is (root, labels, limit),
    how each node loads the same set."""
    if options.model is not None and len(cards) != 1:
        raise UsageError("--model applies to one card: give one card")
    if ray and options.target:
        raise UsageError("--ray evaluates on the cluster's nodes; leave out --target")
    if options.target:
        options.board_runtime()  # a --runtime the board cannot run fails the command, not each card
    sweep = Sweep("eval", progress)
    parents = parents or {}
    views = {None: (dataset, dataset.describe(), 0)}  # calibration fingerprint -> (images, described, excluded)

    def view(card):
        held, excluded = held_out(card, dataset)
        key = calibration_of(card)["fingerprint"] if excluded else None
        if key not in views:
            views[key] = (held, {**held.describe(), "calibration_excluded": excluded}, excluded)
        return views[key]

    items: dict[tuple, EvalItem] = {}
    for card in cards:
        try:
            images, described, excluded = view(card)
        except DatasetError as error:  # every image of the folder calibrated it
            sweep.finish("failed", card["id"], error=error)
            continue
        key = (card["id"], described["fingerprint"])
        if key in items:  # measured already as an int8 card's parent: now a sweep card too
            items[key].reported = True
            continue
        parent_card = parents.get(card["id"])
        item = prepare(sweep, card, described, options, force=force,
                       parent_id=parent_card["id"] if parent_card else None)
        if item is None:
            continue
        item.dataset, item.described, item.excluded = images, described, excluded
        if parent_card:
            item.parent = _parent_item(sweep, item, parent_card, items, options)
            if item.parent is None:
                item.settings.pop("float_parent")
        items[item.key] = item
    groups: dict[tuple, list[EvalItem]] = {}
    for item in items.values():
        groups.setdefault((accuracy.pixels_key(item.preprocessor), item.described["fingerprint"]), []).append(item)
    total = sum(len(item.dataset) for item in items.values())
    done = 0
    sweep.emit({"event": "start", "kind": "eval", "cards": len(items), "units": total})
    for members in groups.values():
        images, offset = members[0].dataset, done

        def advance(count, total_=None, offset=offset):
            sweep.emit({"event": "advance", "done": offset + count, "units": total})

        if ray:
            from zoo.engine import cluster

            excluded_files = sorted({name for name, _ in dataset.items} - {name for name, _ in images.items})
            outcomes = cluster.eval_group([(m.card, m.artifact) for m in members], images,
                                          (*data, tuple(excluded_files)), members[0].described["fingerprint"],
                                          batch=options.batch, provider=options.provider,
                                          mirrors=list(options.mirrors), advance=advance)
        elif options.target:
            outcomes = _board_group(sweep, members, images, options, advance, fresh=force)
        else:
            outcomes = _local_group(members, images, options, advance)
        done += len(members) * len(images)
        for item, outcome in zip(members, outcomes):
            item.outcome = outcome
        # parents first: an int8 card's run links its parent's
        for item in sorted(items.values(), key=lambda u: u.parent is not None):
            if not item.done and item.outcome is not None and (item.parent is None or item.parent.done):
                finish(sweep, item, store_runs)
    return sweep.summary()


def _local_group(members: list[EvalItem], images, options: EvalOptions, advance) -> list[dict]:
    """One shared-decode pass on this machine: per item {figures, runtime, hits} or {error}."""
    done, outcomes = accuracy.evaluate_group([(m.card, m.path) for m in members], images, batch=options.batch,
                                             workers=options.workers, provider=options.provider,
                                             threads=options.threads, progress=advance)
    host = machine.host()
    out = []
    for outcome in outcomes:
        if "error" in outcome:
            out.append(outcome)
            continue
        found, hits = accuracy.figures(done["labels"], outcome["top5"], done["unreadable"], len(images),
                                       done["wall_s"], batch=done["batch"], workers=done["workers"],
                                       lanes=outcome["lanes"], items=images.items)
        found["engine"] = {"name": "local", "nodes": [host["device"]], "shared_decode": len(members)}
        out.append({"figures": found, "runtime": outcome["runtime"], "hits": hits})
    return out


def _board_group(sweep: Sweep, members: list[EvalItem], images, options: EvalOptions, advance, *,
                 fresh: bool) -> list[dict]:
    """One shared-decode pass with the models run on the target board (zoo.measure.targets.evaluate): per item
    {figures, runtime, hits, board, journal} or {error}. `fresh`: leave out what an earlier, unfinished run
    of the same cards did on the board."""
    from zoo.artifacts.hashes import file_sha256
    from zoo.measure.targets.evaluate import evaluate_on_board

    target = options.target
    done, outcomes = evaluate_on_board(
        [{"card": m.card, "path": m.path, "sha256": file_sha256(m.path),
          "key": {"artifact_sha256": m.sha256, "settings": m.settings}} for m in members],
        images, target, runtime=options.board_runtime(), batch=options.batch, workers=options.workers,
        threads=options.threads, provider=options.provider, fresh=fresh, progress=lambda n, total: advance(n),
        note=sweep.note)
    out = []
    for outcome in outcomes:
        if "error" in outcome:
            out.append(outcome)
            continue
        found, hits = accuracy.figures(done["labels"], outcome["top5"], done["unreadable"], done["processed"],
                                       done["wall_s"], batch=done["batch"], workers=done["workers"],
                                       lanes=outcome["lanes"], items=images.items)
        board = outcome["board"]
        found["engine"] = {"name": "target", "target": target["name"], "shared_decode": len(members),
                           **{k: v for k, v in board.items() if k != "machine"}}
        out.append({"figures": found, "runtime": outcome["runtime"], "hits": hits, "journal": outcome["journal"],
                    "machine": machine.board(target["name"], target["ssh"], board["machine"])})
    return out


def _parent_item(sweep: Sweep, item: EvalItem, parent_card: dict, items: dict, options: EvalOptions):
    """The float parent's item on the int8 card's images (shared when already in the sweep), or None with a
    note saying why it cannot be measured beside it."""
    key = (parent_card["id"], item.described["fingerprint"])
    if key in items:
        return items[key]
    try:
        parent = locate(parent_card, replace(options, model=None, runtime=None))
    except ZooError as error:
        sweep.note(f"{item.card['id']}: its float parent {parent_card['id']} cannot be evaluated beside it "
                   f"({error.one_line()})")
        return None
    if accuracy.pixels_key(parent.preprocessor) != accuracy.pixels_key(item.preprocessor):
        sweep.note(f"{item.card['id']}: its float parent {parent_card['id']} is preprocessed otherwise; not "
                   "compared image by image")
        return None
    parent.dataset, parent.described, parent.excluded, parent.reported = item.dataset, item.described, 0, False
    items[key] = parent
    return parent


def finish(sweep: Sweep, item: EvalItem, store_runs: bool) -> None:
    """Record one item's run (and report it when it is a sweep card); an int8 card's run carries
    accuracy_vs_float."""
    item.done = True
    card_id, outcome = item.card["id"], item.outcome
    if "error" in outcome:
        if item.reported:  # a board without the card's runtime skips it, as a host without one does
            cannot = isinstance(outcome["error"], TargetCannotRunError)
            sweep.finish("skipped" if cannot else "failed", card_id, error=outcome["error"])
        else:
            sweep.note(f"float parent {card_id} failed: {reason(outcome['error'])}")
        return
    try:
        result = accuracy.eval_result(item.card, item.path, outcome["runtime"], item.preprocessor, item.dataset,
                                      outcome["figures"], artifact=item.artifact, sha256=item.sha256,
                                      described=item.described)
    except ZooError as error:
        item.outcome = {"error": error}
        if item.reported:
            sweep.finish("failed", card_id, error=error)
        return
    if "machine" in outcome:  # measured on a target board: the board is the device
        result.update(machine=outcome["machine"], device=outcome["machine"]["device"])
    if item.excluded:
        result["calibration_excluded"] = item.excluded
    result.update(counted(item.path))  # MACs for a card that states none (compare, plots)
    parent = item.parent
    if parent is not None:
        paired = (parent.run is not None and "hits" in parent.outcome and "hits" in outcome
                  and parent.outcome["figures"]["unreadable_files"] == outcome["figures"]["unreadable_files"])
        if paired:
            result["accuracy_vs_float"] = {**accuracy_against_float(parent.card["id"], parent.outcome["hits"],
                                                                    outcome["hits"]),
                                           "parent_run_id": parent.run.id}
        else:
            item.settings.pop("float_parent", None)
    result["settings"] = item.settings
    run = sweep.store(Run.from_eval(result), store_runs, result)
    item.run = run
    if "journal" in outcome:  # recorded: a board eval's journal has done its job
        outcome["journal"].remove()
    if item.reported:
        sweep.finish("measured", card_id, run=run, result=result)
    elif parent is None:
        sweep.note(f"float parent {card_id} evaluated on the same images: top-1 {run.top1:.2f} %"
                   + (f", stored as run {run.id}" if run.id else ""))
