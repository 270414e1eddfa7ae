"""`zoo registry build|keygen|add|update|ls`: the index, its signature, and remote registries."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

import zoo
from zoo.cli.app import sub_app
from zoo.cli.render import note, plain_table, print_json
from zoo.errors import RegistryError

registry_app = sub_app("registry", "Build and sign the registry index; add and update remote registries.")


@registry_app.command("build")
def registry_build(
    cards: Path = typer.Option(Path("cards"), "--cards", help="Directory of cards."),
    out: Path = typer.Option(Path("registry/index.json"), "--out", help="Where to write the index."),
    sign: Optional[Path] = typer.Option(None, "--sign", metavar="KEYFILE",
                                        help="Also write OUT.sig, an ed25519 signature made with this private key."),
    version: Optional[int] = typer.Option(None, "--version", metavar="N",
                                          help="Index version, larger than the last published one "
                                               "(default with --sign: the UTC time in seconds)."),
    expires: Optional[float] = typer.Option(None, "--expires", metavar="DAYS",
                                            help="Days until clients warn that the index is stale "
                                                 "(default with --sign: 365)."),
    as_json: bool = typer.Option(False, "--json", help="Print {path, cards, signature, version, expires, warnings} as JSON."),
):
    """Write registry/index.json (every card plus its sha256) from cards/."""
    built = zoo.build_registry(cards, out, sign=sign, version=version, expires_days=expires)
    for warning in built["warnings"]:
        note(warning)
    if as_json:
        print_json(built)
    else:
        signature = built["signature"]
        extra = f", version {built['version']}" if built["version"] is not None else ""
        extra += f", expires {built['expires']}" if built["expires"] else ""
        typer.echo(f"wrote {out} ({built['cards']} cards{extra})" + (f" and {signature}" if signature else ""))


@registry_app.command("add")
def registry_add(
    name: str = typer.Argument(..., help="A short name; it is shown beside the registry's cards."),
    url: str = typer.Argument(..., help="The index URL, or the base URL that holds index.json."),
    key: Optional[str] = typer.Option(None, "--key", metavar="PUBKEY",
                                      help="ed25519 public key (base64 or a KEYFILE.pub): require a valid signature."),
    allow_local: bool = typer.Option(False, "--allow-local",
                                     help="Let its cards point at file:// paths and private or loopback addresses."),
    override: bool = typer.Option(False, "--override",
                                  help="Let its cards replace other sources' cards with the same id (embedded, "
                                       "other registries)."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
):
    """Add a remote registry, or change an added one's options; then run `zoo registry update`."""
    from zoo.cards import remote  # here, not at the top: `zoo list` starts faster

    record = remote.add(name, url, key, allow_local=allow_local, override=override)
    if as_json:
        print_json(record)
    else:
        typer.echo(f"added {name}: {record['index_url']} ({'signed, key ' + record['key'] if record['key'] else 'unsigned'})"
                   + (", its cards replace other sources' cards with the same id" if override else ""))
        if record["kept"]:
            note(f"same URL and key as before: {name}'s last good copy and accepted version are kept")
        note(f"run `zoo registry update {name}` to download its cards")


@registry_app.command("update")
def registry_update(
    names: Optional[List[str]] = typer.Argument(None, metavar="[NAME]...", help="Registries to update (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON."),
):
    """Download remote indexes that changed; keep a new one only if it verifies (exit 4 if any did not)."""
    from zoo.cards import remote  # here, not at the top: `zoo list` starts faster

    rows = remote.update(names)
    if as_json:
        print_json(rows)
    else:
        if not rows:
            note("no remote registries; add one with `zoo registry add NAME URL`")
        for r in rows:
            typer.echo(f"{r['name']}: {r['status']} ({r['message']}); {r['cards']} cards in use")
    if any(r["status"] in ("rejected", "failed") for r in rows):
        raise typer.Exit(RegistryError.exit_code)


@registry_app.command("ls")
def registry_ls(as_json: bool = typer.Option(False, "--json", help="Print the records as JSON.")):
    """List remote registries."""
    from zoo.cards import remote  # here, not at the top: `zoo list` starts faster

    rows = remote.ls()
    if as_json:
        print_json(rows)
        return
    if not rows:
        note("no remote registries; add one with `zoo registry add NAME URL`")
        return
    typer.echo(plain_table(["name", "cards", "signed", "version", "expires", "updated", "url"],
                            [[r["name"] + (" (override)" if r["override"] else ""), str(r["cards"]),
                              "yes" if r["signed"] else "no",
                              "-" if r["version"] is None else str(r["version"]),
                              (r["expires"] or "-") + (" (EXPIRED)" if r["expired"] else ""),
                              r["updated_at"] or "never", r["url"]] for r in rows], {0, 2, 4, 5, 6}))


@registry_app.command("keygen")
def registry_keygen(
    keyfile: Path = typer.Argument(..., help="Where to write the private key; the public key goes to KEYFILE.pub."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
):
    """Make an ed25519 key pair for signing a registry index."""
    from zoo.cards import signing  # here, not at the top: `zoo list` starts faster

    record = signing.keygen(keyfile)
    if as_json:
        print_json(record)
    else:
        typer.echo(f"private key: {record['private_key']} (keep it secret)")
        typer.echo(f"public key:  {record['public_key']} (also in {record['public_key_file']})")


