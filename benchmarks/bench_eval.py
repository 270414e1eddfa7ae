"""`zoo eval` wall time against a naive loop, inference alone and decoding alone, all in the same run.

    python benchmarks/bench_eval.py [--data ../shared/data/imagenet-sample] [--card ID ...] [--limit N]
                                    [--batch 8] [--rounds 2] [--workers W]

By default one card of each preprocessing protocol (pillow, tf1-slim, tf2-resize, paddleclas, mindcv,
opencv), each printed on its own, then a summary of eval / floor per protocol (target <= 1.05).

The model is a MobileNetV2 1.0/224 ONNX graph (zoo.artifacts.convert.builder: the canonical architecture, random
weights; the run time of a convolutional network does not depend on its weights) run under the card's
conventions (its preprocessing; NCHW float input and 1000 classes, whatever the card's file takes). Measured over --rounds interleaved rounds, best of each:
  naive      the loop a user writes by hand: for each image, Pillow open/convert/resize/crop, numpy
             normalise and transpose, then a default onnxruntime.InferenceSession runs it (batch 1);
             only for pillow cards (the other protocols' sources are not a Pillow loop)
  serial     zoo's own per-image calls (its preprocessing, batch 1), one after another: what the
             pipeline alone gains; its top-1 picks must agree with the naive loop's
  inference  pre-decoded tensors in batches, no decoding: both one run at a time on ONNX Runtime's
             own threads, and one single-threaded run per core at once (as zoo eval does); the faster counts
  decoding   decode + preprocess + encode on a pool of one thread per core, no inference
  eval       zoo.measure.accuracy.evaluate_file (nothing stored): workers that each decode a batch, then run it
  floor      the CPU work per image, each part on one core (decoding in one thread, inference in one
             single-threaded session), divided by the cores: no schedule on this host can beat it. Two runs at
             once on cores that share caches each cost more than one alone (5-8% per batch on this 2-vCPU VM, by
             concurrent inference), so the script also prints eval against inference on every core plus
             decoding on every core (one after the other: what a schedule keeping every core busy must pay), and
             eval's CPU time against the floor's
Targets (issue 4): naive / eval >= 1.5; eval / max(inference, decoding) <= 1.15.
Where inference and decoding each keep every core busy on their own (a CPU-only host), they cannot
overlap for free: eval can at best reach the floor, so eval / max() >= floor / max(), printed as the
best this host allows, and eval / floor shows how close the pipeline gets. The max() target is
reachable where inference runs elsewhere (GPU, NPU) or leaves cores idle.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo.measure.datasets import load_dataset  # noqa: E402
from zoo.measure.accuracy import CPU_BATCH, evaluate_file  # noqa: E402
from zoo.measure.preprocess import Preprocessor  # noqa: E402
from zoo.measure.runtimes import Model, open_runtime  # noqa: E402
from zoo.artifacts.convert.builder import save_mobilenet_v2  # noqa: E402


def naive_loop(card: dict, model_path: Path, paths: list[Path]) -> list[int]:
    """Top-1 index per image from the plain one-image-at-a-time loop (NCHW float models)."""
    import onnxruntime as ort
    from PIL import Image

    from zoo.measure.preprocess import INTERPOLATION, central_fraction_box, shorter_side_box

    spec, r = card["preprocess"], card["resolution"]
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    resample = getattr(Image.Resampling, INTERPOLATION[spec["interpolation"]])
    top1 = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        if spec["resize"] == "shorter_side_crop":
            size, box = shorter_side_box(*image.size, r, spec["crop_pct"])
            image = image.resize(size, resample).crop(box)
        else:
            image = image.crop(central_fraction_box(*image.size, spec["crop_pct"])).resize((r, r), resample)
        x = np.asarray(image, dtype=np.float32)
        if spec.get("mean") is not None:
            x = (x / 255 - np.float32(spec["mean"])) / np.float32(spec["std"])
        else:
            x = x * np.float32(spec["scale"]) + np.float32(spec["offset"])
        scores = session.run(None, {name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])})[0]
        top1.append(int(scores.argmax()))
    return top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "imagenet-sample")
    parser.add_argument("--card", action="append", help="repeatable (default: one card of each protocol)")
    parser.add_argument("--limit", type=int, help="use N images of --data (a fixed subset spread over classes)")
    parser.add_argument("--batch", type=int, default=CPU_BATCH)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, help="zoo eval's lanes (default: one per core)")
    args = parser.parse_args()
    model_path = save_mobilenet_v2(Path(tempfile.mkdtemp()) / "mobilenetv2_100.onnx")
    summary = [measure(card_id, model_path, args) for card_id in args.card or PER_PROTOCOL]
    print(f"\nper protocol, load average {os.getloadavg()[0]:.2f}: eval / floor (wall; target <= 1.05 on a quiet host), "
          "and eval's CPU time / the floor's (what the pipeline costs beyond the work itself):")
    for card_id, protocol, ratio, work, busy in summary:
        print(f"  {protocol:11s} {card_id:40s} wall {ratio:5.2f}  {'ok' if ratio <= 1.05 else 'MISSED':6s}  CPU {work:5.2f}"
              f"  every-core floor {busy:5.2f}")


PER_PROTOCOL = ["timm/mobilenetv2_100.ra_in1k", "tf-slim/mobilenet_v2_1.0_224", "coral/tf2_mobilenet_v2_1.0_224_ptq",
                "paddleclas/MobileNetV2", "mindcv/mobilenet_v2_100", "openvino/mobilenet-v2-1.0-224"]


def measure(card_id: str, model_path: Path, args) -> tuple[str, str, float]:
    """Every measure for one card; prints them and returns (card id, protocol, eval / floor)."""
    # the card's preprocessing on the synthetic model's input: NCHW float32, 1000 classes
    card = {**zoo.get(card_id), "input": {"layout": "NCHW", "color": "RGB", "dtype": "float32"},
            "num_classes": 1000, "label_offset": 0}
    assert card["resolution"] == 224, "the synthetic model takes 224 x 224"
    protocol = card["preprocess"].get("protocol", "pillow")
    dataset = load_dataset(args.data).subset(args.limit)
    paths = [dataset.path(relative) for relative, _ in dataset.items]
    n, cores = len(paths), os.cpu_count() or 1
    preprocessor = Preprocessor(card["preprocess"], card["resolution"])

    serial_model = Model.from_card(open_runtime(model_path), card)

    def serial():
        return [int(serial_model.scores(serial_model.encode(preprocessor(path, serial_model.channels_first))[None])
                    .argmax()) for path in paths]

    eval_model = Model.from_card(open_runtime(model_path), card)

    def decode_one(path):
        return eval_model.encode(preprocessor(path, eval_model.channels_first))

    def decoding():
        with ThreadPoolExecutor(cores) as pool:
            return list(pool.map(decode_one, paths))

    tensors = decoding()  # also warms the page cache and Pillow before anything is timed
    batches = [np.stack(tensors[i:i + args.batch]) for i in range(0, n, args.batch)]
    del tensors
    lanes_model = Model.from_card(open_runtime(model_path, threads=1, spinning=False), card)

    def inference_lanes():  # one single-threaded run per core at a time, as zoo eval runs them
        with ThreadPoolExecutor(cores) as pool:
            return list(pool.map(lanes_model.scores, batches))

    def pipelined():
        assert evaluate_file(card, model_path, dataset, batch=args.batch, workers=args.workers)["n"] == n

    pillow = protocol == "pillow"
    serial_top1 = serial()  # a warm-up run, and the check
    if pillow:
        naive_top1 = naive_loop(card, model_path, paths)
        agree = sum(a == b for a, b in zip(naive_top1, serial_top1)) / n
    measures = {
        **({"naive": lambda: naive_loop(card, model_path, paths)} if pillow else {}),
        "serial": serial,
        # one run at a time, ONNX Runtime's own threads over all cores
        "inference_sequential": lambda: [eval_model.scores(batch) for batch in batches],
        "inference_lanes": inference_lanes,
        "decoding": decoding,
        "inference_one_core": lambda: [lanes_model.scores(batch) for batch in batches],
        "decoding_one_core": lambda: [decode_one(path) for path in paths],
        "eval": pipelined,
    }
    # Rounds interleave every measure, so that a slow spell on a shared machine hits all of them alike.
    # Process CPU time beside wall time: what the work cost, whatever share of the machine other jobs took.
    times, cpu = {name: [] for name in measures}, {name: [] for name in measures}
    for _ in range(args.rounds):
        for name, fn in measures.items():
            start, used = time.perf_counter(), sum(os.times()[:2])
            fn()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(sum(os.times()[:2]) - used)
    t = {name: min(values) for name, values in times.items()}
    c = {name: min(values) for name, values in cpu.items()}
    work = c["eval"] / (c["inference_one_core"] + c["decoding_one_core"])
    t_naive = t.get("naive", float("nan"))
    t_serial, t_decoding, t_eval = t["serial"], t["decoding"], t["eval"]
    t_sequential, t_lanes = t["inference_sequential"], t["inference_lanes"]
    t_inference = min(t_sequential, t_lanes)  # the faster way is the baseline
    t_floor = (t["inference_one_core"] + t["decoding_one_core"]) / cores

    ms = lambda t: f"{t:7.2f} s  {1000 * t / n:6.2f} ms/image"  # noqa: E731
    print(f"\n{n} images from {args.data}, card {card_id} (protocol {protocol}, {card['preprocess']['resize']}, "
          f"{card['preprocess']['interpolation']}), MobileNetV2 1.0/224 ONNX, {cores} cores, batch {args.batch}")
    if pillow:
        print(f"naive loop (by hand, batch 1)      {ms(t_naive)}")
    print(f"zoo's calls, serial (batch 1)      {ms(t_serial)}"
          + (f"   top-1 agrees with naive on {100 * agree:.1f}%" if pillow else ""))
    print(f"inference alone, sequential        {ms(t_sequential)}")
    print(f"inference alone, {cores} lanes           {ms(t_lanes)}")
    print(f"decoding alone ({cores} threads)        {ms(t_decoding)}")
    print(f"floor (CPU work / {cores} cores)          {ms(t_floor)}")
    print(f"zoo eval                           {ms(t_eval)}")
    speedup, overhead = t_naive / t_eval, t_eval / max(t_inference, t_decoding)
    if pillow:
        print(f"speed-up over the naive loop:           {speedup:5.2f}x  (target >= 1.5)  "
              f"{'ok' if speedup >= 1.5 else 'MISSED'}")
        print(f"  best this host allows, naive / floor: {t_naive / t_floor:5.2f}x")
    print(f"eval / max(inference, decoding):        {overhead:5.2f}   (target <= 1.15) {'ok' if overhead <= 1.15 else 'MISSED'}")
    print(f"  best this host allows, floor / max(): {t_floor / max(t_inference, t_decoding):5.2f}")
    print(f"eval / floor:                           {t_eval / t_floor:5.2f}")
    print(f"eval's CPU time / the floor's:          {work:5.2f}   (the pipeline's own cost, whatever the load)")
    busy = t_lanes + t_decoding
    print(f"eval / (inference on every core + decoding on every core): {t_eval / busy:5.2f}   (the floor when two runs "
          "at once cost more than one: shared caches)")
    print(f"serial / eval (the pipeline's own gain): {t_serial / t_eval:5.2f}x; best this host allows, serial / floor: "
          f"{t_serial / t_floor:5.2f}x")
    return card_id, protocol, t_eval / t_floor, work, t_eval / busy


if __name__ == "__main__":
    main()
