"""Property-based fuzzing (hypothesis) of files zoo reads that a user, a card or a registry hands it: ONNX models
(`zoo inspect`, and before a runtime opens one) and the state a remote registry leaves in ZOO_HOME (remotes.json,
each registry's state.json and last good copy). Whatever they hold, zoo answers with a result or one ZooError
line, never another exception.

Bounded: a fixed number of examples per property, no example database, each property a few seconds."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import zoo
from mutations import mutated
from zoo.cards import remote
from zoo.cards.index import card_sha256
from zoo.errors import ZooError
from zoo.measure.complexity import inspect_file

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CARD = yaml.safe_load((Path(__file__).resolve().parents[1] / "cards/coral/mobilenet_v2_1.0_224_quant.yaml").read_text())


def tiny_onnx() -> bytes:
    """Conv, pool, flatten: a few hundred bytes, every part of a model that count_onnx reads."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["y"], ["z"]), helper.make_node("Flatten", ["z"], ["z2"]),
             helper.make_node("Gemm", ["z2", "fc"], ["out"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 2])],
                              [weight, numpy_helper.from_array(np.ones((2, 4), np.float32), "fc")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


ONNX = tiny_onnx()


def test_the_onnx_seed_is_counted(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(ONNX)
    assert inspect_file(path)["macs"] == 4 * 8 * 8 * 27 + 2 * 4


@settings(FUZZ, max_examples=400)
@given(data=mutated(ONNX))
def test_any_onnx_file_is_counted_or_refused_in_one_line(tmp_path, data):
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    try:
        info = inspect_file(path)
    except ZooError as exc:
        assert "\n" not in exc.one_line()
    else:
        assert isinstance(info["macs"], int) and isinstance(info["params"], int)


# ---------------------------------------------------------------- the state a remote registry leaves

def _index(cards: list[dict], version: int | None = 7) -> dict:
    return {"format": 1, **({"version": version} if version is not None else {}),
            "cards": [{"id": c["id"], "sha256": card_sha256(c), "card": c} for c in cards]}


def _card(card_id: str) -> dict:
    card = json.loads(json.dumps(CARD))
    card["id"], card["source"], card["name"] = card_id, card_id.split("/")[0], card_id.split("/")[1]
    return card


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                                     st.text(max_size=12)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
CONF_KEYS = ("url", "key", "allow_local", "override", "added")
STATE_KEYS = ("etag", "url", "updated_at", "version", "sha256", "expires")


def _write_state(home: Path, remotes_json, state_json, index_bytes: bytes) -> None:
    registries = home / "registries"
    (registries / "acme").mkdir(parents=True)
    (registries / "remotes.json").write_text(json.dumps(remotes_json) if not isinstance(remotes_json, bytes)
                                             else remotes_json.decode("latin-1"))
    (registries / "acme" / "state.json").write_text(json.dumps(state_json))
    (registries / "acme" / "index.json").write_bytes(index_bytes)


good_conf = {"url": "https://acme.example/index.json", "key": None, "allow_local": False, "override": False,
             "added": 1}
good_index = json.dumps(_index([_card("acme/m"), _card(CARD["id"])])).encode()


@st.composite
def registry_state(draw):
    conf = dict(good_conf)
    for key in draw(st.lists(st.sampled_from(CONF_KEYS), max_size=3)):
        conf[key] = draw(json_values)
    remotes_json = draw(st.one_of(st.just({"acme": conf}), json_values, mutated(json.dumps({"acme": conf}).encode())))
    state = {"etag": '"x"', "version": 7, "sha256": "0" * 64, "expires": "2099-01-01T00:00:00Z"}
    for key in draw(st.lists(st.sampled_from(STATE_KEYS), max_size=3)):
        state[key] = draw(json_values)
    state_json = draw(st.one_of(st.just(state), json_values))
    index = draw(st.one_of(st.just(good_index), mutated(good_index),
                           json_values.map(lambda v: json.dumps(v).encode())))
    return remotes_json, state_json, index


@FUZZ
@given(state=registry_state())
def test_any_registry_state_lists_or_fails_in_one_line(state, monkeypatch):
    with tempfile.TemporaryDirectory() as home:
        monkeypatch.setenv("ZOO_HOME", home)
        monkeypatch.setenv("ZOO_OFFLINE", "1")
        _write_state(Path(home), *state)
        for step in (lambda: zoo.list_cards(), lambda: remote.ls(), lambda: remote.update(),
                     lambda: zoo.show(CARD["id"]), lambda: remote.public_only_urls()):
            try:
                step()
            except ZooError as exc:
                assert "\n" not in exc.one_line()
