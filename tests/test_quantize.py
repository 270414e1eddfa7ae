"""int8 quantization: the calibration choice, ONNX Runtime's QDQ quantizer on a real model, the cache, McNemar."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

import zoo
from zoo.errors import DatasetError, UnsupportedArtifactError, UsageError
from zoo.measure.datasets import load_dataset
from zoo.measure.quantize import calibration_set, mcnemar_exact, quantize_file


def test_calibration_images_are_deterministic_and_spread_over_classes(sample_dir):
    dataset = load_dataset(sample_dir)
    first, again = calibration_set(dataset, 300), calibration_set(dataset, 300)
    assert first.items == again.items and len(first) == 300
    assert len({label for _, label in first.items}) == 300  # one per class before any class gets a second
    with pytest.raises(DatasetError, match="fewer than --calib-n 2000"):
        calibration_set(dataset, 2000)
    with pytest.raises(UsageError, match="at least 10"):
        calibration_set(dataset, 3)


def test_mcnemar_exact_is_the_two_sided_binomial_test():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2 ** 10)
    # b=3, c=9: 2 * P(X <= 3), X ~ Binomial(12, 1/2), summed by hand: (1 + 12 + 66 + 220) / 4096.
    assert mcnemar_exact(3, 9) == pytest.approx(2 * 299 / 4096) == mcnemar_exact(9, 3)
    assert mcnemar_exact(50, 50) == 1.0
    # Large n: the exact test agrees with the normal approximation's order of magnitude.
    z = (abs(200 - 260) - 1) / math.sqrt(460)
    assert mcnemar_exact(200, 260) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=0.15)


def test_quantize_a_float_model_to_qdq_and_reuse_it(synthetic_onnx, sample_dir):
    card = zoo.get("timm/mobilenetv2_050.lamb_in1k")
    float_model = synthetic_onnx(width=0.5, resolution=224)
    calibration = calibration_set(load_dataset(sample_dir), 12)
    record = quantize_file(card, float_model, calibration, method="minmax", per_channel=True)
    graph = onnx.load(record["path"]).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and not record["cached"]
    assert record["calibration"]["n"] == 12 and record["calibration"]["fingerprint"] == calibration.fingerprint()
    assert record["options"]["per_channel"] is True and record["quantizer_version"] >= 1
    import onnxruntime as ort

    session = ort.InferenceSession(record["path"], providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.zeros((2, 3, 224, 224), np.float32)})[0]
    assert out.shape == (2, 1000) and np.isfinite(out).all()
    again = quantize_file(card, float_model, calibration, method="minmax", per_channel=True)
    assert again["cached"] and again["sha256"] == record["sha256"]
    other = quantize_file(card, float_model, calibration, method="minmax", per_channel=False)
    assert other["path"] != record["path"]  # the settings are part of the cache key


def test_bad_requests_are_one_clear_error(synthetic_onnx, sample_dir):
    calibration = calibration_set(load_dataset(sample_dir), 10)
    with pytest.raises(UnsupportedArtifactError, match="already quantized"):
        quantize_file(zoo.get("coral/mobilenet_v2_1.0_224_quant"), synthetic_onnx(), calibration)
    with pytest.raises(UsageError, match="--method 'kl'"):
        quantize_file(zoo.get("timm/mobilenetv2_050.lamb_in1k"), synthetic_onnx(width=0.5), calibration, method="kl")


def test_quantize_makes_a_derived_int8_card_that_eval_takes(synthetic_onnx, sample_dir, tmp_path):
    from typer.testing import CliRunner

    import zoo_cli

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "model.onnx").write_bytes(synthetic_onnx(width=0.5).read_bytes())
    cards = tmp_path / "cards" / "x"
    cards.mkdir(parents=True)
    card = {**zoo.get("timm/mobilenetv2_050.lamb_in1k"), "id": "x/float050", "source": "x", "name": "float050"}
    card.pop("claims", None)
    import hashlib
    import yaml

    sha = hashlib.sha256((mirror / "model.onnx").read_bytes()).hexdigest()
    card["artifacts"] = [{"file": "model.onnx", "format": "onnx", "precision": "fp32", "runtime": "onnxruntime",
                          "sha256": sha, "urls": ["https://example.org/model.onnx"]}]
    card["complexity"] = {}
    (cards / "float050.yaml").write_text(yaml.safe_dump(card))
    runner = CliRunner()
    result = runner.invoke(zoo_cli.app, ["--registry", str(tmp_path / "cards"), "quantize", "x/float050", "--calib",
                                         str(sample_dir), "--calib-n", "10", "--mirror", str(mirror), "--json"])
    assert result.exit_code == 0, result.output
    import json

    [record] = json.loads(result.stdout)  # a list: one record per card the patterns match
    assert record["status"] == "quantized" and record["parent"] == "x/float050"
    assert record["id"] == "x/float050+int8" and record["derived_from"]["id"] == "x/float050"
    assert record["derived_from"]["calibration"]["n"] == 10
    listed = [c["id"] for c in zoo.list_cards("x/*", registries=[tmp_path / "cards"])]
    assert listed == ["x/float050", "x/float050+int8"]
    evaluated = zoo.evaluate("x/float050+int8", sample_dir, limit=12, store=False, registries=[tmp_path / "cards"])
    assert evaluated["n"] == 12 and evaluated["artifact"]["sha256"] == record["sha256"]
    again = runner.invoke(zoo_cli.app, ["--registry", str(tmp_path / "cards"), "quantize", "x/float050+int8",
                                        "--calib", str(sample_dir), "--calib-n", "10"])
    assert again.exit_code == 8 and "already quantized" in again.stderr and again.stderr.count("\n") == 1


# ---------------------------------------------------------------- the int8 card against its float parent (real weights)

CORAL = "coral/mobilenet_v2_1.0_224_quant"
FLOAT, INT8 = CORAL + "+float", CORAL + "+float+int8"


@pytest.fixture(scope="module")
def int8_home(tmp_path_factory, sample_dir, coral_dir, link_sample):
    """A ZOO_HOME holding the coral float card and its int8 card, calibrated on 20 of the 60 images of `data`
    (a folder of linked sample images; `other` holds 30 other ones). Tests copy it into their own ZOO_HOME."""
    root = tmp_path_factory.mktemp("int8")
    names = sorted(p.name for p in sample_dir.glob("*.JPEG"))
    link_sample(root / "data", names[:60])
    link_sample(root / "other", names[100:130])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(root / "home"))
        zoo.convert(CORAL, dequantize=True, mirrors=[str(coral_dir)])
        zoo.quantize(FLOAT, root / "data", calib_n=20)
    return root


@pytest.fixture
def int8(int8_home, zoo_home, coral_dir):
    """(folder with the calibration images among others, another folder): the int8 card in this test's ZOO_HOME
    (the models copied; the cards written again, from the cache, so that they point into this ZOO_HOME)."""
    import shutil

    shutil.copytree(int8_home / "home", zoo_home, dirs_exist_ok=True)
    shutil.rmtree(zoo_home / "derived")
    zoo.convert(CORAL, dequantize=True, mirrors=[str(coral_dir)])
    assert zoo.quantize(FLOAT, int8_home / "data", calib_n=20)["cached"]
    return int8_home / "data", int8_home / "other"


def zoo_cli(*args):
    from typer.testing import CliRunner

    import zoo_cli

    return CliRunner().invoke(zoo_cli.app, [str(a) for a in args])


def json_lines(result) -> list[dict]:
    import json

    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def outcomes(card_id: str, folder, names: list[str], labels: dict[str, int]) -> np.ndarray:
    """Top-1 right or wrong per image, computed apart from zoo's eval loop: one image at a time through
    ONNX Runtime, the card's preprocessing, its model file."""
    import onnxruntime as ort

    from zoo.artifacts.local import local_model
    from zoo.measure.choose import choose
    from zoo.measure.preprocess import Preprocessor

    card = zoo.get(card_id)
    session = ort.InferenceSession(str(local_model(card, choose(card))), providers=["CPUExecutionProvider"])
    preprocess = Preprocessor(card["preprocess"], card["resolution"])
    hits = []
    for name in names:
        x = preprocess(folder / name)[None].astype(np.float32)
        scores = session.run(None, {session.get_inputs()[0].name: x})[0].reshape(-1)
        top = int(np.argmax(scores[card.get("label_offset", 0):]))
        hits.append(top == labels[name])
    return np.asarray(hits)


def test_eval_of_an_int8_card_leaves_out_its_calibration_images_and_compares_with_its_parent(int8, sample_manifest):
    data, _ = int8
    record = json_lines(zoo_cli("eval", INT8, "--data", data, "--json"))[0]
    calibration = zoo.get(INT8)["derived_from"]["calibration"]
    assert record["calibration_excluded"] == 20 == len(calibration["files"]) and record["n"] == 40
    held = sorted(set(p.name for p in data.iterdir()) - set(calibration["files"]))
    # every image is one class of its own: the classes scored are exactly the held-out images' classes
    assert {c["index"] for c in record["per_class"].values()} == {sample_manifest[n] for n in held}
    v = record["accuracy_vs_float"]
    float_hits, int8_hits = (outcomes(card, data, held, sample_manifest) for card in (FLOAT, INT8))
    assert v["float_only"] == int((float_hits & ~int8_hits).sum()) and v["int8_only"] == int((~float_hits & int8_hits).sum())
    assert v["parent_top1"] == pytest.approx(100 * float_hits.mean(), abs=1e-3) == record["accuracy_vs_float"]["parent_top1"]
    assert v["top1"] == pytest.approx(100 * int8_hits.mean(), abs=1e-3) == pytest.approx(record["top1"])
    assert v["drop_points"] == pytest.approx(v["parent_top1"] - v["top1"], abs=1e-3)
    assert v["p_value"] == mcnemar_exact(v["float_only"], v["int8_only"]) and v["significant"] == (v["p_value"] < 0.05)
    assert v["parent"] == FLOAT and v["n"] == 40
    # both runs stored, linked; the held-out set is a data set of its own (never mixed with the whole folder)
    runs = {r.id: r for r in zoo.runs(kind="eval")}
    parent, own = runs[v["parent_run_id"]], runs[record["run_id"]]
    assert parent.card_id == FLOAT and parent.n_images == 40 and own.metrics["accuracy_vs_float"] == v
    assert parent.dataset_fingerprint == own.dataset_fingerprint != load_dataset(data).fingerprint()
    assert own.dataset["calibration_excluded"] == 20 and own.metrics["calibration_excluded"] == 20
    # text: the exclusion and the verdict; a second eval reuses the stored run with its comparison
    text = zoo_cli("eval", INT8, "--data", data)
    assert text.exit_code == 0 and "reused" in text.stdout and "(excluded 20 calibration images)" in text.stdout
    assert f"McNemar p = {v['p_value']:.2g}, {'' if v['significant'] else 'not '}significant)" in text.stdout
    assert v["verdict"] in text.stdout and f"top-1 {0.0 - v['drop_points']:+.2f} points (95% CI " in v["verdict"]


def test_eval_sweep_of_a_parent_and_its_int8_card(int8):
    data, other = int8
    # another folder: nothing excluded, and the parent in the pattern is measured once for both
    records = json_lines(zoo_cli("eval", "coral/*+float*", "--data", other, "--json"))
    by_id = {r["card_id"]: r for r in records if "card_id" in r}
    assert set(by_id) == {FLOAT, INT8} and all(r["status"] == "measured" for r in by_id.values())
    assert "calibration_excluded" not in by_id[INT8] and by_id[INT8]["n"] == 30
    assert by_id[INT8]["accuracy_vs_float"]["parent_run_id"] == by_id[FLOAT]["run_id"]
    assert by_id[INT8]["accuracy_vs_float"]["parent_top1"] == by_id[FLOAT]["top1"]
    assert len(zoo.runs(kind="eval")) == 2
    # the calibration folder: the parent on the whole folder (its own run) and on the int8 card's 40 images
    records = json_lines(zoo_cli("eval", "coral/*+float*", "--data", data, "--json"))
    by_id = {r["card_id"]: r for r in records if "card_id" in r}
    assert by_id[FLOAT]["n"] == 60 and by_id[INT8]["n"] == 40
    linked = zoo.runs(card=FLOAT, limit=1)[0]
    assert linked.id == by_id[INT8]["accuracy_vs_float"]["parent_run_id"] and linked.n_images == 40
    assert len(zoo.runs(kind="eval")) == 5


def test_bench_of_an_int8_card_times_its_parent_in_the_same_run(int8):
    records = json_lines(zoo_cli("bench", INT8, "--iters", 8, "--warmup", 1, "--threads", 1, "--json"))
    record = records[0]
    v = record["speed_vs_float"]
    assert v["parent"] == FLOAT and v["rounds"] == 8 and record["rounds"] == 8 and record["iterations"] == 8
    assert v["p50_ms"] == record["p50_ms"] and v["ratio"] == pytest.approx(v["p50_ms"] / v["parent_p50_ms"], rel=1e-3)
    assert v["speedup"] == pytest.approx(1 / v["ratio"], rel=1e-3) and v["slower"] == (v["ratio"] > 1)
    runs = {r.id: r for r in zoo.runs(kind="bench")}
    parent, own = runs[v["parent_run_id"]], runs[record["run_id"]]
    assert parent.card_id == FLOAT and parent.latency_ms == v["parent_p50_ms"] and parent.metrics["iterations"] == 8
    assert own.metrics["speed_vs_float"] == v and own.settings["float_parent"] == FLOAT
    assert parent.settings["int8_card"] == INT8 and parent.threads == own.threads == 1
    text = zoo_cli("bench", INT8, "--iters", 8, "--warmup", 1, "--threads", 1)
    assert text.exit_code == 0 and "reused" in text.stdout
    plain = f"int8 is {v['ratio']:.1f}x SLOWER than float on this host" if v["slower"] else \
        f"int8 is {1 / v['ratio']:.1f}x faster than float on this host"
    assert v["verdict"].startswith(plain) and v["verdict"] in text.stdout
    # the interval: from the rounds' p50s, around the measured speed-up; the CPU and its int8 instructions said
    low, high = v["speedup_ci95"]
    ratios = sorted(f / i for i, f in zip(record["round_p50_ms"], runs[v["parent_run_id"]].metrics["round_p50_ms"]))
    assert low <= v["speedup"] <= high and low <= ratios[1] and ratios[-2] <= high  # 8 rounds: at least 2nd..7th
    from zoo.measure.int8_format import host_int8

    assert "95% CI" in v["verdict"] and f"({host_int8()['cpu']}; " in v["verdict"]


@pytest.mark.parametrize("width", [80, 100, 120])
def test_compare_shows_the_int8_columns_on_quantized_cards_only(int8, width, monkeypatch):
    import json

    from rich.console import Console

    from zoo.cli import results as results_cli

    data, _ = int8
    evaluated = json_lines(zoo_cli("eval", INT8, "--data", data, "--json"))[0]["accuracy_vs_float"]
    timed = json_lines(zoo_cli("bench", INT8, "--iters", 4, "--warmup", 1, "--threads", 1, "--json"))[0]["speed_vs_float"]
    rows = {r["id"]: r for r in json.loads(zoo_cli("compare", "coral/*", "--json").stdout)
            if not r["basis"].startswith("measured")}  # each card's claim row (its measured rows follow)
    assert rows[INT8]["float_top1_pct"] == evaluated["parent_top1"] and rows[INT8]["int8_top1_pct"] == evaluated["top1"]
    assert rows[INT8]["drop_points"] == evaluated["drop_points"] and rows[INT8]["speedup"] == timed["speedup"]
    assert rows[INT8]["drop_p_value"] == evaluated["p_value"]
    for other in (FLOAT, CORAL):
        assert all(rows[other][c] is None for c in ("float_top1_pct", "int8_top1_pct", "drop_points", "speedup"))
    latency = [r for r in json.loads(zoo_cli("compare", "coral/*", "--metric", "latency", "--json").stdout)
               if r["id"] == INT8 and r["basis"] == "measured here"]
    assert latency[0]["speedup"] == timed["speedup"]
    monkeypatch.setattr(results_cli, "console", lambda: Console(width=width))  # a terminal this wide
    monkeypatch.setattr(results_cli, "piped", lambda: False)
    for metric in ("accuracy", "latency"):
        out = zoo_cli("compare", "--metric", metric).stdout  # every card: the derived ids are the longest
        assert max(len(line) for line in out.splitlines()) <= width, metric
        table = out[out.index("int8 against its float parent"):].splitlines()
        if width < 100:  # too narrow for the table: a line per card, nothing cut short
            start = next(i for i, line in enumerate(table) if line.startswith(INT8 + ":"))
            text = " ".join(" ".join(table[start:]).split())  # the card's line, wrapped at the terminal's width
            assert f"speed-up {timed['speedup']:.2f}" in text and f"drop {evaluated['drop_points']:.2f}" in text
            continue
        assert table[1].split() == ["id", "float", "%", "int8", "%", "drop", "McNemar", "p", "speed-up"]
        assert table[2].split() == [INT8, f"{evaluated['parent_top1']:.2f}", f"{evaluated['top1']:.2f}",
                                    f"{evaluated['drop_points']:.2f}", f"{evaluated['p_value']:.3g}",
                                    f"{timed['speedup']:.2f}"]
        verdict = " ".join(" ".join(table[3:]).split())  # the intervals in words, under the table
        assert verdict.startswith(f"{INT8}: int8 is") and "95% CI" in verdict and "McNemar p" in verdict
    wide = zoo_cli("compare", "coral/*", "--wide").stdout
    header = next(line for line in wide.splitlines() if line.startswith("#"))
    assert "speed-up" in header and "int8 against" not in wide


# ---------------------------------------------------------------- quantize sweeps, bad input (synthetic weights)

def float_cards(tmp_path, synthetic_onnx) -> tuple:
    """(registry folder, mirror): x/a and x/b share a preprocessing (224), x/c has its own (160), x/gone's file
    is nowhere to be had; each a float card of its own random-weight ONNX file."""
    import hashlib

    import yaml

    mirror, cards = tmp_path / "mirror", tmp_path / "cards" / "x"
    mirror.mkdir()
    cards.mkdir(parents=True)
    template = zoo.get("timm/mobilenetv2_050.lamb_in1k")
    for name, resolution in (("a", 224), ("b", 224), ("c", 160), ("gone", 224)):
        model = synthetic_onnx(width=0.5, resolution=resolution, seed=ord(name[0]))
        if name != "gone":
            (mirror / f"{name}.onnx").write_bytes(model.read_bytes())
        card = {**template, "id": f"x/{name}", "source": "x", "name": name, "resolution": resolution, "complexity": {}}
        card.pop("claims", None)
        card["artifacts"] = [{"file": f"{name}.onnx", "format": "onnx", "precision": "fp32", "runtime": "onnxruntime",
                              "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
                              "urls": [f"https://example.org/{name}.onnx"]}]
        (cards / f"{name}.yaml").write_text(yaml.safe_dump(card))
    return tmp_path / "cards", mirror


def test_quantize_sweep_calibrates_once_per_preprocessing(tmp_path, synthetic_onnx, sample_dir, monkeypatch):
    import json

    from zoo.measure.preprocess import Preprocessor

    registry, mirror = float_cards(tmp_path, synthetic_onnx)
    decoded = []
    values = Preprocessor.values
    monkeypatch.setattr(Preprocessor, "values", lambda self, source: decoded.append((self.resolution, source))
                        or values(self, source))
    args = ["--registry", registry, "quantize", "x/*", CORAL, "--calib", sample_dir, "--calib-n", 12,
            "--mirror", mirror]
    result = zoo_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    records = {r["parent"]: r for r in json.loads(result.stdout)}
    assert {k: r["status"] for k, r in records.items()} == {"x/a": "quantized", "x/b": "quantized", "x/c": "quantized",
                                                            "x/gone": "skipped", CORAL: "skipped"}
    assert records["x/a"]["id"] == "x/a+int8" and records["x/c"]["calibration"]["n"] == 12
    assert "weights unavailable" in records["x/gone"]["reason"] and "already quantized" in records[CORAL]["reason"]
    # one calibration pass per preprocessing: 12 images at 224 (shared by x/a and x/b), 12 at 160
    assert sorted((r, n) for r, n in {(r, sum(1 for d in decoded if d[0] == r)) for r, _ in decoded}) == \
        [(160, 12), (224, 12)]
    assert [c["id"] for c in zoo.list_cards("x/*+int8", registries=[registry])] == ["x/a+int8", "x/b+int8", "x/c+int8"]
    decoded.clear()
    # again: cached, nothing decoded; 'x/*' now also matches the int8 cards, skipped (already quantized);
    # progress per card on stderr, one line per card on stdout
    again = zoo_cli(*args)
    assert again.exit_code == 0 and decoded == []
    assert "[2/8] x/a+int8: skipped x/a+int8 is already quantized" in again.stderr
    assert "[5/8] x/c: quantized -> x/c+int8" in again.stderr and "[8/8] " + CORAL + ": skipped" in again.stderr
    assert "(cached)" in again.stdout and again.stdout.splitlines()[-1] == "3 quantized, 5 skipped, 0 failed"


def test_bad_quantize_and_int8_eval_requests_are_one_line(tmp_path, synthetic_onnx, link_sample, sample_dir):
    import json

    from zoo import settings

    registry, mirror = float_cards(tmp_path, synthetic_onnx)
    names = sorted(p.name for p in sample_dir.glob("*.JPEG"))
    few = link_sample(tmp_path / "few", names[:8])
    cases = [(["x/a", "--calib", few], 9, "fewer than --calib-n"),
             (["x/a", "--calib", tmp_path / "nowhere"], 9, "does not exist"),
             (["x/*", "--calib", sample_dir, "--method", "kl"], 2, "--method 'kl'"),
             (["y/*", "--calib", sample_dir], 3, "no card matches 'y/*'")]
    for args, code, message in cases:
        result = zoo_cli("--registry", registry, "quantize", *args, "--calib-n", 10, "--mirror", mirror)
        assert result.exit_code == code and message in result.stderr, (args, result.output)
        assert result.stderr.count("\n") == 1 and result.stdout == "", args
    # nothing quantized: each card's reason on stdout (a line each, or the JSON records), then one error line
    result = zoo_cli("quantize", CORAL, "coral/tf2*", "--calib", sample_dir, "--calib-n", 10)
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.stderr.splitlines()[-1]
    assert last.startswith("zoo: error: nothing quantized: 2 card(s) skipped, 0 failed. " + CORAL + ": ")
    assert [line.split()[:2] for line in result.stdout.splitlines()] == \
        [["skipped", CORAL + ":"], ["skipped", "coral/tf2_mobilenet_v2_1.0_224_ptq:"], ["0", "quantized,"]]
    assert all("already quantized" in line for line in result.stdout.splitlines()[:2])
    result = zoo_cli("quantize", CORAL, "coral/tf2*", "--calib", sample_dir, "--calib-n", 10, "--json", "-q")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert [(r["parent"], r["status"]) for r in json.loads(result.stdout)] == \
        [(CORAL, "skipped"), ("coral/tf2_mobilenet_v2_1.0_224_ptq", "skipped")]
    assert not settings.quantized_dir().exists() or not any(settings.quantized_dir().rglob("*.onnx"))
    assert not settings.derived_dir().exists()
    # every image of the folder calibrated the card: nothing is left to evaluate it on, and nothing is stored
    ten = link_sample(tmp_path / "ten", names[:10])
    assert zoo_cli("--registry", registry, "quantize", "x/a", "--calib", ten, "--calib-n", 10, "--mirror",
                   mirror).exit_code == 0
    result = zoo_cli("--registry", registry, "eval", "x/a+int8", "--data", ten, "--mirror", mirror)
    assert result.exit_code == 9 and "none is left to evaluate it on" in result.stderr
    assert result.stderr.count("\n") == 1 and zoo.runs() == []


def test_an_int8_card_whose_parent_is_gone_is_evaluated_alone(tmp_path, synthetic_onnx, link_sample, sample_dir):
    registry, mirror = float_cards(tmp_path, synthetic_onnx)
    names = sorted(p.name for p in sample_dir.glob("*.JPEG"))
    calib, data = link_sample(tmp_path / "calib", names[:10]), link_sample(tmp_path / "data", names[10:22])
    assert zoo_cli("--registry", registry, "quantize", "x/a", "--calib", calib, "--calib-n", 10, "--mirror",
                   mirror).exit_code == 0
    # without --registry the derived card x/a+int8 is still listed (ZOO_HOME), its parent x/a is not
    [record] = [r for r in json_lines(zoo_cli("eval", "x/a+int8", "--data", data, "--mirror", mirror, "--json"))
                if "card_id" in r]
    assert record["status"] == "measured" and record["n"] == 12 and record.get("accuracy_vs_float") is None
    assert [r.card_id for r in zoo.runs()] == ["x/a+int8"] and "float_parent" not in zoo.runs()[0].settings
    # with its parent: measured again beside it (a run made alone is not one made beside the parent)
    records = json_lines(zoo_cli("--registry", registry, "eval", "x/a+int8", "--data", data, "--mirror", mirror,
                                 "--json"))
    assert records[0]["status"] == "measured" and records[0]["accuracy_vs_float"]["parent"] == "x/a"
    assert records[0]["accuracy_vs_float"]["n"] == 12


# ---------------------------------------------------------------- bounded memory, the core install, the format

CALIBRATE = """
import resource, sys
limit = 3 * 2 ** 30  # an address space that 60 images of held activations (~62 MB each, twice) would overrun
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class NoSympy:  # the core install has no sympy: any import of it fails, as there
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sympy":
            raise ImportError("sympy is not installed")


sys.meta_path.insert(0, NoSympy())
import zoo
from zoo.engine.quantize import float_model
from zoo.measure.datasets import load_dataset
from zoo.measure.quantize import calibration_set, quantize_file

card = zoo.get(sys.argv[1])
record = quantize_file(card, float_model(card), calibration_set(load_dataset(sys.argv[2]), int(sys.argv[3])),
                       method="entropy", force=True)
# this process's own peak (VmHWM: its memory map's; ru_maxrss would keep the forking pytest's peak across exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(record["calibration"]["n"], peak * 1024)
"""


def test_entropy_calibration_runs_in_bounded_memory_without_sympy(coral_dir, sample_dir):
    """Issue 22 item 10: entropy calibration held every activation of every image (~62 MB an image at 224, 300
    images ~19 GiB; 60 failed under a 4 GiB address space). Now 60 images calibrate under 3 GiB, and the peak
    grows by little more than the decoded images themselves (0.6 MB each) from 12 images to 60. And ONNX
    Runtime's pre-processing no longer needs sympy, which `pip install .` does not bring."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    zoo.convert(CORAL, dequantize=True, mirrors=[str(coral_dir)])
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    peaks = {}
    for n in (12, 60):
        done = subprocess.run([sys.executable, "-c", CALIBRATE, FLOAT, str(sample_dir), str(n)], capture_output=True,
                              text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        calibrated, peak = map(int, done.stdout.split())
        assert calibrated == n
        peaks[n] = peak
    assert peaks[60] < 2 ** 30 and peaks[60] - peaks[12] < 150 * 2 ** 20, peaks


def test_the_format_is_chosen_for_the_host_and_recorded_in_the_derived_card(synthetic_onnx, sample_dir, tmp_path):
    from zoo.measure.int8_format import choose_format, host_int8

    registry, mirror = float_cards(tmp_path, synthetic_onnx)
    here = host_int8()
    expected, reason = choose_format(here)
    [auto] = zoo.quantize_sweep("x/a", sample_dir, calib_n=10, mirrors=[str(mirror)], registries=[registry])
    options = auto["options"]
    assert options["format"] == expected and options["chosen_by"] == "auto" and options["reason"] == reason
    assert options["host"] == here and options["layout"] == "QDQ" and options["keep_float"] == []
    quantization = zoo.get("x/a+int8", registries=[registry])["derived_from"]["quantization"]
    assert quantization == {k: options[k] for k in quantization} and quantization["reason"] == reason
    # the weights and activations the format says are the ones in the file
    import onnx

    dtypes = {t.name: t.data_type for t in onnx.load(auto["path"]).graph.initializer}
    model = onnx.load(auto["path"]).graph
    zero_points = {dtypes[n.input[2]] for n in model.node if n.op_type == "DequantizeLinear" and len(n.input) > 2}
    weight_type = onnx.TensorProto.INT8 if options["weights"] == "int8" else onnx.TensorProto.UINT8
    assert weight_type in zero_points
    # --format overrides, another model in the cache; an unknown format is one line before any work
    [given] = zoo.quantize_sweep("x/a", sample_dir, calib_n=10, format="u8u8", mirrors=[str(mirror)],
                                 registries=[registry])
    assert given["options"]["format"] == "u8u8" and given["options"]["chosen_by"] == "--format"
    assert given["path"] != auto["path"] and given["options"]["weights"] == "uint8"
    zero_points = {t.data_type for t in onnx.load(given["path"]).graph.initializer if t.name.endswith("_zero_point")}
    assert zero_points - {onnx.TensorProto.INT32} == {onnx.TensorProto.UINT8}  # (int32: the biases')
    with pytest.raises(UsageError, match="--format 'int4'"):
        zoo.quantize_sweep("x/a", sample_dir, calib_n=10, format="int4", mirrors=[str(mirror)], registries=[registry])
