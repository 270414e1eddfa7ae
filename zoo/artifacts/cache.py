"""The content-addressed cache under ZOO_HOME and `zoo cache ls|verify|rm|prune`.

Layout (all under settings.cache_dir(), i.e. ZOO_HOME/cache):

    sha256/<sha256>/<file>     verified bytes; the directory is named by their sha256, the file keeps
                               its published name because some runtimes and humans look at the suffix
    unpacked/<sha256>/         an archive's safely unpacked tree (made only after the archive verified);
                               its .zoo-members.json records each member's sha256, checked before use
    partial/<key>.part         a download in progress; <key>.json beside it holds the URL, ETag and
                               Last-Modified that make a Range resume safe
    locks/<key>.lock           one file lock per artifact, so concurrent fetches download once

`zoo cache ls` and `prune` also cover every other file zoo makes from them under ZOO_HOME and can make again
(MADE): ONNX conversions (converted/<source sha256>/, converted/synthetic/), int8 models (quantized/), derived
cards (derived/), the card catalogs (catalog/) and card-directory caches (card-dirs/).

Which cards use which bytes is the registry's knowledge: callers pass it in as `users`
({sha256: [card ids]}) and `made_for` ({path of a file zoo made: the derived cards whose model it is}), so the
cache never reads the registry.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from zoo import settings
from zoo.artifacts.hashes import hash_file
from zoo.errors import UsageError


MEMBERS_FILE = ".zoo-members.json"  # inside an unpacked tree: {"format": 1, "members": {path: sha256}}


def blob_path(sha256: str, file: str) -> Path:
    return settings.cache_dir() / "sha256" / sha256 / file


def unpacked_dir(sha256: str) -> Path:
    return settings.cache_dir() / "unpacked" / sha256


def partial_paths(key: str) -> tuple[Path, Path]:
    """(part file, its resume metadata) for an artifact key."""
    base = settings.cache_dir() / "partial"
    return base / f"{key}.part", base / f"{key}.json"


def lock_path(key: str) -> Path:
    return settings.cache_dir() / "locks" / f"{key}.lock"


def artifact_key(card_id: str, file: str) -> str:
    """A stable, file-system-safe name for one card's artifact."""
    return hashlib.sha256(f"{card_id}/{file}".encode()).hexdigest()[:32]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install(part: Path, sha256: str, file: str) -> Path:
    """Move verified bytes into the cache atomically: fsync, rename, fsync the directory."""
    with open(part, "rb+") as f:
        # At most rw-r--r--, and no more than the umask allowed when the file was made: the cache never
        # widens access, even if the bytes came from a file only its owner could read.
        os.fchmod(f.fileno(), os.fstat(f.fileno()).st_mode & 0o644)
        os.fsync(f.fileno())
    target = blob_path(sha256, file)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, target)
    fsync_dir(target.parent)
    return target


def tree_problem(root: Path) -> tuple[str, str | None] | None:
    """(member, its actual sha256 or None) of the first member of an unpacked tree that is not the file
    recorded at unpack time (changed, missing, or not recorded at all); None when every member checks out."""
    import json

    try:
        recorded = json.loads((root / MEMBERS_FILE).read_text(encoding="utf-8"))["members"]
    except (OSError, ValueError, KeyError, TypeError):
        return MEMBERS_FILE, None  # unpacked by an older zoo, or tampered with: unpack it again
    present = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if (p.is_file() or p.is_symlink()) and p.name != MEMBERS_FILE}
    for member in sorted(present - set(recorded)):
        return member, None
    for member, sha in sorted(recorded.items()):
        path = root / member
        if path.is_symlink() or not path.is_file():
            return member, None
        actual = hash_file(path).hexdigest()
        if actual != sha:
            return member, actual
    return None


def remove_blob(sha256: str) -> None:
    shutil.rmtree(settings.cache_dir() / "sha256" / sha256, ignore_errors=True)
    shutil.rmtree(unpacked_dir(sha256), ignore_errors=True)


def blobs() -> list[tuple[str, Path]]:
    """(sha256, path) of every cached file."""
    root = settings.cache_dir() / "sha256"
    if not root.is_dir():
        return []
    return [(d.name, f) for d in sorted(root.iterdir()) if d.is_dir() for f in sorted(d.iterdir()) if f.is_file()]


def _files(path: Path) -> list[Path]:
    """A file, or every file under a folder (links left out)."""
    return [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()] if path.is_dir() else [path]


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (0 for what vanished meanwhile)."""
    try:
        return sum(p.lstat().st_size for p in _files(path))
    except OSError:
        return 0


def on_disk() -> int:
    """Bytes of everything `ls` lists, each file counted once: a derived card's model and its cached download
    are one file under two names (a hard link, zoo.artifacts.http)."""
    seen, total = set(), 0
    for path in [path for _, path in blobs()] + [part for record in made() for part in record["parts"]]:
        try:
            for file in _files(path):
                stat = file.lstat()
                if (stat.st_dev, stat.st_ino) not in seen:
                    seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_size
        except OSError:  # vanished meanwhile
            continue
    return total


def made_by_zoo(path: Path) -> bool:
    """Whether a file (links resolved) is a model zoo made under ZOO_HOME: a conversion or an int8 model."""
    path = Path(path).resolve()
    return any(path.is_relative_to(d.resolve()) for d in (settings.converted_dir(), settings.quantized_dir()))


def made() -> list[dict]:
    """Every file zoo made under ZOO_HOME besides the downloads: {kind, path, size, sha256 (the source's, for a
    conversion or an unpacked tree), file, parts (the paths it consists of)}. Kinds: unpacked, partial,
    converted, synthetic, quantized, derived-card, catalog, card-dirs."""
    out = []

    def add(kind, path: Path, parts=None, sha=None):
        parts = parts or [path]
        out.append({"kind": kind, "sha256": sha, "file": path.name, "path": str(path),
                    "size": sum(_size(p) for p in parts), "parts": parts})

    root = settings.cache_dir()
    for tree in sorted((root / "unpacked").glob("*")):
        if tree.is_dir() and not tree.name.startswith("."):
            add("unpacked", tree, sha=tree.name)
    for part in sorted((root / "partial").glob("*.part")):
        add("partial", part, [part, part.with_suffix(".json")])
    converted = settings.converted_dir()
    for model in sorted(converted.glob("*/v*/*.onnx")):
        source = model.parent.parent.name
        synthetic = source == "synthetic"
        add("synthetic" if synthetic else "converted", model, [model, model.with_suffix(".json")],
            None if synthetic else source)
    for model in sorted(settings.quantized_dir().glob("*/model.onnx")):
        add("quantized", model, [model.parent])
    for kind, folder, pattern in (("derived-card", settings.derived_dir(), "*.json"),
                                  ("catalog", settings.catalog_dir(), "*.sqlite"),
                                  ("card-dirs", settings.card_dirs_cache(), "*.json")):
        for path in sorted(folder.glob(pattern)):
            add(kind, path)
    return out


# ---------------------------------------------------------------- zoo cache ls | verify | rm | prune

def ls(users: dict[str, list[str]], made_for: dict[str, list[str]] | None = None) -> list[dict]:
    """Every file zoo keeps that it can make again, sized. Records: kind (`file`: a verified download; else a
    kind of made()), sha256 (a download's; a conversion's or unpacked tree's source), file, path, size, cards
    (the cards that use it), unpacked (a download unpacked)."""
    made_for = made_for or {}
    files = [{"kind": "file", "sha256": sha, "file": path.name, "path": str(path), "size": _size(path),
              "cards": sorted(set(users.get(sha, []))), "unpacked": unpacked_dir(sha).is_dir()}
             for sha, path in blobs()]
    return files + [{**{k: v for k, v in record.items() if k != "parts"}, "unpacked": False,
                     "cards": sorted(set(made_for.get(_key(record), []) or users.get(record["sha256"], [])))}
                    for record in made()]


def _key(record: dict) -> str:
    """A made file as `made_for` names it (links resolved)."""
    return str(Path(record["path"]).resolve())


def verify() -> list[dict]:
    """Re-hash every cached file and every unpacked tree's members; remove what is corrupt.

    A sha256 directory keeps the file whose bytes match its name; a stray file beside it is removed alone.
    A tree whose member changed is removed (the next use unpacks the verified archive again)."""
    report = []
    for sha, path in blobs():
        try:
            actual = hash_file(path).hexdigest()
        except FileNotFoundError:  # removed meanwhile (another zoo cache command)
            continue
        ok = actual == sha
        if not ok:
            siblings = [p for p in path.parent.iterdir() if p != path]
            if any(p.is_file() and hash_file(p).hexdigest() == sha for p in siblings):
                path.unlink(missing_ok=True)  # a stray file: the good one stays
            else:
                remove_blob(sha)
        report.append({"kind": "file", "sha256": sha, "file": path.name, "path": str(path), "ok": ok,
                       "actual": actual, "removed": not ok})
    root = settings.cache_dir() / "unpacked"
    for tree in sorted(root.iterdir()) if root.is_dir() else []:
        if not tree.is_dir() or tree.name.startswith("."):
            continue
        problem = tree_problem(tree)
        member, actual = problem or (None, None)
        if problem:
            shutil.rmtree(tree, ignore_errors=True)
        report.append({"kind": "unpacked", "sha256": tree.name, "file": member, "path": str(tree / (member or "")),
                       "ok": problem is None, "actual": actual, "removed": problem is not None})
    return report


def is_sha_prefix(text: str) -> bool:
    return len(text) >= 6 and all(c in "0123456789abcdef" for c in text.lower())


def rm(targets: dict[str, set[str]]) -> list[dict]:
    """Remove cached files. `targets`: {what the user named: the sha256s (or prefixes of 6+ hex digits) it
    stands for}; a name that matches nothing cached is an error and nothing is removed."""
    cached = blobs()
    removed: dict[str, Path] = {}
    for target, shas in targets.items():
        hits = [(s, p) for s, p in cached if any(s.startswith(x.lower()) for x in shas)]
        if not hits:
            raise UsageError(f"nothing in the cache matches {target!r}", "Run `zoo cache ls` to see what is cached")
        removed.update(hits)
    out = [{"sha256": s, "file": p.name, "path": str(p), "size": p.stat().st_size} for s, p in removed.items()]
    for sha in removed:
        remove_blob(sha)
    return out


def prune(users: dict[str, list[str]], made_for: dict[str, list[str]] | None = None,
          catalog: Path | None = None) -> list[dict]:
    """Remove what zoo can make again and nothing uses: partial downloads (not in progress), orphaned unpacked
    trees, cached files no card uses, ONNX conversions and int8 models no derived card is made of (converted
    again when needed), card-directory caches, and every catalog but `catalog` (the one in use). Records: kind,
    path, size."""
    from filelock import FileLock, Timeout

    made_for = made_for or {}
    root = settings.cache_dir()
    out = []
    for sha, path in blobs():
        if sha not in users:
            out.append({"kind": "unused", "path": str(path), "size": _size(path)})
            remove_blob(sha)
    for record in made():
        kind, path, parts = record["kind"], Path(record["path"]), record["parts"]
        in_use = _key(record) in made_for or (catalog is not None and path.resolve() == Path(catalog).resolve())
        if kind == "derived-card" or in_use:
            continue
        if kind == "unpacked" and (root / "sha256" / path.name).is_dir():
            continue
        # Never a download, conversion or int8 model in progress: skip what another process holds.
        lock = {"partial": lock_path(path.stem), "quantized": path.parent / "lock",
                "converted": convert_lock(path), "synthetic": convert_lock(path)}.get(kind)
        try:
            with FileLock(str(lock), timeout=0) if lock else contextlib.nullcontext():
                for part in parts:
                    if part.is_dir():
                        shutil.rmtree(part, ignore_errors=True)
                    else:
                        part.unlink(missing_ok=True)
        except Timeout:
            continue
        out.append({"kind": "orphaned-unpacked" if kind == "unpacked" else kind, "path": str(path),
                    "size": record["size"]})
    for folder in (settings.converted_dir(), settings.quantized_dir()):  # the folders conversions left empty
        for directory in sorted(folder.glob("**/"), key=lambda d: -len(d.parts)) if folder.is_dir() else []:
            if directory != folder:
                try:
                    directory.rmdir()
                except OSError:
                    pass
    return out


def convert_lock(model: Path) -> Path:
    """The lock zoo.artifacts.convert holds while it makes this model file (prune skips what it holds)."""
    return lock_path("convert-" + artifact_key(str(model.parent), model.stem))
