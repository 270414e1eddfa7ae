"""Remote registries served by a real HTTP server on 127.0.0.1: signed, tampered, unsigned, malformed, offline."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

import zoo
from zoo.cards import remote, signing
from zoo.errors import UsageError
from zoo.cards.directory import build_index
from zoo.cards.index import card_sha256, write_index

pytestmark = pytest.mark.usefixtures("zoo_home")
CARDS = Path(__file__).resolve().parents[1] / "cards"


def run_cli(*args: str):
    from typer.testing import CliRunner

    import zoo_cli

    return CliRunner().invoke(zoo_cli.app, list(args))


@pytest.fixture
def acme_cards(tmp_path) -> Path:
    """The two coral cards, republished by a registry called acme under its own source name."""
    out = tmp_path / "acme-cards"
    out.mkdir()
    for path in sorted((CARDS / "coral").glob("*.yaml")):
        card = yaml.safe_load(path.read_text())
        card["id"], card["source"] = card["id"].replace("coral/", "acme/"), "acme"
        (out / path.name).write_text(yaml.safe_dump(card, sort_keys=False))
    return out


@pytest.fixture
def published(tmp_path, acme_cards, server):
    """acme's index.json and its signature served on loopback; returns (index dict, key file, publish function)."""
    key = tmp_path / "keys" / "acme.key"
    public = signing.keygen(key)["public_key"]

    def publish(index: dict | bytes, sign: bool = True) -> None:
        path = tmp_path / "site" / "index.json"
        if isinstance(index, dict):
            write_index(index, path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(index)
        server.files["index.json"] = path.read_bytes()
        server.files.pop("index.json.sig", None)
        if sign:
            server.files["index.json.sig"] = signing.sign_file(path, key).read_bytes()

    index = build_index(acme_cards)
    publish(index)
    return index, public, publish


def acme_ids() -> list[str]:
    return [r["id"] for r in zoo.list_cards("acme/*")]


def test_signed_index_is_verified_and_its_cards_are_listed_with_the_registry_name(server, published):
    index, public, _ = published
    assert remote.add("acme", server.url, key=public)["index_url"] == f"{server.url}/index.json"
    (result,) = remote.update()
    assert (result["status"], result["cards"]) == ("updated", 2)
    assert "signature verified" in result["message"]
    rows = zoo.list_cards("acme/*")
    assert [(r["id"], r["registry"]) for r in rows] == [("acme/mobilenet_v2_1.0_224_quant", "acme"),
                                                        ("acme/tf2_mobilenet_v2_1.0_224_ptq", "acme")]
    entry, _ = zoo.resolve("acme/mobilenet_v2_1.0_224_quant")
    assert entry.registry == "acme"
    assert set(zoo.compare(["acme/*"])["id"]) == set(acme_ids())
    (listed,) = remote.ls()
    assert (listed["name"], listed["signed"], listed["cards"], listed["key"]) == ("acme", True, 2, public)


def test_an_unchanged_index_is_not_downloaded_again(server, published):
    remote.add("acme", server.url, key=published[1])
    remote.update()
    assert remote.update()[0]["status"] == "unchanged"
    assert server.log[-1]["headers"]["If-None-Match"] == server.etag("index.json")
    assert server.log[-1]["status"] == 304


def test_a_tampered_index_is_rejected_and_the_last_good_copy_stays(server, published):
    index, public, publish = published
    remote.add("acme", server.url, key=public)
    remote.update()
    # The attacker edits a card and even fixes its sha256 in the index; only the signature can tell.
    tampered = json.loads(json.dumps(index))
    card = tampered["cards"][0]["card"]
    card["artifacts"][0]["urls"] = ["https://evil.example/model.tflite"]
    tampered["cards"][0]["sha256"] = card_sha256(card)
    body = json.dumps(tampered).encode()
    server.files["index.json"] = body  # served with the old, now wrong, signature
    (result,) = remote.update()
    assert result["status"] == "rejected" and "signature does not match" in result["message"]
    assert result["cards"] == 2
    assert zoo.get("acme/mobilenet_v2_1.0_224_quant")["artifacts"][0]["urls"][0].startswith("https://github.com/")
    # A card altered without fixing its sha256 is caught by the card check, signed or not.
    tampered["cards"][0]["sha256"] = index["cards"][0]["sha256"]
    publish(tampered)
    (result,) = remote.update()
    assert result["status"] == "rejected" and "does not match its sha256" in result["message"]


def test_an_unsigned_index_is_rejected_when_the_registry_has_a_key(server, published):
    index, public, publish = published
    remote.add("acme", server.url, key=public)
    publish(index, sign=False)
    (result,) = remote.update()
    assert result["status"] == "rejected" and "unsigned" in result["message"]
    assert result["cards"] == 0 and acme_ids() == []


def test_a_signature_by_another_key_is_rejected(server, published, tmp_path):
    other = signing.keygen(tmp_path / "other.key")["public_key"]
    remote.add("acme", server.url, key=other)
    assert remote.update()[0]["status"] == "rejected"
    assert acme_ids() == []


@pytest.mark.parametrize("body, problem", [
    (b"{not json", "not valid JSON"),
    (b'{"format": 99, "cards": []}', "malformed"),
    (b'{"format": 1, "cards": [{"id": "x"}]}', "cards[0] is malformed"),
])
def test_a_malformed_index_is_rejected(server, published, body, problem):
    _, public, publish = published
    remote.add("acme", server.url, key=public)
    remote.update()
    publish(body)
    (result,) = remote.update()
    assert result["status"] == "rejected" and problem in result["message"]
    assert len(acme_ids()) == 2  # the last good copy


def test_offline_uses_the_last_good_copy_without_the_network(server, published, monkeypatch):
    remote.add("acme", server.url, key=published[1])
    remote.update()
    requests_before = len(server.log)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    (result,) = remote.update()
    assert (result["status"], result["cards"]) == ("offline", 2)
    assert len(server.log) == requests_before and len(acme_ids()) == 2


def test_an_unreachable_registry_fails_and_keeps_the_last_good_copy(server, published):
    remote.add("acme", server.url, key=published[1])
    remote.update()
    server.files.pop("index.json")
    server.fail("index.json", "status", code=503)
    (result,) = remote.update()
    assert result["status"] == "failed" and "503 Server Error" in result["message"] and result["cards"] == 2
    remote.add("nobody", "http://127.0.0.1:9/")  # nothing listens there
    assert [(r["name"], r["status"]) for r in remote.update()] == [("acme", "failed"), ("nobody", "failed")]
    assert len(acme_ids()) == 2


def test_an_unsigned_registry_without_a_key_is_accepted(server, published):
    index, _, publish = published
    publish(index, sign=False)
    remote.add("acme", f"{server.url}/index.json")
    assert remote.update()[0]["status"] == "updated" and len(acme_ids()) == 2


@pytest.mark.parametrize("name, url, key, problem", [
    ("Bad Name", "https://example.org/", None, "not allowed"),
    ("embedded", "https://example.org/", None, "not allowed"),
    ("acme", "http://example.org/index.json", None, "https URL"),
    ("acme", "https://example.org/", "bm90IGEga2V5", "32-byte ed25519 public key"),
])
def test_add_rejects_bad_input(name, url, key, problem):
    with pytest.raises(UsageError, match=problem):
        remote.add(name, url, key)
    assert remote.ls() == []


def test_cli_keygen_build_sign_add_update_ls(server, acme_cards, tmp_path):
    key = tmp_path / "k.key"
    made = run_cli("registry", "keygen", str(key), "--json")
    assert made.exit_code == 0 and key.stat().st_mode & 0o777 == 0o600
    assert run_cli("registry", "keygen", str(key)).exit_code == 2  # never overwrites a key
    out = tmp_path / "site" / "index.json"
    built = run_cli("registry", "build", "--cards", str(acme_cards), "--out", str(out), "--sign", str(key), "--json")
    assert built.exit_code == 0, built.output
    record = json.loads(built.stdout)
    assert {k: record[k] for k in ("path", "cards", "signature")} == {"path": str(out), "cards": 2,
                                                                      "signature": f"{out}.sig"}
    assert record["version"] > 1_700_000_000 and record["expires"] > time.strftime("%Y-%m-%dT%H:%M:%SZ")
    server.files["index.json"], server.files["index.json.sig"] = out.read_bytes(), Path(f"{out}.sig").read_bytes()
    assert run_cli("registry", "add", "acme", server.url, "--key", f"{key}.pub").exit_code == 0
    updated = run_cli("registry", "update")
    assert updated.exit_code == 0 and updated.stdout.startswith(f"acme: updated (2 cards, version {record['version']}, signature verified)")
    listed = json.loads(run_cli("registry", "ls", "--json").stdout)
    assert [(r["name"], r["cards"], r["signed"]) for r in listed] == [("acme", 2, True)]
    rows = json.loads(run_cli("list", "acme/*", "--json").stdout)
    assert {r["registry"] for r in rows} == {"acme"}
    server.files["index.json"] = out.read_bytes().replace(b"TF1", b"TF0")
    rejected = run_cli("registry", "update")
    assert rejected.exit_code == 4 and "rejected" in rejected.stdout and "Traceback" not in rejected.output


# ---------------------------------------------------------------- rollback, expiry, schema, URLs, hostile JSON

def versioned(cards_dir, version, days=30):
    return build_index(cards_dir, version=version, expires=datetime.now(timezone.utc) + timedelta(days=days))


def test_an_older_signed_version_is_refused_and_the_newer_copy_stays(server, published, acme_cards):
    _, public, publish = published
    remote.add("acme", server.url, key=public)
    v1 = versioned(acme_cards, 1)
    v2 = versioned(acme_cards, 2)
    v2["cards"] = v2["cards"][:1]
    publish(v2)
    assert remote.update()[0]["status"] == "updated"
    publish(v1)  # a valid signature, an older index: a rollback
    (result,) = remote.update()
    assert result["status"] == "rejected" and "version 1, older than the accepted version 2" in result["message"]
    assert result["cards"] == 1 and len(acme_ids()) == 1
    (listed,) = remote.ls()
    assert (listed["version"], listed["expired"]) == (2, False) and listed["expires"] == v2["expires"]
    unversioned = build_index(acme_cards)
    publish(unversioned)
    (result,) = remote.update()
    assert result["status"] == "rejected" and "has no version" in result["message"]
    v2_changed = versioned(acme_cards, 2)  # same version, other bytes
    publish(v2_changed)
    assert "differs from the accepted version 2" in remote.update()[0]["message"]
    publish(versioned(acme_cards, 3))
    assert remote.update()[0]["status"] == "updated" and len(acme_ids()) == 2


def test_an_expired_index_is_kept_with_a_warning(server, published, acme_cards):
    _, public, publish = published
    remote.add("acme", server.url, key=public)
    publish(versioned(acme_cards, 5, days=-1))
    (result,) = remote.update()
    assert result["status"] == "updated" and "WARNING: the index expired on" in result["message"]
    assert remote.ls()[0]["expired"] is True
    listed = run_cli("registry", "ls")
    assert listed.exit_code == 0 and "(EXPIRED)" in listed.stdout and " 5 " in listed.stdout


def with_card(index: dict, card: dict) -> dict:
    index = json.loads(json.dumps(index))
    index["cards"].append({"id": card["id"], "sha256": card_sha256(card), "card": card})
    return index


def test_a_remote_card_that_fails_the_schema_rejects_the_whole_index(server, published):
    index, public, publish = published
    remote.add("acme", server.url, key=public)
    remote.update()
    publish(with_card(index, {"id": "z/broken", "source": "z", "name": "broken"}))
    (result,) = remote.update()
    assert result["status"] == "rejected"
    assert "card 'z/broken'" in result["message"] and "width: Field required" in result["message"]
    assert result["cards"] == 2 and len(zoo.list_cards()) > 2  # every command still loads the registry
    assert run_cli("list", "acme/*").exit_code == 0


@pytest.mark.parametrize("url", ["file:///etc/shadow", "http://127.0.0.1:8000/m.tflite", "https://10.0.0.5/m.tflite",
                                 "https://[::1]/m.tflite", "https://169.254.169.254/latest", "https://localhost/m"])
def test_remote_cards_may_not_point_at_local_files_or_private_hosts(server, published, url):
    index, public, publish = published
    card = json.loads(json.dumps(index["cards"][0]["card"]))
    card["id"], card["name"] = "acme/local", "local"
    card["artifacts"][0]["urls"] = [url]
    publish(with_card(index, card))
    remote.add("acme", server.url, key=public)
    (result,) = remote.update()
    assert result["status"] == "rejected" and "artifacts[0].urls[0]" in result["message"]
    assert "--allow-local" in result["message"] and acme_ids() == []
    remote.add("acme", server.url, key=public, allow_local=True)
    assert remote.update()[0]["status"] == "updated" and "acme/local" in acme_ids()
    assert remote.ls()[0]["allow_local"] is True


def test_ids_that_differ_only_in_case_reject_the_index(server, published):
    index, public, publish = published
    card = json.loads(json.dumps(index["cards"][0]["card"]))
    card["id"] = card["id"].upper().replace("ACME/", "acme/")
    publish(with_card(index, card))
    remote.add("acme", server.url, key=public)
    (result,) = remote.update()
    assert result["status"] == "rejected" and "differ in more than case" in result["message"]


def test_a_deeply_nested_index_is_refused_without_stopping_other_registries(server, published):
    index, public, publish = published
    publish(index)
    remote.add("good", server.url, key=public)
    server.files["deep/index.json"] = b"[" * 100_000
    remote.add("deep", f"{server.url}/deep/index.json")
    server.files["signed-deep/index.json"] = b"[" * 100_000
    server.files["signed-deep/index.json.sig"] = server.files["index.json.sig"]
    remote.add("signed-deep", f"{server.url}/signed-deep/index.json", key=public)
    results = {r["name"]: r for r in remote.update()}
    assert results["deep"]["status"] == "rejected" and "nests deeper than" in results["deep"]["message"]
    # With a key, the signature is checked over the bytes first: the nesting is never parsed.
    assert "signature does not match" in results["signed-deep"]["message"]
    assert (results["good"]["status"], results["good"]["cards"]) == ("updated", 2)


def test_cli_add_allow_local_and_build_version_expires(server, acme_cards, tmp_path):
    out = tmp_path / "site" / "index.json"
    built = run_cli("registry", "build", "--cards", str(acme_cards), "--out", str(out), "--version", "7",
                    "--expires", "10", "--json")
    assert built.exit_code == 0, built.output
    record = json.loads(built.stdout)
    index = json.loads(out.read_text())
    assert record["version"] == index["version"] == 7 and record["expires"] == index["expires"]
    assert run_cli("registry", "build", "--cards", str(acme_cards), "--out", str(out), "--expires", "0").exit_code == 2
    server.files["index.json"] = out.read_bytes()
    added = run_cli("registry", "add", "lan", server.url, "--allow-local", "--json")
    assert added.exit_code == 0 and json.loads(added.stdout)["allow_local"] is True
    assert run_cli("registry", "update").exit_code == 0
    (row,) = json.loads(run_cli("registry", "ls", "--json").stdout)
    assert (row["version"], row["expires"], row["expired"], row["allow_local"]) == (7, index["expires"], False, True)
