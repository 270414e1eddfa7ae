"""The accuracy loop, and an eval of one model file under a card's conventions.

Worker threads each take the next batch of images, decode and preprocess it as the card's source does
(zoo.measure.preprocess; Pillow, libjpeg-turbo, OpenCV and numpy release the GIL), then run it on a free inference lane (ONNX Runtime and LiteRT release it too): while one
worker decodes, another runs its batch, so decoding overlaps inference with no more busy threads than
workers. Only the running batches are in memory, so 50,000-image sets stay flat. Images that cannot
be decoded are counted and listed, never fatal.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

from zoo.artifacts.local import run_sha256
from zoo.errors import DatasetError, UsageError, ZooError
from zoo.measure.datasets import load_dataset, synsets
from zoo.measure.latency import input_bytes
from zoo.measure.machine import check_batch_memory, check_threads, host
from zoo.measure.preprocess import Preprocessor
from zoo.measure.runtimes import Model, is_cpu, open_runtime

# Images per inference call when --batch is not given. On CPU a MobileNetV2 batch of 8 keeps its
# activations in cache (32 ran 8-10% slower per image here); accelerators want big batches.
CPU_BATCH, ACCELERATOR_BATCH = 8, 32


def wilson_interval(hits: int, n: int, z: float = 1.959964) -> list[float]:
    """95% Wilson score interval of a proportion, in percent (a 3-line formula: no statistics package needed)."""
    if n == 0:
        return [0.0, 100.0]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(100 * max(0.0, centre - half), 3), round(100 * min(1.0, centre + half), 3)]


DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)


def pixels_key(preprocessor) -> str:
    """What decides the decoded pixels (protocol, geometry, resolution, backend): the preprocessing minus its
    normalisation. Cards with equal keys share each decoded image in a sweep (predict)."""
    import json

    described = {k: v for k, v in preprocessor.describe().items() if k not in NORMALISATION_KEYS}
    return json.dumps(described, sort_keys=True, default=str)


NORMALISATION_KEYS = {"mean", "std", "scale", "offset", "normalisation"}


class Job:
    """One model in a shared-decode pass: its inference lanes, its preprocessor (for normalise), and what it
    has predicted so far (per batch start, so the results come out in dataset order)."""

    def __init__(self, models, preprocessor, name: str = ""):
        import queue

        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        self.preprocessor, self.name = preprocessor, name
        self.free = queue.SimpleQueue()
        for model in self.models:
            self.free.put(model)
        self.top5: dict[int, object] = {}
        self.error: BaseException | None = None

    def run(self, start: int, pixels: list) -> None:
        import numpy as np

        if self.error is not None:
            return
        try:
            lead = self.models[0]
            tensors = [lead.encode(self.preprocessor.normalise(px, lead.channels_first)) for px in pixels]
            if tensors:
                model = self.free.get()
                try:
                    scores = model.scores(np.stack(tensors))
                finally:
                    self.free.put(model)
                # Stable sort: equal (quantized) scores rank the lower class index first.
                self.top5[start] = np.argsort(-scores, axis=1, kind="stable")[:, :5]
            else:
                self.top5[start] = np.zeros((0, 5), np.int64)
        except Exception as error:  # this model failed: the others in the pass go on
            self.error = error

    def predictions(self):
        import numpy as np

        parts = [self.top5[k] for k in sorted(self.top5)]
        return np.concatenate(parts) if parts else np.zeros((0, 5), np.int64)


def predict(jobs: list[Job], dataset, *, batch: int = CPU_BATCH, workers: int | None = None,
            items: list | None = None, progress: Callable[[int, int], None] | None = None,
            on_batch: Callable[[int, list, list], None] | None = None) -> dict:
    """Decode each image once and run it through every job's model (all jobs share one pixels_key).

    `workers` threads each take the next batch, decode it with the first job's preprocessor, then normalise,
    encode and run it for each job on a free lane of that job's model. Only the batches in flight are held
    in memory. A job whose model fails is dropped from the pass with its error kept; when every job has
    failed, the first error is raised at once. Returns {labels, unreadable, wall_s} (in `items` order; each
    job's top-5 is in job.predictions()). `progress(done, total)` counts images times jobs. `on_batch(start, read,
    unreadable)`, called in the worker once every job has run a batch, names the batch's images read (in order:
    job.top5[start] rows) and those that were not (a board eval keeps each finished batch)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}")
    limits = [job.models[0].batch_limit for job in jobs if job.models[0].batch_limit]
    batch = min([batch, *limits])
    check_threads(workers, "--workers")
    workers = workers or os.cpu_count() or 1
    # Each worker holds one batch: decoded, preprocessed, and run by every job's model.
    check_batch_memory(batch, sum(input_bytes(job.models[0].runtime) for job in jobs), in_flight=workers)
    items = dataset.items if items is None else items
    total = len(items)
    decoder = jobs[0].preprocessor

    def run_batch(start: int):
        from PIL import Image

        pixels, labels, read, unreadable = [], [], [], []
        for relative, label in items[start:start + batch]:
            try:
                pixels.append(decoder.values(dataset.path(relative)))
                labels.append(label)
                read.append(relative)
            except (*DECODE_ERRORS, Image.DecompressionBombError):
                unreadable.append(relative)  # unreadable or corrupt image: counted, never fatal
        for job in jobs:
            job.run(start, pixels)
        if on_batch:
            on_batch(start, read, unreadable)
        return labels, unreadable

    started = time.perf_counter()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="zoo-eval")
    try:
        futures = {pool.submit(run_batch, start): min(batch, total - start) for start in range(0, total, batch)}
        done = 0
        for future in as_completed(futures):
            future.result()  # raises a worker's error here, at once
            if all(job.error is not None for job in jobs):
                raise jobs[0].error
            done += futures[future]
            if progress:
                progress(done * len(jobs), total * len(jobs))
    finally:
        pool.shutdown(cancel_futures=True)  # on an error or Ctrl-C, the batches not yet begun never run
    wall = time.perf_counter() - started
    results = [future.result() for future in futures]  # in dataset order (dicts keep insertion order)
    return {"labels": [label for labels, _ in results for label in labels],
            "unreadable": [name for _, names in results for name in names], "wall_s": wall, "batch": batch,
            "workers": workers}


def metrics(labels: list[int], predicted, unreadable: list[str], total: int, wall: float) -> dict:
    """The accuracy figures of per-image top-5 predictions (N, 5) against their labels."""
    import numpy as np

    n = len(labels)
    truth = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64).reshape(-1, 5)
    hit1 = predicted[:, 0] == truth
    hit5 = (predicted == truth[:, None]).any(axis=1)
    per_class = {}
    names = synsets()
    for k in np.unique(truth):
        mask = truth == k
        per_class[names[k][0]] = {"index": int(k), "name": names[k][1], "n": int(mask.sum()),
                                  "top1": round(100 * float(hit1[mask].mean()), 3),
                                  "top5": round(100 * float(hit5[mask].mean()), 3)}
    return {
        "top1": round(100 * float(hit1.mean()), 3) if n else None,
        "top5": round(100 * float(hit5.mean()), 3) if n else None,
        "top1_ci95": wilson_interval(int(hit1.sum()), n), "top5_ci95": wilson_interval(int(hit5.sum()), n),
        "n": n, "unreadable": len(unreadable), "unreadable_files": unreadable,
        "images_per_s": round(total / wall, 2) if wall > 0 else None, "wall_s": round(wall, 3),
        "per_class": per_class,
    }


def open_lanes(card: dict, model_path: Path, *, provider: str | None = None, threads: int | None = None,
               workers: int | None = None):
    """(runtime, one Model per inference lane, default batch) for a model file under `card`'s conventions.

    On a CPU, one lane per worker (default: one per core), each running `threads` intra-op threads (default 1):
    one single-threaded run per core keeps every core working, where one run split over all cores waits for its
    slowest thread. An accelerator gets one lane and the runtime's own threads."""
    model_path = Path(model_path)
    check_threads(threads, "--threads")  # before any runtime opens: 100000 threads crashed ONNX Runtime
    check_threads(workers, "--workers")
    if not model_path.is_file():
        raise UsageError(f"model file {model_path} does not exist", "Give --model an existing .onnx or .tflite file")
    if not is_cpu(provider):
        runtime = open_runtime(model_path, provider=provider, threads=threads, spinning=False)
        return runtime, [Model.from_card(runtime, card)], ACCELERATOR_BATCH
    runtime = open_runtime(model_path, provider=provider, threads=threads or 1, spinning=False)
    lanes = workers or os.cpu_count() or 1
    models = [Model.from_card(runtime, card)]
    models += [models[0] if runtime.thread_safe else
               Model.from_card(open_runtime(model_path, threads=threads or 1), card) for _ in range(lanes - 1)]
    return runtime, models, CPU_BATCH


def evaluate_group(members: list[tuple[dict, Path]], dataset, *, batch: int | None = None,
                   workers: int | None = None, provider: str | None = None, threads: int | None = None,
                   items: list | None = None, progress: Callable[[int, int], None] | None = None) -> tuple[dict, list]:
    """The one accuracy pass: every (card, model file) of `members` scored on `dataset` (or its `items`), each
    image decoded once with the first card's preprocessing (members must share accuracy.pixels_key).

    Returns (the pass: {labels, unreadable, wall_s, batch, workers}, one outcome per member: {runtime (its
    describe()), top5 (N, 5) class indices in `items` order} or {error}). A member that cannot open or fails
    mid-pass keeps its error; the others go on. Single-card eval, sweeps and Ray shards all run through here."""
    jobs, outcomes, defaults = [], [None] * len(members), []
    for i, (card, path) in enumerate(members):
        try:
            runtime, models, default_batch = open_lanes(card, path, provider=provider, threads=threads,
                                                        workers=workers)
        except ZooError as error:
            outcomes[i] = {"error": error}
            continue
        jobs.append((i, runtime, Job(models, Preprocessor(card["preprocess"], card["resolution"]), card["id"])))
        defaults.append(default_batch)
    if not jobs:
        return {"labels": [], "unreadable": [], "wall_s": 0.0, "batch": batch, "workers": workers}, outcomes
    try:
        done = predict([job for _, _, job in jobs], dataset, batch=batch or min(defaults), workers=workers,
                       items=items, progress=progress)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # every model of the group failed (each job keeps its own error)
        for i, _, job in jobs:
            outcomes[i] = {"error": job.error or error}
        return {"labels": [], "unreadable": [], "wall_s": 0.0, "batch": batch, "workers": workers}, outcomes
    for i, runtime, job in jobs:
        outcomes[i] = {"error": job.error} if job.error is not None else \
            {"runtime": {**runtime.describe(), "threads": runtime.threads or 1}, "top5": job.predictions(),
             "lanes": len(job.models)}
    return done, outcomes


def figures(labels: list[int], top5, unreadable: list[str], total: int, wall: float, *, batch: int,
            workers: int, lanes: int, items: list | None = None) -> tuple[dict, object]:
    """(the accuracy figures of one model's pass, each image's top-1 outcome as a boolean array). With the pass's
    `items` (dataset order), the figures carry each image's top-1 too (`per_image`, see pack_per_image)."""
    import numpy as np

    result = metrics(labels, top5, unreadable, total, wall) | {"batch": batch, "workers": workers, "lanes": lanes}
    top1 = np.asarray(top5, dtype=np.int64).reshape(-1, 5)[:, 0]
    hits = top1 == np.asarray(labels, dtype=np.int64)
    if items is not None:
        result["per_image"] = pack_per_image(items, unreadable, top1, hits)
    return result, hits


UNREAD = 0xFFFF  # per_image's top-1 of an image that could not be read


def pack_per_image(items: list, unreadable: list[str], top1, hits) -> dict:
    """Each image's top-1 class and whether it was right, in dataset order (the order its fingerprint hashes),
    compactly: {n, top1: base64 of little-endian uint16 (UNREAD for an unreadable image), hit: base64 of the
    hits as bits (numpy.packbits, big-endian bit order)}. 50,000 images take 140 KB. Two runs on the same dataset
    fingerprint compare image by image (zoo.results.agreement)."""
    import base64

    import numpy as np

    skipped = set(unreadable)
    read = np.array([name not in skipped for name, _ in items], dtype=bool)
    classes = np.full(len(items), UNREAD, dtype="<u2")
    right = np.zeros(len(items), dtype=bool)
    classes[read], right[read] = np.asarray(top1, dtype=np.int64), np.asarray(hits, dtype=bool)
    return {"n": len(items), "top1": base64.b64encode(classes.tobytes()).decode(),
            "hit": base64.b64encode(np.packbits(right).tobytes()).decode()}


def unpack_per_image(packed: dict) -> tuple[object, object, object]:
    """(top-1 class per image, hit per image, read per image) as numpy arrays, from pack_per_image's dict."""
    import base64

    import numpy as np

    n = packed["n"]
    classes = np.frombuffer(base64.b64decode(packed["top1"]), dtype="<u2")[:n].astype(np.int64)
    right = np.unpackbits(np.frombuffer(base64.b64decode(packed["hit"]), dtype=np.uint8))[:n].astype(bool)
    return classes, right, classes != UNREAD


def eval_result(card: dict, model_path: Path, runtime: dict, preprocessor, dataset, figures_: dict, *,
                artifact: dict | None = None, sha256: str | None = None, described: dict | None = None,
                precision: str | None = None) -> dict:
    """The eval result of `figures_` (metrics plus batch, workers, lanes) with what produced them. `runtime`: a
    Runtime's describe(); `described`: the dataset's describe(), when the caller has it (fingerprinting a large
    set stats every file)."""
    if figures_["n"] == 0:
        raise DatasetError(f"none of the {len(dataset)} images in {dataset.root} could be read "
                           f"(e.g. {figures_['unreadable_files'][0]})", "Check that the files are JPEG/PNG images")
    model_path = Path(model_path)
    accelerator = runtime.get("accelerator")
    machine_facts = host()
    return {
        "kind": "eval", "card_id": card["id"],
        "artifact": {"file": (artifact or {}).get("file", model_path.name), "path": str(model_path),
                     "sha256": sha256 or run_sha256(model_path)},
        "precision": precision or (artifact or {}).get("precision") or "fp32",
        "runtime": runtime, "device": accelerator["device"] if accelerator else machine_facts["device"],
        "preprocess": preprocessor.describe(), "input": card["input"],
        "dataset": described or dataset.describe(), "notes": list(dataset.notes),
        "claims": [c for c in card.get("claims", []) if c["metric"] in ("top1", "top5")],
        "machine": machine_facts,
        **figures_,
    }


def evaluate_file(card: dict, model_path: Path, dataset, *, artifact: dict | None = None, batch: int | None = None,
                  workers: int | None = None, provider: str | None = None, threads: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate one model file under `card`'s conventions on a loaded Dataset (evaluate_group of one; nothing
    stored: zoo.engine.evaluate records runs).

    Result keys: kind, card_id, artifact {file, path, sha256}, precision, runtime {name, version, provider,
    threads[, accelerator]}, device, preprocess, input, dataset {path, layout, n_images, labels_file,
    unlabelled_entries, fingerprint}, notes, claims (the card's published top1/top5 figures), machine, and the
    figures: top1, top5 (percent), their 95% intervals, n, unreadable, per_class, images_per_s, wall_s, batch,
    workers, lanes.
    """
    done, (outcome,) = evaluate_group([(card, Path(model_path))], dataset, batch=batch, workers=workers,
                                      provider=provider, threads=threads, progress=progress)
    if "error" in outcome:
        raise outcome["error"]
    found, _ = figures(done["labels"], outcome["top5"], done["unreadable"], len(dataset), done["wall_s"],
                       batch=done["batch"], workers=done["workers"], lanes=outcome["lanes"], items=dataset.items)
    return eval_result(card, model_path, outcome["runtime"], Preprocessor(card["preprocess"], card["resolution"]),
                       dataset, found, artifact=artifact)


def load_data(data: Path, labels: Path | None = None, limit: int | None = None):
    """The validation set (failing fast on bad input), cut to a fixed subset of `limit` images."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    return load_dataset(Path(data), labels).subset(limit)
