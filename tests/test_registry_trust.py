"""What a remote registry may make zoo do, against a real HTTP server on 127.0.0.1: which addresses its cards may
reach (every spelling of a local address, and names that resolve to one), whose card an id means when registries
clash, what re-adding a registry keeps, and how long its index may take to arrive."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

import zoo
from zoo.artifacts.http import Download, Skip
from zoo.artifacts.hashes import Expected
from zoo.cards import remote, signing
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


# ---------------------------------------------------------------- 1. whose card an id means

def _urls(card_id: str) -> list[str]:
    return zoo.get(card_id)["artifacts"][0]["urls"]


def test_an_unsigned_registry_never_replaces_a_signed_registrys_card(publish, keys):
    key, public = keys("acme")
    remote.add("acme", publish("acme", index_of([card("r/m", ["https://acme.example/m.tflite"])]), key), key=public)
    remote.add("zz", publish("zz", index_of([card("r/m", ["https://zz.example/evil.tflite"])])))  # later, unsigned
    assert [r["status"] for r in remote.update()] == ["updated", "updated"]
    assert _urls("r/m") == ["https://acme.example/m.tflite"]  # what `zoo fetch r/m` downloads
    shown = zoo.show("r/m")
    assert shown["registry"] == "acme"
    (shadow,) = shown["shadowed"]
    assert shadow["registry"] == "zz" and "registry zz (unsigned) may not replace a card from registry acme (signed)" \
        in shadow["reason"] and "zoo registry add zz URL --override" in shadow["reason"]
    listed = run_cli("list", "r/*")
    assert listed.exit_code == 0 and "r/m is acme's card; zz also publishes one: not used" in listed.stderr
    assert json.loads(run_cli("list", "r/*", "--json").stdout)[0]["shadowed"] == [shadow]
    shown_cli = run_cli("show", "r/m")
    assert "zz also publishes one" in shown_cli.stderr and "acme.example" in shown_cli.stdout
    assert "zz.example" not in shown_cli.stdout


def test_the_registry_added_first_keeps_an_id_whatever_the_names_sort_as(publish, keys):
    (key_b, public_b), (key_a, public_a) = keys("b"), keys("a")
    remote.add("zz", publish("zz", index_of([card("r/m", ["https://first.example/m.tflite"])]), key_b), key=public_b)
    remote.add("aa", publish("aa", index_of([card("r/m", ["https://second.example/m.tflite"])]), key_a), key=public_a)
    remote.update()
    assert _urls("r/m") == ["https://first.example/m.tflite"]
    assert "registry zz (signed) was added first" in zoo.show("r/m")["shadowed"][0]["reason"]
    # Re-adding the same registry (same URL and key) does not move it to the back, nor the front.
    remote.add("zz", f"{remote.remotes()['zz']['url']}", key=public_b)
    assert _urls("r/m") == ["https://first.example/m.tflite"]


def test_a_remote_registry_replaces_an_embedded_card_only_when_added_with_override(publish, keys):
    coral_id = CORAL_CARD["id"]
    evil = card(coral_id, ["https://mirror.example/other.tflite"])
    key, public = keys("acme")
    url = publish("acme", index_of([evil]), key)
    remote.add("acme", url, key=public)  # even signed: it may not replace the embedded card unasked
    remote.update()
    assert _urls(coral_id) == CORAL_CARD["artifacts"][0]["urls"]
    assert "may not replace a card from the embedded registry" in zoo.show(coral_id)["shadowed"][0]["reason"]
    added = run_cli("registry", "add", "acme", url, "--key", public, "--override", "--json")
    assert added.exit_code == 0 and json.loads(added.stdout)["override"] is True
    assert json.loads(run_cli("registry", "ls", "--json").stdout)[0]["override"] is True  # the choice is recorded
    assert _urls(coral_id) == ["https://mirror.example/other.tflite"]  # kept copy: no update needed
    shown = zoo.show(coral_id)
    assert shown["registry"] == "acme"
    assert shown["shadowed"] == [{"registry": "embedded",
                                  "reason": "replaced by the card from registry acme (added with --override)"}]


def test_a_card_directory_you_name_replaces_remote_and_embedded_cards_and_says_so(publish, tmp_path):
    remote.add("zz", publish("zz", index_of([card("r/m", ["https://zz.example/m.tflite"])])))
    remote.update()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "m.yaml").write_text(yaml.safe_dump(card("r/m", ["https://mine.example/m.tflite"])))
    shown = zoo.show("r/m", registries=[mine])
    assert shown["card"]["artifacts"][0]["urls"] == ["https://mine.example/m.tflite"]
    assert shown["shadowed"][0]["registry"] == "zz"
    assert shown["shadowed"][0]["reason"].startswith("replaced by the card from the card directory")


def test_the_same_card_from_two_sources_is_no_clash(publish):
    same = card("r/m", ["https://same.example/m.tflite"])
    remote.add("aa", publish("aa", index_of([same])))
    remote.add("bb", publish("bb", index_of([same])))
    remote.update()
    assert zoo.show("r/m")["shadowed"] == []


# ---------------------------------------------------------------- 3. re-adding a registry

def test_re_adding_with_only_allow_local_keeps_the_accepted_version(publish, keys):
    key, public = keys("acme")
    cards = [card("acme/m", ["https://acme.example/m.tflite"])]
    url = publish("acme", index_of(cards, version=3), key)
    remote.add("acme", url, key=public)
    remote.update()
    v3_body = remote._last_good("acme").read_bytes()
    publish("acme", index_of(cards, version=50), key)
    assert remote.update()[0]["message"].startswith("1 cards, version 50")
    record = remote.add("acme", url, key=public, allow_local=True)
    assert record["kept"] is True and record["allow_local"] is True
    assert remote.ls()[0]["version"] == 50
    publish("acme", json.loads(v3_body), key)  # a replayed, validly signed version 3
    (result,) = remote.update()
    assert result["status"] == "rejected" and "version 3, older than the accepted version 50" in result["message"]


def test_re_adding_with_another_key_or_url_forgets_the_copy_and_the_version(publish, keys):
    (key, public), (key2, public2) = keys("acme"), keys("acme2")
    cards = [card("acme/m", ["https://acme.example/m.tflite"])]
    url = publish("acme", index_of(cards, version=50), key)
    remote.add("acme", url, key=public)
    remote.update()
    record = remote.add("acme", url, key=public2)  # another publisher
    assert record["kept"] is False and remote.ls()[0]["version"] is None and zoo.list_cards("acme/*") == []
    publish("acme", index_of(cards, version=3), key2)
    assert remote.update()[0]["status"] == "updated"


def test_dropping_allow_local_puts_aside_a_copy_with_local_urls_but_keeps_its_version(publish, keys, server):
    key, public = keys("lan")
    url = publish("lan", index_of([card("lan/m", [f"{server.url}/m.tflite"])], version=50), key)
    remote.add("lan", url, key=public, allow_local=True)
    assert remote.update()[0]["status"] == "updated" and zoo.list_cards("lan/*")
    remote.add("lan", url, key=public)  # no longer trusted with local addresses
    assert zoo.list_cards("lan/*") == [] and remote.ls()[0]["version"] == 50
    (result,) = remote.update()  # the same index again: the URL check now refuses it
    assert result["status"] == "rejected" and "private/loopback address" in result["message"]


# ---------------------------------------------------------------- 5. how long an index may take

def test_an_index_served_gzipped_is_read_as_its_json(tmp_path):
    """requests asks for gzip; a static host that compresses index.json must still be read (decoded, then bounded)."""
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    path = tmp_path / "index.json"
    write_index(index_of([card("gz/m", ["https://gz.example/m.tflite"])]), path)
    body = gzip.compress(path.read_bytes())

    class Gzipped(BaseHTTPRequestHandler):
        def do_GET(self):
            assert "gzip" in self.headers.get("Accept-Encoding", "")
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Gzipped)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        remote.add("gz", f"http://127.0.0.1:{httpd.server_address[1]}/index.json")
        (result,) = remote.update()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result["status"] == "updated" and result["cards"] == 1, result
    assert zoo.get("gz/m")["id"] == "gz/m"


def test_a_dripping_index_gives_up_at_the_rate_floor(publish, server, monkeypatch):
    url = publish("slow", index_of([card(f"slow/m{i}", ["https://slow.example/m.tflite"]) for i in range(3)]))
    remote.add("slow", url)
    server.rate["slow/index.json"] = 128  # 64 bytes every 0.5 s: each read beats the read timeout
    monkeypatch.setenv("ZOO_RATE_WINDOW", "1")
    start = time.monotonic()
    (result,) = remote.update()
    assert time.monotonic() - start < 5
    assert result["status"] == "failed" and "below ZOO_MIN_RATE=4096" in result["message"]
    assert "the last good copy stays in use" in result["message"]


@contextmanager
def dripping_server(scheme: str, first: bytes, byte: bytes, *, hello: bool = False):
    """A server on 127.0.0.1 that answers every connection (after reading the client's first message, `hello`)
    with `first`, then `byte` every 0.2 s (for up to 30 s); yields its base URL."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    def drip(conn):
        with conn:
            try:
                if hello:
                    conn.recv(4096)
                conn.sendall(first)
                for _ in range(150):
                    if stop.wait(0.2):
                        return
                    conn.sendall(byte)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.fixture
def header_drip():
    """A status line, then one header byte every 0.2 s."""
    with dripping_server("http", b"HTTP/1.0 200 OK\r\nX-Drip: ", b"a") as url:
        yield url


def test_an_index_whose_headers_drip_gives_up_at_the_deadline(header_drip, monkeypatch):
    monkeypatch.setenv("ZOO_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("ZOO_READ_TIMEOUT", "1")
    remote.add("drip", f"{header_drip}/index.json")
    start = time.monotonic()
    (result,) = remote.update()
    assert time.monotonic() - start < 6
    assert result["status"] == "failed" and "no complete answer (status line and headers) within 2 s" in result["message"]


def test_a_304_to_the_first_update_is_a_failure_not_an_empty_registry(publish, server):
    remote.add("acme", publish("acme", index_of([card("acme/m", ["https://acme.example/m.tflite"])])))
    server.fail("acme/index.json", "status", code=304)
    (result,) = remote.update()
    assert result["status"] == "failed" and "304 Not Modified" in result["message"] and result["cards"] == 0
    updated = run_cli("registry", "update", "acme")
    assert updated.exit_code == 0 and "acme: updated (1 cards)" in updated.stdout  # the next answer is a real one
    server.fail("acme/index.json", "status", code=204)
    publish("acme", index_of([card("acme/m2", ["https://acme.example/m.tflite"])]))
    (result,) = remote.update()
    assert result["status"] == "failed" and "HTTP 204" in result["message"] and result["cards"] == 1


def test_an_artifact_whose_headers_drip_is_given_up_at_the_deadline(header_drip, monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("ZOO_READ_TIMEOUT", "1")
    download = Download(f"{header_drip}/m.onnx", tmp_path / "m.part", tmp_path / "m.json",
                        Expected(None, None, None, {}, 1000), {"id": "t/m", "file": "m.onnx"}, None)
    start = time.monotonic()
    with pytest.raises(Skip, match=r"no complete answer \(status line and headers\) within 2 s"):
        download.run()
    assert time.monotonic() - start < 6


@pytest.fixture
def handshake_drip():
    """A TLS ClientHello answered with a handshake record header announcing 16 KiB, then one byte of it every
    0.2 s: the handshake never ends, and no read ever times out."""
    with dripping_server("https", b"\x16\x03\x03\x40\x00", b"\x00", hello=True) as url:
        yield url


def test_an_index_whose_tls_handshake_drips_gives_up_within_the_read_timeout(handshake_drip, monkeypatch):
    # Python's ssl bounds a whole handshake by the socket's timeout (since 3.5), not each read: the drip is cut
    # at ZOO_READ_TIMEOUT, inside the header deadline
    monkeypatch.setenv("ZOO_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("ZOO_READ_TIMEOUT", "1")
    remote.add("drip", f"{handshake_drip}/index.json")
    start = time.monotonic()
    (result,) = remote.update()
    assert time.monotonic() - start < 4
    assert result["status"] == "failed" and "(ReadTimeout)" in result["message"]
