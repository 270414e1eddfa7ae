"""The registry: embedded index, card directories, aliases, resolution and did-you-mean."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from zoo.measure.choose import runs_here
from zoo.cards import directory
from zoo.cards import index as index_file
from zoo.cards import registry as reg
from zoo.errors import CardNotFoundError, InvalidCardError, RegistryError

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "cards"


@pytest.fixture
def registry():
    return reg.load_registry()


def test_embedded_index_is_current_with_cards_dir():
    committed = json.loads((ROOT / "registry" / "index.json").read_text())
    assert committed == directory.build_index(CARDS), "run `zoo registry build` after editing cards/"


def test_embedded_registry_has_every_card_and_the_main_sources(registry):
    sources = {e.card["source"] for e in registry.entries()}
    assert len(registry) == len(list(CARDS.rglob("*.yaml"))) >= 40
    assert {"paddleclas", "mindcv", "timm", "rdk", "torchvision", "tf-slim", "coral"} <= sources


def test_lookups_return_copies(registry):
    entry, _ = registry.resolve("coral/mobilenet_v2_1.0_224_quant")
    entry.card["artifacts"].clear()
    again, _ = registry.resolve("coral/mobilenet_v2_1.0_224_quant")
    assert again.card["artifacts"]


def test_a_tampered_index_is_rejected(tmp_path):
    index = json.loads((ROOT / "registry" / "index.json").read_text())
    index["cards"][0]["card"]["width"] = 9.0
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    with pytest.raises(RegistryError, match="does not match its sha256"):
        index_file.read_index(path, "tampered")
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        index_file.read_index(path, "broken")
    path.write_text(json.dumps({"format": 99, "cards": []}))
    with pytest.raises(RegistryError, match="malformed"):
        index_file.read_index(path, "future")


@pytest.mark.parametrize("ref, expected", [
    ("coral/mobilenet_v2_1.0_224_quant", "coral/mobilenet_v2_1.0_224_quant"),
    ("CORAL/MOBILENET_V2_1.0_224_QUANT", "coral/mobilenet_v2_1.0_224_quant"),
    ("MobileNetV2_x0_75", "paddleclas/MobileNetV2_x0_75"),
    ("mobilenetv2_075@mindcv", "mindcv/mobilenet_v2_075"),
    ("mobilenetv2_075@paddleclas", "paddleclas/MobileNetV2_x0_75"),
    ("mobilenetv2_110d", "timm/mobilenetv2_110d.ra_in1k"),
])
def test_resolve_unique_references(registry, ref, expected):
    entry, note = registry.resolve(ref)
    assert entry.id == expected
    assert note is None


def test_alias_spans_sources_and_the_rule_picks_and_explains(registry):
    candidates = registry.find("mobilenetv2_075")
    assert {e.card["source"] for e in candidates} >= {"paddleclas", "mindcv", "timm", "tf-slim", "d-li14"}
    assert all(e.card["width"] == 0.75 and e.card["resolution"] == 224 for e in candidates)
    entry, note = registry.resolve("mobilenetv2_075", runs_here)
    best = max(candidates, key=lambda e: reg.preference(e, runs_here))
    assert entry.id == best.id
    assert f"picked {entry.id}" in note and "@SOURCE" in note


def test_alias_prefers_a_verified_artifact_that_runs_here(registry):
    # Of the 1.0/224 cards, only a few carry a full sha256 for an artifact onnxruntime or LiteRT runs.
    entry, _ = registry.resolve("mobilenetv2_100", runs_here)
    artifacts = entry.card["artifacts"]
    assert any(a.get("sha256") and runs_here(a) for a in artifacts)


def test_alias_with_resolution(registry):
    found = registry.find("mobilenetv2_100_160")
    assert {e.id for e in found} == {"d-li14/mobilenetv2_160x160", "tf-slim/mobilenet_v2_1.0_160"}


def test_unknown_id_suggests_close_names(registry):
    with pytest.raises(CardNotFoundError) as info:
        registry.resolve("mobilenetv2_07")
    assert "Did you mean 'mobilenetv2_075'" in info.value.one_line()
    assert isinstance(info.value, LookupError)
    with pytest.raises(CardNotFoundError, match="no source 'nosuch'"):
        registry.resolve("mobilenetv2_075@nosuch")


def test_find_with_wildcards_and_filters(registry):
    assert {e.card["source"] for e in registry.find("timm/*")} == {"timm"}
    assert all("075" in reg.alias(e.card) or "075" in e.id for e in registry.find("*075*"))
    ids = [e.id for e in registry.find(source="paddleclas")]
    assert ids == sorted(ids, key=directory.natural_key) and len(ids) == 7
    assert ids.index("paddleclas/MobileNetV2_x0_5") < ids.index("paddleclas/MobileNetV2_x1_5")
    assert all(e.card["resolution"] == 96 for e in registry.find(resolution=96))
    assert {e.id for e in registry.find(fmt="tflite", source="coral")} == {
        "coral/mobilenet_v2_1.0_224_quant", "coral/tf2_mobilenet_v2_1.0_224_ptq"}


def test_a_card_directory_adds_and_overrides_cards(tmp_path, monkeypatch):
    card = yaml.safe_load((CARDS / "coral" / "mobilenet_v2_1.0_224_quant.yaml").read_text())
    card.update(id="mine/quant-v2", source="mine", name="my requantized model")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "quant-v2.yaml").write_text(yaml.safe_dump(card))
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path))
    registry = reg.load_registry()
    entry, _ = registry.resolve("mine/quant-v2")
    assert entry.registry == str(tmp_path)
    embedded = reg.Registry(index_file.read_index(index_file.embedded_index_path(), index_file.EMBEDDED))
    assert len(registry) == len(embedded) + 1


def test_a_bad_card_directory_fails_naming_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("id: x/y\nwidth: : 1\n")
    with pytest.raises(InvalidCardError, match="bad.yaml:2"):
        reg.load_registry([tmp_path])
    with pytest.raises(RegistryError, match="does not exist"):
        reg.load_registry([tmp_path / "missing"])


def test_lint_reports_duplicates_and_misnamed_files(tmp_path):
    src = CARDS / "coral" / "mobilenet_v2_1.0_224_quant.yaml"
    (tmp_path / "coral").mkdir()
    shutil.copy(src, tmp_path / "coral" / "mobilenet_v2_1.0_224_quant.yaml")
    shutil.copy(src, tmp_path / "coral" / "copy.yaml")
    cards, problems = directory.lint([tmp_path])
    assert len(cards) == 1
    assert any("copy.yaml: id: file name should be mobilenet_v2_1.0_224_quant.yaml" in p for p in problems)
    assert any("mobilenet_v2_1.0_224_quant.yaml: id:" in p and "also the id of" in p for p in problems)


def test_build_index_is_deterministic_and_written_atomically(tmp_path):
    out = tmp_path / "registry" / "index.json"
    index = directory.build_index(CARDS)
    index_file.write_index(index, out)
    first = out.read_bytes()
    index_file.write_index(directory.build_index(CARDS), out)
    assert out.read_bytes() == first
    assert not list(out.parent.glob("*.tmp"))
    assert [e.id for e in index_file.read_index(out, "x")] == [c["id"] for c in index["cards"]]


def test_lint_refuses_a_symlinked_card_file_and_never_prints_its_target(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("".join(f"user{i}:$6$secret{i}:19000:0:99999:7:::\n" for i in range(50)))
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "x.yaml").symlink_to(secret)
    (cards / "dangling.yaml").symlink_to(tmp_path / "nowhere")
    found, problems = directory.lint([cards])
    assert found == [] and len(problems) == 2
    assert all("is a symbolic link" in p for p in problems) and "x.yaml" in problems[1]
    assert not any("$6$" in p for p in problems)
    with pytest.raises(InvalidCardError, match="symbolic link"):
        directory.build_index(cards)


@pytest.mark.parametrize("text, problem", [
    ("id: a/b\nid: a/c\n", r"x.yaml:2: not valid YAML \(duplicate key 'id'\)"),
    ("notes: " + "[" * 5000 + "]" * 5000 + "\n", "x.yaml"),
    ("width: 1.0e+308\n", "width: number out of range"),
    ("complexity: {reported_flops_g: 1e308}\n", "complexity.reported_flops_g: number out of range"),
    ("width: .inf\n", "width: inf is not a finite number"),
    ("width: " + "9" * 400 + "\n", "width: number out of range"),
    ("- [\n" + "user:$6$secret:19000::::\n" * 20, r"x.yaml:\d+: not valid YAML"),
    ("width: !!float ''\n", "not valid YAML"),   # found by tests/test_fuzz_cards.py: IndexError inside PyYAML
    ("a: &x [1, 2]\nb: [*x, *x]\n", r"x.yaml:2: not valid YAML \(aliases \(\*name\) are not allowed"),
])
def test_lint_refuses_hostile_yaml_naming_file_and_field(tmp_path, text, problem):
    (tmp_path / "x.yaml").write_text(text)
    _, problems = directory.lint([tmp_path])
    assert any(re.search(problem, p) for p in problems), problems
    assert all("\n" not in p and "$6$" not in p and len(p) < 600 for p in problems)


def test_lint_refuses_ids_that_differ_only_in_case_and_newlines_in_file_names(tmp_path):
    card = yaml.safe_load((CARDS / "coral" / "mobilenet_v2_1.0_224_quant.yaml").read_text())
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(card))
    card["id"] = card["id"].replace("mobilenet", "MobileNet")
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(card))
    (tmp_path / "c\n.yaml").write_text(yaml.safe_dump(card))
    cards, problems = directory.lint([tmp_path])
    assert len(cards) == 1
    assert any("b.yaml: id:" in p and "ids must differ in more than case" in p for p in problems)
    assert any("'c\\n.yaml': the file name has a control character" in p for p in problems)


def test_a_card_directory_is_validated_once_until_a_file_changes(tmp_path, monkeypatch):
    import os

    from zoo.cards import directory

    cards = tmp_path / "cards"
    card = yaml.safe_load((CARDS / "coral" / "mobilenet_v2_1.0_224_quant.yaml").read_text())
    card.update(id="mine/quant-v2", source="mine", name="my requantized model")
    (cards / "mine").mkdir(parents=True)
    path = cards / "mine" / "quant-v2.yaml"
    path.write_text(yaml.safe_dump(card))
    assert reg.load_registry([cards]).resolve("mine/quant-v2")[0].card["name"] == "my requantized model"
    parsed = []
    real_read = directory.read_card_file
    monkeypatch.setattr(directory, "read_card_file", lambda p: parsed.append(p) or real_read(p))
    assert "mine/quant-v2" in {e.id for e in reg.load_registry([cards]).entries()}
    assert parsed == []  # unchanged: served from the cache under ZOO_HOME, no YAML parsed
    card["name"] = "renamed"
    path.write_text(yaml.safe_dump(card))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert reg.load_registry([cards]).resolve("mine/quant-v2")[0].card["name"] == "renamed"
    assert parsed == [path]
    # A broken card is never remembered: it fails on every call, naming the file.
    (cards / "mine" / "bad.yaml").write_text("id: x/y\nwidth: : 1\n")
    for _ in range(2):
        with pytest.raises(InvalidCardError, match="bad.yaml:2"):
            reg.load_registry([cards])


def test_the_catalog_is_read_until_a_source_changes_then_rebuilt(tmp_path, monkeypatch):
    """The merged cards come from ZOO_HOME/catalog while no source changed; a new derived card, a changed card
    directory or a damaged catalog file makes the next call rebuild it from the (verified) sources."""
    from zoo import settings

    reads = []
    real_read = reg.read_index
    spy = lambda path, name: reads.append(name) or real_read(path, name)  # noqa: E731
    monkeypatch.setattr(reg, "read_index", spy)
    monkeypatch.setattr(index_file, "read_index", spy)  # derived cards are read by zoo.cards.derived
    first = reg.load_registry()
    assert reads == ["embedded"] and len(first) == len(reg.Registry(real_read(index_file.embedded_index_path(), "x")))
    (catalog_file,) = settings.catalog_dir().glob("*.sqlite")
    assert reg.load_registry().ids() == first.ids() and reads == ["embedded"]  # served from the catalog
    card = reg.load_registry().resolve("coral/mobilenet_v2_1.0_224_quant")[0].card
    derived = {**card, "id": "coral/mobilenet_v2_1.0_224_quant+x", "name": "derived for the test"}
    settings.derived_dir().mkdir(parents=True)
    index_file.write_index(index_file.make_index([derived]), settings.derived_dir() / "x.json")
    assert reg.load_registry().resolve("coral/mobilenet_v2_1.0_224_quant+x")[0].card["name"] == "derived for the test"
    assert reads == ["embedded", "embedded", "derived"]
    catalog_file.write_bytes(b"not a database" * 100)  # damaged (a crash elsewhere, a bad disk): rebuilt, not fatal
    assert reg.load_registry().ids() == reg.load_registry().ids() and len(reads) == 5
    assert len(reg.load_registry()) == len(first) + 1


def test_a_relative_zoo_home_holds_the_catalog(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_HOME", "home")
    assert reg.load_registry().resolve("coral/mobilenet_v2_1.0_224_quant")[0].id == "coral/mobilenet_v2_1.0_224_quant"
    assert len(list((tmp_path / "home" / "catalog").glob("*.sqlite"))) == 1


def test_a_catalog_that_cannot_be_written_is_built_in_memory(tmp_path):
    from zoo import settings

    settings.catalog_dir().parent.mkdir(parents=True, exist_ok=True)
    settings.catalog_dir().write_text("a file where the catalog folder should be")
    registry = reg.load_registry()
    assert registry.resolve("coral/mobilenet_v2_1.0_224_quant")[0].id == "coral/mobilenet_v2_1.0_224_quant"
    assert settings.catalog_dir().read_text() == "a file where the catalog folder should be"


def test_brief_and_full_list_records_agree_and_the_table_has_every_claim(registry):
    """`zoo list` reads brief records and `zoo compare` a column table, both made when the catalog is built:
    they must say what the cards say."""
    from zoo.cards.summary import BRIEF_KEYS, summarize

    entries = registry.entries()
    full = [summarize(e) for e in entries]
    assert registry.summaries() == full
    assert registry.summaries(brief=True) == [
        {**{k: s[k] for k in BRIEF_KEYS}, "artifacts": [{k: a[k] for k in ("format", "sha256", "size")}
                                                         for a in s["artifacts"]]} for s in full]
    assert registry.summaries("*075*", brief=True) == [r for r in registry.summaries(brief=True)
                                                       if r["id"] in {e.id for e in registry.find("*075*")}]
    table = registry.table()
    assert table.cards["id"] == [e.id for e in entries]
    assert len(table.claims["id"]) == sum(len(e.card.get("claims", [])) for e in entries)
    some = registry.positions(["paddleclas/*"])
    assert set(registry.table(some).claims["id"]) == {e.id for e in registry.find("paddleclas/*")
                                                      if e.card.get("claims")}


def test_a_name_with_a_line_break_cannot_answer_to_another_cards_alias(tmp_path):
    card = yaml.safe_load((CARDS / "coral" / "mobilenet_v2_1.0_224_quant.yaml").read_text())
    card.update(id="mine/half", source="mine", name="half\nmobilenetv2_100", width=0.5)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "half.yaml").write_text(yaml.safe_dump(card))
    registry = reg.load_registry([tmp_path])
    assert "mine/half" not in {e.id for e in registry.find("mobilenetv2_100")}
    assert "mine/half" in {e.id for e in registry.find("mobilenetv2_050")}
    assert [e.id for e in registry.find("half\nmobilenetv2_100")] == ["mine/half"]


def test_a_tree_that_is_not_a_card_directory_is_one_clear_error(tmp_path, monkeypatch):
    # Folders no one may list (/proc's of other processes) are passed over, not a traceback.
    assert len(reg.load_registry([Path("/proc/1")])) == len(reg.load_registry())
    monkeypatch.setattr(directory, "MAX_WALK_ENTRIES", 50)
    for i in range(60):
        (tmp_path / f"f{i}.txt").write_text("x")
    with pytest.raises(InvalidCardError, match="holds more than 50 files: it is not a card directory"):
        reg.load_registry([tmp_path])
