"""A model held open on a target board: one runner process (board_runner.py) over one SSH connection
(`RunnerSession`), and a Runtime over it (`BoardRuntime`) that a card's Model wraps like any host runtime. So an
eval on a board decodes and encodes on the host exactly as a host eval does (zoo.measure.accuracy), and only the
model-ready tensors cross the connection (compressed .npy), and the raw outputs come back.

A connection that drops or goes silent (the board rebooted, the network went, the runner was killed) is opened
again and the batch in flight sent again, up to RECONNECTS times in a row: a batch counts once, when its answer
arrives.
"""
from __future__ import annotations

import os
import select
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from zoo.errors import TargetCannotRunError, TargetError
from zoo.measure.runtimes.base import Runtime
from zoo.measure.targets import board_runner as wire  # the frame format, shared with the board

RECONNECTS = 3            # a request is sent again on a new connection at most this many times in a row
HELLO_TIMEOUT_S = 300.0   # a slow board loading a large model
ANSWER_TIMEOUT_S = 120.0  # beyond a request's own seconds: a runner this silent is given up


class RunnerLost(TargetError):
    """The runner's connection ended or went silent: open another."""


class _Stream:
    """The runner's stdout read with a deadline: a board that stops answering is noticed (select on the pipe)."""

    def __init__(self, fd: int):
        self.fd, self.deadline = fd, 0.0

    def read(self, size: int) -> bytes:
        left = self.deadline - time.monotonic()
        if left <= 0 or not select.select([self.fd], [], [], left)[0]:
            raise TimeoutError("no answer in time")
        return os.read(self.fd, size)


class RunnerSession:
    """One runner process on the board holding one model; `hello` is what it said on start."""

    def __init__(self, target: dict, model: Path, sha256: str, *, runtime: str, threads: int | None,
                 provider: str | None):
        from zoo.measure import targets

        self.target = target
        ssh = targets.transport(target)
        remote_model = targets.upload_once(ssh, Path(model), sha256)
        command = targets.runner_command(target, targets.upload_runner(ssh), remote_model, "--runtime", runtime,
                                         "--threads", str(threads or 0), "--provider", provider or "cpu")
        self._stderr = tempfile.TemporaryFile()
        self.proc = ssh.open(command, self._stderr)
        self._stream = _Stream(self.proc.stdout.fileno())
        try:
            self.hello = self._read(HELLO_TIMEOUT_S)
        except RunnerLost as lost:
            self.kill()
            raise self._failed_start(ssh, lost) from None
        if "error" in self.hello:
            self.kill()
            raise self._refused(runtime, self.hello)

    def request(self, header: dict, payload: bytes = b"", seconds: float = 0.0) -> tuple[dict, bytes]:
        """Send one request and wait for its answer; RunnerLost when the connection ends or goes silent,
        TargetError when the runner reports the request failed."""
        try:
            wire.write_frame(self.proc.stdin, header, payload)
        except (BrokenPipeError, ConnectionResetError, OSError, ValueError) as error:
            raise RunnerLost(f"{self.target['name']}: the connection to the runner broke ({error})") from None
        answer, data = self._read(ANSWER_TIMEOUT_S + seconds, with_payload=True)
        if "error" in answer:
            raise TargetError(f"{self.target['name']}: the runner could not {header['op']}: {answer['detail']}",
                              "The model or its input does not run on the board's runtime")
        return answer, data

    def close(self) -> dict | None:
        """Ask the runner to exit; its last answer (peak memory, conditions), or None when it is gone."""
        try:
            answer, _ = self.request({"op": "close"})
        except TargetError:
            answer = None
        self.kill()
        return answer

    def kill(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # the ssh client did not exit on its own
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()

    def _read(self, timeout: float, with_payload: bool = False):
        self._stream.deadline = time.monotonic() + timeout
        try:
            header, payload = wire.read_frame(self._stream)
        except (EOFError, TimeoutError, OSError, ValueError) as error:
            said = self._last_words()
            raise RunnerLost(f"{self.target['name']}: the runner's connection ended ({error}"
                             f"{'; ' + said if said else ''})") from None
        return (header, payload) if with_payload else header

    def _last_words(self) -> str:
        """The last line ssh or the runner wrote to stderr."""
        try:
            self._stderr.seek(0)
            lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    def _failed_start(self, ssh, lost: RunnerLost) -> TargetError:
        words, code = self._last_words(), self.proc.returncode
        if code == 255:
            return ssh.ssh_error(words)
        if code == 127 or "not found" in words:
            return TargetError(f"{self.target['name']}: {self.target['python']} is not on the board",
                               "Install Python 3.9+ there, or give the target its interpreter with --python")
        return TargetError(f"{self.target['name']}: the runner stopped before it was ready "
                           f"(exit {code}: {words or 'no output'})", "Run `zoo target check NAME`")

    def _refused(self, runtime: str, hello: dict) -> TargetError:
        name = self.target["name"]
        if hello["error"] == "missing-runtime":
            package = {"litert": "ai-edge-litert (or tflite-runtime)"}.get(runtime, runtime)
            return TargetCannotRunError(f"{name}: the board cannot import {runtime} ({hello['detail']})",
                                        f"Install {package} and numpy on the board, or pick another runtime")
        return TargetCannotRunError(f"{name}: the board's {runtime} cannot load the model ({hello['detail']})",
                                    "This model does not run on the board's runtime")


class BoardRuntime(Runtime):
    """A model file run on a target board by its runner, behind the host runtimes' interface (raw tensors in,
    raw outputs out). Several threads may call run(): each packs its batch on its own, then the connection
    carries one request at a time."""

    thread_safe = True

    def __init__(self, target: dict, model: Path, sha256: str, *, runtime: str = "onnxruntime",
                 threads: int | None = None, provider: str | None = None):
        self.target, self.model, self.sha256 = target, Path(model), sha256
        self.runtime, self.threads, self.requested_provider = runtime, threads, provider
        self.reconnects, self.sent_bytes, self.tensor_bytes = 0, 0, 0
        self.peak_rss_bytes: int | None = None
        self.cpu_s = 0.0      # CPU seconds of the runners this runtime closed or lost, plus the current one's
        self._cpu_open = 0.0  # the current runner's, as it last said
        self._lock = threading.Lock()
        self._session: RunnerSession | None = self._open()
        hello = self.hello = self._session.hello
        self.name, self.version, self.provider = hello["runtime"], hello["version"], hello["provider"]
        self.input_shape = tuple(hello["input"]["shape"])
        self.input_dtype = hello["input"]["dtype"]
        self.input_quant = tuple(hello["input"]["quant"]) if hello["input"]["quant"] else None
        self.output_quant = tuple(hello["output"]["quant"]) if hello["output"]["quant"] else None
        self.max_batch = self.input_shape[0] if self.input_shape else None
        self.machine = hello["machine"]
        self.rss_before_load_bytes = hello.get("rss_before_load_bytes")

    def _open(self) -> RunnerSession:
        session = RunnerSession(self.target, self.model, self.sha256, runtime=self.runtime, threads=self.threads,
                                provider=self.requested_provider)
        self._cpu_open = 0.0  # a new process: its CPU time starts at zero
        self._note(session.hello)
        return session

    def _reopen(self) -> RunnerSession:
        """A new runner after a lost one: a board that cannot be reached yet (rebooting) is lost again, so the
        caller tries again; one that now runs another runtime is an error."""
        try:
            session = self._open()
        except TargetCannotRunError:
            raise
        except TargetError as error:
            raise RunnerLost(error.message) from None
        found = (session.hello["runtime"], session.hello["version"])
        if found != (self.name, self.version):
            session.kill()
            raise TargetError(f"{self.target['name']}: the board's runtime changed while zoo was connected "
                              f"({self.name} {self.version} -> {' '.join(found)})", "Run the command again")
        return session

    def _note(self, answer: dict) -> None:
        peak = answer.get("peak_rss_bytes")
        if peak is not None:
            self.peak_rss_bytes = max(peak, self.peak_rss_bytes or 0)
        if answer.get("cpu_s") is not None:
            self.cpu_s += answer["cpu_s"] - self._cpu_open
            self._cpu_open = answer["cpu_s"]

    def request(self, header: dict, payload: bytes = b"", *, seconds: float = 0.0,
                reconnect: bool = True) -> tuple[dict, bytes]:
        """One request, sent again on a new connection when the old one is lost (reconnect=False: the loss is
        the caller's error)."""
        with self._lock:
            for attempt in range(RECONNECTS + 1):
                try:
                    if self._session is None:
                        self._session = self._reopen()
                    answer, data = self._session.request(header, payload, seconds)
                    self._note(answer)
                    return answer, data
                except RunnerLost as lost:
                    if self._session is not None:
                        self._session.kill()
                        self._session = None
                    if not reconnect or attempt == RECONNECTS:
                        raise TargetError(f"{lost.message}; tried {attempt + 1} time(s)",
                                          "Check the board's network and power, then run the command again "
                                          "(an eval goes on from its last finished batch)") from None
                    self.reconnects += 1
                    time.sleep(min(0.5 * 2 ** attempt, 5.0))
        raise AssertionError("each attempt returns or raises")

    def run(self, batch):
        import numpy as np

        meta, payload = wire.pack(np.asarray(batch))
        answer, data = self.request({"op": "run", **meta}, payload)
        self.sent_bytes += len(payload)
        self.tensor_bytes += batch.nbytes
        return wire.unpack(answer, data)

    def time(self, *, batch: int, warmup: int, iters: int, seconds: float) -> dict:
        """Latencies (ms) of `iters` calls and `seconds` at least on a fixed-seed input, after `warmup` calls;
        the process's very first call apart (first_inference_ms). A lost connection fails the round."""
        answer, _ = self.request({"op": "time", "batch": batch, "warmup": warmup, "iters": iters,
                                  "seconds": seconds}, seconds=seconds, reconnect=False)
        return answer

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "provider": self.provider, "threads": self.threads}

    def close(self) -> dict | None:
        """Stop the runner; its last answer (conditions, peak memory) or None."""
        with self._lock:
            session, self._session = self._session, None
        if session is None:
            return None
        answer = session.close()
        if answer:
            self._note(answer)
        return answer
