"""The sweep engine (zoo.engine) on real models, real images and a real store: many cards per command,
decode once per preprocessing, resume from the store, per-card failures, one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import zoo
from zoo.engine.eval import eval_sweep
from zoo.errors import CardNotFoundError, NothingMeasured
from zoo.measure import accuracy
from zoo.measure.datasets import load_dataset
from zoo.measure.preprocess import Preprocessor
from zoo.results import store
from zoo_cli import app

runner = CliRunner()
CORAL = ["coral/mobilenet_v2_1.0_224_quant", "coral/tf2_mobilenet_v2_1.0_224_ptq"]


@pytest.fixture
def coral_mirror(zoo_home, coral_dir, monkeypatch):
    monkeypatch.setenv("ZOO_MIRROR", str(coral_dir))
    return coral_dir


@pytest.fixture
def images(sample_dir, tmp_path, link_sample):
    return link_sample(tmp_path / "images", sorted(p.name for p in sample_dir.glob("*.JPEG"))[:24])


def test_one_command_evaluates_many_cards_and_resumes(coral_mirror, images):
    events = []
    first = zoo.eval_sweep(["coral/*", "rdk/mobilenetv2_224x224_nv12-x5", "coral/mobilenet_v2_1.0_224_quant"],
                           images, progress=events.append)
    assert first["measured"] == CORAL and first["reused"] == [] and first["failed"] == []
    assert [s["card_id"] for s in first["skipped"]] == ["rdk/mobilenetv2_224x224_nv12-x5"]
    assert "RDK BPU only" in first["skipped"][0]["reason"]
    assert any(e["event"] == "note" and "measured once" in e["message"] for e in events)  # duplicates collapsed
    start = next(e for e in events if e["event"] == "start")
    advances = [e["done"] for e in events if e["event"] == "advance"]
    assert start["units"] == 2 * 24 and advances[-1] == 48 and advances == sorted(advances)
    runs = store.list_runs(kind="eval")
    assert sorted(r.card_id for r in runs) == CORAL and all(r.settings["provider"] == "cpu" for r in runs)
    # each card's figures equal a single-card eval's (the shared decode changes nothing)
    alone = zoo.evaluate(CORAL[0], images, store=False)
    by_id = {r["card_id"]: r for r in first["records"]}
    assert by_id[CORAL[0]]["top1"] == alone["top1"] and by_id[CORAL[0]]["result"]["per_class"] == alone["per_class"]

    again = zoo.eval_sweep(["coral/*"], images)
    assert again["reused"] == CORAL and again["measured"] == [] and len(store.list_runs()) == 2
    forced = zoo.eval_sweep([CORAL[1]], images, force=True)
    assert forced["measured"] == [CORAL[1]] and len(store.list_runs()) == 3
    # a different dataset is a different measurement
    other = zoo.eval_sweep([CORAL[1]], images, limit=10)
    assert other["measured"] == [CORAL[1]]


def test_an_interrupted_sweep_keeps_whole_runs_and_finishes_the_rest(coral_mirror, images):
    def interrupt(event):
        if event["event"] == "card" and event["status"] == "measured":
            raise KeyboardInterrupt  # Ctrl-C right after the first card was stored

    with pytest.raises(KeyboardInterrupt):
        zoo.bench_sweep(CORAL, iters=3, seconds=0, warmup=0, progress=interrupt)
    assert [r.card_id for r in store.list_runs()] == [CORAL[0]]
    resumed = zoo.bench_sweep(CORAL, iters=3, seconds=0, warmup=0)
    assert resumed["reused"] == [CORAL[0]] and resumed["measured"] == [CORAL[1]]
    assert len(store.list_runs()) == 2


def test_bench_sweep_uses_synthetic_weights_where_none_can_be_had(zoo_home):
    summary = zoo.bench_sweep(["timm/mobilenetv2_050.lamb_in1k", "rdk/mobilenetv2_224x224_nv12-x5"], iters=2,
                              seconds=0, warmup=0)
    (record,) = [r for r in summary["records"] if r["status"] == "measured"]
    assert record["synthetic_weights"] is True and "synthetic weights" in record["note"]
    assert summary["skipped"][0]["card_id"].startswith("rdk/")
    (run,) = store.list_runs()
    assert run.synthetic_weights and run.settings["synthetic_weights"] is True


def test_a_card_failing_mid_sweep_does_not_stop_the_others(coral_mirror, images, monkeypatch):
    original = accuracy.Job.run

    def flaky(self, start, pixels):
        if self.name == CORAL[0] and start > 0:
            self.error = RuntimeError("the runtime crashed")
            return
        return original(self, start, pixels)

    monkeypatch.setattr(accuracy.Job, "run", flaky)
    summary = zoo.eval_sweep(CORAL, images, batch=4)
    assert summary["measured"] == [CORAL[1]]
    assert summary["failed"] == [{"card_id": CORAL[0], "reason": "RuntimeError: the runtime crashed"}]
    assert [r.card_id for r in store.list_runs()] == [CORAL[1]]  # nothing half-written for the failed card


def test_predict_decodes_each_image_once_for_all_models(zoo_home, images, synthetic_onnx):
    from zoo.measure.runtimes import Model, open_runtime

    card = {"id": "x/y", "input": {"layout": "NCHW", "dtype": "float32", "color": "RGB"}, "resolution": 224,
            "num_classes": 1000, "label_offset": 0}
    spec = {"resize": "shorter_side_crop", "crop_pct": 0.875, "interpolation": "bicubic",
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    decoded = []

    class Counting(Preprocessor):
        def values(self, source):
            decoded.append(source)
            return super().values(source)

    other = {**spec, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}  # same pixels, other normalisation
    assert accuracy.pixels_key(Preprocessor(spec, 224)) == accuracy.pixels_key(Preprocessor(other, 224))
    assert accuracy.pixels_key(Preprocessor(spec, 224)) != accuracy.pixels_key(Preprocessor(spec, 192))
    model = Model.from_card(open_runtime(synthetic_onnx(), threads=1), card)
    jobs = [accuracy.Job([model], Counting(spec, 224)), accuracy.Job([model], Counting(other, 224))]
    dataset = load_dataset(images)
    done = accuracy.predict(jobs, dataset, batch=5, workers=2)
    assert len(decoded) == 24 and len(done["labels"]) == 24
    alone = accuracy.Job([model], Preprocessor(other, 224))
    single = accuracy.predict([alone], dataset, batch=5, workers=2)
    assert single["labels"] == done["labels"]
    assert np.array_equal(jobs[1].predictions(), alone.predictions())  # sharing the decode changes nothing


def test_nothing_measured_is_an_error_and_stores_nothing(zoo_home, images):
    with pytest.raises(NothingMeasured, match="nothing measured: 2 card"):
        eval_sweep([zoo.get("rdk/mobilenetv2_224x224_nv12-x5"), zoo.get("tf-slim/mobilenet_v2_1.0_224")],
                   load_dataset(images))
    with pytest.raises(CardNotFoundError, match="no card matches 'nomatch/"):
        zoo.eval_sweep(["coral/*", "nomatch/*"], images)
    assert not store.store_path().exists()


@pytest.mark.parametrize("args, code, words", [
    (["eval", "nomatch/*", "--data", "IMAGES"], 3, "no card matches 'nomatch/*'"),
    (["eval", "rdk/*", "--data", "IMAGES"], 1, "nothing measured: 4 card(s) skipped"),
    (["eval", "coral/*", "--data", "/nonexistent/val"], 9, "does not exist"),
    (["bench", "coral/*", "--cpus", "a-b"], 2, "--cpus 'a-b'"),
    (["bench", "coral/*", "--cpus", "4096"], 2, "not among this process's cores"),
])
def test_cli_sweep_errors_are_one_line(coral_mirror, images, args, code, words):
    result = runner.invoke(app, [str(images) if a == "IMAGES" else a for a in args])
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("zoo: error:")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in result.output
    assert not store.store_path().exists()


def test_cli_json_lines_and_summary(coral_mirror, images):
    result = runner.invoke(app, ["eval", "coral/*", "coral/*", "--data", str(images), "--json", "-q"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["card_id"] for line in lines[:-1]] == CORAL
    assert all(line["status"] == "measured" and line["n"] == 24 and "per_class" in line for line in lines[:-1])
    assert lines[-1]["summary"]["measured"] == CORAL and lines[-1]["summary"]["cards"] == 2
    text = runner.invoke(app, ["eval", "coral/*", "--data", str(images)])
    assert text.exit_code == 0 and "0 measured, 2 reused, 0 skipped, 0 failed" in text.stdout
    assert text.stdout.count("reused   coral/") == 2


def test_compare_measure_fills_what_is_missing(coral_mirror, images):
    result = runner.invoke(app, ["compare", "coral/*", "--metric", "accuracy", "--measure", "--data", str(images),
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    measured = [r for r in rows if r["basis"] == "measured here"]  # a section of its own: these 24 images
    assert sorted(r["id"] for r in measured) == CORAL and {r["dataset_images"] for r in measured} == {24}
    assert all(r["measured_images"] == 24 for r in rows if r["basis"] == "no figure")  # "yours" beside the claim
    assert len(store.list_runs()) == 2
    again = runner.invoke(app, ["compare", "coral/*", "--metric", "accuracy", "--measure", "--data", str(images)])
    assert again.exit_code == 0 and len(store.list_runs()) == 2  # nothing lacking: nothing measured
    missing = runner.invoke(app, ["compare", "--metric", "accuracy", "--measure"])
    assert missing.exit_code == 2 and "give --data DIR" in missing.stderr
