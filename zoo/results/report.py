"""`zoo report`: one self-contained HTML file (no network: styles inline, plots as base64 PNG).

It holds the ranked tables per footing, the plots, your accuracy beside each claim with its interval and
verdict, each eval's worst classes, and the environment and provenance (artifact sha256, source URL, run ids).
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from zoo._version import __version__
from zoo.errors import UsageError
from zoo.files import write_bytes_atomic
from zoo.results.plots import check_output, render_png
from zoo.results.records import Run

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1.05em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.4em 0 1.2em}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}
th{background:#f4f4f4}td:nth-child(2),th:nth-child(2){text-align:left}img{max-width:100%;border:1px solid #ddd}
.note{color:#555;font-size:.92em}code{background:#f4f4f4;padding:0 3px}a{word-break:break-all}
table.runs td{text-align:left;vertical-align:top}table.runs td:first-child{text-align:right}
"""
SPEED_COLUMNS = ["rank", "id", "top1_pct", "latency_ms", "basis", "batch", "precision", "runtime", "pareto"]
WORST = 5
HEADERS = {"rank": "#", "id": "card", "top1_pct": "claimed top-1 %", "top5_pct": "claimed top-5 %",
           "latency_ms": "latency ms", "top1_measured_pct": "your top-1 %", "top1_ci95_low": "95% low",
           "top1_ci95_high": "95% high", "macs_m": "MACs (M)"}


def _table(df, columns: list[str]) -> str:
    shown = df[[c for c in columns if c in df.columns]].copy()
    for column in shown.columns:
        if shown[column].dtype == "float64":
            shown[column] = shown[column].map(lambda v: "—" if v != v else f"{v:.2f}")
    if "pareto" in shown:
        shown["pareto"] = shown["pareto"].map({True: "★", False: ""})
    shown = shown.astype(object).where(shown.notna(), "—").rename(columns=HEADERS)
    return shown.to_html(index=False, escape=True, border=0)


def _image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _plot(df, metric: str, alt: str) -> str:
    try:
        return _image(render_png(df, metric), alt)
    except UsageError as error:
        return f'<p class="note">{html.escape(error.message)}</p>'


def _worst_classes(run: Run) -> str:
    per_class = sorted((run.metrics.get("per_class") or {}).values(), key=lambda c: (c["top1"], -c["n"], c["name"]))
    if not per_class:
        return ""
    items = "".join(f"<li>{html.escape(c['name'])}: top-1 {c['top1']:.1f}% of {c['n']} image{'s' * (c['n'] != 1)}</li>"
                    for c in per_class[:WORST])
    return f"<ul>{items}</ul>"


def build(*, accuracy, latency, runs: list[Run], cards: dict[str, dict], host: dict, title: str) -> str:
    """The report as HTML text. accuracy/latency: compare tables; runs: every stored run; cards: id -> card."""
    e = html.escape
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{e(title)}</h1>"
             f'<p class="note">zoo {e(__version__)}. Latency is ranked only within one footing (device, batch, '
             "precision, runtime); claims are the sources' figures, measured rows are yours.</p>"]
    parts.append("<h2>Latency, per footing</h2>")
    have = latency[~latency["missing"]]
    for footing, rows in have.groupby("footing", sort=False):
        parts.append(f"<h3>{e(footing)}</h3>{_table(rows, SPEED_COLUMNS)}")
    parts.append(_plot(latency, "latency", "top-1 against latency, one panel per footing"))
    parts.append("<h2>Accuracy</h2>")
    parts.append(_table(accuracy[~accuracy["missing"]], ["rank", "id", "top1_pct", "top5_pct", "top1_measured_pct",
                                                         "top1_ci95_low", "top1_ci95_high", "verdict", "macs_m"]))
    parts.append(_plot(accuracy, "accuracy", "claimed top-1 against multiply-accumulates"))
    evals = [r for r in runs if r.kind == "eval"]
    parts.append("<h2>Claimed against measured</h2>")
    if not evals:
        parts.append('<p class="note">No eval runs yet: <code>zoo eval ID --data DIR</code> records one.</p>')
    measured = accuracy[accuracy["top1_measured_pct"].notna()]
    for row in measured.itertuples(index=False):
        claimed = "—" if row.top1_pct != row.top1_pct else f"{row.top1_pct:.2f}%"
        word = row.verdict if isinstance(row.verdict, str) else "no claimed top-1 to compare"
        run = next((r for r in evals if r.card_id == row.measured_card_id), None)
        borrowed = row.measured_card_id != row.id
        parts.append(
            f"<h3>{e(row.id)}</h3><p>claimed top-1 {claimed}"
            f"; yours {row.top1_measured_pct:.2f}% (95% interval {row.top1_ci95_low:.1f}–{row.top1_ci95_high:.1f}) on "
            f"{e(str(row.measured_dataset))}: <b>{e(word)}</b>"
            + (f". Measured on the same file as {e(row.measured_card_id)}, not on this card" if borrowed else "")
            + (f" (run {run.id})" if run else "") + ".</p>")
        if run is not None and not borrowed:
            worst = _worst_classes(run)
            parts.append(f"<p class=note>Worst classes in this run:</p>{worst}" if worst else "")
    parts.append("<h2>Provenance</h2><table class=runs><tr><th>run</th><th>card</th><th>kind</th><th>artifact sha256</th>"
                 "<th>runtime</th><th>device</th><th>source</th><th>when (UTC)</th></tr>")
    for run in runs:
        source = cards.get(run.card_id, {}).get("repository", "")
        source = f'<a href="{e(source)}">{e(source)}</a>' if source else ""
        parts.append(f"<tr><td>{run.id}</td><td>{e(run.card_id)}</td><td>{run.kind}</td>"
                     f"<td><code>{e(run.artifact_sha256)}</code></td><td>{e(run.runtime)} {e(run.runtime_version)}</td>"
                     f"<td>{e(run.device)}</td><td>{source}</td><td>{e(run.created_at)}</td></tr>")
    parts.append("</table><h2>Environment</h2><table>")
    for key, value in sorted(host.items()):
        parts.append(f"<tr><th>{e(str(key))}</th><td>{e(str(value))}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write(path, text: str) -> Path:
    """The report file, written whole or not at all."""
    return write_bytes_atomic(check_output(path, "-o", suffixes=(".html", ".htm")), text.encode("utf-8"))  # umask
