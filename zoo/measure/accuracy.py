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


def _load(model, preprocessor, path: Path):
    from PIL import Image

    try:
        return model.encode(preprocessor(path, channels_first=model.channels_first))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None  # unreadable or corrupt image: counted by the caller


def run_accuracy(models, preprocessor, dataset, *, batch: int = CPU_BATCH, workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Top-1/top-5 (percent, with 95% intervals), per-class accuracy and throughput on `dataset`.

    `models`: one Model per inference lane (the same object repeated when its runtime is thread-safe).
    `workers` threads (default one per core) each decode a batch and run it on a free lane. On a CPU,
    one single-threaded lane per core keeps every core working, where one run split over all cores
    waits for its slowest thread; and with as many workers as cores, no thread waits for a core.
    """
    import queue
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import numpy as np

    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}")
    if models[0].batch_limit:
        batch = min(batch, models[0].batch_limit)
    check_threads(workers, "--workers")
    workers = workers or os.cpu_count() or 1
    # Each worker holds one batch: decoded, preprocessed, and run.
    check_batch_memory(batch, input_bytes(models[0].runtime), in_flight=workers)
    items, total = dataset.items, len(dataset.items)
    free = queue.SimpleQueue()
    for model in models:
        free.put(model)

    def run_batch(start: int):
        """(labels, top-5 indices, unreadable files) of items[start:start + batch]."""
        tensors, labels, unreadable = [], [], []
        for relative, label in items[start:start + batch]:
            tensor = _load(models[0], preprocessor, dataset.path(relative))
            if tensor is None:
                unreadable.append(relative)
            else:
                tensors.append(tensor)
                labels.append(label)
        if not tensors:
            return labels, np.zeros((0, 5), np.int64), unreadable
        model = free.get()
        try:
            scores = model.scores(np.stack(tensors))
        finally:
            free.put(model)
        # Stable sort: equal (quantized) scores rank the lower class index first.
        return labels, np.argsort(-scores, axis=1, kind="stable")[:, :5], unreadable

    started = time.perf_counter()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="zoo-eval")
    try:
        futures = {pool.submit(run_batch, start): min(batch, total - start) for start in range(0, total, batch)}
        done = 0
        for future in as_completed(futures):
            future.result()  # raises a worker's error here, at once
            done += futures[future]
            if progress:
                progress(done, total)
    finally:
        pool.shutdown(cancel_futures=True)  # on an error or Ctrl-C, the batches not yet begun never run
    wall = time.perf_counter() - started
    results = [future.result() for future in futures]  # in dataset order (dicts keep insertion order)
    labels = [label for batch_labels, _, _ in results for label in batch_labels]
    top5 = [batch_top5 for _, batch_top5, _ in results]
    unreadable = [name for _, _, names in results for name in names]
    return _metrics(labels, top5, unreadable, total, wall) | {"batch": batch, "workers": workers, "lanes": len(models)}


def _metrics(labels: list[int], top5: list, unreadable: list[str], total: int, wall: float) -> dict:
    import numpy as np

    n = len(labels)
    truth = np.asarray(labels, dtype=np.int64)
    predicted = np.concatenate(top5) if top5 else np.zeros((0, 5), np.int64)
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


def evaluate_file(card: dict, model_path: Path, dataset, *, artifact: dict | None = None, batch: int | None = None,
                  workers: int | None = None, provider: str | None = None, threads: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate one model file under `card`'s conventions on a loaded Dataset.

    Result keys: kind, card_id, artifact {file, path, sha256}, runtime {name, version, provider, threads},
    preprocess, input, dataset {path, layout, n_images, labels_file, unlabelled_entries, fingerprint},
    notes, claims (the card's published top1/top5 figures), machine, and the keys of run_accuracy.
    """

    model_path = Path(model_path)
    check_threads(threads, "--threads")
    check_threads(workers, "--workers")
    if not model_path.is_file():
        raise UsageError(f"model file {model_path} does not exist", "Give --model an existing .onnx or .tflite file")
    if provider not in (None, "cpu", "CPUExecutionProvider"):
        # An accelerator: one lane; `threads` are the runtime's own.
        runtime = open_runtime(model_path, provider=provider, threads=threads, spinning=False)
        models = [Model.from_card(runtime, card)]
        batch = batch or ACCELERATOR_BATCH
    else:
        # CPU: `threads` lanes of single-threaded runs (default: one per core), see run_accuracy.
        runtime = open_runtime(model_path, provider=provider, threads=1, spinning=False)
        lanes = threads or os.cpu_count() or 1
        batch = batch or CPU_BATCH
        models = [Model.from_card(runtime, card)]
        models += [models[0] if runtime.thread_safe else
                   Model.from_card(open_runtime(model_path, threads=1), card) for _ in range(lanes - 1)]
    preprocessor = Preprocessor(card["preprocess"], card["resolution"])
    metrics = run_accuracy(models, preprocessor, dataset, batch=batch, workers=workers, progress=progress)
    if metrics["n"] == 0:
        raise DatasetError(f"none of the {len(dataset)} images in {dataset.root} could be read "
                           f"(e.g. {metrics['unreadable_files'][0]})", "Check that the files are JPEG/PNG images")
    return {
        "kind": "eval", "card_id": card["id"],
        "artifact": {"file": (artifact or {}).get("file", model_path.name), "path": str(model_path),
                     "sha256": run_sha256(model_path)},
        "runtime": {**runtime.describe(), "threads": (runtime.threads or 1) * metrics["lanes"]},
        "preprocess": preprocessor.describe(), "input": card["input"],
        "dataset": dataset.describe(), "notes": list(dataset.notes),
        "claims": [c for c in card.get("claims", []) if c["metric"] in ("top1", "top5")],
        "machine": host(),
        **metrics,
    }


def load_data(data: Path, labels: Path | None = None, limit: int | None = None):
    """The validation set (failing fast on bad input), cut to a fixed subset of `limit` images."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    return load_dataset(Path(data), labels).subset(limit)
