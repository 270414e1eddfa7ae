"""Shared fixtures: an isolated ZOO_HOME for every test, a fault-injecting HTTP server on 127.0.0.1, the shared
data (../shared/data beside the repository: coral files, ImageNet sample), card dicts."""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import defaultdict, deque
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# The repository's parent holds shared/ (copied or linked); not resolved, so a symlinked shared/ keeps its path.
SHARED_DATA = Path(__file__).absolute().parents[2] / "shared" / "data"
CORAL_SHA256 = {
    "mobilenet_v2_1.0_224_quant.tflite": "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
    "tf2_mobilenet_v2_1.0_224_ptq.tflite": "5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c",
}
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, so a stray request fails at once


# ---------------------------------------------------------------- the fault-injecting server

class FaultServer:
    """A real HTTP server on 127.0.0.1 that serves files by name and misbehaves on request.

    server.files[name] = bytes or Path. server.fail(name, kind, **options) queues one fault for the
    next request of that name (call it again for more). Kinds:
      drop      announce the full length, close after `at` bytes (a connection lost mid-stream)
      truncate  announce and send only `at` bytes (a body that is short but looks complete)
      corrupt   flip the byte at `at`
      status    answer `code` with `headers` (404, 500, 429 + Retry-After, ...)
      slow      wait `delay` seconds before answering
      norange   ignore the Range header and send the whole file (also an option of any fault: norange=True)
      badrange  answer a Range request 206 with `content_range` (formatted with start, end, size) and send the
                file from byte `send_from` (default 0: all of it); Content-Length only when `length=True`
    server.rate[name] = bytes/s throttles a file. server.log records (method, path, headers, status, bytes sent).
    Range, If-Range, ETag, Last-Modified and If-None-Match behave like a real static file server.
    """

    def __init__(self):
        self.files: dict[str, bytes | Path] = {}
        self.faults: dict[str, deque] = defaultdict(deque)
        self.rate: dict[str, float] = {}
        self.log: list[dict] = []
        self.last_modified = formatdate(time.time() - 3600, usegmt=True)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail(self, name: str, kind: str, **options) -> None:
        self.faults[name].append({"kind": kind, **options})

    def sent(self, name: str) -> int:
        """Body bytes served for a name, over all requests."""
        return sum(entry["sent"] for entry in self.log if entry["path"] == "/" + name)

    def etag(self, name: str) -> str:
        data = self.files[name]
        digest = hashlib.sha256(data if isinstance(data, bytes) else str(data).encode()).hexdigest()
        return f'"{digest[:16]}"'

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):  # keep pytest output clean; server.log has the facts
                pass

            def do_CONNECT(self):  # a client using us as its HTTPS proxy
                server.log.append({"method": "CONNECT", "path": self.path, "headers": dict(self.headers),
                                   "status": 403, "sent": 0})
                self.send_error(403)

            def do_GET(self):
                entry = {"method": "GET", "path": self.path, "headers": dict(self.headers), "status": 200, "sent": 0}
                server.log.append(entry)
                name = self.path.lstrip("/").split("?")[0]
                fault = server.faults[name].popleft() if server.faults[name] else {"kind": None}
                if fault["kind"] == "slow":
                    time.sleep(fault["delay"])
                if fault["kind"] == "status":
                    entry["status"] = fault["code"]
                    self.send_response(fault["code"])
                    for key, value in fault.get("headers", {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if name not in server.files:
                    entry["status"] = 404
                    self.send_error(404)
                    return
                self._serve(name, fault, entry)

            def _serve(self, name, fault, entry):
                source = server.files[name]
                size = source.stat().st_size if isinstance(source, Path) else len(source)
                etag = server.etag(name)
                if self.headers.get("If-None-Match") == etag:
                    entry["status"] = 304
                    self.send_response(304)
                    self.end_headers()
                    return
                start, status = self._range(size, etag, fault)
                if start is not None and start >= size:
                    entry["status"] = 416
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = start or 0
                if fault["kind"] == "badrange":
                    self._lie(name, fault, start, size, etag, entry)
                    return
                count = size - start
                sent_count = min(count, fault["at"]) if fault["kind"] in ("drop", "truncate") else count
                entry["status"] = status
                self.send_response(status)
                self.send_header("Content-Length", str(sent_count if fault["kind"] == "truncate" else count))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", server.last_modified)
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                self.end_headers()
                entry["sent"] = self._body(source, start, sent_count, fault, server.rate.get(name))

            def _lie(self, name, fault, start, size, etag, entry):
                body = server.files[name][fault.get("send_from", 0):]
                entry["status"] = 206
                self.send_response(206)
                self.send_header("Content-Range", fault["content_range"].format(start=start, end=size - 1, size=size))
                if fault.get("length"):
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)
                entry["sent"] = len(body)

            def _range(self, size, etag, fault):
                value = self.headers.get("Range", "")
                if not value.startswith("bytes=") or fault["kind"] == "norange" or fault.get("norange"):
                    return None, 200
                if_range = self.headers.get("If-Range")
                if if_range and if_range not in (etag, server.last_modified):
                    return None, 200  # the client's copy is of another version: send it all
                return int(value[6:].split("-")[0]), 206

            def _body(self, source, start, count, fault, rate) -> int:
                if isinstance(source, Path):
                    if fault["kind"] != "corrupt" and not rate:
                        with open(source, "rb") as f:  # sendfile: fast enough for the benchmark
                            return self.connection.sendfile(f, start, count)
                    with open(source, "rb") as f:
                        f.seek(start)
                        data = f.read(count)
                else:
                    data = source[start:start + count]
                if fault["kind"] == "corrupt":
                    at = fault.get("at", 0)
                    data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
                sent, step = 0, int(min(64 * 1024, max(64, (rate or 1e9) / 20)))  # a slow rate: small steps
                try:
                    for i in range(0, len(data), step):
                        self.wfile.write(data[i:i + step])
                        sent += len(data[i:i + step])
                        if rate:
                            time.sleep(step / rate)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return sent

        return Handler


# ---------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def zoo_home(tmp_path, monkeypatch) -> Path:
    """Every test: a fresh ZOO_HOME, none of the user's zoo settings, fast retry settings, and no way out of
    the machine (every proxy is a dead port)."""
    home = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    for name in ("ZOO_OFFLINE", "ZOO_MIRROR", "ZOO_REGISTRY", "ZOO_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZOO_RETRIES", "3")
    monkeypatch.setenv("ZOO_BACKOFF", "0.01")
    monkeypatch.setenv("ZOO_MAX_WAIT", "2")
    monkeypatch.setenv("ZOO_READ_TIMEOUT", "2")
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, DEAD_PROXY)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (read-only). A failure, not a skip, when it is missing: CI always has it."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(f"{SHARED_DATA} is missing: the tests need ../shared/data beside the repository")
    return SHARED_DATA


@pytest.fixture
def server():
    """A started FaultServer on 127.0.0.1; stopped after the test."""
    srv = FaultServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def coral_dir(shared_data) -> Path:
    """The two real coral TFLite models (and their labels)."""
    coral = shared_data / "coral"
    if not all((coral / name).is_file() for name in CORAL_SHA256):
        pytest.fail(f"the coral files are not in {coral}: the tests need ../shared/data beside the repository")
    return coral


@pytest.fixture(scope="session")
def coral_sha256() -> dict[str, str]:
    """The coral files' published sha256s (../shared/data/README.md)."""
    return dict(CORAL_SHA256)


@pytest.fixture
def make_card():
    """Build a minimal card dict with one artifact (enough for zoo.fetch's functions)."""

    def make(file: str, urls: list[str], card_id: str = "test/model", **artifact) -> dict:
        art = {"file": file, "format": artifact.pop("format", "onnx"), "precision": "fp32",
               "runtime": "onnxruntime", "urls": urls, **artifact}
        return {"id": card_id, "source": card_id.split("/")[0], "name": card_id.split("/")[1], "artifacts": [art]}

    return make


# ---------------------------------------------------------------- eval fixtures (runtimes, datasets, evaluate)

@pytest.fixture(scope="session")
def sample_dir(shared_data) -> Path:
    """The 1000 real ImageNet images, one per class (read-only)."""
    sample = shared_data / "imagenet-sample"
    if not (sample / "MANIFEST.tsv").is_file():
        pytest.fail(f"the ImageNet sample is not in {sample}: the tests need ../shared/data beside the repository")
    return sample


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 playing a target board (sshd_server), one per test module."""
    import sshd_server

    server, proc = sshd_server.start(tmp_path_factory.mktemp("sshd"))
    yield server
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def link_sample(sample_dir):
    """link(target, names) -> target: a folder of links to these sample images (a data set of their own)."""

    def link(target: Path, names: list[str]) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.symlink(sample_dir / name, target / name)
        return target

    return link


@pytest.fixture(scope="session")
def sample_manifest(sample_dir) -> dict[str, int]:
    """{file name: class index} from the sample's MANIFEST.tsv (an independent record of the labels)."""
    rows = (sample_dir / "MANIFEST.tsv").read_text().splitlines()[1:]
    return {r.split("\t")[0]: int(r.split("\t")[4]) for r in rows}


@pytest.fixture(scope="session")
def synthetic_onnx(tmp_path_factory):
    """make(**options) -> path of a random-weight MobileNetV2 ONNX file (zoo.artifacts.convert.builder), cached per options."""
    from zoo.artifacts.convert.builder import save_mobilenet_v2

    made: dict = {}

    def make(**options) -> Path:
        key = tuple(sorted(options.items()))
        if key not in made:
            made[key] = save_mobilenet_v2(tmp_path_factory.mktemp("onnx") / "model.onnx", **options)
        return made[key]

    return make
