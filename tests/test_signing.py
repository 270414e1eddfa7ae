"""ed25519 keys and signatures: key files are private, never overwritten, never written through a link."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import zoo
from zoo.cards import signing
from zoo.errors import UsageError

CARDS = Path(__file__).resolve().parents[1] / "cards"


def run_cli(*args: str):
    from typer.testing import CliRunner

    import zoo_cli

    return CliRunner().invoke(zoo_cli.app, list(args))


def test_keygen_writes_a_0600_private_key_whatever_the_umask(tmp_path):
    umask = os.umask(0)
    try:
        made = signing.keygen(tmp_path / "k.key")
    finally:
        os.umask(umask)
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    assert Path(made["public_key_file"]).read_text().strip() == made["public_key"]


@pytest.mark.parametrize("name", [".", "", "..", "adir"])
def test_keygen_refuses_a_directory(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        signing.keygen(Path(name))
    result = run_cli("registry", "keygen", name)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


@pytest.mark.parametrize("which", ["key", "pub"])
def test_keygen_never_writes_through_a_dangling_link(tmp_path, which):
    target = tmp_path / "elsewhere"
    link = tmp_path / ("k.key" if which == "key" else "k.key.pub")
    link.symlink_to(target)
    result = run_cli("registry", "keygen", str(tmp_path / "k.key"))
    assert result.exit_code == 2 and "already exists (or is a link)" in result.output
    assert not target.exists() and not (tmp_path / "k.key").is_file()


def test_signing_with_a_key_others_can_read_warns(tmp_path):
    key = tmp_path / "k.key"
    signing.keygen(key)
    out = tmp_path / "site" / "index.json"
    assert zoo.build_registry(CARDS / "coral", out, sign=key)["warnings"] == []
    key.chmod(0o644)
    result = run_cli("registry", "build", "--cards", str(CARDS / "coral"), "--out", str(out), "--sign", str(key))
    assert result.exit_code == 0 and "readable by others (mode 0644)" in result.output and "chmod 600" in result.output


def test_build_with_a_wrong_key_or_a_directory_replaces_nothing(tmp_path):
    key = tmp_path / "k.key"
    signing.keygen(key)
    out = tmp_path / "site" / "index.json"
    zoo.build_registry(CARDS / "coral", out, sign=key)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    result = run_cli("registry", "build", "--cards", str(CARDS), "--out", str(out), "--sign", str(tmp_path / "TYPO"))
    assert result.exit_code == 2 and "cannot read the private key" in result.output
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before  # no stale signature, no .tmp
    result = run_cli("registry", "build", "--cards", str(CARDS / "coral"), "--out", str(out.parent))
    assert result.exit_code == 2 and "is a directory" in result.output
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_an_unsigned_rebuild_removes_the_stale_signature(tmp_path):
    key = tmp_path / "k.key"
    signing.keygen(key)
    out = tmp_path / "index.json"
    zoo.build_registry(CARDS / "coral", out, sign=key)
    assert zoo.build_registry(CARDS / "coral", out)["signature"] is None
    assert not Path(f"{out}.sig").exists() and "version" not in json.loads(out.read_text())
