"""Conversion time of each native format (fresh cache) against reading the weights alone, in the same run.

Targets (issue 13): <= 2 s per conversion, <= 3x the time to read the weights, a refusal <= 0.5 s.
Two footings, both reported:
  warm     in one process (imports done): read only vs convert (read, map, build, save, one ORT check)
  command  one fresh interpreter each: `python -c "readers.read(path)"` vs `zoo convert ID` (what a user runs;
           it also copies the file from the mirror and hashes it)
The weight files are written with random weights by torch/timm (the reference extra) in each framework's layout;
the conversion itself never imports torch. Exits 1 when a conversion is over 2 s or a refusal over 0.5 s.

    python benchmarks/bench_convert.py [--runs 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402

TARGET_S, REFUSAL_S, RATIO = 2.0, 0.5, 3.0


def write_files(directory: Path) -> dict[str, tuple[str, str, str]]:
    """format label -> (card id, file name, format), written with random weights in the framework's layout."""
    import timm
    import torch
    import torchvision
    from safetensors.torch import save_file
    from reference_models import MindCVMobileNetV2, PaddleMobileNet, randomize, write_ckpt, write_pdparams

    timm_model = randomize(timm.create_model("mobilenetv2_100", num_classes=1000))
    torch.save(timm_model.state_dict(), directory / "timm.pth")
    save_file({k: v.contiguous() for k, v in timm_model.state_dict().items()}, str(directory / "timm.safetensors"))
    torch.save(randomize(torchvision.models.mobilenet_v2()).state_dict(), directory / "tv-legacy.pth",
               _use_new_zipfile_serialization=False)
    write_pdparams(randomize(PaddleMobileNet(1.0)), directory / "paddle.pdparams")
    write_pdparams(randomize(PaddleMobileNet(2.0)), directory / "paddle-x2.pdparams")
    write_ckpt(randomize(MindCVMobileNetV2(1.0)), directory / "mindcv.ckpt")
    return {
        "pth (zip, timm 1.0)": ("timm/mobilenetv2_100.ra_in1k", "timm.pth", "pth"),
        "pth (legacy, torchvision 1.0)": ("torchvision/mobilenet_v2.imagenet1k_v1", "tv-legacy.pth", "pth"),
        "safetensors (timm 1.0)": ("timm/mobilenetv2_100.ra_in1k", "timm.safetensors", "safetensors"),
        "pdparams (PaddleClas x1.0)": ("paddleclas/MobileNetV2", "paddle.pdparams", "pdparams"),
        "pdparams (PaddleClas x2.0)": ("paddleclas/MobileNetV2_x2_0", "paddle-x2.pdparams", "pdparams"),
        "ckpt (MindCV 1.0)": ("mindcv/mobilenet_v2_100", "mindcv.ckpt", "mindspore-ckpt"),
    }


def registry_card(registry: Path, card_id: str, file: str, fmt: str, tag: str = "") -> str:
    """A --registry card: a copy of card_id whose artifact is `file` (found on the mirror directory)."""
    source, name = card_id.split("/")
    card = yaml.safe_load((ROOT / "cards" / source / f"{name}.yaml").read_text())
    card = {k: v for k, v in card.items() if k != "claims"}
    card["id"] = f"{source}/bench_{Path(file).stem.replace('-', '_')}{tag}"
    card["artifacts"] = [{"file": file, "format": fmt, "precision": "fp32", "runtime": "onnxruntime",
                          "urls": [f"http://127.0.0.1:9/{file}"]}]
    (registry / f"{card['id'].replace('/', '_')}.yaml").write_text(yaml.safe_dump(card))
    return card["id"]


def median(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command(args: list[str], env: dict, expect: int = 0) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(args[-4:])}: exit {proc.returncode}, wanted {expect}: {proc.stderr[-400:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()

    from zoo import settings
    from zoo.artifacts import convert
    from zoo.artifacts.convert import readers
    from zoo.cards.registry import load_registry

    work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    files = write_files(work)
    registry, mirror = work / "cards", work
    registry.mkdir()
    cards = {label: registry_card(registry, *spec) for label, spec in files.items()}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ZOO_OFFLINE": ""}
    zoo_cmd = [sys.executable, "-c", "import zoo_cli; zoo_cli.main()"]
    rows, worst = [], {"convert_s": 0.0, "refusal_s": 0.0}

    for n, (label, (card_id, file, fmt)) in enumerate(files.items()):
        path = work / file
        card = load_registry().resolve(card_id)[0].card
        fresh = iter(range(10**6))

        def convert_once():  # a fresh cache every time: nothing is reused
            os.environ["ZOO_HOME"] = str(work / f"home-{n}-{next(fresh)}")
            record = convert.convert_file(card, path, fmt)
            assert not record["cached"]

        read_warm = median(lambda: readers.read(path, fmt), args.runs)
        convert_warm = median(convert_once, args.runs)
        read_cmd = median(lambda: command([sys.executable, "-c", "import sys; from zoo.artifacts.convert import readers; "
                                           "readers.read(sys.argv[1], sys.argv[2])", str(path), fmt], env), args.runs)
        counter = iter(range(10**6))

        def zoo_convert():
            command(zoo_cmd + ["--registry", str(registry), "convert", cards[label], "--mirror", str(mirror)],
                    {**env, "ZOO_HOME": str(work / f"cmd-{n}-{next(counter)}")})

        convert_cmd = median(zoo_convert, args.runs)
        rows.append({"format": label, "mb": round(path.stat().st_size / 1e6, 1), "read_warm_s": read_warm,
                     "convert_warm_s": convert_warm, "ratio_warm": convert_warm / read_warm, "read_cmd_s": read_cmd,
                     "convert_cmd_s": convert_cmd, "ratio_cmd": convert_cmd / read_cmd})
        worst["convert_s"] = max(worst["convert_s"], convert_warm, convert_cmd)

    # Refusals, in process (the library) and as a command.
    import pickle

    import numpy as np
    import torch

    class Boom:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"w": torch.zeros(1), "x": Boom()}, work / "evil.pth")
    with open(work / "evil.pdparams", "wb") as f:
        pickle.dump({"w": np.zeros(3, np.float32), "x": Boom()}, f, protocol=2)
    (work / "cut.ckpt").write_bytes((work / "mindcv.ckpt").read_bytes()[:5000])
    refusals = {"malicious .pth": ("timm/mobilenetv2_100.ra_in1k", "evil.pth", "pth"),
                "malicious .pdparams": ("paddleclas/MobileNetV2", "evil.pdparams", "pdparams"),
                "truncated .ckpt": ("mindcv/mobilenet_v2_100", "cut.ckpt", "mindspore-ckpt"),
                "x1.0 weights on the x2.0 card": ("paddleclas/MobileNetV2_x2_0", "paddle.pdparams", "pdparams")}
    refused = []
    from zoo.errors import ConversionError

    for label, (card_id, file, fmt) in refusals.items():
        card = load_registry().resolve(card_id)[0].card
        os.environ["ZOO_HOME"] = str(work / "refusals")

        def refuse():
            try:
                convert.convert_file(card, work / file, fmt)
            except ConversionError:
                return
            raise SystemExit(f"{label} was not refused")

        warm = median(refuse, args.runs)
        cid = registry_card(registry, card_id, file, fmt, tag="_refused")
        cmd = median(lambda: command(zoo_cmd + ["--registry", str(registry), "convert", cid, "--mirror", str(mirror)],
                                     {**env, "ZOO_HOME": str(work / "refusals-cmd")}, expect=10), args.runs)
        assert not list(settings.converted_dir().rglob("*.onnx"))
        refused.append({"refusal": label, "warm_s": warm, "cmd_s": cmd})
        worst["refusal_s"] = max(worst["refusal_s"], warm)

    print(f"{'format':32} {'MB':>5} {'read':>8} {'convert':>8} {'ratio':>6}   {'read cmd':>8} {'zoo convert':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['format']:32} {r['mb']:5.1f} {r['read_warm_s']:8.3f} {r['convert_warm_s']:8.3f} {r['ratio_warm']:6.1f}"
              f"   {r['read_cmd_s']:8.3f} {r['convert_cmd_s']:11.3f} {r['ratio_cmd']:6.1f}")
    print(f"\n{'refusal':32} {'in process':>10} {'zoo convert':>11}")
    for r in refused:
        print(f"{r['refusal']:32} {r['warm_s']:10.3f} {r['cmd_s']:11.3f}")
    print(f"\nmedians of {args.runs}; seconds. Targets: convert <= {TARGET_S} s (worst {worst['convert_s']:.2f}), "
          f"refusal <= {REFUSAL_S} s in process (worst {worst['refusal_s']:.3f}), convert <= {RATIO}x read "
          f"(warm worst {max(r['ratio_warm'] for r in rows):.1f}x, command worst {max(r['ratio_cmd'] for r in rows):.1f}x)")
    if args.json:
        args.json.write_text(json.dumps({"conversions": rows, "refusals": refused, "runs": args.runs}, indent=1))
    return 0 if worst["convert_s"] <= TARGET_S and worst["refusal_s"] <= REFUSAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
