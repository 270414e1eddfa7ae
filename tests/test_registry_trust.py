"""What a remote registry may make zoo do, against a real HTTP server on 127.0.0.1: which addresses its cards may
reach (every spelling of a local address, and names that resolve to one), whose card an id means when registries
clash, what re-adding a registry keeps, and how long its index may take to arrive."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import pytest
import yaml

import zoo
from zoo.artifacts.http import Download, Skip
from zoo.artifacts.hashes import Expected
from zoo.cards import remote, signing
from zoo.cards.directory import build_index
from zoo.cards.index import card_sha256, write_index

pytestmark = pytest.mark.usefixtures("zoo_home")
CARDS = Path(__file__).resolve().parents[1] / "cards"
CORAL_CARD = yaml.safe_load((CARDS / "coral" / "mobilenet_v2_1.0_224_quant.yaml").read_text())


def run_cli(*args: str):
    from typer.testing import CliRunner

    import zoo_cli

    return CliRunner().invoke(zoo_cli.app, list(args))


def card(card_id: str, urls: list[str], **changes) -> dict:
    """The coral card under another id, its artifact at these URLs."""
    out = json.loads(json.dumps(CORAL_CARD))
    out["id"], out["source"], out["name"] = card_id, card_id.split("/")[0], card_id.split("/")[1]
    out["artifacts"] = [{**out["artifacts"][0], "urls": urls}]
    out.update(changes)
    return out


def index_of(cards: list[dict], version: int | None = None) -> dict:
    index = {"format": 1, **({"version": version} if version is not None else {}), "cards": []}
    index["cards"] = [{"id": c["id"], "sha256": card_sha256(c), "card": c} for c in cards]
    return index


@pytest.fixture
def publish(server, tmp_path):
    """publish(name, index, key=None): serve index.json (signed with the key file when given) under /name/."""

    def publish(name: str, index: dict, key: Path | None = None) -> str:
        path = tmp_path / "site" / name / "index.json"
        write_index(index, path)
        server.files[f"{name}/index.json"] = path.read_bytes()
        if key is not None:
            server.files[f"{name}/index.json.sig"] = signing.sign_file(path, key).read_bytes()
        return f"{server.url}/{name}/index.json"

    return publish


@pytest.fixture
def keys(tmp_path):
    """keys(name) -> (private key file, public key) of a fresh ed25519 pair."""

    def make(name: str):
        made = signing.keygen(tmp_path / "keys" / f"{name}.key")
        return Path(made["private_key"]), made["public_key"]

    return make


# ---------------------------------------------------------------- 2. local addresses, however written

LOOPBACK_SPELLINGS = ["2130706433", "127.1", "0x7f000001", "0177.0.0.1", "0", "0.0.0.0", "127.0.0.1.",
                      "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]",
                      "[0:0:0:0:0:0:0:1]", "[::]", "10.1", "0xa000001", "192.168.1", "2852039166", "100.64.0.1",
                      "[fe80::1%25eth0]", "[fc00::1]", "LOCALHOST", "a.localhost"]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_spelling_of_a_local_address_is_refused_without_allow_local(publish, keys, host):
    key, public = keys("acme")
    url = publish("acme", index_of([card("acme/m", [f"https://{host}/m.tflite"])]), key)
    remote.add("acme", url, key=public)
    (result,) = remote.update()
    assert result["status"] == "rejected", result
    assert "private/loopback address" in result["message"] and "--allow-local" in result["message"]
    assert zoo.list_cards("acme/*") == []


def test_public_addresses_and_names_still_pass_the_check(publish, keys):
    key, public = keys("acme")
    hosts = ["8.8.8.8", "134744072", "[2001:4860:4860::8888]", "models.example.org"]
    url = publish("acme", index_of([card(f"acme/m{i}", [f"https://{h}/m.tflite"]) for i, h in enumerate(hosts)]), key)
    remote.add("acme", url, key=public)
    assert remote.update()[0]["status"] == "updated"


def _download(server, url: str, tmp_path, public_only: bool) -> bytes:
    data = os.urandom(1000)
    server.files["x.bin"] = data
    part = tmp_path / "x.part"
    Download(url, part, tmp_path / "x.json", Expected(hashlib.sha256(data).hexdigest(), "card", None, {}, len(data)),
             {"id": "t/x", "file": "x.bin"}, None, public_only=public_only).run()
    return part.read_bytes()


def test_a_host_name_that_resolves_to_loopback_is_refused_when_the_connection_is_opened(server, tmp_path):
    port = server.url.rsplit(":", 1)[1]
    url = f"http://localhost:{port}/x.bin"  # a name: only the resolver knows it is 127.0.0.1
    assert len(_download(server, url, tmp_path, public_only=False)) == 1000  # the server is there
    requests_before = len(server.log)
    with pytest.raises(Skip, match=r"localhost resolves to 127\.0\.0\.1, a loopback or private address"):
        _download(server, url, tmp_path, public_only=True)
    assert len(server.log) == requests_before  # refused before a byte of the request was sent


def _loopback_name() -> str | None:
    """This machine's own host name when it resolves to a loopback address (as on most Linux hosts)."""
    name = socket.gethostname()
    try:
        found = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        return None
    return name if found and all(a.startswith("127.") or a == "::1" for a in found) else None


def test_a_remote_cards_url_whose_name_resolves_to_loopback_is_never_fetched(server, publish, keys, monkeypatch):
    name = _loopback_name()
    if name is None:
        pytest.skip(f"{socket.gethostname()} does not resolve to a loopback address here")
    monkeypatch.setenv("NO_PROXY", f"127.0.0.1,localhost,{name}")  # straight to it, as without a proxy
    monkeypatch.setenv("no_proxy", f"127.0.0.1,localhost,{name}")
    port = server.url.rsplit(":", 1)[1]
    key, public = keys("acme")
    url = publish("acme", index_of([card("acme/m", [f"https://{name}:{port}/m.tflite"])]), key)
    remote.add("acme", url, key=public)
    assert remote.update()[0]["status"] == "updated"  # a name passes the check of the index
    requests_before = len(server.log)
    result = run_cli("fetch", "acme/m")
    assert result.exit_code == 6, result.output
    assert f"{name} resolves to 127." in result.output and "--allow-local" in result.output
    assert len(server.log) == requests_before
