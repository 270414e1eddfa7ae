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

from zoo.artifacts.choose import run_sha256
from zoo.errors import DatasetError, UsageError
from zoo.measure.datasets import load_dataset, synsets
from zoo.measure.latency import input_bytes
from zoo.measure.machine import check_batch_memory, check_threads, host
from zoo.measure.preprocess import Preprocessor
from zoo.measure.runtimes import Model, open_runtime

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
            items: list | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Decode each image once and run it through every job's model (all jobs share one pixels_key).

    `workers` threads each take the next batch, decode it with the first job's preprocessor, then normalise,
    encode and run it for each job on a free lane of that job's model. Only the batches in flight are held
    in memory. A job whose model fails is dropped from the pass with its error kept; when every job has
    failed, the first error is raised at once. Returns {labels, unreadable, wall_s} (in `items` order; each
    job's top-5 is in job.predictions()). `progress(done, total)` counts images times jobs."""
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

        pixels, labels, unreadable = [], [], []
        for relative, label in items[start:start + batch]:
            try:
                pixels.append(decoder.values(dataset.path(relative)))
                labels.append(label)
            except (*DECODE_ERRORS, Image.DecompressionBombError):
                unreadable.append(relative)  # unreadable or corrupt image: counted, never fatal
        for job in jobs:
            job.run(start, pixels)
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


def run_accuracy(models, preprocessor, dataset, *, batch: int = CPU_BATCH, workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Top-1/top-5 (percent, with 95% intervals), per-class accuracy and throughput on `dataset`.

    `models`: one Model per inference lane (the same object repeated when its runtime is thread-safe).
    `workers` threads (default one per core) each decode a batch and run it on a free lane. On a CPU,
    one single-threaded lane per core keeps every core working, where one run split over all cores
    waits for its slowest thread; and with as many workers as cores, no thread waits for a core.
    """
    job = Job(models, preprocessor)
    done = predict([job], dataset, batch=batch, workers=workers, progress=progress)
    return metrics(done["labels"], job.predictions(), done["unreadable"], len(dataset.items), done["wall_s"]) | {
        "batch": done["batch"], "workers": done["workers"], "lanes": len(job.models)}


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


def open_lanes(card: dict, model_path: Path, *, provider: str | None = None, threads: int | None = None):
    """(runtime, one Model per inference lane, default batch) for a model file under `card`'s conventions."""
    model_path = Path(model_path)
    check_threads(threads, "--threads")  # before any runtime opens: 100000 threads crashed ONNX Runtime
    if not model_path.is_file():
        raise UsageError(f"model file {model_path} does not exist", "Give --model an existing .onnx or .tflite file")
    if provider not in (None, "cpu", "CPUExecutionProvider"):
        # An accelerator: one lane; `threads` are the runtime's own.
        runtime = open_runtime(model_path, provider=provider, threads=threads, spinning=False)
        return runtime, [Model.from_card(runtime, card)], ACCELERATOR_BATCH
    # CPU: `threads` lanes of single-threaded runs (default: one per core), see run_accuracy.
    runtime = open_runtime(model_path, provider=provider, threads=1, spinning=False)
    lanes = threads or os.cpu_count() or 1
    models = [Model.from_card(runtime, card)]
    models += [models[0] if runtime.thread_safe else
               Model.from_card(open_runtime(model_path, threads=1), card) for _ in range(lanes - 1)]
    return runtime, models, CPU_BATCH


def eval_result(card: dict, model_path: Path, runtime, preprocessor, dataset, figures: dict, *,
                artifact: dict | None = None, sha256: str | None = None, described: dict | None = None) -> dict:
    """The eval result of `figures` (the keys of run_accuracy) with what produced them. `runtime`: the Runtime,
    or its describe() (from a remote node); `described`: the dataset's describe(), when the caller has it
    (fingerprinting a large set stats every file)."""
    if figures["n"] == 0:
        raise DatasetError(f"none of the {len(dataset)} images in {dataset.root} could be read "
                           f"(e.g. {figures['unreadable_files'][0]})", "Check that the files are JPEG/PNG images")
    model_path = Path(model_path)
    described_runtime = runtime.describe() if hasattr(runtime, "describe") else dict(runtime)
    return {
        "kind": "eval", "card_id": card["id"],
        "artifact": {"file": (artifact or {}).get("file", model_path.name), "path": str(model_path),
                     "sha256": sha256 or run_sha256(model_path)},
        "runtime": {**described_runtime, "threads": (described_runtime["threads"] or 1) * figures["lanes"]},
        "preprocess": preprocessor.describe(), "input": card["input"],
        "dataset": described or dataset.describe(), "notes": list(dataset.notes),
        "claims": [c for c in card.get("claims", []) if c["metric"] in ("top1", "top5")],
        "machine": host(),
        **figures,
    }


def evaluate_file(card: dict, model_path: Path, dataset, *, artifact: dict | None = None, batch: int | None = None,
                  workers: int | None = None, provider: str | None = None, threads: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate one model file under `card`'s conventions on a loaded Dataset.

    Result keys: kind, card_id, artifact {file, path, sha256}, runtime {name, version, provider, threads},
    preprocess, input, dataset {path, layout, n_images, labels_file, unlabelled_entries, fingerprint},
    notes, claims (the card's published top1/top5 figures), machine, and the keys of run_accuracy.
    """
    runtime, models, default_batch = open_lanes(card, model_path, provider=provider, threads=threads)
    preprocessor = Preprocessor(card["preprocess"], card["resolution"])
    figures = run_accuracy(models, preprocessor, dataset, batch=batch or default_batch, workers=workers,
                           progress=progress)
    return eval_result(card, model_path, runtime, preprocessor, dataset, figures, artifact=artifact)


def load_data(data: Path, labels: Path | None = None, limit: int | None = None):
    """The validation set (failing fast on bad input), cut to a fixed subset of `limit` images."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    return load_dataset(Path(data), labels).subset(limit)
