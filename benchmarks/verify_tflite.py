"""The TFLite cards' ONNX conversions against LiteRT, image by image, on the ImageNet sample.

For each coral card: the same preprocessed, quantized input goes to LiteRT (the .tflite) and to ONNX Runtime (the
QDQ ONNX `zoo convert` writes); reports top-1 agreement, both accuracies, and the accuracy of the float
(dequantized) model. Target (issue 13): agreement >= 99%, QDQ accuracy within 0.5 points of LiteRT's.

    python benchmarks/verify_tflite.py [--limit 1000] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
CARDS = ["coral/mobilenet_v2_1.0_224_quant", "coral/tf2_mobilenet_v2_1.0_224_ptq"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("ZOO_HOME", tempfile.mkdtemp(prefix="verify-tflite-"))

    import numpy as np

    import zoo
    from zoo.artifacts.local import local_model
    from zoo.artifacts.convert import convert_card
    from zoo.measure.accuracy import load_data
    from zoo.measure.preprocess import Preprocessor
    from zoo.measure.runtimes import Model, open_runtime

    dataset = load_data(DATA / "imagenet-sample", None, args.limit)
    labels = np.array([label for _, label in dataset.items])
    results = []
    for card_id in CARDS:
        card = zoo.get(card_id)
        tflite = local_model(card, card["artifacts"][0], mirrors=[str(DATA / "coral")])
        qdq = Path(convert_card(card, mirrors=[str(DATA / "coral")])["path"])
        derived = zoo.get(convert_card(card, dequantize=True, mirrors=[str(DATA / "coral")])["id"])
        float_path = local_model(derived, derived["artifacts"][0])
        pre = Preprocessor(card["preprocess"], card["resolution"])
        models = {"litert": Model.from_card(open_runtime(tflite), card),
                  "onnx_qdq": Model.from_card(open_runtime(qdq), card),
                  "onnx_float": Model.from_card(open_runtime(float_path), derived)}
        top1 = {name: [] for name in models}
        for relative, _ in dataset.items:
            image = pre(dataset.path(relative), channels_first=False)
            for name, model in models.items():
                scores = model.scores(model.encode(image)[None])
                top1[name].append(int(np.argsort(-scores[0], kind="stable")[0]))
        top1 = {k: np.array(v) for k, v in top1.items()}
        row = {"card": card_id, "n": len(labels)}
        for name in models:
            row[f"{name}_top1"] = round(100 * float((top1[name] == labels).mean()), 2)
        for name in ("onnx_qdq", "onnx_float"):
            row[f"{name}_agree_litert"] = round(100 * float((top1[name] == top1["litert"]).mean()), 2)
        results.append(row)
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    ok = all(r["onnx_qdq_agree_litert"] >= 99 and abs(r["onnx_qdq_top1"] - r["litert_top1"]) <= 0.5 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
