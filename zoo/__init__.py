"""zoo: a registry of validated MobileNetV2 model cards, and the tools to compare them.

The public Python API, where the stages meet: every CLI command on cards, artifacts, measurements and results is
one call here (the commands that configure registry sources and target boards call zoo.cards.remote,
zoo.cards.signing and zoo.measure.targets directly). A call takes a card reference, resolves it (cards), gets its
local model file (artifacts), measures (measure, through the engine's one path per operation: eval_card,
bench_card and their sweeps) and records (results); each stage only ever imports the stages before it. A result that came from a reference
carries `resolved: {query, id, note}`, the note saying which card an ambiguous reference picked.
Heavy modules are imported inside the functions that need them, so `import zoo` stays cheap.
"""
from __future__ import annotations

from pathlib import Path

from zoo._version import __version__
from zoo.errors import UsageError, ZooError

__all__ = ["ZooError", "__version__", "list_cards", "get", "resolve", "show", "compare", "plot", "report", "lint_cards",
           "build_registry", "card_schema", "fetch", "convert", "evaluate", "preprocess", "runs", "bench", "inspect",
           "eval_sweep", "bench_sweep", "quantize", "quantize_sweep", "quantize_doctor", "board_vs_host",
           "cache_ls", "cache_verify", "cache_rm", "cache_prune"]


def _registry(registries: list[Path] | None = None):
    from zoo.cards.registry import load_registry

    return load_registry(registries)


def resolve(ref: str, *, registries: list[Path] | None = None):
    """(Entry, note) for an id, `NAME@source`, alias or upstream name; note says why when several matched.

    The alias rule prefers cards this host can run (zoo.measure.choose.runs_here)."""
    from zoo.measure.choose import runs_here

    return _registry(registries).resolve(ref, runs_here)


def _entry(ref: str, registries):
    """(entry, the `resolved` record every result from a reference carries)."""
    entry, note = resolve(ref, registries=registries)
    return entry, {"query": ref, "id": entry.id, "note": note}


def _resolved(ref: str, registries) -> tuple[dict, dict]:
    """(card, the `resolved` record)."""
    entry, how = _entry(ref, registries)
    return entry.card, how


def get(ref: str, *, registries: list[Path] | None = None) -> dict:
    """A copy of one card, resolved like `resolve`."""
    return resolve(ref, registries=registries)[0].card


def show(ref: str, *, registries: list[Path] | None = None) -> dict:
    """One whole card with where it came from: {card, registry, alias, resolved, shadowed} (shadowed: other
    sources' cards with this id that are not used, and why)."""
    from zoo.cards.registry import alias

    entry, note = resolve(ref, registries=registries)
    return {"card": entry.card, "registry": entry.registry, "alias": alias(entry.card),
            "resolved": {"query": ref, "id": entry.id, "note": note}, "shadowed": list(entry.shadowed)}


def list_cards(pattern: str | None = None, *, source: str | None = None, width: float | None = None,
               resolution: int | None = None, fmt: str | None = None, sort: str = "id", brief: bool = False,
               registries: list[Path] | None = None) -> list[dict]:
    """Summaries of the matching cards (the records `zoo list --json` prints); brief: only the keys a `zoo list`
    table shows (zoo.cards.summary.BRIEF_KEYS), read three times faster."""
    from zoo.cards.summary import sort_summaries

    if width is not None and not 0 < width < 100:  # nan compares false with everything: it matched every card
        raise UsageError(f"--width {width} is not a width multiplier", "Give a number such as 0.75 or 1.4")
    if resolution is not None and not 0 < resolution < 100_000:
        raise UsageError(f"--resolution {resolution} is not an input resolution", "Give a number such as 224")
    rows = _registry(registries).summaries(pattern, source=source, width=width, resolution=resolution, fmt=fmt,
                                           brief=brief)
    return sort_summaries(rows, sort)


def lint_cards(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """Validate card files: (valid cards, one problem per line naming file and field)."""
    from zoo.cards.directory import lint

    return lint(paths)


def build_registry(cards_dir: Path, out: Path, *, sign: Path | None = None, version: int | None = None,
                   expires_days: float | None = None) -> dict:
    """Validate cards_dir and write its index (every card plus its sha256) to `out`; with `sign` (a private
    key file), also `out`.sig. Signed first, then both files replaced: a failed signature changes nothing.

    `version` (an integer that must grow with each publication) and `expires_days` go inside the index, so
    the signature covers them; a signed index gets defaults (version: the UTC time in seconds, expiry: 365
    days), an unsigned one has neither unless asked, so the same cards give the same bytes.

    Returns {path, cards, signature, version, expires, warnings} (warnings: e.g. a key file others can read)."""
    from datetime import datetime, timedelta, timezone

    from zoo.cards.directory import build_index
    from zoo.cards.index import index_bytes
    from zoo.errors import UsageError
    from zoo.files import output_file, write_bytes_atomic

    if version is not None and version < 0:
        raise UsageError(f"--version must be a non-negative integer, got {version}")
    if expires_days is not None and not 0 < expires_days <= 36500:
        raise UsageError(f"--expires must be between 1 and 36500 days, got {expires_days}")
    now = datetime.now(timezone.utc)
    if sign is not None:
        version = int(now.timestamp()) if version is None else version
        expires_days = 365 if expires_days is None else expires_days
    expires = now + timedelta(days=expires_days) if expires_days is not None else None
    out = _output(out, "--out", "Give the index file's path, e.g. registry/index.json")
    if sign is not None:
        output_file(out.with_name(out.name + ".sig"), "--out")  # its signature goes beside it
    index = build_index(cards_dir, version=version, expires=expires)
    data = index_bytes(index)
    signature, warnings = None, []
    if sign is not None:
        from zoo.cards.signing import key_warning, sign_bytes

        signature_bytes = sign_bytes(data, Path(sign))
        warnings += [w for w in [key_warning(Path(sign))] if w]
        signature = write_bytes_atomic(out.with_name(out.name + ".sig"), signature_bytes)
    write_bytes_atomic(out, data)
    if sign is None:  # a signature of the previous bytes would only mislead
        out.with_name(out.name + ".sig").unlink(missing_ok=True)
    return {"path": str(out), "cards": len(index["cards"]), "signature": str(signature) if signature else None,
            "version": index.get("version"), "expires": index.get("expires"), "warnings": warnings}


def _output(path, option: str, example: str) -> Path:
    """An output file's path checked before any work (zoo.files.output_file); its folder is made when missing."""
    from zoo.files import output_file

    path = Path(path)
    try:
        if path.is_dir() or not path.name:
            raise UsageError(f"{option} {path} is a directory", example)
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under /proc, a name too long, a file where a folder should be
        from zoo.errors import excerpt

        raise UsageError(f"{option} {excerpt(str(path))}: cannot write it, its folder cannot be made "
                         f"({exc.strerror})", "Give another path") from None
    return output_file(path, option)


def card_schema() -> dict:
    """The card's JSON Schema."""
    from zoo.cards.schema import json_schema

    return json_schema()


# ---------------------------------------------------------------- artifacts

def fetch(refs: list[str] | str, *, all_artifacts: bool = False, jobs: int = 4, mirrors: list[str] | None = None,
          require_hashes: bool = False, force: bool = False, registries: list[Path] | None = None,
          progress=None) -> list[dict]:
    """Download, verify and cache cards' artifacts; one record per file (see zoo.artifacts.fetch.fetch_cards).
    A reference may be a wildcard ('coral/*'), as for list, eval and bench.

    Mirrors: these, then ZOO_MIRROR's. Each record also carries `resolved`."""
    from zoo.artifacts.fetch import fetch_cards
    from zoo.artifacts.http import emit
    from zoo.engine.plan import expand

    refs = [refs] if isinstance(refs, str) else list(refs)
    registry = _registry(registries)
    cards, resolved = [], {}
    for ref in refs:  # the sweeps' rule: a wildcard fetches every card it fits; an id or alias resolves (a note)
        entries, notes = expand(registry, [ref])
        note = notes[0] if notes else None
        if note:
            emit(progress, {"event": "note", "message": note})
        for entry in entries:
            if entry.id not in resolved:
                cards.append(entry.card)
                resolved[entry.id] = {"query": ref, "id": entry.id, "note": note}
    records = fetch_cards(cards, all_artifacts=all_artifacts, jobs=jobs, mirrors=mirrors,
                          require_hashes=require_hashes, force=force, progress=progress)
    return [{**r, "resolved": resolved[r["id"]]} for r in records]


def convert(ref: str, **options) -> dict:
    """A card's weights as ONNX, checked and cached (see zoo.artifacts.convert.convert_card); no torch needed.

    Options: artifact, output, synthetic, dequantize, mirrors, force, registries."""
    from zoo.artifacts.convert import convert_card

    card, how = _resolved(ref, options.pop("registries", None))
    if options.get("output") is not None:  # before minutes of download and conversion, not after
        from zoo.files import output_file

        options["output"] = output_file(options["output"], "-o/--output",
                                        default_name=f"{card['id'].replace('/', '_')}.onnx")
    return {**convert_card(card, **options), "resolved": how}


def _card_users(registries) -> tuple[dict[str, list[str]], dict[str, list[str]], Path | None]:
    """(sha256 -> ids of the cards whose artifacts are those bytes (by the card's sha256 or a pin), path of a
    file zoo made -> ids of the derived cards whose model it is (their file:// URL), the catalog in use)."""
    from zoo.artifacts.fetch import local_path
    from zoo.artifacts.pins import known_sha256, read_pins
    from zoo.cards import derived

    registry = _registry(registries)
    pinned, users, made_for = read_pins(), {}, {}
    for entry in registry.entries():
        for artifact in entry.card.get("artifacts", []):
            sha, _ = known_sha256(entry.id, artifact, pinned)
            if sha:
                users.setdefault(sha, []).append(entry.id)
            for url in artifact.get("urls", []):
                if entry.card.get("derived_from") and url.startswith("file://"):
                    made_for.setdefault(str(local_path(url).resolve()), []).append(entry.id)
        if entry.registry == derived.REGISTRY:
            made_for.setdefault(str(derived.path_of(entry.id).resolve()), []).append(entry.id)
    return users, made_for, registry.path


def cache_ls(*, registries: list[Path] | None = None) -> list[dict]:
    """Every file zoo keeps and can make again, sized: verified downloads (kind `file`), unpacked trees, partial
    downloads, ONNX conversions, int8 models, derived cards, catalogs (see zoo.artifacts.cache.ls)."""
    from zoo.artifacts import cache

    users, made_for, _ = _card_users(registries)
    return cache.ls(users, made_for)


def cache_verify() -> list[dict]:
    """Re-hash every cached file; corrupt ones are removed. Records: sha256, file, path, ok, actual, removed."""
    from zoo.artifacts import cache

    return cache.verify()


def cache_rm(targets: list[str], *, registries: list[Path] | None = None) -> list[dict]:
    """Remove cached files by sha256 (6+ hex digits) or by card reference. Records: sha256, file, path, size."""
    from zoo.artifacts import cache
    from zoo.artifacts.pins import known_sha256, read_pins

    wanted = {}
    for target in targets:
        if cache.is_sha_prefix(target):
            wanted[target] = {target.lower()}
        else:
            card = get(target, registries=registries)
            pinned = read_pins()
            wanted[target] = {s for a in card.get("artifacts", []) if (s := known_sha256(card["id"], a, pinned)[0])}
    return cache.rm(wanted)


def cache_prune(*, registries: list[Path] | None = None) -> list[dict]:
    """Remove what zoo can make again and nothing uses: partial downloads, orphaned unpacked trees, files no card
    uses, ONNX conversions and int8 models no derived card is made of, stale catalogs (zoo.artifacts.cache.prune).
    Records: kind, path, size."""
    from zoo.artifacts import cache

    users, made_for, catalog = _card_users(registries)
    return cache.prune(users, made_for, catalog)


# ---------------------------------------------------------------- measure and record

def evaluate(ref: str, data: Path, *, labels: Path | None = None, limit: int | None = None, batch: int | None = None,
             workers: int | None = None, provider: str | None = None, threads: int | None = None,
             model: Path | None = None, runtime: str | None = None, mirrors: list[str] | None = None,
             target: str | None = None, force: bool = False, store: bool = True,
             registries: list[Path] | None = None, progress=None) -> dict:
    """Top-1/top-5 of one card on the images in `data`, preprocessed as its source does: its first runnable
    artifact, or the local file `model`, or the artifact a named host `runtime` runs (onnxruntime runs a .tflite
    card's QDQ conversion). The same path as `eval_sweep` of one card: a stored run measured the same way is
    reused unless `force`; a quantized card is scored without its calibration images, beside its float parent.
    `target`: a configured board's name: decoded here, run there (see eval_sweep).

    Result keys: those of zoo.measure.accuracy.evaluate_file (a reused run's: rebuilt from the stored record,
    with `reused`), `resolved`, `status` (measured or reused), `run_id` when stored."""
    from zoo.engine.eval import eval_card
    from zoo.engine.plan import float_parents
    from zoo.measure.accuracy import load_data

    entry, how = _entry(ref, registries)
    dataset = load_data(data, labels, limit)  # fail fast on bad data, before any download
    if model is not None and runtime is not None:
        raise UsageError("--runtime picks a card artifact; leave it out with --model (the file's suffix decides)")
    options = _eval_options(batch=batch, workers=workers, provider=provider, threads=threads, runtime=runtime,
                            model=model, mirrors=mirrors, target=target)
    parent = float_parents(_registry(registries), [entry]).get(entry.id)
    record = eval_card(entry.card, dataset, options, parent=parent, force=force, store_runs=store, progress=progress)
    return _single(record, how)


def _eval_options(*, model=None, mirrors=None, target: str | None = None, **options):
    from zoo.engine.eval import EvalOptions
    from zoo.measure import targets

    return EvalOptions(model=Path(model) if model is not None else None, mirrors=tuple(mirrors or ()),
                       target=targets.get(target) if target else None, **options)


def _single(record: dict, how: dict) -> dict:
    """A single-card call's answer: the card's whole result, how the reference resolved, what happened."""
    return {**record["result"], "resolved": how, "status": record["status"],
            **({"note": record["note"]} if record.get("note") else {})}


def preprocess(ref: str, images: list, output: Path, *, png_dir: Path | None = None,
               registries: list[Path] | None = None) -> dict:
    """Write what a card's model is fed for each image to `output` (.npz; see
    zoo.measure.preprocess.write_model_inputs), and each resized crop to `png_dir` as a PNG.

    Result keys: card_id, output, files, normalised {shape, dtype}, encoded {shape, dtype} or None,
    encoded_note, png, preprocess (the protocol's description), input, resolved."""
    from zoo.measure.preprocess import write_model_inputs

    card, how = _resolved(ref, registries)
    output = _output(output, "-o", "Give a file name, e.g. inputs.npz")  # before any image is decoded
    result = write_model_inputs(card, list(images), output, png_dir=png_dir)  # paths as given
    result["resolved"] = how
    return result


def bench(ref: str, *, runtime: str | None = None, provider: str | None = None, threads: int | None = None,
          batch: int = 1, warmup: int | None = None, iters: int | None = None, seconds: float | None = None,
          rounds: int | None = None, synthetic: bool = False, target: str | None = None, cooldown: float = 0.0,
          mirrors: list[str] | None = None, force: bool = False, store: bool = True,
          registries: list[Path] | None = None, progress=None) -> dict:
    """Latency of one card on this host or a target board: the same path as `bench_sweep` of one card (a stored
    run measured the same way is reused unless `force`; a quantized card is timed beside its float parent).

    runtime: which host runtime's artifact to time (onnxruntime, litert); synthetic: the card's architecture
    with random weights; target: a configured board's name; rounds: how many interleaved rounds the timing is
    split into (its p50 interval comes from them); cooldown: seconds idle before each round but the first.
    Result keys: README's `zoo bench --json`, `resolved`, `status` (measured or reused)."""
    from zoo.engine.bench import bench_card
    from zoo.engine.plan import float_parents

    entry, how = _entry(ref, registries)
    options = _bench_options(runtime=runtime, provider=provider, threads=threads, batch=batch, warmup=warmup,
                             iters=iters, seconds=seconds, rounds=rounds, synthetic=synthetic, target=target,
                             cooldown=cooldown, mirrors=mirrors)
    parent = float_parents(_registry(registries), [entry]).get(entry.id)
    return _single(bench_card(entry.card, options, parent=parent, force=force, store_runs=store,
                              progress=progress), how)


def _bench_options(*, target: str | None = None, cpus=None, mirrors=None, warmup=None, rounds=None, **options):
    from zoo.engine.bench import BenchOptions
    from zoo.measure import latency, targets

    return BenchOptions(target=targets.get(target) if target else None, cpus=tuple(cpus) if cpus else None,
                        mirrors=tuple(mirrors or ()), warmup=latency.DEFAULT_WARMUP if warmup is None else warmup,
                        rounds=latency.DEFAULT_ROUNDS if rounds is None else rounds, **options)


def _sweep_entries(patterns: list[str] | str, registries, progress, parents: bool = False):
    """The cards the patterns match; parents=True: (entries, each quantized card's float parent by its id)."""
    from zoo.engine.plan import expand, float_parents

    registry = _registry(registries)
    entries, notes = expand(registry, [patterns] if isinstance(patterns, str) else list(patterns))
    for line in notes:
        progress and progress({"event": "note", "message": line})
    return (entries, float_parents(registry, entries)) if parents else entries


def eval_sweep(patterns: list[str] | str, data: Path, *, labels: Path | None = None, limit: int | None = None,
               batch: int | None = None, workers: int | None = None, provider: str | None = None,
               threads: int | None = None, runtime: str | None = None, model: Path | None = None,
               mirrors: list[str] | None = None, target: str | None = None, force: bool = False,
               store: bool = True, registries: list[Path] | None = None, progress=None,
               ray: str | bool | None = None) -> dict:
    """Evaluate every card the patterns (ids, aliases, wildcards) match on the images in `data`, reusing stored
    runs measured the same way unless `force` (see zoo.engine.sweep for the summary and the progress events).

    target: a configured board's name: the images are decoded and preprocessed here, each card's model runs on
    the board (its ONNX Runtime, or its LiteRT with runtime="litert"), `threads` its threads there; the run is
    stored with the target's name as its device, and an interrupted eval goes on from its last finished batch
    (zoo.measure.targets.evaluate).

    A quantized card (zoo quantize) on the folder that calibrated it is scored without its calibration images
    (`calibration_excluded`), and its float parent is evaluated beside it on the same images
    (`accuracy_vs_float`: both top-1s, the drop, McNemar's exact test; the parent's run is stored too).
    `workers`: parallel lanes, each decoding a batch and running it; `threads`: intra-op threads per lane.

    ray: run on Ray (True or "": RAY_ADDRESS or a new local instance; text: that cluster's address)."""
    from zoo.engine.eval import eval_sweep as sweep
    from zoo.measure.accuracy import load_data

    if target and ray not in (None, False):  # before Ray starts
        raise UsageError("--ray evaluates on the cluster's nodes; leave out --target")
    entries, parents = _sweep_entries(patterns, registries, progress, parents=True)
    dataset = load_data(data, labels, limit)  # fail fast on bad data, before any download
    _join(ray, progress)
    root = str(Path(data).absolute())
    options = _eval_options(batch=batch, workers=workers, provider=provider, threads=threads, runtime=runtime,
                            model=model, mirrors=mirrors, target=target)
    return sweep([e.card for e in entries], dataset, options, force=force, store_runs=store, progress=progress,
                 ray=ray not in (None, False), data=(root, str(Path(labels).absolute()) if labels else None, limit),
                 parents=parents)


def _join(ray: str | bool | None, progress) -> None:
    if ray in (None, False):
        return
    from zoo.engine.cluster import connect

    joined = connect(ray if isinstance(ray, str) and ray else None)
    progress and progress({"event": "note", "message": f"Ray: {joined['address']}, {joined['nodes']} node(s)"})


def bench_sweep(patterns: list[str] | str, *, runtime: str | None = None, provider: str | None = None,
                threads: int | None = None, batch: int = 1, warmup: int | None = None, iters: int | None = None,
                seconds: float | None = None, rounds: int | None = None, synthetic: bool = False,
                target: str | None = None, cooldown: float = 0.0, cpus: list[int] | None = None,
                mirrors: list[str] | None = None,
                force: bool = False, store: bool = True, registries: list[Path] | None = None, progress=None,
                ray: str | bool | None = None, profile: bool = False) -> dict:
    """Time every card the patterns match on this host, a target board, or (ray) whole nodes of a Ray cluster,
    in interleaved rounds (see zoo.engine.bench); cards without weights are timed with synthetic weights
    (marked; never an int8 card), stored runs measured the same way are reused unless `force`. A quantized card
    is timed with its float parent, and its result carries `speed_vs_float`. profile=True: each measured
    card's result carries `profile`, ONNX Runtime's per-operator profile (zoo.measure.profile; an int8 card's
    with its float parent's beside it)."""
    from zoo.engine.bench import bench_sweep as sweep

    entries, parents = _sweep_entries(patterns, registries, progress, parents=True)
    options = _bench_options(runtime=runtime, provider=provider, threads=threads, batch=batch, warmup=warmup,
                             iters=iters, seconds=seconds, rounds=rounds, synthetic=synthetic, target=target,
                             cooldown=cooldown, cpus=cpus, mirrors=mirrors, profile=profile)
    _join(ray, progress)
    return sweep([e.card for e in entries], options, force=force, store_runs=store, progress=progress,
                 ray=ray not in (None, False), parents=parents)


def inspect(ref: str, *, synthetic: bool = False, mirrors: list[str] | None = None,
            registries: list[Path] | None = None) -> dict:
    """Inputs, outputs, MACs, params and size of a model file, or of the file a card ships (its runnable
    artifact as published: the .tflite, not the ONNX converted from it), with the card's own figures beside
    them (see zoo.measure.complexity). Where zoo runs a conversion in the file's place (native weights, or a
    .tflite without LiteRT), that file is described too, under `converted`, and `counted_on` says which file the
    MACs and params come from. synthetic: the card's architecture with random weights."""
    from zoo.artifacts.fetch import artifact_member
    from zoo.artifacts.local import converted, local_model, synthetic_model
    from zoo.errors import UsageError
    from zoo.measure.choose import choose
    from zoo.measure.complexity import inspect_file

    if Path(ref).is_file():
        return inspect_file(Path(ref))
    card, how = _resolved(ref, registries)
    extra = {"card_id": card["id"], "resolved": how, "synthetic_weights": synthetic, "converted": None,
             "claimed": {"params": card.get("complexity", {}).get("params"),
                         "macs": card.get("complexity", {}).get("macs")}}
    if synthetic:
        return {**inspect_file(synthetic_model(card)), **extra, "artifact": None, "counted_on": "synthetic ONNX"}
    artifact = choose(card)
    shipped = {k: v for k, v in artifact.items() if k != "runs_as"}
    own = artifact_member(card, shipped, mirrors=mirrors)
    try:
        info, counted_on = inspect_file(own), "card's file"
    except UsageError:  # native weights are no graph; a .tflite without LiteRT cannot be counted here
        info = {"path": str(own), "size_bytes": own.stat().st_size, "format": shipped["format"], "inputs": [],
                "outputs": [], "macs": None, "params": None, "uncounted_nodes": []}
        counted_on = None
    if converted(artifact) or counted_on is None:
        run = local_model(card, artifact if converted(artifact) else {**shipped, "runs_as": "onnx"}, mirrors=mirrors)
        graph = inspect_file(run)
        extra["converted"] = {k: graph[k] for k in ("path", "size_bytes", "macs", "params")}
        if counted_on is None:  # the conversion computes what the file computes: its counts stand in, named
            info.update({k: graph[k] for k in ("inputs", "outputs", "macs", "params", "uncounted_nodes")})
            counted_on = "converted ONNX"
    return {**info, **extra, "artifact": shipped["file"], "counted_on": counted_on}


def quantize(ref: str, calib: Path, *, calib_n: int = 300, method: str = "minmax", per_channel: bool = True,
             format: str | None = None, labels: Path | None = None, force: bool = False,
             mirrors: list[str] | None = None, registries: list[Path] | None = None) -> dict:
    """int8 of a float card, calibrated on `calib_n` images of `calib` (chosen deterministically, spread over the
    classes) preprocessed as the card's source does: ONNX Runtime's static QDQ quantization in `format` (None:
    the one this host's int8 instructions run fast, zoo.measure.int8_format), cached by what decides its bytes,
    and a derived card ID+int8 that eval, bench and compare take like any card.

    Result keys: id (the derived card), derived_from, card_path, path, sha256, size_bytes, source, calibration,
    options, quantizer_version, onnxruntime, cached, resolved (see zoo.measure.quantize)."""
    from zoo.engine.quantize import quantize_card
    from zoo.measure.accuracy import load_data
    from zoo.measure.quantize import calibration_set

    card, how = _resolved(ref, registries)
    calibration = calibration_set(load_data(calib, labels), calib_n)  # bad images fail before any download
    record = quantize_card(card, calibration, method=method, per_channel=per_channel, format=format, force=force,
                           mirrors=mirrors)
    return {**record, "resolved": how}


def quantize_sweep(patterns: list[str] | str, calib: Path, *, calib_n: int = 300, method: str = "minmax",
                   per_channel: bool = True, format: str | None = None, labels: Path | None = None, force: bool = False,
                   mirrors: list[str] | None = None, registries: list[Path] | None = None,
                   progress=None) -> list[dict]:
    """Quantize every card the patterns match (see `quantize`) on one calibration set, decoding the calibration
    images once per preprocessing; cards already quantized or without float weights are skipped with their
    reason. Returns one record per card: {parent, id, status: quantized|skipped|failed, reason, ...the
    quantize record} (see zoo.engine.quantize)."""
    from zoo.engine.quantize import quantize_sweep as sweep
    from zoo.measure.accuracy import load_data
    from zoo.measure.quantize import calibration_set

    entries = _sweep_entries(patterns, registries, progress)
    calibration = calibration_set(load_data(calib, labels), calib_n)  # bad images fail before any download
    return sweep(entries, calibration, method=method, per_channel=per_channel, format=format, force=force,
                 mirrors=mirrors, progress=progress)


def quantize_doctor(ref: str, calib: Path, *, data: Path | None = None, max_drop: float | None = None,
                    calib_n: int = 300, method: str = "minmax", per_channel: bool = True, format: str | None = None,
                    labels: Path | None = None, force: bool = False, mirrors: list[str] | None = None,
                    registries: list[Path] | None = None, progress=None) -> dict:
    """`zoo quantize ID --explain [--max-drop P]`: quantize one card, compare its int8 activations with the float
    model's layer by layer on calibration images (SQNR, cosine, the dB each layer loses; worst first), and with
    `max_drop` keep the worst layers in float until the top-1 drop on held-out images (`data`, default the
    calibration folder less its calibration images) fits. See zoo.engine.quantize.doctor for the report's keys."""
    from zoo.engine.quantize import doctor
    from zoo.measure.accuracy import load_data
    from zoo.measure.quantize import calibration_set, same_folder

    card, how = _resolved(ref, registries)
    calibration = calibration_set(load_data(calib, labels), calib_n)
    held = None
    if max_drop is not None:
        held = load_data(data or calib, labels if data is None else None)
        if same_folder(held.root, calibration.root):
            held = held.without(relative for relative, _ in calibration.items)
    return {**doctor(card, calibration, held, method=method, per_channel=per_channel, format=format,
                     max_drop=max_drop, force=force, mirrors=mirrors, progress=progress), "resolved": how}


# ---------------------------------------------------------------- results

def runs(*, kind: str | None = None, card: str | None = None, limit: int | None = None) -> list:
    """Stored eval and bench runs, newest first, as zoo.results.records.Run (`zoo runs --json` prints
    their to_dict())."""
    from zoo.results.store import list_runs

    return list_runs(kind=kind, card_id=card, limit=limit)


def board_vs_host(*, card: str | None = None, target: str | None = None, alpha: float = 0.05) -> list[dict]:
    """Where a target board's accuracy differs from the host's beyond noise: for the latest board eval of each
    card, file and image set, McNemar's exact test against the host's eval of the same file on the same images
    (keys in zoo.results.agreement.board_vs_host)."""
    from zoo.results.agreement import board_vs_host as compare_with_host
    from zoo.results.store import list_runs

    return compare_with_host(list_runs(kind="eval"), target=target, card_id=card, alpha=alpha)


def compare(patterns: list[str] | None = None, metric: str = "accuracy", *, device: str | None = None,
            top: int | None = None, pareto: bool = False, measured: bool = True, measure: bool = False,
            data: Path | None = None, target: str | None = None, registries: list[Path] | None = None,
            progress=None):
    """A pandas DataFrame ranking the matching cards on `metric`, claims beside measurements (see
    zoo.results.ranking; which runs it uses and their footings: zoo.results.selection). Latency, fps, accuracy and
    top-5 rank only within one footing: one row per card and footing, `rank` within the footing, `rank_group`
    the ranks noise leaves a measured row ("2–4").

    data: the images whose evals "yours" shows beside the claims (default: the folder of the largest eval); with
    measure=True, the images to evaluate on.
    device: None shows this host's and the targets' runs beside every claim; "host" or a target name, runs
    there only; other text, claims and runs whose device contains it (no match: UsageError listing devices).
    measured=False ignores the results store.
    measure=True first measures what the comparison lacks (an eval sweep on `data` for accuracy/top5, a
    bench sweep for latency/fps; each on this host or `target`; runs measured the same way are reused), then ranks;
    the sweep's summary (zoo.engine.sweep) is the table's attrs["measured"] (None when nothing lacked a figure).
    """
    from zoo.errors import UsageError
    from zoo.results.metrics import SPEED_METRICS
    from zoo.results.ranking import compare as rank
    from zoo.results.selection import Selection, select

    if device and metric not in SPEED_METRICS:
        raise UsageError("--device applies to latency and fps only", "Use --metric latency or --metric fps with --device")
    registry = _registry(registries)
    positions = registry.positions(patterns)
    swept = None
    if measure:
        from zoo.engine.measure import measure_missing
        from zoo.engine.plan import float_parents

        entries = registry.at(positions)
        swept = measure_missing(entries, metric, data=data, target=target, progress=progress,
                                parents=float_parents(registry, entries))
        device = device or (target if metric in SPEED_METRICS else None)
    table = registry.table(positions)  # rows, not cards: 10,000 cards rank in a fraction of a second
    selection = Selection(claim_device=device)
    if measured:
        from zoo.measure import machine, targets
        from zoo.results.store import list_runs

        selection = select(table, list_runs(), device=device, host=machine.host(),
                           target_names={t["name"] for t in targets.ls()}, data=data)
    ranked = rank(table, metric, selection=selection, top=top, pareto=pareto)
    if measure:
        ranked.attrs["measured"] = swept  # the sweep's summary (None: nothing lacked a figure)
    return ranked


def plot(df, metric: str, path: Path) -> Path:
    """Draw a `compare` table as accuracy against `metric` in a PNG (see zoo.results.plots)."""
    from zoo.results.plots import plot as draw

    return draw(df, metric, path)


def report(path: Path, patterns: list[str] | None = None, *, registries: list[Path] | None = None) -> dict:
    """Write one self-contained HTML report (see zoo.results.report): {path, cards, runs}."""
    from zoo.measure import machine
    from zoo.results import report as html_report
    from zoo.results.store import list_runs

    from zoo.files import output_file

    output_file(path, "-o", suffixes=html_report.SUFFIXES)  # before any work
    accuracy = compare(patterns, "accuracy", registries=registries)
    latency = compare(patterns, "latency", pareto=True, registries=registries)
    ids = set(accuracy["id"])
    runs = [r for r in list_runs() if r.card_id in ids]
    cards = {e.id: e.card for e in _registry(registries).entries() if e.id in ids}
    from zoo.measure.doctor import saved

    doctors = [d for d in (saved(c) for c in cards.values() if (c.get("derived_from") or {}).get("quantization"))
               if d]  # the quantization doctor's last report on each int8 card (zoo quantize --explain)
    text = html_report.build(accuracy=accuracy, latency=latency, runs=runs, cards=cards, host=machine.host(),
                             title="MobileNetV2 variants compared on one footing", doctors=doctors)
    return {"path": str(html_report.write(path, text)), "cards": len(ids), "runs": len(runs)}
