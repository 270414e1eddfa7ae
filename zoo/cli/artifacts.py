"""`zoo fetch`, `zoo convert`, `zoo cache ls|verify|rm|prune`: artifacts and the cache."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

import zoo
from zoo import settings
from zoo.cli.app import app, state, sub_app
from zoo.cli.render import FetchProgress, note, plain_table, print_json, print_resolved
from zoo.errors import IntegrityError

cache_app = sub_app("cache", "Inspect, verify and clean the download cache.")

_VERIFIED_BY = {"sha256": "the card's sha256", "pin": "the sha256 pinned on first use", "sha384": "the card's sha384",
                "sha1": "the card's sha1", "sha256-prefix": "the file name's sha256 prefix, now pinned",
                "tofu": "nothing: no hash on the card, trusted on first use and pinned"}


@app.command()
def fetch(
    refs: List[str] = typer.Argument(..., metavar="ID...",
                                     help="Cards to fetch (id, alias, NAME@source or wildcard 'coral/*')."),
    all_: bool = typer.Option(False, "--all", help="Every artifact of each card, not only its first."),
    jobs: int = typer.Option(4, "-j", "--jobs", min=1, help="Downloads at a time."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", metavar="URL_OR_DIR",
                                               help="Try this base URL or directory first (repeatable; also ZOO_MIRROR)."),
    require_hashes: bool = typer.Option(False, "--require-hashes",
                                        help="Refuse artifacts without a full sha256 on the card or pinned."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON; progress events as JSON lines on stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the paths (a member's path for archives)."),
    force: bool = typer.Option(False, "--force", help="Download again even when a verified copy is cached."),
):
    """Download, verify and cache cards' artifacts; print where each verified file is."""
    with FetchProgress(as_json, quiet) as progress:
        records = zoo.fetch(refs, all_artifacts=all_, jobs=jobs, mirrors=mirror, require_hashes=require_hashes,
                            force=force, registries=state["registries"], progress=progress)
    if as_json:
        print_json(records)
        return
    for r in records:
        if quiet:
            typer.echo(r.get("member_path") or r["path"])
            continue
        how = "from the cache, " if r["cached"] else ""
        typer.echo(f"{r['id']}  {r['file']}  {r['size']} bytes  sha256 {r['sha256']}  "
                   f"({how}verified by {_VERIFIED_BY.get(r['verified_by'], r['verified_by'])})")
        for key in ("path", "unpacked", "member_path"):
            if r.get(key):
                typer.echo(f"  {key}: {r[key]}")


@cache_app.command("ls")
def cache_ls(as_json: bool = typer.Option(False, "--json", help="Print the records as JSON.")):
    """List every file zoo keeps and can make again (downloads, conversions, int8 models, catalogs), sized, with
    the cards that use them."""
    rows = zoo.cache_ls(registries=state["registries"])
    if as_json:
        print_json(rows)
        return
    if not rows:
        note(f"the cache is empty ({settings.cache_dir()})")
        return
    typer.echo(plain_table(["kind", "sha256", "size", "file", "cards"],
                            [[r["kind"], (r["sha256"] or "—")[:16], str(r["size"]),
                              r["file"] + (" (unpacked)" if r["unpacked"] else ""),
                              ", ".join(r["cards"]) or "(no card)"] for r in rows], {0, 1, 3, 4}))
    from zoo.artifacts.cache import on_disk

    listed, disk = sum(r["size"] for r in rows), on_disk()
    shared = (f", {disk:,} of them on disk (a model zoo made and its cached copy are one file under two names)"
              if disk < listed else "")
    note(f"{len(rows)} item(s), {listed:,} bytes in {settings.zoo_home()}{shared}; `zoo cache prune` removes what no "
         "card uses, the rest is made again when needed")


@cache_app.command("verify")
def cache_verify(as_json: bool = typer.Option(False, "--json", help="Print the records as JSON.")):
    """Re-hash every cached file and unpacked archive member; remove corrupt ones (exit 5 if any)."""
    rows = zoo.cache_verify()
    if as_json:
        print_json(rows)
    else:
        for r in rows:
            if r["kind"] == "unpacked" and not r["ok"]:
                typer.echo(f"CORRUPT (unpacked tree removed; unpacked again on next use)  {r['path']}"
                           + (f"  sha256 is {r['actual']}" if r["actual"] else "  (not as unpacked)"))
                continue
            typer.echo(f"{'ok' if r['ok'] else 'CORRUPT (removed)'}  {r['path']}"
                       + ("" if r["ok"] else f"  sha256 is {r['actual']}"))
        files = sum(r["kind"] == "file" for r in rows)
        note(f"{files} file(s) and {len(rows) - files} unpacked tree(s) checked, {sum(not r['ok'] for r in rows)} corrupt")
    if not all(r["ok"] for r in rows):
        raise typer.Exit(IntegrityError.exit_code)


@cache_app.command("rm")
def cache_rm(
    targets: List[str] = typer.Argument(..., metavar="SHA256_OR_ID...", help="A sha256 (6+ hex digits) or a card."),
    as_json: bool = typer.Option(False, "--json", help="Print the removed files as JSON."),
):
    """Remove cached files (and their unpacked trees)."""
    rows = zoo.cache_rm(targets, registries=state["registries"])
    if as_json:
        print_json(rows)
    else:
        for r in rows:
            typer.echo(f"removed {r['path']} ({r['size']} bytes)")


@cache_app.command("prune")
def cache_prune(as_json: bool = typer.Option(False, "--json", help="Print the removed paths as JSON.")):
    """Remove what no card uses: partial downloads, orphaned unpacked trees, unused downloads, ONNX conversions
    and int8 models (made again when needed), stale catalogs."""
    rows = zoo.cache_prune(registries=state["registries"])
    if as_json:
        print_json(rows)
    else:
        for r in rows:
            typer.echo(f"removed {r['kind']}  {r['path']}  ({r['size']:,} bytes)")
        note(f"{len(rows)} item(s) removed, {sum(r['size'] for r in rows):,} bytes freed")


@app.command()
def convert(
    ref: str = typer.Argument(..., metavar="ID", help="Card id, NAME@source or alias."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="PATH",
                                          help="Also copy the ONNX here (a file, or a directory)."),
    synthetic: bool = typer.Option(False, "--synthetic-weights", help="The card's architecture with random weights."),
    dequantize: bool = typer.Option(False, "--dequantize",
                                    help="A .tflite card as a float model (dequantized weights): a derived card."),
    artifact: Optional[str] = typer.Option(None, "--artifact", metavar="FILE", help="Which file (default: the first)."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", help="Mirror for the artifact (also ZOO_MIRROR)."),
    force: bool = typer.Option(False, "--force", help="Convert again even when a cached ONNX exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
):
    """Convert a card's weights (pth, safetensors, pdparams, MindSpore ckpt, tflite) to ONNX, without torch; cached."""
    r = zoo.convert(ref, artifact=artifact, output=output, synthetic=synthetic, dequantize=dequantize, mirrors=mirror,
                    force=force, registries=state["registries"])
    print_resolved(r)
    if as_json:
        print_json(r)
        return
    source = "synthetic weights" if r["synthetic_weights"] else f"{r['source']['file']} ({r['source']['format']})"
    card_id = r["derived_from"]["id"] if r.get("derived_from") else r["id"]
    if "architecture" in r:
        how = f"{r['architecture']['plan']}"
    else:
        how = "float (dequantized weights)" if r["tflite"]["mode"] == "float" else "QDQ (its own quantization)"
    typer.echo(f"{card_id}: {source} -> {how} -> ONNX opset {r['opset']}{'  (cached)' if r['cached'] else ''}")
    typer.echo(f"  {r['output'] if r.get('output') else r['path']}")
    typer.echo(f"  sha256 {r['sha256']}  {r['size_bytes']:,} bytes  converted in {r['seconds']:.2f} s")
    if r.get("derived_from"):
        typer.echo(f"  derived card {r['id']} (from {r['derived_from']['id']}): zoo eval / zoo bench take it like any card")


