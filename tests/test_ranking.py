"""Ranking on published figures: order, units, missing values last, device filter, Pareto frontier."""
from __future__ import annotations

import math

import pytest

import zoo
from zoo.results.ranking import pareto_front
from zoo.errors import UsageError


def test_latency_ranks_ascending_with_devices_and_missing_last():
    df = zoo.compare(metric="latency")
    have = df[~df["missing"]]
    assert list(have["latency_ms"]) == sorted(have["latency_ms"])
    assert have["device"].notna().all()
    assert df["missing"].tolist() == sorted(df["missing"].tolist())  # all False first, then all True
    assert df.loc[df["missing"], "rank"].isna().all()
    assert list(have["rank"]) == list(range(1, len(have) + 1))
    assert set(df["basis"]) == {"claimed", "no figure"}


def test_device_filter_keeps_only_that_devices_figures():
    df = zoo.compare(metric="latency", device="rdk x5")
    have = df[~df["missing"]]
    assert list(have["id"]) == ["rdk/mobilenetv2_224x224_nv12-x5"]
    assert have.iloc[0]["latency_ms"] == 1.42 and have.iloc[0]["device"] == "RDK X5 BPU"


def test_one_row_per_card_with_its_best_figure():
    df = zoo.compare(["paddleclas/MobileNetV2_x0_75"], metric="latency")
    assert len(df) == 1
    assert (df.iloc[0]["latency_ms"], df.iloc[0]["device"]) == (0.96, "NVIDIA V100")
    df = zoo.compare(["paddleclas/MobileNetV2_x0_75"], metric="latency", device="snapdragon")
    assert (df.iloc[0]["latency_ms"], df.iloc[0]["device"]) == (13.69, "Snapdragon 855")


def test_macs_are_normalised_whatever_the_source_convention():
    df = zoo.compare(["openvino/mobilenet-v2-1.0-224", "tf-slim/mobilenet_v2_1.0_224"], metric="macs")
    by_id = dict(zip(df["id"], df["macs_m"]))
    # OMZ publishes 0.615 GFLOPs (2 x MACs), TF-slim 300 M MACs: the same network.
    assert by_id["openvino/mobilenet-v2-1.0-224"] == pytest.approx(307.5)
    assert by_id["tf-slim/mobilenet_v2_1.0_224"] == pytest.approx(300.0)


def test_accuracy_best_first_and_top_n():
    df = zoo.compare(metric="accuracy", top=5)
    assert len(df) == 5
    assert list(df["top1_pct"]) == sorted(df["top1_pct"], reverse=True)
    assert df.iloc[0]["top1_pct"] == max(r["top1"] or 0 for r in zoo.list_cards())


def test_pareto_front_marks_only_undominated_cards():
    df = zoo.compare(metric="latency", pareto=True)
    front = df[df["pareto"]]
    assert len(front) >= 2
    both = df.dropna(subset=["latency_ms", "top1_pct"])
    for _, row in front.iterrows():
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


def test_measured_latency_ranks_where_there_is_one_and_says_so(coral_dir, monkeypatch):
    monkeypatch.setenv("ZOO_MIRROR", str(coral_dir))
    measured = zoo.bench("coral/mobilenet_v2_1.0_224_quant", iters=5, seconds=0, warmup=1)
    df = zoo.compare(["coral/*", "paddleclas/MobileNetV2"], metric="latency")
    row = df.set_index("id").loc["coral/mobilenet_v2_1.0_224_quant"]
    assert (row["latency_ms"], row["basis"], row["device"]) == (measured["p50_ms"], "measured", measured["device"])
    assert row["size_mb"] == 3.610798
    paddle = df.set_index("id").loc["paddleclas/MobileNetV2"]
    assert (paddle["basis"], paddle["latency_ms_claimed"]) == ("claimed", 1.02)
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
    df = zoo.compare(["paddleclas/*"], metric="accuracy").set_index("id")
    assert df.loc["paddleclas/MobileNetV2_x0_25", "top1_measured_pct"] == 99.0
    assert df.loc["paddleclas/MobileNetV2_x0_25", "rank"] == 7  # still ranked on its claimed 53.21


def test_plot_draws_claimed_and_measured_points(tmp_path):
    df = zoo.compare(metric="latency", pareto=True)
    out = zoo.plot(df, "latency", tmp_path / "frontier.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    with pytest.raises(UsageError, match="nothing to plot"):
        zoo.plot(zoo.compare(["timm/mobilenetv2_035"], metric="latency"), "latency", tmp_path / "none.png")


def test_a_measurement_belongs_to_the_bytes_so_cards_publishing_the_same_file_share_it():
    from zoo.results import store

    quant_sha = "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"
    store.record(_eval_run("coral/mobilenet_v2_1.0_224_quant", quant_sha, "litert",
                           {"top1": 85.2, "top5": 96.3, "n": 1000}))
    df = zoo.compare(["coral/*", "axis/*"], metric="accuracy").set_index("id")
    assert df.loc["axis/mobilenet_v2_1.0_224_quant", "top1_measured_pct"] == 85.2  # Axis republishes coral's file
    assert df.loc["axis/mobilenet_v2_1.0_224_quant", "measured_images"] == 1000
    assert pd_isna(df.loc["coral/tf2_mobilenet_v2_1.0_224_ptq", "top1_measured_pct"])


def _eval_run(card_id: str, sha256: str, runtime: str, metrics: dict):
    from zoo.measure.machine import host
    from zoo.results.records import Run

    machine = host()
    return Run(kind="eval", card_id=card_id, artifact_file=None, artifact_sha256=sha256, runtime=runtime,
               runtime_version="1", provider=None, threads=None, batch=None, device=machine["device"],
               machine_fingerprint=machine["fingerprint"], machine=machine, metrics=metrics)


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))
