"""Eval and bench sweeps over many cards: reuse what the store has, measure the rest, report every card.

A sweep reports through `progress(event)`: {"event": "note", message}, {"event": "start", kind, cards,
units} (units: images x cards to evaluate, or cards to bench), {"event": "advance", done, units}, and
{"event": "card", ...} once per card with its record (see `card record` below). It returns the summary:
{kind, cards, measured, reused, skipped, failed, records}; measured/reused are card ids, skipped/failed
are {card_id, reason}. Each run is stored in its own transaction as soon as it is done, so Ctrl-C leaves
the store holding only whole runs, and running the sweep again measures only what is missing.

Card record: {status: measured|reused|skipped|failed, card_id, kind, reason (skipped/failed), run_id,
and for measured/reused the headline figures: top1, top5, n, calibration_excluded (eval) or p50_ms, fps,
synthetic_weights (bench), and versus_float for a quantized card measured beside its float parent}; a measured
card also carries the whole result under `result`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from zoo.artifacts.choose import choose, local_model, run_sha256, runtime_for_path
from zoo.engine.plan import UNAVAILABLE, bench_model
from zoo.errors import DatasetError, UnsupportedArtifactError, UsageError, ZooError
from zoo.measure import accuracy, latency, machine, targets
from zoo.measure.preprocess import Preprocessor
from zoo.measure.quantize import calibration_of, held_out, versus_float
from zoo.results import store
from zoo.results.records import Run

Progress = Callable[[dict], None]


class NothingMeasured(ZooError, RuntimeError):
    """A sweep in which no card was measured or reused."""

    exit_code = 1
    default_hint = "See the lines above for each card's reason"


def runtime_version(name: str) -> str:
    """The installed version of a host runtime, as its Runtime.describe() reports it."""
    if name == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    from importlib.metadata import version

    return version("ai-edge-litert")


@dataclass
class Sweep:
    kind: str
    progress: Progress | None = None
    records: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)  # card id -> the exception that skipped or failed it

    def emit(self, event: dict) -> None:
        if self.progress:
            self.progress(event)

    def finish(self, status: str, card_id: str, *, reason: str | None = None, error: BaseException | None = None,
               run: Run | None = None, result: dict | None = None, note: str | None = None) -> None:
        record = {"status": status, "card_id": card_id, "kind": self.kind}
        if error is not None:
            self.errors[card_id] = error
            reason = reason or (error.one_line() if isinstance(error, ZooError) else f"{type(error).__name__}: {error}")
        if reason:
            record["reason"] = reason
        if note:
            record["note"] = note
        if run is not None:
            record["run_id"] = run.id
            if self.kind == "eval":
                record.update(top1=run.top1, top5=run.top5, n=run.n_images)
                if run.metrics.get("calibration_excluded"):
                    record["calibration_excluded"] = run.metrics["calibration_excluded"]
            else:
                record.update(p50_ms=run.metrics.get("p50_ms"), fps=run.fps, synthetic_weights=run.synthetic_weights,
                              device=run.device)
            if run.metrics.get("versus_float"):
                record["versus_float"] = run.metrics["versus_float"]
            if run.metrics.get("profile"):
                record["profile"] = run.metrics["profile"]
        if result is not None:
            record["result"] = result
        self.records.append(record)
        self.emit({"event": "card", **record})

    def summary(self) -> dict:
        def of(status):
            return [r for r in self.records if r["status"] == status]

        out = {"kind": self.kind, "cards": len(self.records),
               "measured": [r["card_id"] for r in of("measured")], "reused": [r["card_id"] for r in of("reused")],
               "skipped": [{"card_id": r["card_id"], "reason": r["reason"]} for r in of("skipped")],
               "failed": [{"card_id": r["card_id"], "reason": r["reason"]} for r in of("failed")],
               "records": self.records}
        if not out["measured"] and not out["reused"]:
            if len(self.records) == 1 and isinstance(self.errors.get(self.records[0]["card_id"]), ZooError):
                raise self.errors[self.records[0]["card_id"]]  # one card: its own error, its own exit code
            raise NothingMeasured(f"nothing measured: {len(out['skipped'])} card(s) skipped, "
                                  f"{len(out['failed'])} failed")
        return out


# ---------------------------------------------------------------- eval

@dataclass
class EvalCard:
    """One model to score on one set of images: a sweep card, or a quantized card's float parent."""

    card: dict
    artifact: dict
    path: Path
    sha256: str
    preprocessor: Preprocessor
    settings: dict
    dataset: object = None           # the images it is scored on (a quantized card's calibration images left out)
    described: dict | None = None    # dataset.describe(), plus calibration_excluded
    excluded: int = 0                # calibration images left out
    parent: EvalCard | None = None   # a quantized card's float parent, scored on the same images in the same pass
    reported: bool = True            # False: a parent measured only beside its int8 card (no sweep line of its own)
    outcome: dict | None = None      # {figures, runtime, hits} or {error}, once its pass is done
    done: bool = False
    run: Run | None = None

    @property
    def key(self) -> tuple:
        return self.card["id"], self.described["fingerprint"]


def eval_settings(card: dict, provider: str | None) -> dict:
    """What decides an eval's figures besides the artifact, runtime and data: reused runs match it."""
    return {"provider": provider or "cpu", "preprocess": Preprocessor(card["preprocess"], card["resolution"]).describe()}


def locate_eval(card: dict, *, provider, mirrors) -> EvalCard:
    """The card's local model and what its run is matched on; raises what choose/local_model raise."""
    artifact = choose(card)
    path = local_model(card, artifact, mirrors=mirrors)
    return EvalCard(card, artifact, path, run_sha256(path), Preprocessor(card["preprocess"], card["resolution"]),
                    eval_settings(card, provider))


def prepare_eval(sweep: Sweep, card: dict, described: dict, *, provider, mirrors, force,
                 versus: str | None = None) -> EvalCard | None:
    """The card's local model when it needs measuring; None when it was reused, skipped or failed (reported).
    `versus`: the float parent's id, which a quantized card's run is measured beside (part of its settings)."""
    try:
        item = locate_eval(card, provider=provider, mirrors=mirrors)
    except UnsupportedArtifactError as error:
        sweep.finish("skipped", card["id"], error=error)
        return None
    except UNAVAILABLE as error:
        sweep.finish("skipped", card["id"], error=error, reason=f"weights unavailable: {error.one_line()}")
        return None
    except ZooError as error:
        sweep.finish("failed", card["id"], error=error)
        return None
    if versus:
        item.settings["versus_float"] = versus
    if not force:
        spec = runtime_for_path(item.path)
        run = store.find_run("eval", card["id"], artifact_sha256=item.sha256, runtime=spec.name,
                             runtime_version=runtime_version(spec.name), settings=item.settings,
                             dataset_fingerprint=described["fingerprint"])
        if run is not None:
            sweep.finish("reused", card["id"], run=run)
            return None
    return item


def eval_sweep(entries: list, dataset, *, batch: int | None = None, workers: int | None = None,
               provider: str | None = None, threads: int | None = None, mirrors: list[str] | None = None,
               force: bool = False, store_runs: bool = True, progress: Progress | None = None,
               ray: bool = False, data: tuple | None = None, parents: dict | None = None) -> dict:
    """Evaluate every card on `dataset`; cards sharing preprocessing and images share each decoded image
    (accuracy.predict).

    A quantized card (zoo quantize) evaluated on the folder that calibrated it is scored without its calibration
    images (`calibration_excluded`); `parents` (card id -> its float parent's card, engine.plan.float_parents)
    are evaluated beside their int8 cards on the same images in the same pass, stored as runs of their own, and
    compared image by image (`versus_float`, zoo.measure.quantize.versus_float).

    ray=True: on the Ray cluster joined already (zoo.engine.cluster.connect); `data` is (root, labels, limit),
    how each node loads the same set."""
    sweep = Sweep("eval", progress)
    parents = parents or {}
    views = {None: (dataset, dataset.describe(), 0)}  # calibration fingerprint -> (images, described, excluded)

    def view(card):
        held, excluded = held_out(card, dataset)
        key = calibration_of(card)["fingerprint"] if excluded else None
        if key not in views:
            views[key] = (held, {**held.describe(), "calibration_excluded": excluded}, excluded)
        return views[key]

    units: dict[tuple, EvalCard] = {}
    for entry in entries:
        card = entry.card
        try:
            images, described, excluded = view(card)
        except DatasetError as error:  # every image of the folder calibrated it
            sweep.finish("failed", card["id"], error=error)
            continue
        key = (card["id"], described["fingerprint"])
        if key in units:  # measured already as an int8 card's parent: now a sweep card too
            units[key].reported = True
            continue
        parent_card = parents.get(card["id"])
        item = prepare_eval(sweep, card, described, provider=provider, mirrors=mirrors, force=force,
                            versus=parent_card["id"] if parent_card else None)
        if item is None:
            continue
        item.dataset, item.described, item.excluded = images, described, excluded
        if parent_card:
            item.parent = _parent_unit(sweep, item, parent_card, units, provider=provider, mirrors=mirrors)
            if item.parent is None:
                item.settings.pop("versus_float")
        units[item.key] = item
    groups: dict[tuple, list[EvalCard]] = {}
    for item in units.values():
        groups.setdefault((accuracy.pixels_key(item.preprocessor), item.described["fingerprint"]), []).append(item)
    total = sum(len(item.dataset) for item in units.values())
    done = 0
    sweep.emit({"event": "start", "kind": "eval", "cards": len(units), "units": total})
    host = machine.host()
    for members in groups.values():
        images, offset = members[0].dataset, done

        def advance(count, total_=None, offset=offset):
            sweep.emit({"event": "advance", "done": offset + count, "units": total})

        if ray:
            from zoo.engine import cluster

            excluded_files = sorted({name for name, _ in dataset.items} - {name for name, _ in images.items})
            outcomes = cluster.eval_group([(m.card, m.artifact) for m in members], images,
                                          (*data, tuple(excluded_files)), members[0].described["fingerprint"],
                                          batch=batch, provider=provider, mirrors=mirrors, advance=advance)
        else:
            outcomes = _local_group(members, images, batch=batch, workers=workers, provider=provider,
                                    threads=threads, advance=advance, host=host)
        done += len(members) * len(images)
        for item, outcome in zip(members, outcomes):
            item.outcome = outcome
        # parents first: an int8 card's run links its parent's
        for item in sorted(units.values(), key=lambda u: u.parent is not None):
            if not item.done and item.outcome is not None and (item.parent is None or item.parent.done):
                _finish_eval(sweep, item, store_runs)
    return sweep.summary()


def _parent_unit(sweep: Sweep, item: EvalCard, parent_card: dict, units: dict, *, provider, mirrors):
    """The float parent's unit on the int8 card's images (shared when already in the sweep), or None with a
    note saying why it cannot be measured beside it."""
    key = (parent_card["id"], item.described["fingerprint"])
    if key in units:
        return units[key]
    try:
        parent = locate_eval(parent_card, provider=provider, mirrors=mirrors)
    except ZooError as error:
        sweep.emit({"event": "note", "message": f"{item.card['id']}: its float parent {parent_card['id']} cannot be "
                                                f"evaluated beside it ({error.one_line()})"})
        return None
    if accuracy.pixels_key(parent.preprocessor) != accuracy.pixels_key(item.preprocessor):
        sweep.emit({"event": "note", "message": f"{item.card['id']}: its float parent {parent_card['id']} is "
                                                "preprocessed otherwise; not compared image by image"})
        return None
    parent.dataset, parent.described, parent.excluded, parent.reported = item.dataset, item.described, 0, False
    units[key] = parent
    return parent


def _finish_eval(sweep: Sweep, item: EvalCard, store_runs: bool) -> None:
    """Store one unit's run (and report it when it is a sweep card); an int8 card's run carries versus_float."""
    item.done = True
    card_id, outcome = item.card["id"], item.outcome
    if "error" in outcome:
        if item.reported:
            sweep.finish("failed", card_id, error=outcome["error"])
        else:
            sweep.emit({"event": "note", "message": f"float parent {card_id} failed: {_reason(outcome['error'])}"})
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
    if item.excluded:
        result["calibration_excluded"] = item.excluded
    parent = item.parent
    if parent is not None:
        paired = (parent.run is not None and "hits" in parent.outcome and "hits" in outcome
                  and parent.outcome["figures"]["unreadable_files"] == outcome["figures"]["unreadable_files"])
        if paired:
            result["versus_float"] = {**versus_float(parent.card["id"], parent.outcome["hits"], outcome["hits"]),
                                      "parent_run_id": parent.run.id}
        else:
            item.settings.pop("versus_float", None)
    result["settings"] = item.settings
    run = Run.from_eval(result)
    if store_runs:
        store.record(run)
        result["run_id"] = run.id
    item.run = run
    if item.reported:
        sweep.finish("measured", card_id, run=run, result=result)
    elif parent is None:
        sweep.emit({"event": "note", "message": f"float parent {card_id} evaluated on the same images: top-1 "
                                                f"{run.top1:.2f} %" + (f", stored as run {run.id}" if run.id else "")})


def _reason(error: BaseException) -> str:
    return error.one_line() if isinstance(error, ZooError) else f"{type(error).__name__}: {error}"


def _local_group(members: list[EvalCard], dataset, *, batch, workers, provider, threads, advance, host) -> list[dict]:
    """One shared-decode pass on this machine: per card {figures, runtime, hits} or {error}."""
    import numpy as np

    jobs, opened, out = [], [], {}
    for item in members:
        try:
            runtime, models, default_batch = accuracy.open_lanes(item.card, item.path, provider=provider,
                                                                 threads=threads)
        except ZooError as error:
            out[item.card["id"]] = {"error": error}
            continue
        jobs.append(accuracy.Job(models, item.preprocessor, item.card["id"]))
        opened.append((item, runtime, default_batch))
    if jobs:
        try:
            pass_ = accuracy.predict(jobs, dataset, batch=batch or min(b for _, _, b in opened), workers=workers,
                                     progress=advance)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # every model of the group failed (each job keeps its own error)
            pass_ = None
            for job, (item, _, _) in zip(jobs, opened):
                out[item.card["id"]] = {"error": job.error or error}
        for job, (item, runtime, _) in zip(jobs, opened) if pass_ else ():
            if job.error is not None:
                out[item.card["id"]] = {"error": job.error}
                continue
            predicted = job.predictions()
            figures = accuracy.metrics(pass_["labels"], predicted, pass_["unreadable"], len(dataset),
                                       pass_["wall_s"])
            figures |= {"batch": pass_["batch"], "workers": pass_["workers"], "lanes": len(job.models),
                        "engine": {"name": "local", "nodes": [host["device"]], "shared_decode": len(jobs)}}
            hits = predicted[:, 0] == np.asarray(pass_["labels"], dtype=np.int64)
            out[item.card["id"]] = {"figures": figures, "runtime": runtime, "hits": hits}
    return [out[item.card["id"]] for item in members]


# ---------------------------------------------------------------- bench

def bench_settings(*, provider, threads, batch, warmup, iters, seconds, synthetic, cpus, target) -> dict:
    """What decides a bench's figures besides the artifact, runtime and machine: reused runs match it."""
    return {"provider": provider or "cpu", "threads": threads, "batch": batch, "warmup": warmup, "iters": iters,
            "seconds": seconds, "synthetic_weights": synthetic, "cpus": sorted(cpus) if cpus else None,
            "target": target["name"] if target else None}


def bench_sweep(entries: list, *, runtime: str | None = None, provider: str | None = None,
                threads: int | None = None, batch: int = 1, warmup: int | None = None, iters: int | None = None,
                seconds: float | None = None, synthetic: bool = False, target: dict | None = None,
                cpus: list[int] | None = None, mirrors: list[str] | None = None, force: bool = False,
                store_runs: bool = True, progress: Progress | None = None, ray: bool = False,
                parents: dict | None = None, profile: bool = False) -> dict:
    """Time every card, one after another (a timed loop never shares the machine with another); ray=True:
    each on a whole node of the Ray cluster joined already (zoo.engine.cluster). profile=True: each measured
    card's ONNX Runtime per-operator profile (zoo.measure.profile), run after its timed loop, in its result.

    `parents` (card id -> its float parent's card, engine.plan.float_parents): a quantized card is timed with
    its parent in interleaved rounds (latency.bench_pair, same threads, provider, batch, host or board); both
    runs are stored, the int8 one with `versus_float` (both p50s, the int8/float ratio, the speed-up)."""
    parents = parents or {}
    latency.check_cpus(cpus)  # a bad --cpus fails the command, not each card
    if cpus and target:
        raise UsageError("--cpus pins the timed loop on this host; leave it out with --target")
    sweep = Sweep("bench", progress)
    warmup = latency.DEFAULT_WARMUP if warmup is None else warmup
    sweep.emit({"event": "start", "kind": "bench", "cards": len(entries), "units": len(entries)})
    if ray:
        if target:
            raise UsageError("--ray times cards on the cluster's nodes; leave out --target")
        if any(e.id in parents for e in entries):
            sweep.emit({"event": "note", "message": "--ray times each card on its own node: int8 cards are not "
                                                    "compared with their float parents (run without --ray)"})
        return _bench_on_ray(sweep, entries, dict(runtime=runtime, provider=provider, threads=threads, batch=batch,
                                                  warmup=warmup, iters=iters, seconds=seconds, cpus=cpus),
                             synthetic=synthetic, mirrors=mirrors, force=force, store_runs=store_runs)
    host = None if target else machine.host()
    for number, entry in enumerate(entries, start=1):
        card = entry.card
        try:
            artifact, path, is_synthetic, note = bench_model(card, synthetic=synthetic, runtime=runtime,
                                                              target=target, mirrors=mirrors)
            settings = bench_settings(provider=provider, threads=threads, batch=batch, warmup=warmup, iters=iters,
                                      seconds=seconds, synthetic=is_synthetic, cpus=cpus, target=target)
            run_name = target["runtime"] if target else runtime_for_path(path).name
            profiled = profile and not target and run_name == "onnxruntime"
            if profiled:
                settings["profile"] = True  # a run stored without its profile is not reused for --profile
            elif profile:
                sweep.emit({"event": "note", "message": f"{card['id']}: --profile profiles ONNX Runtime on this "
                                                        "host only; timed without a profile"})
            parent = parents.get(card["id"])
            pair = _bench_parent(sweep, card, parent, run_name, target=target, mirrors=mirrors) \
                if parent and not is_synthetic else None
            if pair:
                settings["versus_float"] = parent["id"]
            found = None if force else store.find_run(
                "bench", card["id"], artifact_sha256=run_sha256(path), runtime=run_name,
                runtime_version=None if target else runtime_version(run_name), settings=settings,
                machine_fingerprint=host["fingerprint"] if host else None)
            if found is not None:
                sweep.finish("reused", card["id"], run=found, note=note)
            else:
                options = dict(target=target, provider=provider, threads=threads, batch=batch, warmup=warmup,
                               iters=iters, seconds=seconds, cpus=cpus)
                if pair:
                    result, parent_result = latency.bench_pair((card, path, artifact), (parent, pair[1], pair[0]),
                                                               **options)
                    parent_result["settings"] = {**{k: v for k, v in settings.items() if k != "versus_float"},
                                                 "versus_int8": card["id"]}
                    parent_run = Run.from_bench(parent_result)
                    if store_runs:
                        store.record(parent_run)
                    result["versus_float"] = {**latency.versus_float(parent["id"], result, parent_result),
                                              "parent_run_id": parent_run.id}
                else:
                    result = latency.bench_file(card, path, artifact=artifact, synthetic=is_synthetic, **options)
                if profiled:
                    from zoo.measure.profile import profile_run

                    result["profile"] = profile_run(path, pair[1] if pair else None, threads=threads, batch=batch,
                                                    provider=provider)
                result["settings"] = settings
                run = Run.from_bench(result)
                if store_runs:
                    store.record(run)
                    result["run_id"] = run.id
                sweep.finish("measured", card["id"], run=run, result=result, note=note)
        except UnsupportedArtifactError as error:
            sweep.finish("skipped", card["id"], error=error)
        except UsageError as error:
            if len(entries) == 1:
                raise
            sweep.finish("failed", card["id"], error=error)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # a card failing mid-sweep: reported, the others go on
            sweep.finish("failed", card["id"], error=error)
        sweep.emit({"event": "advance", "done": number, "units": len(entries)})
    return sweep.summary()


def _bench_parent(sweep: Sweep, card: dict, parent: dict, runtime: str, *, target, mirrors) -> tuple | None:
    """(artifact, model file) of a quantized card's float parent on the same runtime, or None with a note saying
    why the int8 card is timed alone."""
    try:
        artifact, path, synthetic, _ = bench_model(parent, synthetic=False, runtime=None if target else runtime,
                                                   target=target, mirrors=mirrors)
    except ZooError as error:
        why = error.one_line()
    else:
        if not synthetic:
            return artifact, path
        why = "its weights are unavailable"
    sweep.emit({"event": "note", "message": f"{card['id']}: timed alone, its float parent {parent['id']} cannot be "
                                            f"timed beside it ({why})"})
    return None


def _bench_on_ray(sweep: Sweep, entries: list, options: dict, *, synthetic, mirrors, force, store_runs) -> dict:
    from zoo.engine import cluster

    runtime = options.pop("runtime")
    todo, settings_of, notes = [], {}, {}
    for entry in entries:
        card = entry.card
        try:
            _, path, is_synthetic, notes[card["id"]] = bench_model(card, synthetic=synthetic, runtime=runtime,
                                                                   target=None, mirrors=mirrors)
        except UnsupportedArtifactError as error:
            sweep.finish("skipped", card["id"], error=error)
            continue
        except ZooError as error:
            sweep.finish("failed", card["id"], error=error)
            continue
        settings = bench_settings(**{k: options[k] for k in ("provider", "threads", "batch", "warmup", "iters",
                                                             "seconds", "cpus")},
                                  synthetic=is_synthetic, target=None) | {"engine": "ray"}
        name = runtime_for_path(path).name
        found = None if force else store.find_run("bench", card["id"], artifact_sha256=run_sha256(path), runtime=name,
                                                  runtime_version=runtime_version(name), settings=settings)
        if found is not None:
            sweep.finish("reused", card["id"], run=found, note=notes[card["id"]])
        else:
            settings_of[card["id"]] = settings
            todo.append(card)
    finished = [len(sweep.records)]

    def done(card, outcome):
        if isinstance(outcome, BaseException):
            sweep.finish("failed", card["id"], error=outcome)
        else:
            outcome["settings"] = settings_of[card["id"]]
            run = Run.from_bench(outcome)
            if store_runs:
                store.record(run)
                outcome["run_id"] = run.id
            sweep.finish("measured", card["id"], run=run, result=outcome, note=outcome.pop("note", None))
        finished[0] += 1
        sweep.emit({"event": "advance", "done": finished[0], "units": len(entries)})

    if todo:
        cluster.bench_cards(todo, {**options, "runtime": runtime, "synthetic": synthetic, "mirrors": mirrors}, done)
    return sweep.summary()


def measure_missing(entries: list, metric: str, *, data: Path | None, target: str | None, progress,
                    parents: dict | None = None) -> dict | None:
    """compare --measure: sweep the cards that have no measurement for `metric` yet (on these images, on this
    host or on `target`); None when none lacks one. `parents`: as for eval_sweep and bench_sweep (an int8 card
    is measured beside its float parent)."""
    if metric in ("accuracy", "top5"):
        if data is None:
            raise UsageError(f"--measure with --metric {metric} evaluates on your images: give --data DIR")
        dataset = accuracy.load_data(data)
        fingerprint = dataset.fingerprint()
        have = {r.card_id for r in store.list_runs(kind="eval") if r.dataset_fingerprint == fingerprint}
        run = lambda todo: eval_sweep(todo, dataset, progress=progress, parents=parents)  # noqa: E731
    elif metric in ("latency", "fps"):
        config = targets.get(target) if target else None
        here = machine.host()["fingerprint"]
        have = {r.card_id for r in store.list_runs(kind="bench")
                if (r.device == target if target else r.machine_fingerprint == here)}
        run = lambda todo: bench_sweep(todo, target=config, progress=progress, parents=parents)  # noqa: E731
    else:
        raise UsageError(f"--measure applies to accuracy, top5, latency and fps, not {metric}",
                         "macs, params and size are counted from the graph, not measured")
    todo = [e for e in entries if e.id not in have]
    if not todo:
        return None
    try:
        return run(todo)
    except NothingMeasured:
        return None  # every lacking card was skipped or failed: the progress events said why; rank what there is
