"""Ranking on published figures: order, units, missing values last, device filter, Pareto frontier."""
from __future__ import annotations

import math

import pytest

import zoo
from zoo.results.ranking import pareto_front
from zoo.errors import UsageError


def test_latency_ranks_only_within_one_footing_and_missing_last():
    df = zoo.compare(metric="latency")
    have = df[~df["missing"]]
    for footing, rows in have.groupby("footing", sort=False):
        assert list(rows["latency_ms"]) == sorted(rows["latency_ms"]), footing
        assert list(rows["rank"]) == list(range(1, len(rows) + 1))
        assert rows[["device", "batch", "precision", "runtime"]].drop_duplicates().shape[0] == 1
    # One footing is one device, batch and precision: the V100 and the Snapdragon are never in one ranking.
    v100 = have[have["device"] == "NVIDIA V100"]
    assert set(v100["footing"]) == {"NVIDIA V100 · TensorRT · fp32 · batch 1"} and v100["rank"].min() == 1
    assert df["missing"].tolist() == sorted(df["missing"].tolist())  # all False first, then all True
    assert df.loc[df["missing"], "rank"].isna().all()
    assert set(df["basis"]) == {"claimed", "no figure"}
    # Footings appear contiguously: a footing never comes back after another began.
    order = list(dict.fromkeys(have["footing"]))
    assert [f for f in have["footing"]] == sorted(have["footing"], key=order.index)


def test_fps_keeps_batch_and_precision_apart():
    df = zoo.compare(metric="fps")
    rtx = df[df["device"] == "NVIDIA RTX 4090"]
    assert set(rtx["batch"]) == {1024} and rtx["footing"].nunique() == 1 and rtx["rank"].min() == 1
    cpu = df[df["device"] == "Intel i7-12700H CPU"]
    assert set(cpu["batch"]) == {1} and cpu["rank"].min() == 1  # ranked apart from the batch-1024 GPU figures
    assert (df.loc[~df["missing"], "footing"].str.contains("batch")).all()


def test_device_filter_keeps_only_that_devices_figures():
    df = zoo.compare(metric="latency", device="rdk x5")
    have = df[~df["missing"]]
    assert list(have["id"]) == ["rdk/mobilenetv2_224x224_nv12-x5"]
    assert have.iloc[0]["latency_ms"] == 1.42 and have.iloc[0]["device"] == "RDK X5 BPU"


def test_a_device_that_matches_nothing_lists_the_devices_there_are():
    with pytest.raises(UsageError, match="no latency figure on a device matching 'pixel 9'") as caught:
        zoo.compare(metric="latency", device="pixel 9")
    assert "RDK X5 BPU" in caught.value.hint and "NVIDIA V100" in caught.value.hint
    with pytest.raises(UsageError, match="measured on that device yet"):
        zoo.compare(metric="latency", device="host")


def test_one_row_per_card_and_footing():
    df = zoo.compare(["paddleclas/MobileNetV2_x0_75"], metric="latency")
    assert sorted(zip(df["device"], df["latency_ms"])) == [("NVIDIA V100", 0.96), ("Snapdragon 855", 13.69)]
    assert list(df["rank"]) == [1, 1]  # each first on its own footing, not one ahead of the other
    df = zoo.compare(["paddleclas/MobileNetV2_x0_75"], metric="latency", device="snapdragon")
    assert (df.iloc[0]["latency_ms"], df.iloc[0]["device"], len(df)) == (13.69, "Snapdragon 855", 1)


def test_flops_say_their_convention_and_storage_is_size_on_disk():
    df = zoo.compare(["openvino/mobilenet-v2-1.0-224", "paddleclas/MobileNetV2"], metric="flops").set_index("id")
    omz, paddle = df.loc["openvino/mobilenet-v2-1.0-224"], df.loc["paddleclas/MobileNetV2"]
    assert omz["flops_g"] == pytest.approx(0.615) and omz["flops_g_reported"] == pytest.approx(0.615)
    assert omz["flops_convention"] == "2x_macs"
    # PaddleClas's model list counts multiply-adds: its own 0.328 is half of the 2 x MACs column.
    assert paddle["flops_convention"] == "macs" and paddle["flops_g"] == pytest.approx(2 * paddle["flops_g_reported"])
    storage = zoo.compare(["coral/*"], metric="storage")
    assert list(storage["size_mb"]) == [3.610798, 4.070174]
    assert list(storage["artifact_file"]) == ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"]


def test_macs_are_normalised_whatever_the_source_convention():
    df = zoo.compare(["openvino/mobilenet-v2-1.0-224", "tf-slim/mobilenet_v2_1.0_224"], metric="macs")
    by_id = dict(zip(df["id"], df["macs_m"]))
    # OMZ publishes 0.615 GFLOPs (2 x MACs), TF-slim 300 M MACs: the same network.
    assert by_id["openvino/mobilenet-v2-1.0-224"] == pytest.approx(307.5)
    assert by_id["tf-slim/mobilenet_v2_1.0_224"] == pytest.approx(300.0)


def test_accuracy_best_first_and_top_n():
    df = zoo.compare(metric="accuracy", top=5)
    df = df[~df["missing"]]  # cards without a claimed top-1 are listed after the ranked ones
    assert len(df) == 5 and set(df["basis"]) == {"claimed"}
    assert list(df["top1_pct"]) == sorted(df["top1_pct"], reverse=True)
    assert df.iloc[0]["top1_pct"] == max(r["top1"] or 0 for r in zoo.list_cards())


def test_pareto_front_marks_only_undominated_cards_within_a_footing():
    df = zoo.compare(metric="latency", pareto=True)
    front = df[df["pareto"]]
    assert len(front) >= 2 and front["footing"].nunique() > 1
    for _, row in front.iterrows():
        both = df[df["footing"] == row["footing"]].dropna(subset=["latency_ms", "top1_pct"])
        dominated = both[(both["latency_ms"] <= row["latency_ms"]) & (both["top1_pct"] >= row["top1_pct"])
                         & ((both["latency_ms"] < row["latency_ms"]) | (both["top1_pct"] > row["top1_pct"]))]
        assert dominated.empty, row["id"]
    assert not df[df["latency_ms"].isna() | df["top1_pct"].isna()]["pareto"].any()


def test_pareto_front_on_a_small_table():
    import pandas as pd

    df = pd.DataFrame({"top1_pct": [70.0, 72.0, 69.0, 72.0, math.nan], "latency_ms": [1.0, 2.0, 3.0, 2.5, 0.5]})
    assert pareto_front(df, "latency_ms", False).tolist() == [True, True, False, False, False]


@pytest.mark.parametrize("kwargs, words", [
    (dict(metric="speed"), "unknown metric"),
    (dict(metric="accuracy", device="V100"), "--device applies to latency and fps"),
    (dict(metric="latency", top=0), "--top must be at least 1"),
])
def test_bad_options(kwargs, words):
    with pytest.raises(UsageError, match=words):
        zoo.compare(**kwargs)


def test_unknown_pattern_is_a_clear_error():
    with pytest.raises(LookupError, match="no card matches 'mobilnetv2_075'"):
        zoo.compare(["mobilnetv2_075"])


def test_measured_latency_ranks_first_on_its_own_footing_beside_the_claims(coral_dir, monkeypatch):
    monkeypatch.setenv("ZOO_MIRROR", str(coral_dir))
    measured = zoo.bench("coral/mobilenet_v2_1.0_224_quant", iters=5, seconds=0, warmup=1)
    df = zoo.compare(["coral/*", "axis/mobilenet_v2_1.0_224_quant", "paddleclas/MobileNetV2"], metric="latency")
    first = df.iloc[0]
    assert (first["id"], first["rank"], first["basis"]) == ("coral/mobilenet_v2_1.0_224_quant", 1, "measured here")
    assert (first["latency_ms"], first["device"], first["batch"]) == (measured["p50_ms"], measured["device"], 1)
    assert (first["precision"], first["runtime"], first["size_mb"]) == ("uint8", "litert", 3.610798)
    # The Axis card publishes the same bytes: its DLPU claims stay its figures, each on its own footing.
    axis = df[df["id"] == "axis/mobilenet_v2_1.0_224_quant"]
    assert set(axis["basis"]) == {"claimed"} and set(axis["rank"]) == {1}
    assert "Axis ARTPEC-9 DLPU (Q1728) · runtime not stated · uint8 · batch 1" in set(axis["footing"])
    paddle = df[df["id"] == "paddleclas/MobileNetV2"]
    assert set(paddle["basis"]) == {"claimed"} and paddle["latency_ms_claimed"].isna().all()
    # On the host only, claims made on other hardware do not rank.
    host = zoo.compare(["coral/*", "paddleclas/MobileNetV2"], metric="latency", device="host")
    assert list(host[~host["missing"]]["id"]) == ["coral/mobilenet_v2_1.0_224_quant"]
    # Counted MACs rank the macs metric once a run has counted them.
    macs = zoo.compare(["coral/mobilenet_v2_1.0_224_quant"], metric="macs").iloc[0]
    assert macs["basis"] == "measured" and macs["macs_m"] == pytest.approx(300.8, rel=0.01)
    assert zoo.compare(["coral/*"], metric="latency", measured=False)["missing"].all()


def test_measured_accuracy_is_shown_beside_the_claim_not_ranked(monkeypatch):
    from zoo.results import store

    store.record(_eval_run("paddleclas/MobileNetV2_x0_25", "0" * 64, "onnxruntime", {"top1": 99.0, "top5": 100.0}))
    table = zoo.compare(["paddleclas/*"], metric="accuracy")
    df = table[table["basis"] == "claimed"].set_index("id")
    assert df.loc["paddleclas/MobileNetV2_x0_25", "top1_measured_pct"] == 99.0
    assert df.loc["paddleclas/MobileNetV2_x0_25", "rank"] == 7  # still ranked on its claimed 53.21
    # ... and ranked on its own images in a section of its own, never against the claims
    (mine,) = table[table["basis"] == "measured here"].itertuples(index=False)
    assert (mine.id, mine.top1_pct, mine.rank) == ("paddleclas/MobileNetV2_x0_25", 99.0, 1)
    assert mine.footing.startswith("measured on ") and mine.footing != df.loc[mine.id, "footing"]


def test_plot_draws_claimed_and_measured_points(tmp_path):
    df = zoo.compare(metric="latency", pareto=True)
    out = zoo.plot(df, "latency", tmp_path / "frontier.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    with pytest.raises(UsageError, match="nothing to plot"):
        zoo.plot(zoo.compare(["timm/mobilenetv2_035"], metric="latency"), "latency", tmp_path / "none.png")


def test_a_measurement_belongs_to_its_card_and_another_card_with_the_same_file_says_whose_it_is():
    from zoo.results import store

    quant_sha = "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"
    store.record(_eval_run("coral/mobilenet_v2_1.0_224_quant", quant_sha, "litert",
                           {"top1": 85.2, "top5": 96.3, "n": 1000, "top1_ci95": [82.9, 87.2]},
                           dataset={"path": "/data/imagenet-sample", "n_images": 1000}))
    table = zoo.compare(["coral/*", "axis/*"], metric="accuracy")
    df = table[~table["basis"].str.startswith("measured")].set_index("id")  # each card's claim row ("yours" beside it)
    coral, axis = df.loc["coral/mobilenet_v2_1.0_224_quant"], df.loc["axis/mobilenet_v2_1.0_224_quant"]
    assert coral["measured_card_id"] == "coral/mobilenet_v2_1.0_224_quant"
    # Shown beside the Axis card, but as made on coral's card: never as Axis's own run.
    assert (axis["top1_measured_pct"], axis["measured_card_id"]) == (85.2, "coral/mobilenet_v2_1.0_224_quant")
    assert pd_isna(df.loc["coral/tf2_mobilenet_v2_1.0_224_ptq", "top1_measured_pct"])


@pytest.mark.parametrize("claimed, metrics, word", [
    (71.8, {"top1": 72.0, "n": 50_000, "top1_ci95": [71.6, 72.4]}, "reproduced"),
    (70.0, {"top1": 72.0, "n": 50_000, "top1_ci95": [71.6, 72.4]}, "higher"),
    (74.0, {"top1": 72.0, "n": 50_000, "top1_ci95": [71.6, 72.4]}, "lower"),
    (71.8, {"top1": 85.2, "n": 1000, "top1_ci95": [82.9, 87.2]}, "higher (not ImageNet val)"),
    (71.8, {"top1": 70.0, "n": 50, "top1_ci95": [56.2, 80.9]}, "too few images to tell"),
])
def test_reproduction_verdict(claimed, metrics, word):
    from zoo.results.ranking import verdict

    assert verdict(claimed, _eval_run("x/y", "0" * 64, "onnxruntime", metrics)) == word


def test_verdict_dataset_and_interval_reach_the_table():
    from zoo.results import store

    store.record(_eval_run("paddleclas/MobileNetV2", "1" * 64, "onnxruntime",
                           {"top1": 84.0, "top5": 96.0, "n": 1000, "top1_ci95": [81.6, 86.1]},
                           dataset={"path": "/data/imagenet-sample/", "n_images": 1000}))
    row = zoo.compare(["paddleclas/MobileNetV2"]).iloc[0]
    assert (row["top1_ci95_low"], row["top1_ci95_high"], row["measured_images"]) == (81.6, 86.1, 1000)
    assert row["measured_dataset"] == "imagenet-sample (1000 images)"
    assert row["verdict"] == "higher (not ImageNet val)"


def _eval_run(card_id: str, sha256: str, runtime: str, metrics: dict, dataset: dict | None = None):
    from zoo.measure.machine import host
    from zoo.results.records import Run

    machine = host()
    return Run(kind="eval", card_id=card_id, artifact_file=None, artifact_sha256=sha256, runtime=runtime,
               runtime_version="1", provider=None, threads=None, batch=None, device=machine["device"],
               machine_fingerprint=machine["fingerprint"], machine=machine, metrics=metrics, dataset=dataset)


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))
