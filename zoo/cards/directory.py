"""Card directories: find the YAML card files, parse and validate each, and lint a whole tree.

Card files are hostile input: a card file must be a regular file (a symbolic link is refused, so a
card directory cannot make zoo read /etc/shadow), at most MAX_CARD_BYTES, YAML without duplicate keys
or deep nesting, and an error quotes at most a short, escaped excerpt of it.
"""
from __future__ import annotations

import os
from pathlib import Path

from zoo.cards.index import make_index
from zoo.errors import InvalidCardError, excerpt

MAX_CARD_BYTES = 2**20


def natural_key(text: str) -> list:
    """Sort 'x0_5' before 'x1_5', '96' before '128', and widths written as decimals by value: 0.1, 0.25, 0.35,
    0.5 (a decimal read as digits would put 0.5 before 0.25)."""
    import re

    # re.split with one group alternates text and number, so equal positions always compare like with like
    return [float(t) if i % 2 else t.lower() for i, t in enumerate(re.split(r"(\d+(?:\.\d+)?)", text))]


MAX_WALK_ENTRIES = 100_000  # a card tree holds hundreds of files; `zoo cards lint /` must not walk the disk


def _yaml_under(root: Path) -> list[Path]:
    """The *.yaml / *.yml files under root (links not followed into directories), sorted; a folder that is
    unreadable or vanishes during the walk (/proc) is skipped, a tree that is far too big is refused."""
    import os

    found, seen = [], 0
    for folder, dirs, files in os.walk(root):
        seen += len(dirs) + len(files)
        if seen > MAX_WALK_ENTRIES:
            raise InvalidCardError(f"{root} holds more than {MAX_WALK_ENTRIES} files: it is not a card directory",
                                   "Give the directory of cards (e.g. cards/) or card files")
        found += [Path(folder) / name for name in files if name.endswith((".yaml", ".yml"))]
    return sorted(p for p in found if p.is_symlink() or p.is_file())


def card_files(paths: list[Path]) -> list[Path]:
    """Every *.yaml / *.yml file under the given files and directories, sorted (links included, so that
    read_card_file can refuse them by name; rglob does not descend into linked directories)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += _yaml_under(path)
        elif path.is_file() or path.is_symlink():
            found.append(path)
        else:
            raise InvalidCardError(f"{path}: no such file or directory", "Give a card file or a directory of cards")
    return found


def _yaml_loader():
    """yaml's SafeLoader, refusing a key that appears twice in one mapping (YAML would keep the last) and aliases."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            # Cards need no anchors; an alias makes a few bytes stand for an exponential tree ("billion laughs").
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a card",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)):
                    continue  # unhashable keys are refused later: a card's keys are strings
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {str(key)[:40]!r}", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def _read_text(path: Path) -> str:
    """A card file's text: never through a symbolic link, never more than MAX_CARD_BYTES."""
    if path.is_symlink():
        raise InvalidCardError(f"{path}: is a symbolic link (to {os.readlink(path)[:80]!r}); card files must be "
                               "regular files, and zoo does not follow links out of a card directory",
                               "Copy the card into the directory instead of linking it")
    if not path.name.isprintable():
        raise InvalidCardError(f"{path.parent}/{path.name!r}: the file name has a control character or is not UTF-8",
                               "Rename the file")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_CARD_BYTES + 1)
    if len(data) > MAX_CARD_BYTES:
        raise InvalidCardError(f"{path}: larger than {MAX_CARD_BYTES} bytes; a card is a few kilobytes")
    return data.decode("utf-8")


def read_card_file(path: Path) -> dict:
    """Parse and validate one YAML card; returns the normalised card dict."""
    import yaml

    from zoo.cards.schema import validate_card  # here, not at the top: pydantic costs `zoo list` 100+ ms

    try:
        text = _read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise InvalidCardError(f"{path}: cannot read ({reason})") from None
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = str(getattr(exc, "problem", None) or type(exc).__name__)
        raise InvalidCardError(f"{where}: not valid YAML "
                               f"({problem if problem.isprintable() and len(problem) <= 80 else excerpt(problem)})"
                               ) from None
    except RecursionError:
        raise InvalidCardError(f"{path}: not valid YAML (nested too deeply)") from None
    except (ValueError, IndexError, TypeError, OverflowError, KeyError, AttributeError) as exc:
        # PyYAML's own constructors fail this way on some tagged values (`!!float ''`, `!!binary x`).
        raise InvalidCardError(f"{path}: not valid YAML (a value YAML cannot construct: {type(exc).__name__})") from None
    card = validate_card(data, str(path))
    return card.model_dump(mode="json", exclude_none=True)


def lint(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """Validate card files; returns (cards, one line per problem naming file and field)."""
    cards, problems, seen = [], [], {}
    for path in card_files(paths):
        try:
            card = read_card_file(path)
        except InvalidCardError as exc:
            problems += getattr(exc, "lines", [exc.message])
            continue
        folded = card["id"].casefold()  # 'evil/x' and 'evil/X' would be one file on some file systems
        if folded in seen:
            other_id, other = seen[folded]
            same = "" if other_id == card["id"] else f" (as {other_id!r}: ids must differ in more than case)"
            problems.append(f"{path}: id: {card['id']!r} is also the id of {other}{same}")
            continue
        if path.parent.name == card["source"] and path.stem != card["id"].split("/", 1)[1]:
            problems.append(f"{path}: id: file name should be {card['id'].split('/', 1)[1]}.yaml to match the id")
        seen[folded] = (card["id"], path)
        cards.append(card)
    return cards, problems


def _scan(folder: str):
    """(path, stat) of every card file under folder: os.scandir, one stat per file (10,000 cards in ~50 ms).
    A folder that is unreadable or vanishes (/proc) is skipped and a tree far too big is refused, as in lint."""
    import os

    pending, seen = [folder], 0
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                listed = list(entries)
        except OSError:
            continue
        seen += len(listed)
        if seen > MAX_WALK_ENTRIES:
            raise InvalidCardError(f"{folder} holds more than {MAX_WALK_ENTRIES} files: it is not a card directory",
                                   "Give the directory of cards (e.g. cards/) or card files")
        for entry in listed:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.name.endswith((".yaml", ".yml")) and entry.is_file():
                    yield entry.path, entry.stat()
            except OSError:
                continue  # gone or unreadable since it was listed: lint reports a card it cannot read


def stamp(directory: Path) -> str:
    """What a card directory holds, cheaply: every card file's path, size and mtime (and zoo's version)."""
    import hashlib

    from zoo._version import __version__

    lines = sorted(f"{path}\t{status.st_size}\t{status.st_mtime_ns}" for path, status in _scan(str(directory)))
    # surrogateescape: a file name that is not UTF-8 still has a stamp (lint then names the file).
    return hashlib.sha256("\n".join([__version__, *lines]).encode("utf-8", "surrogateescape")).hexdigest()


def lint_cached(directory: Path) -> tuple[list[dict], list[str]]:
    """lint() of one card directory, remembered under ZOO_HOME: while no card file's path, size or mtime
    changes (and zoo's version stays), the directory is not parsed or validated again. Only a directory
    without problems is remembered, so a broken card is reported on every call."""
    import hashlib

    from zoo import settings
    from zoo.files import read_json, write_json_atomic

    directory = Path(directory).resolve()
    current = stamp(directory)
    cache = settings.card_dirs_cache() / (hashlib.sha256(str(directory).encode("utf-8", "surrogateescape"))
                                          .hexdigest()[:32] + ".json")
    remembered = read_json(cache)
    if isinstance(remembered, dict) and remembered.get("stamp") == current:
        return remembered["cards"], []
    cards, problems = lint([directory])
    if not problems:
        try:
            write_json_atomic(cache, {"directory": str(directory), "stamp": current, "cards": cards},
                              indent=None, sort_keys=False)
        except OSError:
            pass  # a read-only ZOO_HOME only costs the next call its validation
    return cards, problems


def build_index(cards_dir: Path, version: int | None = None, expires=None) -> dict:
    """Validate every card under cards_dir and return the index (sorted by id; see make_index)."""
    cards, problems = lint([cards_dir])
    if problems:
        raise InvalidCardError(f"{len(problems)} problem(s) in {cards_dir}: " + "; ".join(problems[:5]))
    cards.sort(key=lambda c: natural_key(c["id"]))
    return make_index(cards, version, expires)
