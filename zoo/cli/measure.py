"""`zoo eval`, `zoo bench`, `zoo inspect`: measurements on this host or a target board."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

import zoo
from zoo.cli.app import app, state
from zoo.cli.render import SweepProgress, fmt, note, print_json, print_resolved, sweep_summary


def mib(value) -> str:
    return "—" if value is None else f"{value / 2**20:.0f} MiB"


def parse_cpus(text: str | None) -> list[int] | None:
    """'0,2-3' -> [0, 2, 3]."""
    if not text:
        return None
    from zoo.errors import UsageError

    cpus = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise UsageError(f"--cpus {text!r}: give core numbers and ranges, e.g. 0,2-3") from None
    return sorted(cpus)


@app.command()
def bench(
    refs: List[str] = typer.Argument(..., metavar="PATTERN...", help="Card ids, aliases, NAME@source or wildcards ('timm/*')."),
    runtime_name: Optional[str] = typer.Option(None, "--runtime", help="onnxruntime or litert: which artifact to time (here, or on an ONNX Runtime --target)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="ONNX Runtime execution provider (cpu, cuda, ...)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Intra-op threads (default: the runtime's)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Images per call."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Uncounted calls first."),
    iters: Optional[int] = typer.Option(None, "--iters", min=1, help="Timed calls per card (default: >= 100 and >= 3 s)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=0, help="Timed duration per card instead of --iters."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1,
                                         help="Interleaved rounds the timing is split into (default 10; 6 or more give each p50 a 95% interval)."),
    synthetic: bool = typer.Option(False, "--synthetic-weights", help="Time the cards' architectures, random weights."),
    target: Optional[str] = typer.Option(None, "--target", help="Run on this target board (`zoo target add`)."),
    cooldown: float = typer.Option(0.0, "--cooldown", min=0, metavar="S",
                                   help="Seconds idle before each card's round but the first (lets a board cool)."),
    cpus: Optional[str] = typer.Option(None, "--cpus", metavar="LIST", help="Pin the timed loop to these cores (0,2-3)."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", help="Mirror for the artifact (also ZOO_MIRROR)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                      help="Run on Ray: alone, RAY_ADDRESS or a new local instance; or this cluster's address."),
    force: bool = typer.Option(False, "--force", help="Measure again even where a stored run matches."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the runs in the results store."),
    profile: bool = typer.Option(False, "--profile", help="ONNX Runtime's per-operator profile too (int8 beside float)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress display, notes or reused-card lines."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per card, then a summary line."),
):
    """Measure latency of one or many cards on this host or a target board, timed together in interleaved rounds;
    each run is stored."""
    starting = None
    if len(refs) == 1 and not any(c in refs[0] for c in "*?["):
        where = f"target {target}" if target else "this host"
        starting = f"timing {refs[0]}{' (synthetic weights)' if synthetic else ''} on {where} ..."
    with SweepProgress(as_json, quiet, starting=starting) as progress:
        summary = zoo.bench_sweep(refs, runtime=runtime_name, provider=provider, threads=threads, batch=batch,
                                  warmup=warmup, iters=iters, seconds=seconds, rounds=rounds, synthetic=synthetic,
                                  target=target, cooldown=cooldown, cpus=parse_cpus(cpus), mirrors=mirror,
                                  force=force,
                                  store=not no_store, registries=state["registries"], progress=progress, ray=ray,
                                  profile=profile)
    sweep_summary(summary, as_json)
    if profile and not as_json:
        from zoo.cli.render import profile_lines

        for record in summary["records"]:
            profiled = record.get("profile") or (record.get("result") or {}).get("profile")
            if profiled:
                typer.echo("\n".join(profile_lines(record["card_id"], profiled)))
    if as_json or quiet or len(summary["records"]) != 1:
        return
    result = summary["records"][0].get("result")
    if result:  # one card: its figures in full
        typer.echo("  " + "  ".join(f"{k.removesuffix('_ms')} {fmt(result[k], 3)} ms"
                                    for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms")
                                    if result.get(k) is not None))
        for line in timing_lines(result):
            typer.echo("  " + line)
        for claim in result.get("claims") or []:
            unit = "ms" if claim["metric"] == "latency_ms" else "img/s"
            typer.echo(f"  claimed {claim['metric']} {claim['value']:g} {unit} on {claim['device']}")


def timing_lines(result: dict) -> list[str]:
    """How long and how many, the conservative percentiles, memory, and what the clocks and temperatures did."""
    lines = []
    samples = result.get("samples_ms")
    if samples:
        bounds = "  ".join(f"{k[:3]} <= {fmt(result[k], 3)} ms" for k in ("p90_conservative_ms", "p99_conservative_ms")
                           if result.get(k) is not None)
        lines.append(f"{len(samples)} calls in {sum(samples) / 1000:.1f} s timed, {result.get('rounds')} rounds"
                     + (f"; with 99% confidence {bounds}" if bounds else "; too few calls to bound p90/p99"))
    elif result.get("iterations"):
        lines.append(f"{result['iterations']} frames (the tool reports its mean, no percentiles)")
    where = "runner on the board" if result.get("target") else "process"
    if result.get("peak_rss_bytes"):
        lines.append(f"peak memory {mib(result['peak_rss_bytes'])} ({where}); the model's own "
                     f"{mib(result.get('model_peak_bytes'))}")
    lines += conditions_lines(result.get("conditions"))
    return lines


def conditions_lines(drift: dict | None) -> list[str]:
    """The clocks, governor and temperatures before and after a run, or that they could not be read."""
    if not drift:
        return []
    before, after = drift.get("before") or {}, drift.get("after") or {}
    if before.get("cpu_mhz_source") == "cpufreq":
        clocks = f"clocks {before['cpu_mhz']:g} -> {after.get('cpu_mhz') or 0:g} MHz (mean)"
        per_cpu = after.get("cpufreq") or {}
        governors = sorted({c["governor"] for c in per_cpu.values() if c.get("governor")})
        if governors:
            clocks += f", governor {'/'.join(governors)}"
    else:
        clocks = "clocks unreadable (no cpufreq)"
    temperature = (f"temperature {before['temperature_c']:g} -> {after.get('temperature_c') or 0:g} C"
                   if before.get("temperature_c") is not None else "temperature unreadable (no thermal zone)")
    lines = [f"{clocks}; {temperature}"]
    if drift.get("throttled"):
        lines.append(f"throttled: {', '.join(drift['throttled'])}; rerun with a cool-down (--cooldown S)")
    elif drift.get("moved"):
        lines.append(f"moved during the run: {', '.join(drift['moved'])}")
    return lines


@app.command()
def inspect(
    ref: str = typer.Argument(..., metavar="ID|PATH", help="A card (its runnable artifact) or a .onnx/.tflite file."),
    synthetic: bool = typer.Option(False, "--synthetic-weights", help="Count the card's architecture."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", help="Mirror for the artifact (also ZOO_MIRROR)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Inputs, outputs, MACs, parameters and size, counted from the model graph."""
    info = zoo.inspect(ref, synthetic=synthetic, mirrors=mirror, registries=state["registries"])
    print_resolved(info)
    if as_json:
        print_json(info)
        return
    what = f"{info['card_id']}: {info['artifact']}" if info.get("artifact") else info.get("card_id") or info["path"]
    typer.echo(f"{what}  ({info['format']}, {info['size_bytes']:,} bytes)")
    for kind in ("inputs", "outputs"):
        for tensor in info[kind]:
            typer.echo(f"  {kind[:-1]:6} {tensor['name']}  {tensor['shape']}  {tensor['dtype']}")
    where = f"  (counted on the {info['counted_on']})" if info.get("counted_on") not in (None, "card's file") else ""
    typer.echo(f"  MACs {info['macs'] / 1e6:.2f} M   params {info['params'] / 1e6:.3f} M{where}")
    if info.get("converted"):
        c = info["converted"]
        typer.echo(f"  converted ONNX zoo runs in its place: {c['size_bytes']:,} bytes, params {c['params'] / 1e6:.3f} M")
    claimed = info.get("claimed") or {}
    if claimed.get("macs") or claimed.get("params"):
        typer.echo(f"  card: MACs {fmt(claimed['macs'] and claimed['macs'] / 1e6)} M   "
                   f"params {fmt(claimed['params'] and claimed['params'] / 1e6, 3)} M")
    if info["uncounted_nodes"]:
        note(f"{len(info['uncounted_nodes'])} node(s) had unknown shapes and were not counted")


@app.command("eval")
def eval_(
    refs: List[str] = typer.Argument(..., metavar="PATTERN...", help="Card ids, aliases, NAME@source or wildcards ('coral/*')."),
    data: Path = typer.Option(..., "--data", metavar="DIR", help="Validation images (layouts in the README)."),
    labels: Optional[Path] = typer.Option(None, "--labels", metavar="FILE",
                                          help="'FILE IDX' lines (0-based, standard order) or LOC_val_solution.csv."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate N images (a fixed subset spread over classes)."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1,
                                        help="Images per inference call, where the model allows (default: 8 on CPU, 32 on an accelerator)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Parallel workers, each decoding a batch and running it on its own lane (default: one per core)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="ONNX Runtime execution provider (cpu, cuda, ...)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="Intra-op threads of each run (default: 1 per worker on CPU, the runtime's on an accelerator)."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="FILE",
                                         help="Run this local .onnx/.tflite file under the (one) card's conventions."),
    runtime: Optional[str] = typer.Option(None, "--runtime",
                                          help="onnxruntime or litert: which artifact to run (onnxruntime runs a .tflite card's QDQ conversion)."),
    target: Optional[str] = typer.Option(None, "--target", metavar="NAME",
                                         help="Decode here, run the models on this target board (`zoo target add`)."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", metavar="URL_OR_DIR",
                                               help="Try this base URL or directory first (also ZOO_MIRROR)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                      help="Run on Ray: alone, RAY_ADDRESS or a new local instance; or this cluster's address."),
    force: bool = typer.Option(False, "--force", help="Measure again even where a stored run matches."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the runs in the results store."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress display, notes or reused-card lines."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per card, then a summary line (keys in the README)."),
):
    """Measure top-1/top-5 of one or many cards on your validation images, each preprocessed as its source does."""
    with SweepProgress(as_json, quiet) as progress:
        summary = zoo.eval_sweep(refs, data, labels=labels, limit=limit, batch=batch, workers=workers,
                                 provider=provider, threads=threads, runtime=runtime, model=model, mirrors=mirror,
                                 target=target, force=force, store=not no_store, registries=state["registries"], progress=progress,
                                 ray=ray)
    measured = [r["result"] for r in summary["records"] if r.get("status") == "measured"]
    if measured and not quiet:
        for line in measured[0]["notes"]:
            note(f"note: {line}")
        if measured[0]["unreadable"]:
            r = measured[0]
            note(f"zoo: note: {r['unreadable']} unreadable image(s), not counted: "
                 + ", ".join(r["unreadable_files"][:20]) + (" ..." if r["unreadable"] > 20 else ""))
    sweep_summary(summary, as_json)
    if as_json or quiet or len(summary["records"]) != 1 or not summary["records"][0].get("result"):
        return
    r = summary["records"][0]["result"]  # one card: its figures in full
    for metric in ("top1", "top5"):
        low, high = r[f"{metric}_ci95"]
        claim = next((c["value"] for c in r.get("claims") or [] if c["metric"] == metric), None)
        typer.echo(f"  {metric[:3]}-{metric[3]}  {r[metric]:6.2f} %  (95% CI {low:.2f}–{high:.2f})"
                   + (f"   claimed {claim:g} % (ImageNet val)" if claim is not None else ""))
    rt = r["runtime"]
    engine = r.get("engine") or {}
    if engine.get("name") == "target":
        typer.echo(f"  {fmt(r.get('images_per_s'), 1)} images/s; {rt['name']} {rt['version']} on target "
                   f"{r['device']} ({rt['provider']}, {rt['threads'] or 'default'} thread(s)), batch {r['batch']}; "
                   f"runner peak memory {mib(engine.get('peak_rss_bytes'))}"
                   + (f"; {engine['resumed_images']} image(s) from an earlier, unfinished run"
                      if engine.get("resumed_images") else "")
                   + (f"; reconnected {engine['reconnects']} time(s)" if engine.get("reconnects") else ""))
        return
    typer.echo(f"  {fmt(r.get('images_per_s'), 1)} images/s; {rt['name']} {rt['version']} on {r['device']} "
               f"({rt['provider']}, {rt['threads'] or 1} thread(s) per worker), batch {r['batch']}, "
               f"{r.get('workers')} workers")


@app.command("preprocess")
def preprocess_(
    ref: str = typer.Argument(..., metavar="ID", help="Card id, alias or NAME@source."),
    images: List[str] = typer.Argument(..., metavar="IMAGE...", help="Image files."),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE.npz", help="Where to write the arrays."),
    png: Optional[Path] = typer.Option(None, "--png", metavar="DIR", help="Also write each resized crop as a PNG here."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Write exactly what the card's model is fed for each image (.npz), to diff against your own pipeline."""
    r = zoo.preprocess(ref, images, output, png_dir=png, registries=state["registries"])
    print_resolved(r)
    if r["encoded_note"]:
        note(r["encoded_note"])
    if as_json:
        print_json(r)
        return
    p = r["preprocess"]
    typer.echo(f"{r['card_id']}: {len(r['files'])} image(s) -> {r['output']}")
    typer.echo(f"  protocol {p['protocol']}: {p['decoder']}; {p['kernel']}")
    typer.echo(f"  normalised {r['normalised']['shape']} float32"
               + (f"; encoded {r['encoded']['shape']} {r['encoded']['dtype']}" if r["encoded"] else ""))
    if r["png"]:
        typer.echo(f"  {len(r['png'])} PNG crop(s) in {png}")


@app.command("quantize")
def quantize_(
    refs: List[str] = typer.Argument(..., metavar="PATTERN...",
                                     help="Float cards: ids, aliases, NAME@source or wildcards ('coral/*+float')."),
    calib: Path = typer.Option(..., "--calib", metavar="DIR", help="Calibration images (the layouts of --data)."),
    calib_n: int = typer.Option(300, "--calib-n", min=1, help="How many images calibrate (spread over the classes)."),
    method: str = typer.Option("minmax", "--method", help="minmax, entropy or percentile."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight scales per output channel."),
    format: str = typer.Option("auto", "--format", metavar="NAME",
                               help="int8 format: auto (the one this CPU runs fast), u8s8, u8s8-reduced, s8s8, u8u8."),
    explain: bool = typer.Option(False, "--explain", help="Compare int8 and float activations layer by layer (one card)."),
    max_drop: Optional[float] = typer.Option(None, "--max-drop", metavar="POINTS", min=0,
                                             help="Keep the worst layers in float until the top-1 drop on held-out "
                                                  "images is at most this (implies --explain)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR",
                                        help="Held-out images for --max-drop (default: --calib less its calibration images)."),
    labels: Optional[Path] = typer.Option(None, "--labels", metavar="FILE", help="Labels for --calib, as for eval."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", metavar="URL_OR_DIR", help="Mirror for the artifact."),
    force: bool = typer.Option(False, "--force", help="Quantize again even when a cached model matches."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress lines on stderr."),
    as_json: bool = typer.Option(False, "--json", help="A list of {parent, id, status, ...} records (`id`: the int8 card)."),
):
    """int8 of float cards, calibrated on your images as each source preprocesses: derived cards ID+int8
    (the calibration images decoded once per preprocessing), in the int8 format this CPU runs fast."""
    from zoo.cli.render import doctor_lines
    from zoo.errors import UsageError, ZooError

    if explain or max_drop is not None:
        if len(refs) != 1 or any(c in refs[0] for c in "*?["):
            raise UsageError("--explain and --max-drop examine one card", "Give one card id, not a pattern")
        report = zoo.quantize_doctor(refs[0], calib, data=data, max_drop=max_drop, calib_n=calib_n, method=method,
                                     per_channel=per_channel, format=format, labels=labels, force=force,
                                     mirrors=mirror, registries=state["registries"],
                                     progress=None if quiet or as_json else lambda e: note(e["message"]))
        if as_json:
            print_json(report)
            return
        print_resolved(report)
        typer.echo("\n".join(doctor_lines(report)))
        return
    many = []

    def progress(event):  # notes, and in a sweep of several cards each card's progress, on stderr
        if event["event"] == "start":
            many.append(event["cards"] > 1)
        elif quiet:
            return
        elif event["event"] == "note" and (not many or many[0]):
            note(event["message"])
        elif event["event"] == "card" and many[0]:
            outcome = f"-> {event['id']}" if event["status"] == "quantized" else event["reason"]
            note(f"[{event['number']}/{event['cards']}] {event['parent']}: {event['status']} {outcome}")

    try:
        records = zoo.quantize_sweep(refs, calib, calib_n=calib_n, method=method, per_channel=per_channel,
                                     format=format, labels=labels, force=force, mirrors=mirror,
                                     registries=state["registries"], progress=progress)
    except ZooError as error:
        # nothing quantized: every card's reason still printed (one card's own error already says it)
        records = (getattr(error, "summary", None) or {}).get("records")
        if records and (as_json or len(records) > 1):
            _quantize_records(records, as_json)
        raise
    _quantize_records(records, as_json)
    if any(r["status"] == "quantized" for r in records) and not quiet and not as_json:
        note("evaluate with `zoo eval ID+int8 --data DIR`: on the calibration folder its calibration images are "
             "left out, and its float parent is evaluated beside it")


def _quantize_records(records: list[dict], as_json: bool) -> None:
    if as_json:
        print_json(records)
        return
    for r in records:
        if r["status"] != "quantized":
            typer.echo(f"{r['status']:9} {r['parent']}: {r['reason']}")
            continue
        o = r["options"]
        typer.echo(f"quantized {r['id']}: {o['format']} ({o['activations']} activations, "
                   f"{'per-channel' if o['per_channel'] else 'per-tensor'} {o['weights']} weights"
                   f"{', reduce_range' if o['reduce_range'] else ''}), {o['method']}, {r['calibration']['n']} "
                   "calibration images" + ("  (cached)" if r["cached"] else ""))
        typer.echo(f"  format {'chosen for this host' if o['chosen_by'] == 'auto' else 'given'}: {o['reason']}")
        typer.echo(f"  {r['path']}  sha256 {r['sha256']}  {r['size_bytes']:,} bytes")
    if len(records) > 1:
        counts = {s: sum(r["status"] == s for r in records) for s in ("quantized", "skipped", "failed")}
        typer.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
