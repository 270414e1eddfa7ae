"""Safe unpacking of verified archives, alone and as the step after a verified fetch."""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import yaml

import zoo
from zoo import settings
from zoo.artifacts import archives, cache
from zoo.artifacts.fetch import artifact_member, fetch_artifact, unpacked
from zoo.errors import UnsafeArchiveError


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
