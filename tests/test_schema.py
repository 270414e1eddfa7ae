"""The card schema: real cards validate; each kind of bad input fails naming its field."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from zoo.cards.schema import Card, json_schema, validate_card
from zoo.errors import InvalidCardError

ROOT = Path(__file__).resolve().parents[1]
CORAL = ROOT / "cards" / "coral" / "mobilenet_v2_1.0_224_quant.yaml"
PADDLE = ROOT / "cards" / "paddleclas" / "MobileNetV2_x0_75.yaml"


@pytest.fixture
def coral() -> dict:
    return yaml.safe_load(CORAL.read_text())


def error_of(data: dict) -> str:
    with pytest.raises(InvalidCardError) as info:
        validate_card(data, "card.yaml")
    return info.value.message


def test_real_card_validates_with_defaults_filled(coral):
    card = validate_card(coral, str(CORAL))
    assert card.id == "coral/mobilenet_v2_1.0_224_quant"
    assert card.artifacts[0].sha256 == "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"
    assert card.depth == 1.0 and card.paper.startswith("https://arxiv.org/")
    assert (card.input.quant_scale, card.input.quant_zero_point) == (0.0078125, 128)


def test_flops_are_normalised_to_macs_and_the_source_figure_kept():
    card = validate_card(yaml.safe_load(PADDLE.read_text()), str(PADDLE))
    assert card.complexity.reported_flops_g == 0.19737
    assert card.complexity.flops_convention == "macs"
    assert card.complexity.macs == 197_370_000
    data = yaml.safe_load(PADDLE.read_text())
    data["complexity"].update(reported_flops_g=0.35, flops_convention="2x_macs")
    assert validate_card(data, "x").complexity.macs == 175_000_000


@pytest.mark.parametrize("mutate, field, words", [
    (lambda c: c.update(width="wide"), "width", "valid number"),
    (lambda c: c.update(colour="RGB"), "colour", "Extra inputs are not permitted"),
    (lambda c: c["artifacts"][0].update(sha256="7aad0c74"), "artifacts[0].sha256", "64 lowercase hex"),
    (lambda c: c["artifacts"][0].update(sha256="Z" * 64), "artifacts[0].sha256", "64 lowercase hex"),
    (lambda c: c["artifacts"][0].update(file="../evil.tflite"), "artifacts[0].file", "path separators"),
    (lambda c: c["artifacts"][0].update(file="sub/model.tflite"), "artifacts[0].file", "path separators"),
    (lambda c: c["artifacts"][0].update(file=".."), "artifacts[0].file", "path separators"),
    (lambda c: c["artifacts"][0]["urls"].append("http://example.com/m.tflite"), "artifacts[0].urls[1]", "https"),
    (lambda c: c["artifacts"][0]["urls"].append("ftp://example.com/m.tflite"), "artifacts[0].urls[1]", "https"),
    (lambda c: c["artifacts"][0].update(format="exe"), "artifacts[0].format", "Input should be"),
    (lambda c: c.update(label_offset=0), "(card)", "label_offset must be 1"),
    (lambda c: c.update(id="other/name"), "(card)", "must start with its source"),
    (lambda c: c["input"].update(quant_zero_point=None), "input", "go together"),
    (lambda c: c.update(claims=[{"metric": "top1", "value": 70, "unit": "ms", "reference": "https://x.org"}]),
     "claims[0]", "unit of top1"),
    (lambda c: c.update(claims=[{"metric": "latency_ms", "value": 3, "unit": "ms", "reference": "https://x.org"}]),
     "claims[0]", "device"),
    (lambda c: c.update(claims=[{"metric": "top1", "value": 70, "unit": "%", "reference": "https://x.org",
                                 "artifact": "missing.tflite"}]), "(card)", "not one of this card's artifacts"),
    (lambda c: c.update(complexity={"reported_flops_g": 0.3}), "complexity", "flops_convention is required"),
    (lambda c: c["preprocess"].update(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]), "preprocess", "either mean and std"),
])
def test_bad_input_names_the_field(coral, mutate, field, words):
    data = copy.deepcopy(coral)
    mutate(data)
    message = error_of(data)
    assert message.startswith(f"card.yaml: {field}: "), message
    assert words in message


def test_loopback_http_and_file_urls_are_allowed_for_mirrors(coral):
    coral["artifacts"][0]["urls"] += ["http://127.0.0.1:8000/m.tflite", "http://localhost/m.tflite",
                                      "file:///srv/mirror/m.tflite"]
    assert len(validate_card(coral, "x").artifacts[0].urls) == 4


def test_archive_member_must_stay_inside_the_archive():
    data = yaml.safe_load((ROOT / "cards" / "tf-slim" / "mobilenet_v2_1.0_224.yaml").read_text())
    assert validate_card(data, "x").artifacts[0].member == "mobilenet_v2_1.0_224.tflite"
    data["artifacts"][0]["member"] = "../../etc/passwd"
    assert "artifacts[0].member" in error_of(data)


def test_a_card_must_be_a_mapping():
    assert "a card must be a mapping" in error_of(["not", "a", "card"])


def test_json_schema_describes_the_card():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert set(Card.model_fields) <= set(schema["properties"])
    assert "Artifact" in schema["$defs"] and "Claim" in schema["$defs"]


@pytest.mark.parametrize("field, value, problem", [
    (("claims", 0, "value"), float("nan"), "claims[0].value: nan is not a finite number"),
    (("claims", 0, "value"), "inf", "claims[0].value: Input should be a finite number"),
    (("input", "quant_scale"), float("inf"), "input.quant_scale: inf is not a finite number"),
    (("width",), 10**400, "width: number out of range"),
    (("complexity", "reported_flops_g"), 1e308, "complexity.reported_flops_g: number out of range"),
    (("complexity", "reported_flops_g"), "1e308", "complexity.reported_flops_g: number out of range"),
    (("resolution",), -(10**30), "resolution: number out of range"),
])
def test_non_finite_and_huge_numbers_are_refused_naming_the_field(coral, field, value, problem):
    coral["claims"] = [{"metric": "latency_ms", "value": 1.0, "unit": "ms", "device": "Pixel",
                        "reference": "https://example.org/latency"}]
    target = coral
    for key in field[:-1]:
        target = target[key] if isinstance(key, int) else target.setdefault(key, {})
    target[field[-1]] = value
    assert problem in error_of(coral)


def test_deep_nesting_and_odd_keys_are_refused_before_the_schema(coral):
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    coral["notes"] = deep
    assert "notes" in error_of(coral) and "nests deeper than" in error_of(coral)
    coral["notes"] = {1: "x"}
    assert "key 1 is not a string" in error_of(copy.deepcopy(coral))


def test_messages_quote_a_short_escaped_excerpt_only(coral):
    secret = "root:$6$saltsaltsalt$hash:19000:0:99999:7:::\n" * 200
    coral["artifacts"][0]["urls"] = [secret]
    coral[secret] = 1  # an unknown key made of file content
    message = error_of(coral)
    assert "\n" not in message and len(message) < 600 and message.count("root:$6$") <= 4
