"""The run record: one typed shape for eval and bench runs, from measurement to store to ranking."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone

from zoo._version import __version__

KINDS = ("eval", "bench")
EVAL_METRICS = ("top1", "top5", "top1_ci95", "top5_ci95", "n", "unreadable", "unreadable_files", "images_per_s",
                "wall_s", "workers", "lanes", "per_class", "engine", "calibration_excluded", "accuracy_vs_float",
                "per_image", "macs", "params", "size_bytes")
OPTIONAL_EVAL_METRICS = ("engine", "calibration_excluded", "accuracy_vs_float", "per_image", "macs", "params",
                         "size_bytes")
BENCH_METRICS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "fps", "iterations",
                 "peak_rss_bytes", "synthetic_weights", "warmup", "macs", "params", "size_bytes",
                 "load_ms", "first_inference_ms", "model_peak_bytes", "p90_conservative_ms", "p99_conservative_ms",
                 "samples_ms", "cpus", "rounds", "round_p50_ms", "p50_ci95", "p50_ci_coverage", "conditions",
                 "same_file_as", "speed_vs_float", "profile")
JSON_FIELDS = ("preprocess", "dataset", "machine", "metrics", "settings")


def canonical_json(value) -> str:
    """A value's JSON text with sorted keys: equal settings compare equal as text (in SQL too)."""
    return json.dumps(value, sort_keys=True)


@dataclass
class Run:
    """One stored measurement and everything that produced it. `metrics` holds the figures (EVAL_METRICS or
    BENCH_METRICS); the properties below name the ones rankings read.

    `device` is where the model ran: an accelerator's own name for a run on one (`machine` keeps the host), the
    host CPU, or a target board's name; `precision` is that of the file that ran (None: recorded before zoo
    stored it)."""

    kind: str
    card_id: str
    artifact_file: str | None
    artifact_sha256: str
    runtime: str
    runtime_version: str
    provider: str | None
    threads: int | None
    batch: int | None
    device: str
    machine_fingerprint: str
    machine: dict
    metrics: dict
    preprocess: dict | None = None
    dataset_fingerprint: str | None = None
    dataset: dict | None = None
    settings: dict | None = None  # what the engine matches to reuse a run (zoo.engine.eval, zoo.engine.bench)
    precision: str | None = None
    zoo_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    id: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    # ------------------------------------------------------------ from a measurement

    @classmethod
    def from_eval(cls, result: dict) -> Run:
        """The record of an eval result (zoo.measure.accuracy.eval_result)."""
        machine = result["machine"]
        return cls(kind="eval", card_id=result["card_id"], artifact_file=result["artifact"]["file"],
                   artifact_sha256=result["artifact"]["sha256"], runtime=result["runtime"]["name"],
                   runtime_version=result["runtime"]["version"], provider=result["runtime"]["provider"],
                   threads=result["runtime"]["threads"], batch=result["batch"],
                   device=result.get("device") or machine["device"], precision=result.get("precision"),
                   machine_fingerprint=machine["fingerprint"], machine=machine,
                   metrics={k: result.get(k) if k in OPTIONAL_EVAL_METRICS else result[k] for k in EVAL_METRICS},
                   preprocess=result["preprocess"],
                   dataset_fingerprint=result["dataset"]["fingerprint"], dataset=result["dataset"],
                   settings=result.get("settings"))

    @classmethod
    def from_bench(cls, result: dict) -> Run:
        """The record of a bench result (zoo.measure.latency.bench_models)."""
        machine, runtime = result["environment"], result["runtime"]
        return cls(kind="bench", card_id=result["card_id"], artifact_file=result["artifact"]["file"],
                   artifact_sha256=result["artifact"]["sha256"], runtime=runtime["name"],
                   runtime_version=runtime["version"] or "unknown", provider=runtime["provider"],
                   threads=runtime["threads"], batch=result["batch"], device=result["device"],
                   machine_fingerprint=machine["fingerprint"], machine=machine,
                   metrics={k: result.get(k) for k in BENCH_METRICS}, settings=result.get("settings"),
                   precision=result.get("precision"))

    # ------------------------------------------------------------ store rows

    def to_row(self) -> dict:
        """Column -> SQLite value (JSON text for the dict columns); `id` left out."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "id"}
        return {k: canonical_json(v) if k in JSON_FIELDS and v is not None else v for k, v in row.items()}

    @classmethod
    def from_row(cls, row) -> Run:
        values = dict(row)
        for key in JSON_FIELDS:
            values[key] = json.loads(values[key]) if values.get(key) is not None else None
        return cls(**{f.name: values.get(f.name) for f in fields(cls)})

    def to_dict(self) -> dict:
        """The record as `zoo runs --json` prints it."""
        return asdict(self)

    # ------------------------------------------------------------ the figures

    @property
    def synthetic_weights(self) -> bool:
        return bool(self.metrics.get("synthetic_weights"))

    @property
    def latency_ms(self) -> float | None:
        """Per-batch latency: the median where the tool reports percentiles, else the mean (hrt_model_exec)."""
        return self.metrics.get("p50_ms") or self.metrics.get("mean_ms")

    @property
    def fps(self) -> float | None:
        return self.metrics.get("fps")

    @property
    def top1(self) -> float | None:
        return self.metrics.get("top1")

    @property
    def top5(self) -> float | None:
        return self.metrics.get("top5")

    @property
    def n_images(self) -> int | None:
        return self.metrics.get("n")

    @property
    def images_per_s(self) -> float | None:
        return self.metrics.get("images_per_s")

    def counted(self, key: str):
        """macs, params or size_bytes counted on the file that ran by a bench or an eval run (evals
        stored before they counted have none)."""
        return self.metrics.get(key)
