"""zoo.fetch against a real HTTP server on 127.0.0.1 that injects faults, and the real coral files."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo import settings
from zoo.artifacts import cache, pins
from zoo.errors import DownloadError, HashRequiredError, IntegrityError, OfflineError, UsageError
from zoo.artifacts.fetch import fetch_artifact, fetch_record

pytestmark = pytest.mark.usefixtures("zoo_home")

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
QUANT = "mobilenet_v2_1.0_224_quant.tflite"
CORAL_ID = "coral/mobilenet_v2_1.0_224_quant"


def sha256_of(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cached_files() -> list[Path]:
    root = settings.cache_dir()
    return [p for p in root.rglob("*") if p.is_file() and "locks" not in p.parts] if root.exists() else []


@pytest.fixture
def served(server, make_card):
    """A card whose only URL is the loopback server, with its full sha256 and size."""
    server.files["m.onnx"] = DATA
    return make_card("m.onnx", [f"{server.url}/m.onnx"], sha256=SHA, size_bytes=len(DATA))


# ---------------------------------------------------------------- the coral files, through mirrors

def test_coral_cards_through_a_loopback_mirror(server, coral_dir, tmp_path):
    from conftest import CORAL_SHA256

    for name in CORAL_SHA256:
        server.files[name] = coral_dir / name
    records = zoo.fetch([CORAL_ID, "coral/tf2_mobilenet_v2_1.0_224_ptq"], mirrors=[server.url], jobs=2)
    assert [r["file"] for r in records] == list(CORAL_SHA256)
    for r in records:
        assert r["sha256"] == CORAL_SHA256[r["file"]] == sha256_of(r["path"])
        assert (r["verified_by"], r["cached"], r["source_url"]) == ("sha256", False, f"{server.url}/{r['file']}")
    served_before = len(server.log)
    again = zoo.fetch([CORAL_ID], mirrors=[server.url])
    assert again[0]["cached"] and again[0]["path"] == records[0]["path"]
    assert len(server.log) == served_before  # a verified cached file needs no request


def test_directory_mirror_from_zoo_mirror(coral_dir, monkeypatch):
    monkeypatch.setenv("ZOO_MIRROR", f"/nonexistent-mirror {coral_dir}")
    record = zoo.fetch(CORAL_ID)[0]
    assert record["source_url"] == (coral_dir / QUANT).resolve().as_uri()  # shared/ may be a symlink
    assert sha256_of(record["path"]) == record["sha256"]


# ---------------------------------------------------------------- integrity

def test_corrupted_bytes_are_rejected_and_nothing_is_cached(server, served):
    server.fail("m.onnx", "corrupt", at=1234)
    with pytest.raises(IntegrityError) as err:
        fetch_artifact(served)
    message = err.value.message
    assert f"{server.url}/m.onnx" in message and SHA in message and "the file was removed" in message
    assert hashlib.sha256(DATA[:1234] + bytes([DATA[1234] ^ 0xFF]) + DATA[1235:]).hexdigest() in message
    assert cached_files() == []


def test_a_short_body_that_looks_complete_fails_the_size_check(server, served):
    server.fail("m.onnx", "truncate", at=1000)
    with pytest.raises(IntegrityError, match=f"expected {len(DATA)} bytes, got 1000"):
        fetch_artifact(served)
    assert cached_files() == []


def test_a_body_longer_than_the_card_says_is_cut_off(server, served):
    server.files["m.onnx"] = DATA + DATA  # 600 kB where the card says 300 kB
    with pytest.raises(IntegrityError, match=f"more than the {len(DATA)} bytes the card states"):
        fetch_artifact(served)
    assert cached_files() == []


def test_sha384_on_the_card_is_checked(server, make_card):
    server.files["m.onnx"] = DATA
    good = make_card("m.onnx", [f"{server.url}/m.onnx"], other_hashes={"sha384": hashlib.sha384(DATA).hexdigest()})
    assert fetch_record(good)["verified_by"] == "sha384"
    bad = make_card("m.onnx", [f"{server.url}/m.onnx"], card_id="test/bad", other_hashes={"sha384": "0" * 96})
    with pytest.raises(IntegrityError, match="expected sha384 0000"):
        fetch_record(bad)


def test_file_name_prefix_is_checked_then_pinned(server, make_card):
    server.files["m.onnx"] = DATA
    card = make_card("m.onnx", [f"{server.url}/m.onnx"], sha256_prefix=SHA[:8])
    assert fetch_record(card)["verified_by"] == "sha256-prefix"
    assert pins.read_pins()["test/model/m.onnx"]["sha256"] == SHA
    assert fetch_record(card)["verified_by"] == "pin"
    wrong = make_card("m.onnx", [f"{server.url}/m.onnx"], card_id="test/wrong", sha256_prefix="deadbeef")
    with pytest.raises(IntegrityError, match="expected sha256 starting deadbeef"):
        fetch_record(wrong)


def test_trust_on_first_use_pins_and_later_fetches_must_match(server, make_card):
    server.files["m.onnx"] = DATA
    card = make_card("m.onnx", [f"{server.url}/m.onnx"])
    events = []
    first = fetch_record(card, progress=events.append)
    assert first["verified_by"] == "tofu"
    assert any(e["event"] == "warning" and "trusting it on first use" in e["message"] for e in events)
    pinned = json.loads(settings.pins_file().read_text())["pins"]["test/model/m.onnx"]
    assert pinned["sha256"] == SHA and pinned["size"] == len(DATA)
    zoo.cache_rm([SHA])
    server.files["m.onnx"] = DATA[::-1]  # upstream silently replaced the file
    with pytest.raises(IntegrityError, match=r"pinned on first use") as err:
        fetch_record(card)
    assert SHA in err.value.message and cached_files() == []
    assert str(settings.pins_file()) in err.value.hint


def test_require_hashes_refuses_unhashed_artifacts_until_pinned(server, make_card):
    server.files["m.onnx"] = DATA
    card = make_card("m.onnx", [f"{server.url}/m.onnx"])
    with pytest.raises(HashRequiredError, match="--require-hashes"):
        fetch_record(card, require_hashes=True)
    assert server.log == []
    with pytest.warns(UserWarning, match="trusting it on first use"):
        fetch_record(card)
    assert fetch_record(card, require_hashes=True)["verified_by"] == "pin"


def test_a_corrupted_cached_file_is_dropped_and_fetched_again(server, served):
    path = fetch_artifact(served)
    path.write_bytes(b"x" * len(DATA))
    events = []
    record = fetch_record(served, progress=events.append)
    assert not record["cached"] and sha256_of(record["path"]) == SHA
    assert any(e["event"] == "warning" and "corrupt" in e["message"] for e in events)


# ---------------------------------------------------------------- robustness

def test_connection_dropped_half_way_resumes_with_range(server, served):
    server.fail("m.onnx", "drop", at=len(DATA) // 2)
    assert sha256_of(fetch_artifact(served)) == SHA
    first, second = server.log
    assert second["headers"]["Range"] == f"bytes={len(DATA) // 2}-"
    assert second["headers"]["If-Range"] == server.etag("m.onnx") and second["status"] == 206
    assert server.sent("m.onnx") == len(DATA)  # not one byte downloaded twice


def test_server_ignoring_range_restarts_cleanly(server, served):
    server.fail("m.onnx", "drop", at=100_000)
    server.fail("m.onnx", "norange")
    assert sha256_of(fetch_artifact(served)) == SHA
    assert [e["status"] for e in server.log] == [200, 200]
    assert server.sent("m.onnx") == 100_000 + len(DATA)


def test_drops_that_make_progress_do_not_use_up_retries_but_restarts_do(server, served):
    for _ in range(5):  # five drops, more than ZOO_RETRIES=3, each a little further on
        server.fail("m.onnx", "drop", at=50_000)
    assert sha256_of(fetch_artifact(served)) == SHA and server.sent("m.onnx") == len(DATA)
    zoo.cache_rm([SHA])
    server.log.clear()
    for _ in range(5):  # a server that ignores Range and drops at the same place never gets anywhere
        server.fail("m.onnx", "drop", at=50_000, norange=True)
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        fetch_artifact(served)
    assert len(server.log) == 4  # the first drop was progress; three restarts were failures


def test_resume_survives_a_new_process(server, served):
    """A partial file left by an interrupted run is resumed by the next one."""
    server.fail("m.onnx", "drop", at=120_000)
    for _ in range(settings.retries()):
        server.fail("m.onnx", "status", code=503)
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        fetch_artifact(served)
    server.faults.clear()
    assert sha256_of(fetch_artifact(served)) == SHA
    assert server.log[-1]["headers"]["Range"] == "bytes=120000-"
    assert server.sent("m.onnx") == len(DATA)


def test_5xx_and_429_are_retried_honouring_retry_after(server, served, monkeypatch):
    # Retry-After asks for 30 s; ZOO_MAX_WAIT caps every wait, so the test never sleeps for real.
    monkeypatch.setenv("ZOO_MAX_WAIT", "0.05")
    server.fail("m.onnx", "status", code=500)
    server.fail("m.onnx", "status", code=429, headers={"Retry-After": "30"})
    events = []
    assert sha256_of(fetch_artifact(served, progress=events.append)) == SHA
    waits = [(e["reason"], e["wait_s"]) for e in events if e["event"] == "retry"]
    assert waits == [("HTTP 500", 0.01), ("HTTP 429", 0.05)]


def test_slow_response_times_out_and_is_retried(server, served, monkeypatch):
    monkeypatch.setenv("ZOO_READ_TIMEOUT", "0.3")
    server.fail("m.onnx", "slow", delay=1.0)
    events = []
    assert sha256_of(fetch_artifact(served, progress=events.append)) == SHA
    assert [e["reason"] for e in events if e["event"] == "retry"] == ["cannot connect (ReadTimeout)"]


def test_404_on_a_mirror_falls_over_to_the_cards_url(server, served):
    record = fetch_record(served, mirrors=[f"{server.url}/empty-mirror"])
    assert record["source_url"] == f"{server.url}/m.onnx"
    assert [e["status"] for e in server.log] == [404, 200]


def test_a_bad_mirror_falls_over_but_the_mismatch_is_reported_when_all_fail(server, make_card):
    server.files["m.onnx"] = DATA
    server.fail("m.onnx", "corrupt")
    card = make_card("m.onnx", [f"{server.url}/gone.onnx"], sha256=SHA)
    with pytest.raises(IntegrityError, match="checksum mismatch") as err:
        fetch_record(card, mirrors=[server.url])
    assert "HTTP 404" in err.value.message  # the other source's failure is named too


def test_retries_give_up_with_a_clear_error(server, served):
    for _ in range(3):
        server.fail("m.onnx", "status", code=502)
    with pytest.raises(DownloadError, match=r"HTTP 502 \(gave up after 3 attempts\)") as err:
        fetch_artifact(served)
    assert "--mirror" in err.value.hint and cached_files() == []


def test_https_proxy_is_honoured(server, make_card, monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, server.url)
    card = make_card("m.onnx", ["https://models.example.invalid/m.onnx"], sha256=SHA)
    with pytest.raises(DownloadError):
        fetch_artifact(card)
    assert {e["path"] for e in server.log} == {"models.example.invalid:443"}
    assert {e["method"] for e in server.log} == {"CONNECT"}


def test_offline_serves_only_from_the_cache(server, served, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="ZOO_OFFLINE=1"):
        fetch_artifact(served)
    monkeypatch.delenv("ZOO_OFFLINE")
    path = fetch_artifact(served)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    requests_before = len(server.log)
    assert fetch_artifact(served) == path and len(server.log) == requests_before


def test_cards_without_artifacts_or_with_unknown_ones_are_clear_errors(make_card):
    bare = {"id": "timm/mobilenetv2_035", "artifacts": []}
    with pytest.raises(UsageError, match="architecture only") as err:
        fetch_artifact(bare)
    assert "zoo list" in err.value.hint
    with pytest.raises(UsageError, match="no artifact 'x.onnx'"):
        fetch_artifact(make_card("m.onnx", ["https://example.invalid/m.onnx"]), "x.onnx")
    with pytest.raises(UsageError, match="architecture only"):
        zoo.fetch("timm/mobilenetv2_035")
    with pytest.raises(UsageError, match="not a bare file name"):
        fetch_artifact(make_card("../../escape.onnx", ["https://example.invalid/m.onnx"]))


def test_eight_processes_fetching_the_same_artifact_end_with_one_file(server, coral_dir):
    server.files[QUANT] = coral_dir / QUANT
    server.rate[QUANT] = 4e6  # ~0.9 s per download, so the processes overlap
    code = ("import json, zoo; events = []; "
            f"record = zoo.fetch({CORAL_ID!r}, mirrors=[{server.url!r}], progress=events.append)[0]; "
            "print(json.dumps({**record, 'waited': any(e['event'] == 'waiting' for e in events)}))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
    records = [json.loads(out) for out, _ in outputs]
    assert len({r["path"] for r in records}) == 1 and sha256_of(records[0]["path"]) == records[0]["sha256"]
    assert sum(not r["cached"] for r in records) == 1  # one process downloaded; seven found it verified
    assert any(r["waited"] for r in records)  # and at least one of them waited on the lock meanwhile
    assert server.sent(QUANT) == (coral_dir / QUANT).stat().st_size
    assert [p.name for p in cached_files()] == [QUANT]


# ---------------------------------------------------------------- the CLI skin

def run_cli(*args: str):
    from typer.testing import CliRunner

    import zoo_cli

    return CliRunner().invoke(zoo_cli.app, list(args))


def test_cli_fetch_prints_path_and_sha256(coral_dir):
    result = run_cli("fetch", CORAL_ID, "--mirror", str(coral_dir))
    assert result.exit_code == 0, result.output
    assert "sha256 7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776" in result.stdout
    assert f"path: {cache.blob_path('7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776', QUANT)}" \
        in result.stdout
    quiet = run_cli("fetch", CORAL_ID, "-q")
    assert quiet.stdout.strip() == str(cache.blob_path("7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
                                                       QUANT))


def test_cli_fetch_json_records_and_events(server, coral_dir):
    server.files[QUANT] = coral_dir / QUANT
    result = run_cli("fetch", CORAL_ID, "--mirror", server.url, "--json")
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert set(record) == {"id", "file", "format", "path", "sha256", "size", "source_url", "verified_by", "cached",
                           "resolved"}
    assert record["resolved"] == {"query": CORAL_ID, "id": CORAL_ID, "note": None}
    events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
    assert events[0] == "start" and events[-1] == "done"


def test_cli_corrupted_mirror_is_one_line_and_exit_5(server, coral_dir):
    server.files[QUANT] = coral_dir / QUANT
    server.fail(QUANT, "corrupt", at=10)
    result = run_cli("fetch", CORAL_ID, "--mirror", server.url)
    assert result.exit_code == 5
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("zoo: error: checksum mismatch for mobilenet_v2_1.0_224_quant.tflite from "
                           f"{server.url}/{QUANT}: expected sha256 7aad0c74")
    assert "Traceback" not in result.output and cached_files() == []


# ---------------------------------------------------------------- file:// URLs and cache file modes

def test_a_cards_own_file_url_is_read_only_inside_a_named_mirror_directory(make_card, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$secret:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    card = make_card("shadow", [secret.as_uri()])
    with pytest.raises(DownloadError) as err:
        fetch_record(card)
    assert "file:// URLs are read only inside a mirror directory you named" in err.value.message
    assert "\n" not in err.value.one_line() and cached_files() == []
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "shadow").symlink_to(secret)  # a link inside the mirror still points outside it
    with pytest.raises(DownloadError, match="read only inside a mirror directory"):
        fetch_record(card, mirrors=[str(mirror)])
    assert cached_files() == []
    inside = mirror / "sub" / "model.onnx"
    inside.parent.mkdir()
    inside.write_bytes(DATA)
    record = fetch_record(make_card("model.onnx", [inside.as_uri()], sha256=SHA), mirrors=[f"file://{mirror}"])
    assert record["verified_by"] == "sha256" and Path(record["path"]).read_bytes() == DATA


def test_cached_files_are_never_more_permissive_than_0644(served):
    umask = os.umask(0)
    try:
        record = fetch_record(served)
    finally:
        os.umask(umask)
    assert Path(record["path"]).stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------- lying, looping and dripping servers

DROP = 100_000


@pytest.mark.parametrize("lie", [
    {"content_range": "bytes {start}-{end}/{size}", "length": True},       # the whole file sent as the range
    {"content_range": "bytes {start}-{end}/{size}"},                      # the whole file, no Content-Length
    {"content_range": "bytes {start}-{end}/{size}", "send_from": DROP + 10, "length": True},  # a short range
    {"content_range": "bytes {start}-299999/999999", "send_from": DROP, "length": True},  # another total
    {"content_range": "bytes */{size}", "send_from": DROP, "length": True},  # not a range at all
])
def test_a_lying_content_range_on_resume_never_pins_the_assembled_file(server, make_card, lie):
    server.files["m.onnx"] = DATA
    card = make_card("m.onnx", [f"{server.url}/m.onnx"])  # no sha256, no size: trusted on first use
    server.fail("m.onnx", "drop", at=DROP)
    server.fail("m.onnx", "badrange", **lie)
    with pytest.warns(UserWarning, match="trusting it on first use"):
        record = fetch_record(card)
    assert record["sha256"] == SHA and sha256_of(record["path"]) == SHA
    assert pins.read_pins()["test/model/m.onnx"]["sha256"] == SHA
    assert [e["status"] for e in server.log] == [200, 206, 200]  # the lie cost the partial file: started over


def test_a_redirect_loop_fails_that_url_and_the_next_is_tried(server, make_card):
    server.files["m.onnx"] = DATA
    for _ in range(30):
        server.fail("loop.onnx", "status", code=302, headers={"Location": "/loop.onnx"})
    card = make_card("m.onnx", [f"{server.url}/loop.onnx", f"{server.url}/m.onnx"], sha256=SHA)
    assert fetch_record(card)["source_url"] == f"{server.url}/m.onnx"
    alone = make_card("m.onnx", [f"{server.url}/loop.onnx"], card_id="test/alone", sha256=SHA)
    zoo.cache_rm([SHA])
    with pytest.raises(DownloadError, match="more than 10 redirects") as err:
        fetch_record(alone)
    assert "\n" not in err.value.one_line()


@pytest.mark.parametrize("location", ["file://{secret}", "ftp://127.0.0.1/m.onnx", "http://[::1"])
def test_a_redirect_to_another_scheme_is_never_followed(server, make_card, tmp_path, location):
    secret = tmp_path / "secret"
    secret.write_bytes(DATA)  # the very bytes the card wants: following the redirect would "verify"
    server.files["m.onnx"] = DATA
    server.fail("evil.onnx", "status", code=302, headers={"Location": location.format(secret=secret)})
    server.fail("evil2.onnx", "status", code=302, headers={"Location": location.format(secret=secret)})
    card = make_card("m.onnx", [f"{server.url}/evil.onnx", f"{server.url}/m.onnx"], sha256=SHA)
    events = []
    assert fetch_record(card, progress=events.append)["source_url"] == f"{server.url}/m.onnx"
    assert [e["url"] for e in events if e["event"] == "failed"] == [f"{server.url}/evil.onnx"]
    alone = make_card("m.onnx", [f"{server.url}/evil2.onnx"], card_id="test/alone", sha256=SHA)
    zoo.cache_rm([SHA])
    with pytest.raises(DownloadError, match="cannot follow it"):
        fetch_record(alone)
    assert cached_files() == []


def test_a_drip_below_the_minimum_rate_gives_up_on_that_url(server, make_card, monkeypatch):
    monkeypatch.setenv("ZOO_MIN_RATE", "50000")
    monkeypatch.setenv("ZOO_RATE_WINDOW", "0.5")
    server.files["m.onnx"] = DATA
    server.files["drip.onnx"] = DATA
    server.rate["drip.onnx"] = 5000  # 60 s for the whole file; each step well inside the read timeout
    card = make_card("m.onnx", [f"{server.url}/drip.onnx", f"{server.url}/m.onnx"], sha256=SHA)
    events = []
    assert fetch_record(card, progress=events.append)["source_url"] == f"{server.url}/m.onnx"
    failed = [e["reason"] for e in events if e["event"] == "failed"]
    assert len(failed) == 1 and "below ZOO_MIN_RATE=50000" in failed[0]
    assert server.sent("drip.onnx") < 20_000


def test_an_unsized_unhashed_download_is_capped(server, make_card, monkeypatch):
    monkeypatch.setenv("ZOO_MAX_TOFU_BYTES", "100000")
    server.files["m.onnx"] = DATA
    card = make_card("m.onnx", [f"{server.url}/m.onnx"])
    with pytest.raises(IntegrityError, match="larger than ZOO_MAX_TOFU_BYTES=100000 bytes") as err:
        fetch_record(card)
    assert "ZOO_MAX_TOFU_BYTES" in err.value.hint
    assert cached_files() == [] and not settings.pins_file().exists()
