"""Safe unpacking of verified archives, alone and as the step after a verified fetch.

Model archives need only regular files and directories: every link, device or odd member is refused,
names are checked, and size and member count are capped while decompressing (not after).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

import zoo
from zoo import settings
from zoo.artifacts import archives, cache
from zoo.artifacts.fetch import artifact_member, fetch_artifact, fetch_cards, unpacked
from zoo.errors import UnsafeArchiveError

MAX_MEMBERS = archives.MAX_MEMBERS
PATH_MAX = 4096


# ---------------------------------------------------------------- archive builders

def entry(name: str, kind=tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info


def make_tar(path: Path, members, fmt=tarfile.PAX_FORMAT, compression: str = "gz") -> Path:
    """members: (TarInfo, bytes | None); bytes set the size."""
    options = {"compresslevel": 1} if compression in ("gz", "bz2") else {}
    with tarfile.open(path, f"w:{compression}", format=fmt, **options) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


class Zeros:
    """A file of n zero bytes that never exists in memory."""

    def __init__(self, n: int):
        self.left = n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return b"\0" * size


def cve_2025_4517_tar(path: Path, unpack_dir: Path, writes: list[tuple[Path, bytes]]) -> Path:
    """The CVE-2025-4517 pattern: every name and link target looks inside, yet files land outside.

    Directories with long names are chained by one-letter symlinks ("a" -> ddd..., "ddd.../b" ->
    ddd..., ...), so "a/b/.../p" is 16 long directories deep. The link "a/.../p/lll..." points
    16 levels up (back to the root) and "escape" points from there 17 levels further up: "/". Both
    look inside as text. Python <= 3.11.12's realpath() stops resolving once the expanded path
    passes PATH_MAX and goes on lexically, so filter="data" also thinks "escape" stays inside; the
    kernel resolves one component at a time and follows it to "/". Then "escape/<abs path>"
    writes any file. unpack_dir: where the tree will be extracted (sizes the names to PATH_MAX).
    """
    steps = "abcdefghijklmnop"
    # The deepest real directory must still be creatable by path (< PATH_MAX) while the link
    # below it must not be resolvable by realpath() (> PATH_MAX).
    comp = "d" * min(255, (PATH_MAX - 16 - len(str(unpack_dir)) - 16) // len(steps) - 1)
    members, path_so_far = [], ""
    for step in steps:
        members.append((entry(os.path.join(path_so_far, comp), tarfile.DIRTYPE), None))
        members.append((entry(os.path.join(path_so_far, step), tarfile.SYMTYPE, comp), None))
        path_so_far = os.path.join(path_so_far, comp)
    linkpath = os.path.join(*steps, "l" * 254)
    members.append((entry(linkpath, tarfile.SYMTYPE, "../" * len(steps)), None))
    members.append((entry("escape", tarfile.SYMTYPE, linkpath + "/.." * (len(steps) + 1)), None))
    for where, data in writes:
        members.append((entry("escape/" + str(where).lstrip("/")), data))
    return make_tar(path, members)


@pytest.fixture
def outside(tmp_path):
    """An existing file outside the target: its bytes and mtime must survive every unpack."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"original")
    os.utime(victim, (1_000_000_000, 1_000_000_000))
    yield victim
    assert victim.read_bytes() == b"original", "a file outside the target was overwritten"
    assert victim.stat().st_mtime == 1_000_000_000, "a file outside the target was touched"


def no_leftovers(parent: Path):
    return [p.name for p in parent.iterdir() if p.name.startswith(".unpack-")] == []


@pytest.fixture
def decompressed(monkeypatch):
    """Counts the bytes gzip decompresses (both extractors decompress through gzip._GzipReader)."""
    counter = {"bytes": 0}
    original = gzip._GzipReader.read

    def read(self, size=-1):
        data = original(self, size)
        counter["bytes"] += len(data)
        return data

    monkeypatch.setattr(gzip._GzipReader, "read", read)
    return counter


# ---------------------------------------------------------------- escapes

def test_cve_2025_4517_symlink_chain_writes_nothing_outside(tmp_path, outside):
    parent = tmp_path / "cache"
    parent.mkdir()
    new_file = tmp_path / "PWNED"
    # mkdtemp(prefix=".unpack-") adds 8 characters: size the chain for that directory.
    archive = cve_2025_4517_tar(tmp_path / "chain.tgz", parent / ".unpack-xxxxxxxx",
                                [(new_file, b"PWNED"), (outside, b"PWNED")])
    try:
        with pytest.raises(UnsafeArchiveError, match="symbolic link"):
            archives.unpack(archive, parent / "tree", 10**7)
    finally:
        assert not new_file.exists(), "the archive wrote a file outside the target"
    assert not (parent / "tree").exists() and no_leftovers(parent)


@pytest.mark.parametrize("kind, linkname, problem", [
        (tarfile.SYMTYPE, "model.onnx", "symbolic link"),        # looks harmless: inside, relative
    (tarfile.SYMTYPE, "../../victim.txt", "symbolic link"),
    (tarfile.LNKTYPE, "model.onnx", "hard link"),
    (tarfile.LNKTYPE, "../victim.txt", "hard link"),
    (tarfile.CHRTYPE, "", "character device"),
    (tarfile.BLKTYPE, "", "block device"),
    (tarfile.FIFOTYPE, "", "FIFO"),
    (b"V", "", "unsupported type"),              # GNU volume header: not file, not dir
])
def test_only_files_and_directories_are_extracted(tmp_path, outside, kind, linkname, problem):
    archive = make_tar(tmp_path / "links.tgz", [
        (entry("model.onnx"), b"onnx"),
        (entry("latest.onnx", kind, linkname), None),
    ])
    with pytest.raises(UnsafeArchiveError) as err:
        archives.unpack(archive, tmp_path / "out" / "tree", 10**6)
    assert re.search(problem, err.value.message) and "'latest.onnx'" in err.value.message
    assert "\n" not in str(err.value)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("name, problem", [
    ("../victim.txt", "climbs out"),
    ("ok/../../victim.txt", "climbs out"),
    ("/etc/zoo-evil", "absolute path"),
    ("C:victim.txt", "absolute path"),
    ("a\\..\\..\\victim.txt", "backslash"),
    ("models\\model.onnx", "backslash"),                # one file on POSIX, a path on Windows
    ("a\x00b", "NUL"),

    ("x/" * 600 + "deep.bin", "longer than"),
    ("d" * 256, "longer than 255 bytes"),
])
def test_unsafe_names_are_refused(tmp_path, outside, name, problem):
    info = entry("placeholder")
    info.pax_headers = {"path": name}  # pax carries any name, NUL included
    archive = make_tar(tmp_path / "names.tgz", [(info, b"x")])
    with pytest.raises(UnsafeArchiveError, match=problem):
        archives.unpack(archive, tmp_path / "out" / "tree", 10**6)
    assert list((tmp_path / "out").iterdir()) == [] and not Path("/etc/zoo-evil").exists()


def test_duplicate_names_are_refused(tmp_path):
    archive = make_tar(tmp_path / "dup.tgz", [(entry("m/model.onnx"), b"first"), (entry("m/./model.onnx"), b"second")])
    with pytest.raises(UnsafeArchiveError, match="more than once"):
        archives.unpack(archive, tmp_path / "tree", 10**6)


# ---------------------------------------------------------------- resource caps

@pytest.fixture(scope="session")
def bomb(tmp_path_factory):
    """200 MB of zeros in one member, about 200 KB compressed."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.tgz"
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        info = entry("zeros.bin")
        info.size = 200 * 10**6
        tar.addfile(info, Zeros(info.size))
    assert path.stat().st_size < 1_000_000
    return path


@pytest.fixture(scope="session")
def many_bombs(tmp_path_factory):
    """40 members of 5 MB zeros: each passes a per-member look, the sum does not."""
    path = tmp_path_factory.mktemp("bombs") / "bombs.tgz"
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        for i in range(40):
            info = entry(f"zeros{i}.bin")
            info.size = 5 * 10**6
            tar.addfile(info, Zeros(info.size))
    return path


@pytest.mark.parametrize("which", ["bomb", "many_bombs"])
def test_a_decompression_bomb_stops_at_the_cap(tmp_path, decompressed, request, which):
    archive, cap = request.getfixturevalue(which), 10 * 10**6
    with pytest.raises(UnsafeArchiveError, match=f"more than {cap} bytes") as err:
        archives.unpack(archive, tmp_path / "tree", cap)
    assert "ZOO_MAX_UNPACK_BYTES" in err.value.hint
    # Reading may run ahead by a buffer, never through the other 190 MB.
    assert decompressed["bytes"] <= cap + 6 * 10**6, f"decompressed {decompressed['bytes']} bytes"
    assert not (tmp_path / "tree").exists() and no_leftovers(tmp_path)


def test_a_huge_pax_header_is_not_read_into_memory(tmp_path, decompressed):
    """tarfile reads a pax header whole: 100 MB of 'comment' would sit in memory at once."""
    info = entry("model.onnx")
    info.pax_headers = {"comment": "a" * (100 * 10**6)}
    archive = make_tar(tmp_path / "pax.tgz", [(info, b"onnx")])
    with pytest.raises(UnsafeArchiveError, match="more than"):
        archives.unpack(archive, tmp_path / "tree", 10**6)
    assert decompressed["bytes"] < 50 * 10**6


def test_too_many_members_are_refused(tmp_path):
    archive = make_tar(tmp_path / "many.tgz", [(entry(f"f{i}"), b"") for i in range(MAX_MEMBERS + 1)],
                       fmt=tarfile.USTAR_FORMAT)
    with pytest.raises(UnsafeArchiveError, match=f"more than {MAX_MEMBERS} members"):
        archives.unpack(archive, tmp_path / "tree", 10**6)
    assert not (tmp_path / "tree").exists() and no_leftovers(tmp_path)


# ---------------------------------------------------------------- unreadable archives

def _truncated(tmp_path):
    whole = make_tar(tmp_path / "whole.tgz", [(entry("a.bin"), os.urandom(100_000))]).read_bytes()
    return whole[: len(whole) // 2]


@pytest.mark.parametrize("content", [
    lambda tmp_path: b"this is not a tarball\n" * 50,
    lambda tmp_path: b"",
    lambda tmp_path: b"\x1f\x8b\x08\x00" + os.urandom(2000),   # gzip magic, garbage after
    lambda tmp_path: b"BZh9" + os.urandom(2000),
    _truncated,
], ids=["garbage", "empty", "bad-gzip", "bad-bzip2", "truncated"])
def test_an_unreadable_archive_is_one_line(tmp_path, content):
    archive = tmp_path / "model.tgz"
    archive.write_bytes(content(tmp_path))
    with pytest.raises(UnsafeArchiveError) as err:
        archives.unpack(archive, tmp_path / "out" / "tree", 10**6)
    message = str(err.value)
    assert message.startswith("model.tgz is not a readable tar archive (")
    assert "\n" not in message and len(message) < 200, message
    assert list((tmp_path / "out").iterdir()) == []


def test_a_missing_archive_is_one_line(tmp_path):
    with pytest.raises(UnsafeArchiveError, match=r"^nope.tgz is not a readable tar archive \(.*\)$"):
        archives.unpack(tmp_path / "nope.tgz", tmp_path / "tree", 10**6)


# ---------------------------------------------------------------- what must keep working

PADDLE = {
    "MobileNetV2_infer/inference.pdmodel": b"pdmodel bytes",
    "MobileNetV2_infer/inference.pdiparams": os.urandom(300_000),
    "MobileNetV2_infer/inference.pdiparams.info": b"info",
}


def paddle_tar(path: Path, prefix: str = "", modes=(0o644, 0o755), compression: str = "gz") -> Path:
    members = [(entry(prefix + "MobileNetV2_infer", tarfile.DIRTYPE), None)]
    members += [(entry(prefix + name, mode=modes[0]), data) for name, data in PADDLE.items()]
    members[0][0].mode = modes[1]
    return make_tar(path, members, fmt=tarfile.GNU_FORMAT, compression=compression)


def tree_of(root: Path) -> dict[str, bytes | None]:
    """The unpacked members (without the record of their hashes)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
            if p.name != cache.MEMBERS_FILE}


@pytest.mark.parametrize("prefix, compression", [("", ""), ("./", "gz"), ("", "bz2"), ("./", "xz")])
def test_a_normal_archive_unpacks_and_a_second_unpack_changes_nothing(tmp_path, prefix, compression):
    archive = paddle_tar(tmp_path / "MobileNetV2_infer.tar", prefix, compression=compression)
    target = tmp_path / "unpacked" / "sha"
    assert archives.unpack(archive, target, 10**7) == target
    assert tree_of(target) == {"MobileNetV2_infer": None, **PADDLE}
    path = archives.member_path(target, "MobileNetV2_infer/inference.pdmodel")
    assert path.read_bytes() == b"pdmodel bytes"
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*")}
    assert archives.unpack(archive, target, 10**7) == target
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*")} == before
    assert no_leftovers(target.parent)


def test_modes_are_at_most_0644_and_0755_under_the_umask(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    archive = paddle_tar(tmp_path / "modes.tgz", modes=(0o6777, 0o7777))  # setuid, world-writable
    target = archives.unpack(archive, tmp_path / "tree", 10**7)
    assert (target / "MobileNetV2_infer").stat().st_mode & 0o7777 == 0o755 & ~umask
    for name in PADDLE:
        assert (target / name).stat().st_mode & 0o7777 == 0o644 & ~umask, name


def test_member_path_refuses_what_is_not_a_file_inside(tmp_path):
    target = archives.unpack(paddle_tar(tmp_path / "p.tgz"), tmp_path / "tree", 10**7)
    for bad in ["MobileNetV2_infer", "../p.tgz", "MobileNetV2_infer/missing"]:
        with pytest.raises(ValueError, match="is not a file in the unpacked archive"):
            archives.member_path(target, bad)


def test_two_threads_unpacking_at_once_leave_one_complete_tree(tmp_path):
    files = {f"m/part{i:02}.bin": os.urandom(200_000) for i in range(30)}
    archive = make_tar(tmp_path / "big.tgz", [(entry(n), d) for n, d in files.items()])
    for round_ in range(5):
        target = tmp_path / f"unpacked{round_}" / "tree"
        start, results, errors = threading.Barrier(2), [], []

        def worker():
            start.wait()
            try:
                results.append(archives.unpack(archive, target, 10**8))
            except Exception as exc:  # collected, asserted below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and results == [target, target]
        assert tree_of(target) == {"m": None, **files}
        assert no_leftovers(target.parent)


# ---------------------------------------------------------------- as the step after a verified fetch

def test_a_verified_archive_is_unpacked_and_its_member_found(server, tmp_path, monkeypatch):
    """A real card (onnx/mobilenetv2-12) pointed at the loopback server through a card directory."""
    archive = make_tar(tmp_path / "mobilenetv2-12.tar.gz", [
        (entry("mobilenetv2-12", tarfile.DIRTYPE), None),
        (entry("mobilenetv2-12/mobilenetv2-12.onnx"), b"onnx bytes"),
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
    archive = make_tar(tmp_path / "evil.tgz", [(entry("../../evil"), b"x")])
    server.files["evil.tgz"] = archive.read_bytes()
    card = make_card("evil.tgz", [f"{server.url}/evil.tgz"], format="tgz", member="model.onnx",
                     sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    with pytest.raises(UnsafeArchiveError, match="climbs out"):
        artifact_member(card)
    unpack_root = settings.cache_dir() / "unpacked"
    assert list(unpack_root.iterdir()) == []  # no half-unpacked tree, no temporary directory


# ---------------------------------------------------------------- members' hashes, recorded and checked

def test_members_hashes_are_recorded_and_the_name_is_reserved(tmp_path):
    target = archives.unpack(paddle_tar(tmp_path / "p.tgz"), tmp_path / "tree", 10**7)
    recorded = json.loads((target / cache.MEMBERS_FILE).read_text())["members"]
    assert recorded == {name: hashlib.sha256(data).hexdigest() for name, data in PADDLE.items()}
    assert cache.tree_problem(target) is None
    archive = make_tar(tmp_path / "r.tgz", [(entry("./" + cache.MEMBERS_FILE), b'{"members": {}}')])
    with pytest.raises(UnsafeArchiveError, match="member hashes"):
        archives.unpack(archive, tmp_path / "other", 10**6)


@pytest.fixture
def fetched_archive(server, make_card, tmp_path):
    archive = paddle_tar(tmp_path / "MobileNetV2_infer.tar")
    server.files[archive.name] = archive.read_bytes()
    card = make_card(archive.name, [f"{server.url}/{archive.name}"], format="paddle-inference-tar",
                     member="MobileNetV2_infer/inference.pdmodel", sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    return card


def test_a_replaced_member_is_caught_by_use_fetch_and_cache_verify(fetched_archive):
    member = artifact_member(fetched_archive)
    member.write_bytes(b"swapped model")  # same name, other bytes, after the archive verified
    assert artifact_member(fetched_archive).read_bytes() == b"pdmodel bytes"  # unpacked again from the archive
    member.write_bytes(b"swapped model")
    (record,) = fetch_cards([fetched_archive])
    assert Path(record["member_path"]).read_bytes() == b"pdmodel bytes"
    extra = member.parent / "extra.bin"
    extra.write_bytes(b"x")
    member.write_bytes(b"swapped model")
    rows = [r for r in zoo.cache_verify() if r["kind"] == "unpacked"]
    assert [(r["ok"], r["removed"]) for r in rows] == [(False, True)]
    assert rows[0]["file"] in ("MobileNetV2_infer/extra.bin", "MobileNetV2_infer/inference.pdmodel")
    assert not member.exists() and artifact_member(fetched_archive).read_bytes() == b"pdmodel bytes"
    assert [r["ok"] for r in zoo.cache_verify()] == [True, True]
