"""The content-addressed cache (ls / verify / rm / prune) and safe unpacking of verified archives."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

import zoo
from zoo import settings
from zoo.artifacts import archives, cache
from zoo.errors import UnsafeArchiveError, UsageError
from zoo.artifacts.fetch import artifact_member, fetch_artifact, unpacked

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


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, kind=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


# ---------------------------------------------------------------- zoo cache ls | verify | rm | prune

def test_ls_shows_sizes_and_the_cards_that_use_each_file(cached_coral):
    rows = {r["file"]: r for r in zoo.cache_ls()}
    assert rows[QUANT]["size"] == 3610798 and rows[QUANT]["sha256"] == QUANT_SHA
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
    assert f"CORRUPT (removed)  {path}" in result.stdout and "2 file(s) checked, 1 corrupt" in result.stderr
    assert not path.exists() and [r["ok"] for r in zoo.cache_verify()] == [True]
    again = zoo.fetch(CORAL_IDS[0], mirrors=[str(coral_dir)])
    assert not again[0]["cached"] and Path(again[0]["path"]) == path  # fetched again, verified


def test_rm_by_card_or_sha256_prefix(cached_coral):
    removed = zoo.cache_rm([CORAL_IDS[1]])
    assert [r["file"] for r in removed] == ["tf2_mobilenet_v2_1.0_224_ptq.tflite"]
    assert [r["sha256"] for r in zoo.cache_rm([QUANT_SHA[:8]])] == [QUANT_SHA]
    assert zoo.cache_ls() == []
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
    assert len(zoo.cache_ls()) == 2  # the coral files are in use


# ---------------------------------------------------------------- safe unpacking

@pytest.mark.parametrize("members, problem", [
    ([(member("/etc/evil"), b"x")], "absolute path"),
    ([(member("ok/../../evil"), b"x")], "climbs out"),
    ([(member("link", tarfile.SYMTYPE, "../../outside"), None)], "symlink pointing outside"),
    ([(member("abs-link", tarfile.SYMTYPE, "/etc/passwd"), None)], "symlink pointing outside"),
    ([(member("hard", tarfile.LNKTYPE, "../x"), None)], "hard link pointing outside"),
    ([(member("tty", tarfile.CHRTYPE), None)], "device file"),
    ([(member("fifo", tarfile.FIFOTYPE), None)], "device file"),
])
def test_unsafe_members_are_rejected_before_anything_is_written(tmp_path, members, problem):
    archive = make_tar(tmp_path / "bad.tgz", members)
    target = tmp_path / "out" / "tree"
    with pytest.raises(UnsafeArchiveError, match=problem):
        archives.unpack(archive, target, 10**6)
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_unpacked_size_is_capped(tmp_path):
    archive = make_tar(tmp_path / "big.tgz", [(member("a.bin"), b"\0" * 5000)])  # compresses to almost nothing
    with pytest.raises(UnsafeArchiveError, match="more than 4096 bytes") as err:
        archives.unpack(archive, tmp_path / "tree", 4096)
    assert "ZOO_MAX_UNPACK_BYTES" in err.value.hint


def test_a_verified_archive_is_unpacked_and_its_member_found(server, tmp_path, monkeypatch):
    """A real card (onnx/mobilenetv2-12) pointed at the loopback server through a card directory."""
    archive = make_tar(tmp_path / "mobilenetv2-12.tar.gz", [
        (member("mobilenetv2-12", tarfile.DIRTYPE), None),
        (member("mobilenetv2-12/mobilenetv2-12.onnx"), b"onnx bytes"),
        (member("mobilenetv2-12/latest.onnx", tarfile.SYMTYPE, "mobilenetv2-12.onnx"), None),
    ])
    data = archive.read_bytes()
    server.files[archive.name] = data
    card = yaml.safe_load((Path(__file__).parents[1] / "cards/onnx/mobilenetv2-12.yaml").read_text())
    card["artifacts"][0].update(urls=[f"{server.url}/{archive.name}"], sha256=hashlib.sha256(data).hexdigest(),
                                size_bytes=len(data))
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "mobilenetv2-12.yaml").write_text(yaml.safe_dump(card))
    (record,) = zoo.fetch("onnx/mobilenetv2-12", registries=[cards])
    assert Path(record["member_path"]).read_bytes() == b"onnx bytes"
    assert Path(record["unpacked"]) == cache.unpacked_dir(record["sha256"])
    assert artifact_member(card) == Path(record["member_path"]) and unpacked(card) == Path(record["unpacked"])
    assert fetch_artifact(card) == Path(record["path"])  # the archive itself stays, verified


def test_an_unsafe_archive_is_cached_verified_but_never_unpacked(server, make_card, tmp_path):
    archive = make_tar(tmp_path / "evil.tgz", [(member("../../evil"), b"x")])
    server.files["evil.tgz"] = archive.read_bytes()
    card = make_card("evil.tgz", [f"{server.url}/evil.tgz"], format="tgz", member="model.onnx",
                     sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    with pytest.raises(UnsafeArchiveError, match="climbs out"):
        artifact_member(card)
    unpack_root = settings.cache_dir() / "unpacked"
    assert list(unpack_root.iterdir()) == []  # no half-unpacked tree, no temporary directory
