"""Every figure on a card traces to a row of reported.csv, and every row of a listed source has a card."""
from __future__ import annotations

import csv

import pytest

from zoo.cards.registry import load_registry

# reported.csv source -> card source
SOURCES = {
    "timm": "timm", "timm-benchmark": "timm", "d-li14/mobilenetv2.pytorch": "d-li14", "mindcv": "mindcv",
    "paddleclas": "paddleclas", "rdk_model_zoo": "rdk", "torchvision": "torchvision", "tf-slim": "tf-slim",
    "tflite-hosted-models": "tflite", "google-coral/test_data": "coral", "axis-model-zoo": "axis",
    "arm-ml-zoo": "arm", "stm32ai-modelzoo": "stm32", "openvino-open_model_zoo": "openvino", "onnx/models": "onnx",
}
FIGURES = ("top1", "top5", "latency_ms", "fps")


@pytest.fixture(scope="module")
def rows(shared_data) -> list[dict]:
    return list(csv.DictReader((shared_data / "reported.csv").open(encoding="utf-8")))


@pytest.fixture(scope="module")
def cards() -> list[dict]:
    return [e.card for e in load_registry().entries()]


def same_model(row: dict, card: dict) -> bool:
    return (SOURCES.get(row["source"]) == card["source"] and float(row["width"]) == card["width"]
            and int(row["resolution"]) == card["resolution"])


def page(url: str) -> str:
    # Cards link GitHub files by /raw/ (the bytes); reported.csv often by /blob/ (the page).
    return url.replace("/raw/", "/blob/", 1)


def urls(card: dict) -> set[str]:
    return {page(u) for a in card.get("artifacts", []) for u in a["urls"]}


def traces(claim: dict, row: dict) -> bool:
    return (row["reference_url"] == claim["reference"] and row[claim["metric"]] != ""
            and float(row[claim["metric"]]) == claim["value"])


def test_every_source_in_reported_csv_is_listed(rows):
    assert {r["source"] for r in rows} == set(SOURCES)


def test_every_card_figure_traces_to_a_row(rows, cards):
    untraced = []
    for card in cards:
        mine = [r for r in rows if same_model(r, card)]
        for claim in card.get("claims", []):
            if not any(traces(claim, r) for r in mine):
                untraced.append(f"{card['id']}: {claim['metric']}={claim['value']} ({claim['reference']})")
        cx = card.get("complexity", {})
        for field, column in (("reported_params_m", "params_m"), ("reported_flops_g", "flops_g")):
            if field in cx and not any(r["reference_url"] == cx["reference"] and r[column] != ""
                                       and float(r[column]) == cx[field] for r in mine):
                untraced.append(f"{card['id']}: complexity.{field}={cx[field]}")
    assert not untraced, "figures without a reported.csv row:\n" + "\n".join(untraced)


def test_every_row_has_a_card_carrying_its_figures(rows, cards):
    missing = []
    for row in rows:
        candidates = [c for c in cards if same_model(row, c)]
        owners = [c for c in candidates
                  if page(row["artifact_url"]) in urls(c) or any(traces(cl, row) for cl in c.get("claims", []))]
        if not owners:
            missing.append(f"{row['source']} {row['model_id']}: no card")
            continue
        for metric in FIGURES:
            if row[metric] == "":
                continue
            value = float(row[metric])
            decimals = len(row[metric].split(".")[1]) if "." in row[metric] else 0
            claims = [cl for c in owners for cl in c.get("claims", []) if cl["metric"] == metric]
            exact = any(cl["value"] == value and cl["reference"] == row["reference_url"] for cl in claims)
            # A source that repeats an accuracy rounded on another page (PaddleClas) is carried once.
            rounded = metric in ("top1", "top5") and any(round(cl["value"], decimals) == value for cl in claims)
            if not (exact or rounded):
                missing.append(f"{row['source']} {row['model_id']}: {metric}={row[metric]} not on a card")
    assert not missing, "\n".join(missing)


def test_figures_for_an_artifact_name_that_artifact(cards):
    # MindCV republished different weights under one name: each accuracy names the file it belongs to.
    mindcv = next(c for c in cards if c["id"] == "mindcv/mobilenet_v2_075")
    top1 = {cl["artifact"]: cl["value"] for cl in mindcv["claims"] if cl["metric"] == "top1"}
    assert top1 == {"mobilenet_v2_075-755932c4-910v2.ckpt": 69.73, "mobilenet_v2_075-bd7bd4c4.ckpt": 69.98}


def test_coral_cards_carry_the_published_sha256(cards, shared_data):
    readme = (shared_data / "README.md").read_text()
    for card in cards:
        if card["source"] == "coral":
            artifact = card["artifacts"][0]
            assert f"| {artifact['file']} | {artifact['size_bytes']} | {artifact['sha256']} |" in readme
