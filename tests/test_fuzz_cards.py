"""Property-based fuzzing of card files (hypothesis): whatever a card file holds, reading, linting or
validating it either succeeds or raises InvalidCardError with one line. Never another exception.

Bounded: a fixed number of examples per property, no example database, the whole file well under 30 s.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.cards import directory
from zoo.cards.schema import validate_card
from zoo.errors import InvalidCardError

CARD = yaml.safe_load((Path(__file__).resolve().parents[1] / "cards/coral/mobilenet_v2_1.0_224_quant.yaml").read_text())
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\n", "\x00", "../../etc/passwd", "/etc/shadow", "file:///etc/shadow",
                     "http://127.0.0.1/x", "https://", "NaN", "1e400", "-0", "\u202e", "a" * 5000, "é/É",
                     "coral/X", "{{ }}", "*a", "&a", "!!python/object:os.system"]),
)
numbers = st.one_of(
    st.integers(), st.integers(min_value=10**18, max_value=10**400), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e308, -1e308, 5e-324, float("nan"), float("inf"), 2**63, 10**400]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, odd_text)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(odd_text, inner, max_size=4)), max_leaves=20)


def paths(card, prefix=()):
    """Every (path) into a card's nested dicts and lists."""
    yield prefix
    if isinstance(card, dict):
        for key, value in card.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(card, list):
        for i, value in enumerate(card):
            yield from paths(value, prefix + (i,))


CARD_PATHS = [p for p in paths(CARD) if p]


def mutated(path, value, drop: bool) -> dict:
    card = copy.deepcopy(CARD)
    target = card
    for key in path[:-1]:
        target = target[key]
    if drop:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return card


def one_line_error(call) -> None:
    try:
        call()
    except InvalidCardError as exc:
        assert "\n" not in exc.one_line() and len(exc.one_line()) < 4000, exc.one_line()


@FUZZ
@given(st.sampled_from(CARD_PATHS), values, st.booleans())
def test_a_mutated_card_validates_or_fails_on_one_line(path, value, drop):
    card = mutated(path, value, drop)
    one_line_error(lambda: validate_card(card, "fuzz.yaml"))
    one_line_error(lambda: validate_card(json.loads(json.dumps(card, default=str)), "fuzz.json"))


@FUZZ
@given(values)
def test_any_structure_validates_or_fails_on_one_line(value):
    one_line_error(lambda: validate_card(value, "fuzz.yaml"))


yaml_tokens = st.sampled_from(["[", "]", "{", "}", ": ", "- ", "\n", "  ", "\t", "&a ", "*a", "!!float ", "!!int ",
                               ".inf", ".nan", "1e400", "9" * 400, "<<: ", "? ", "|", ">", "'", '"', "#", "%YAML 1.1",
                               "---", "...", "id", "width", "\x00", "\u00e9", "!!python/name:os.system", "~"])
yaml_text = st.one_of(st.text(max_size=200), st.lists(yaml_tokens, max_size=60).map("".join))


@FUZZ
@given(yaml_text)
def test_any_yaml_text_is_a_card_or_one_line(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "fuzz-card.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    one_line_error(lambda: directory.read_card_file(path))


@FUZZ
@given(st.sampled_from(CARD_PATHS), values)
def test_a_mutated_card_file_lints_or_reports_one_line_per_problem(tmp_path_factory, path, value):
    try:
        text = yaml.safe_dump(mutated(path, value, False), allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return  # a value YAML cannot write (e.g. lone surrogates): nothing to read back
    directory_path = tmp_path_factory.getbasetemp() / "fuzz-cards"
    directory_path.mkdir(exist_ok=True)
    (directory_path / "card.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    cards, problems = directory.lint([directory_path])
    assert len(cards) + bool(problems) == 1
    assert all("\n" not in p for p in problems), problems
    for card in cards:  # what passed is usable: finite numbers only
        assert all(math.isfinite(v) for v in (card["width"], card["depth"]))
