"""Flat, stable views of a card for `zoo list --json` and tables (no pandas, no pydantic)."""
from __future__ import annotations

from zoo.cards.index import Entry
from zoo.errors import UsageError


def alias(card: dict) -> str:
    """The cross-source variant name: mobilenetv2_<width*100>[d][_<resolution> when not 224]."""
    name = f"mobilenetv2_{round(card['width'] * 100):03d}"
    if card.get("depth", 1.0) != 1.0:
        name += "d"
    return name if card["resolution"] == 224 else f"{name}_{card['resolution']}"


def names(card: dict) -> set[str]:
    """Every lower-case name a card answers to: id, short id, upstream name, alias (and alias_224 at 224)."""
    short = card["id"].split("/", 1)[1]
    out = {card["id"].lower(), short.lower(), card["name"].lower(), alias(card).lower()}
    if card["resolution"] == 224:
        out.add(f"{alias(card)}_224".lower())
    return out


def headline(card: dict, metric: str) -> float | None:
    """The card's best claimed value of a metric for its primary (first) artifact."""
    primary = card["artifacts"][0]["file"] if card.get("artifacts") else None
    values = [c["value"] for c in card.get("claims", [])
              if c["metric"] == metric and c.get("artifact") in (None, primary)]
    if not values:
        return None
    return min(values) if metric == "latency_ms" else max(values)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def artifact_summary(artifact: dict) -> dict:
    return {
        "file": artifact["file"],
        "format": artifact["format"],
        "precision": artifact["precision"],
        "runtime": artifact["runtime"],
        "sha256": artifact.get("sha256"),
        "sha256_prefix": artifact.get("sha256_prefix"),
        "size": artifact.get("size_bytes"),
        "urls": list(artifact["urls"]),
    }


def summarize(entry: Entry) -> dict:
    """The `zoo list --json` record of one card (keys documented in the README)."""
    card = entry.card
    complexity = card.get("complexity", {})
    params, macs = complexity.get("params"), complexity.get("macs")
    return {
        "id": card["id"],
        "source": card["source"],
        "name": card["name"],
        "alias": alias(card),
        "width": card["width"],
        "depth": card.get("depth", 1.0),
        "resolution": card["resolution"],
        "num_classes": card["num_classes"],
        "params_m": _round(params / 1e6 if params else None, 3),
        "macs_m": _round(macs / 1e6 if macs else None, 2),
        "top1": headline(card, "top1"),
        "top5": headline(card, "top5"),
        "registry": entry.registry,
        "artifacts": [artifact_summary(a) for a in card.get("artifacts", [])],
        "shadowed": [dict(s) for s in entry.shadowed],
    }


BRIEF_KEYS = ("id", "width", "resolution", "top1", "top5", "params_m", "macs_m", "registry", "shadowed")
BRIEF_ARTIFACT_KEYS = ("format", "sha256", "size")


def brief(summary: dict) -> dict:
    """The part of a summary a `zoo list` table shows (and sorts by), a third of its size."""
    return {**{k: summary[k] for k in BRIEF_KEYS},
            "artifacts": [{k: a[k] for k in BRIEF_ARTIFACT_KEYS} for a in summary["artifacts"]]}


SORT_KEYS = ("id", "source", "width", "resolution", "params_m", "macs_m", "top1", "top5", "size")


def sort_summaries(rows: list[dict], key: str) -> list[dict]:
    """Sort list records; accuracy sorts best first, missing values always last."""
    if key not in SORT_KEYS:

        raise UsageError(f"cannot sort by {key!r}", f"Use one of: {', '.join(SORT_KEYS)}")
    if key == "id":
        return rows  # the registry already returns natural id order

    def value(row):
        if key == "size":
            return row["artifacts"][0]["size"] if row["artifacts"] else None
        return row[key]

    present = [r for r in rows if value(r) is not None]
    missing = [r for r in rows if value(r) is None]
    present.sort(key=value, reverse=key in ("top1", "top5"))
    return present + missing
