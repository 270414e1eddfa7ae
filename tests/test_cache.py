"""The content-addressed cache: ls / verify / rm / prune on real cached files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo
from zoo.artifacts import cache
from zoo.errors import UsageError

pytestmark = pytest.mark.usefixtures("zoo_home")

QUANT = "mobilenet_v2_1.0_224_quant.tflite"
QUANT_SHA = "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"
CORAL_IDS = ["coral/mobilenet_v2_1.0_224_quant", "coral/tf2_mobilenet_v2_1.0_224_ptq"]


def run_cli(*args: str):
    from typer.testing import CliRunner

    import zoo_cli

    return CliRunner().invoke(zoo_cli.app, list(args))


@pytest.fixture
def cached_coral(coral_dir) -> list[dict]:
    return zoo.fetch(CORAL_IDS, mirrors=[str(coral_dir)])


# ---------------------------------------------------------------- zoo cache ls | verify | rm | prune

def test_ls_shows_sizes_and_the_cards_that_use_each_file(cached_coral):
    rows = {r["file"]: r for r in zoo.cache_ls()}
    assert rows[QUANT]["kind"] == "file" and rows[QUANT]["size"] == 3610798 and rows[QUANT]["sha256"] == QUANT_SHA
    # The Axis card publishes the very same file: one cached copy serves both cards.
    assert rows[QUANT]["cards"] == ["axis/mobilenet_v2_1.0_224_quant", "coral/mobilenet_v2_1.0_224_quant"]
    result = run_cli("cache", "ls", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == zoo.cache_ls()


def test_verify_reports_and_removes_a_corrupted_file(cached_coral, coral_dir):
    path = Path(cached_coral[0]["path"])
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run_cli("cache", "verify")
    assert result.exit_code == 5
    assert f"CORRUPT (removed)  {path}" in result.stdout and "2 file(s) and 0 unpacked tree(s) checked, 1 corrupt" in result.stderr
    assert not path.exists() and [r["ok"] for r in zoo.cache_verify()] == [True]
    again = zoo.fetch(CORAL_IDS[0], mirrors=[str(coral_dir)])
    assert not again[0]["cached"] and Path(again[0]["path"]) == path  # fetched again, verified


def test_rm_by_card_or_sha256_prefix(cached_coral):
    removed = zoo.cache_rm([CORAL_IDS[1]])
    assert [r["file"] for r in removed] == ["tf2_mobilenet_v2_1.0_224_ptq.tflite"]
    assert [r["sha256"] for r in zoo.cache_rm([QUANT_SHA[:8]])] == [QUANT_SHA]
    assert [r for r in zoo.cache_ls() if r["kind"] == "file"] == []
    with pytest.raises(UsageError, match="nothing in the cache matches"):
        zoo.cache_rm(["abcdef12"])


def test_prune_removes_partials_and_files_no_card_uses(cached_coral):
    stray = cache.blob_path("0" * 64, "stray.bin")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"stray")
    part, meta = cache.partial_paths("deadbeef")
    part.write_bytes(b"half")
    meta.write_text("{}")
    kinds = sorted(r["kind"] for r in zoo.cache_prune())
    assert kinds == ["partial", "unused"]
    assert not stray.exists() and not part.exists() and not meta.exists()
    assert len([r for r in zoo.cache_ls() if r["kind"] == "file"]) == 2  # the coral files are in use


# ---------------------------------------------------------------- safe unpacking


def test_verify_removes_a_stray_file_beside_a_good_blob_and_keeps_the_good_one(cached_coral):
    path = Path(cached_coral[0]["path"])
    stray = path.parent / "stray.bin"
    stray.write_bytes(b"not the blob")
    rows = {r["file"]: r for r in zoo.cache_verify()}
    assert rows["stray.bin"]["ok"] is False and rows["stray.bin"]["removed"] is True
    assert rows[path.name]["ok"] is True
    assert path.is_file() and not stray.exists()
    assert all(r["ok"] for r in zoo.cache_verify())
