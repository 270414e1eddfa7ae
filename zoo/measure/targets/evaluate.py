"""The accuracy pass on a target board: the same pass as on the host (zoo.measure.accuracy.predict: each image
decoded and preprocessed once for every card of one preprocessing, then normalised and encoded by each card's
Model), with each card's model run by the board's runner (session.BoardRuntime) instead of a host runtime. Only
model-ready tensors go to the board; its raw outputs come back, and each image's top-5 is taken from them on the
host exactly as a host eval takes it.

Resumable: each finished batch's predictions are appended to a journal under ZOO_HOME/board-evals/ (one per card,
artifact, model file, dataset fingerprint, target and settings). An eval that stops — a connection lost beyond
the reconnects, Ctrl-C, a killed process — goes on from there when run again, and an image counts once however
often it was sent (the journal holds one prediction per image). A journal written on another runtime or version
of the board is started over. The engine removes it once the run is recorded (Journal.remove).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time

from zoo import settings
from zoo.errors import TargetError, ZooError
from zoo.measure import accuracy
from zoo.measure.preprocess import Preprocessor
from zoo.measure.runtimes import Model

JOURNAL_VERSION = 1
LANES = 2  # two threads share a card's runner: one packs its batch while the other's is on the board


class Journal:
    """The predictions of one card's board eval so far: image index (in dataset order) -> top-5 class indices,
    or None for an image that could not be read."""

    def __init__(self, key: dict):
        self.key = key
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        self.path = settings.board_evals_dir() / f"{digest}.jsonl"
        self.done: dict[int, list[int] | None] = {}
        self._file = None
        self._lock = threading.Lock()
        self._held = None

    def open(self, runtime: dict, *, fresh: bool) -> int:
        """Take the journal for this process and load what an earlier run finished on the same runtime (nothing
        when `fresh`); returns how many images that was."""
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._held = FileLock(str(self.path.with_suffix(".lock")))
        try:
            self._held.acquire(timeout=0)
        except Timeout:
            raise TargetError(f"another zoo process is evaluating {self.key['card']} on {self.key['target']} "
                              "with these images", "Wait for it to finish, then run the command again") from None
        header = {"version": JOURNAL_VERSION, "key": self.key, "runtime": runtime}
        good = self._load(header) if not fresh else 0
        if good == 0:
            self.done.clear()
            self.path.write_text(json.dumps(header, sort_keys=True) + "\n")
        else:
            os.truncate(self.path, good)  # a line cut short by a kill is dropped, not appended to
        self._file = open(self.path, "a", encoding="utf-8")
        return len(self.done)

    def _load(self, header: dict) -> int:
        """Read the journal when it was written for `header`; returns the byte length of its whole lines (0:
        start over)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return 0
        good = 0
        for number, line in enumerate(data.splitlines(keepends=True)):
            if not line.endswith(b"\n"):
                break
            try:
                entry = json.loads(line)
            except ValueError:
                break
            if number == 0:
                if entry != json.loads(json.dumps(header, sort_keys=True)):
                    return 0
            else:
                self.done.update(zip(entry["images"], entry["top5"]))
                self.done.update((i, None) for i in entry["unreadable"])
            good += len(line)
        return good

    def add(self, images: list[int], top5: list, unreadable: list[int]) -> None:
        """Record one finished batch (flushed and synced: it survives the process)."""
        line = json.dumps({"images": images, "top5": top5, "unreadable": unreadable}) + "\n"
        with self._lock:
            self.done.update(zip(images, top5))
            self.done.update((i, None) for i in unreadable)
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._held is not None:
            self._held.release()
            self._held = None

    def remove(self) -> None:
        """The run is recorded: its journal is no longer needed."""
        self.release()
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".lock").unlink(missing_ok=True)


def evaluate_on_board(members: list[dict], dataset, target: dict, *, runtime: str = "onnxruntime",
                      batch: int | None = None, workers: int | None = None, threads: int | None = None,
                      provider: str | None = None, fresh: bool = False, progress=None, note=None) -> tuple[dict, list]:
    """Every member — {card, path (the model file to run), sha256 (its own), key (what else its journal is keyed
    by: artifact sha256, settings)} — scored on `dataset` on the board, sharing each decoded image (members share
    accuracy.pixels_key). `threads`: the runtime's threads on the board (default: its own).

    Returns, like accuracy.evaluate_group, (the pass: {labels, unreadable, wall_s, batch, workers, processed},
    one outcome per member: {runtime, top5 (N, 5) in dataset order, lanes, board: {machine, peak_rss_bytes,
    model_peak_bytes, reconnects, resumed_images, sent_bytes, tensor_bytes}, journal} or {error}). A member that
    cannot open or fails mid-pass keeps its error (and its journal: it goes on next time); the others go on."""
    from zoo.measure.machine import check_threads
    from zoo.measure.targets.session import BoardRuntime

    check_threads(threads, "--threads", on_target=True)
    items = dataset.items
    index = {name: i for i, (name, _) in enumerate(items)}
    fingerprint = dataset.fingerprint()
    outcomes: list = [None] * len(members)
    opened = []  # (member index, board runtime, job, journal, images done before)
    started = time.perf_counter()
    try:
        for i, member in enumerate(members):
            board = journal = None
            try:
                board = BoardRuntime(target, member["path"], member["sha256"], runtime=runtime, threads=threads,
                                     provider=provider)
                model = Model.from_card(board, member["card"])
                journal = Journal({"card": member["card"]["id"], "model_sha256": member["sha256"],
                                   "dataset": fingerprint, "target": target["name"], "ssh": target["ssh"],
                                   **member["key"]})
                resumed = journal.open({**board.describe(), "board": board.machine}, fresh=fresh)
            except ZooError as error:
                outcomes[i] = {"error": error}
                if board is not None:
                    board.close()
                if journal is not None:
                    journal.release()
                continue
            if resumed and note:
                note(f"{member['card']['id']}: going on from {resumed} of {len(items)} images evaluated on "
                     f"{target['name']} before")
            job = accuracy.Job([model] * LANES, Preprocessor(member["card"]["preprocess"],
                                                              member["card"]["resolution"]), member["card"]["id"])
            opened.append((i, board, job, journal, resumed))
        if not opened:
            return {"labels": [], "unreadable": [], "wall_s": 0.0, "batch": batch, "workers": workers,
                    "processed": 0}, outcomes
        pending = [item for k, item in enumerate(items) if any(k not in o[3].done for o in opened)]
        jobs = [o[2] for o in opened]
        skipped = (len(items) - len(pending)) * len(jobs)

        def on_batch(start, read, unreadable):
            for _, _, job, journal, _ in opened:
                if job.error is None and start in job.top5:
                    journal.add([index[n] for n in read], job.top5[start].tolist(), [index[n] for n in unreadable])

        def advance(done, total):
            if progress:
                progress(skipped + done, len(items) * len(jobs))

        done = {"batch": batch or accuracy.CPU_BATCH, "workers": workers}
        if pending:
            try:
                done = accuracy.predict(jobs, dataset, batch=batch or accuracy.CPU_BATCH, workers=workers,
                                        items=pending, progress=advance, on_batch=on_batch)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:  # every card of the pass failed: each keeps its own error
                for i, _, job, _, _ in opened:
                    outcomes[i] = {"error": job.error or error}
                return {"labels": [], "unreadable": [], "wall_s": 0.0, "batch": batch, "workers": workers,
                        "processed": 0}, outcomes
        else:
            advance(0, 0)
        for i, board, job, journal, resumed in opened:
            if job.error is not None:
                outcomes[i] = {"error": job.error}
                continue
            missing = sum(k not in journal.done for k in range(len(items)))
            if missing:  # not expected: every pending image was in a batch every open job ran
                outcomes[i] = {"error": TargetError(f"{missing} image(s) have no prediction from the board",
                                                    "Run the command again: it goes on from the last batch")}
                continue
            top5 = [journal.done[k] for k in range(len(items)) if journal.done[k] is not None]
            closing = board.close() or {}
            peak, before = board.peak_rss_bytes, board.rss_before_load_bytes
            outcomes[i] = {"runtime": board.describe(), "top5": top5, "lanes": 1, "journal": journal,
                           "board": {"machine": board.machine, "peak_rss_bytes": peak,
                                     "model_peak_bytes": peak - before if peak and before else None,
                                     "reconnects": board.reconnects, "resumed_images": resumed,
                                     "sent_bytes": board.sent_bytes, "tensor_bytes": board.tensor_bytes,
                                     "conditions": closing.get("conditions")}}
        unreadable = {k for _, _, _, journal, _ in opened for k, row in journal.done.items() if row is None}
        return {"labels": [label for k, (_, label) in enumerate(items) if k not in unreadable],
                "unreadable": [items[k][0] for k in sorted(unreadable)], "wall_s": time.perf_counter() - started,
                "batch": done["batch"], "workers": done["workers"], "processed": len(pending)}, outcomes
    finally:
        for i, board, _, journal, _ in opened:
            board.close()
            journal.release()
