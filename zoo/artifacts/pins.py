"""Trust on first use: the sha256 seen on the first download of an artifact whose card has no full sha256.

The pins file (ZOO_HOME/pins.lock.json) is `{"format": 1, "pins": {"<card id>/<file>": {sha256, size,
url, pinned_at}}}`; later downloads must match the pin, and a pin is never overwritten.
"""
from __future__ import annotations

import json
import re
import time

from zoo import settings
from zoo.errors import IntegrityError
from zoo.files import write_json_atomic

PINS_FORMAT = 1


def pin_key(card_id: str, file: str) -> str:
    return f"{card_id}/{file}"


def read_pins() -> dict:
    path = settings.pins_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"pins file {path} is not readable JSON ({exc})",
                             "Fix or delete it; deleting it forgets every pinned sha256") from None
    # Never read as "no pins": that would trust on first use again what was pinned.
    pins = data.get("pins") if isinstance(data, dict) else None
    bad = "is not {\"format\": 1, \"pins\": {...}}" if not isinstance(pins, dict) else next(
        (f"has a malformed pin for {key!r}" for key, value in pins.items()
         if not (isinstance(value, dict) and isinstance(value.get("sha256"), str)
                 and re.fullmatch(r"[0-9a-f]{64}", value["sha256"]))), None)
    if bad:
        raise IntegrityError(f"pins file {path} {bad}",
                             "Fix or delete it; deleting it forgets every pinned sha256") from None
    return pins


def pin(card_id: str, file: str, sha256: str, size: int, url: str) -> None:
    """Record the sha256 of a first download; an existing pin is never overwritten."""
    from filelock import FileLock

    path = settings.pins_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        pins = read_pins()
        pins.setdefault(pin_key(card_id, file), {"sha256": sha256, "size": size, "url": url,
                                                  "pinned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        write_json_atomic(path, {"format": PINS_FORMAT, "pins": pins})


def known_sha256(card_id: str, artifact: dict, pins: dict | None = None) -> tuple[str | None, str | None]:
    """(sha256, where from: 'sha256' on the card or 'pin') for an artifact; (None, None) when unknown."""
    if artifact.get("sha256"):
        return artifact["sha256"], "sha256"
    pinned = (read_pins() if pins is None else pins).get(pin_key(card_id, artifact["file"]))
    if pinned:
        return pinned["sha256"], "pin"
    return None, None
