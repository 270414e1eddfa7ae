"""`zoo report`: one self-contained HTML file (no network, no script: styles inline, plots as inline SVG).

It holds the ranked tables per footing (rank ranges where noise cannot separate rows), the plots (each point
named by a hover title), your accuracy beside each claim with its interval and verdict, each eval's worst
classes, and the environment and provenance (artifact sha256, source URL, run ids, what each run was: synthetic
weights, drift during the run, a tie). Everything fits a 1200-px page: long values wrap, links are shortened
with the whole address kept in the link.
"""
from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import urlsplit

from zoo._version import __version__
from zoo.errors import UsageError
from zoo.files import output_file, write_bytes_atomic
from zoo.results.plots import left_out, render_svg
from zoo.results.ranking import CLAIMED_ACCURACY
from zoo.results.records import Run

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1.05em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.4em 0 1.2em;max-width:100%}
td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right;overflow-wrap:anywhere}
th{background:#f4f4f4}td:nth-child(2),th:nth-child(2){text-align:left}svg{max-width:100%;height:auto}
td:first-child{white-space:nowrap}
.note{color:#555;font-size:.92em}code{background:#f4f4f4;padding:0 3px}
table.runs{table-layout:fixed;width:100%}table.runs td{text-align:left;vertical-align:top}
table.runs td:first-child,table.runs th:first-child{text-align:right;width:3em}
.mark{display:inline-block;font-size:.8em;padding:0 4px;margin:1px;border-radius:3px;background:#fde8c8}
"""
SPEED_COLUMNS = ["rank_group", "id", "top1_pct", "latency_ms", "interval", "basis", "precision", "pareto"]
ACCURACY_COLUMNS = {True: ["rank_group", "id", "top1_pct", "top5_pct", "top1_measured_pct", "top1_ci95_low",
                           "top1_ci95_high", "verdict", "macs_m"],
                    False: ["rank_group", "id", "top1_pct", "interval", "top5_pct", "precision", "macs_m"]}
WORST = 5
SUFFIXES = (".html", ".htm")
HEADERS = {"rank_group": "#", "id": "card", "top1_pct": "top-1 %", "top5_pct": "top-5 %", "latency_ms": "latency ms",
           "interval": "95% interval", "top1_measured_pct": "your top-1 %", "top1_ci95_low": "95% low",
           "top1_ci95_high": "95% high", "macs_m": "MACs (M)"}


def _table(df, columns: list[str]) -> str:
    shown = df.copy()
    if "interval" in columns:
        shown["interval"] = [f"{lo:.3g}–{hi:.3g}" if lo == lo and hi == hi else "—"
                             for lo, hi in zip(df.get("ci_low", []), df.get("ci_high", []))] if "ci_low" in df else "—"
    shown = shown[[c for c in columns if c in shown.columns]]
    for column in shown.columns:
        if shown[column].dtype == "float64":
            shown[column] = shown[column].map(lambda v: "—" if v != v else f"{v:.2f}")
    if "pareto" in shown:
        shown["pareto"] = shown["pareto"].map({True: "★", False: ""})
    shown = shown.astype(object).where(shown.notna(), "—").rename(columns=HEADERS)
    return shown.to_html(index=False, escape=True, border=0)


def _plot(df, metric: str) -> str:
    try:
        svg = render_svg(df, metric)
    except UsageError as error:
        return f'<p class="note">{html.escape(error.message)}</p>'
    lost = left_out(df, metric)
    return svg + (f'<p class="note">{html.escape(lost)}</p>' if lost else "")


def _worst_classes(run: Run) -> str:
    per_class = sorted((run.metrics.get("per_class") or {}).values(), key=lambda c: (c["top1"], -c["n"], c["name"]))
    if not per_class:
        return ""
    items = "".join(f"<li>{html.escape(c['name'])}: top-1 {c['top1']:.1f}% of {c['n']} image{'s' * (c['n'] != 1)}</li>"
                    for c in per_class[:WORST])
    return f"<ul>{items}</ul>"


def short_link(url: str, limit: int = 48) -> str:
    """An <a> whose text is the address shortened (host, …, last part) and whose href is the whole address."""
    e = html.escape
    text = url
    if len(url) > limit:
        parts = urlsplit(url)
        last = parts.path.rstrip("/").rsplit("/", 1)[-1]
        last = last if len(last) <= 20 else "…" + last[-12:]  # a commit hash or a long file name
        text = f"{parts.netloc}/…/{last}" if last else parts.netloc
    return f'<a href="{e(url)}" title="{e(url)}">{e(text)}</a>'


def marks(run: Run, ties: set[int]) -> str:
    """What a reader must know about a run: synthetic weights, drift while it was timed, a tie, migrated."""
    found = []
    if run.synthetic_weights:
        found.append("synthetic weights")
    moved = (run.metrics.get("conditions") or {}).get("moved")
    if moved:
        found.append("drift: " + "; ".join(moved))
    if run.id in ties:
        found.append("tie: noise cannot rank it")
    if (run.settings or {}).get("migrated"):
        found.append("recorded by an older zoo")
    return "".join(f'<span class="mark">{html.escape(m)}</span>' for m in found)


def build(*, accuracy, latency, runs: list[Run], cards: dict[str, dict], host: dict, title: str,
          doctors: list[dict] = ()) -> str:
    """The report as HTML text. accuracy/latency: compare tables; runs: every stored run; cards: id -> card;
    doctors: the quantization doctor's reports (zoo.measure.doctor.saved)."""
    from zoo.results.int8_report import doctor_section, profile_section

    e = html.escape
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{e(title)}</h1>"
             f'<p class="note">zoo {e(__version__)}. Figures are ranked only within one footing: latency by device, '
             "provider, runtime, precision, batch and threads; accuracy by the images it was measured on. Claims are "
             "the sources' figures, measured rows are yours; a rank written 2–4 is the range noise leaves a row "
             "(its 95% interval overlaps its neighbours').</p>"]
    parts.append("<h2>Latency, per footing</h2>")
    have = latency[~latency["missing"]]
    for footing, rows in have.groupby("footing", sort=False):
        parts.append(f"<h3>{e(footing)}</h3>{_table(rows, SPEED_COLUMNS)}")
    parts.append(_plot(latency, "latency"))
    parts.append("<h2>Accuracy, per footing</h2>")
    for footing, rows in accuracy[~accuracy["missing"]].groupby("footing", sort=False):
        parts.append(f"<h3>{e(footing)}</h3>{_table(rows, ACCURACY_COLUMNS[footing == CLAIMED_ACCURACY])}")
    parts.append(_plot(accuracy, "accuracy"))
    parts.append('<p class="note">Each point is named by its hover title and in the tables above; only the frontier '
                 "and your measured points are labelled.</p>")
    evals = [r for r in runs if r.kind == "eval"]
    parts.append("<h2>Claimed against measured</h2>")
    if not evals:
        parts.append('<p class="note">No eval runs yet: <code>zoo eval ID --data DIR</code> records one.</p>')
    claimed = accuracy[~accuracy["basis"].str.startswith("measured") & accuracy["top1_measured_pct"].notna()]
    for row in claimed.itertuples(index=False):
        claim = "—" if row.top1_pct != row.top1_pct else f"{row.top1_pct:.2f}%"
        word = row.verdict if isinstance(row.verdict, str) else "no claimed top-1 to compare"
        run = next((r for r in evals if r.card_id == row.measured_card_id), None)
        borrowed = row.measured_card_id != row.id
        parts.append(
            f"<h3>{e(row.id)}</h3><p>claimed top-1 {claim}"
            f"; yours {row.top1_measured_pct:.2f}% (95% interval {row.top1_ci95_low:.1f}–{row.top1_ci95_high:.1f}) on "
            f"{e(str(row.measured_dataset))}: <b>{e(word)}</b>"
            + (f". Measured on the same file as {e(row.measured_card_id)}, not on this card" if borrowed else "")
            + (f" (run {run.id})" if run else "") + ".</p>")
        if run is not None and not borrowed:
            worst = _worst_classes(run)
            parts.append(f"<p class=note>Worst classes in this run:</p>{worst}" if worst else "")
    if doctors:
        parts += ["<h2>Quantization doctor: where int8 loses accuracy</h2>", *map(doctor_section, doctors)]
    profiled = [r for r in runs if r.kind == "bench" and r.metrics.get("profile")]
    if profiled:
        parts += ["<h2>Where the time goes (ONNX Runtime's per-operator profile)</h2>",
                  *(profile_section(r.card_id, r.metrics["profile"], r.id) for r in profiled)]
    ties = {int(run_id) for table in (latency, accuracy) if "tie" in table
            for run_id in table.loc[table["tie"].fillna(False).astype(bool), "run_id"].dropna()}
    parts.append("<h2>Provenance</h2><table class=runs><colgroup><col style='width:3em'><col style='width:18%'>"
                 "<col style='width:4.5em'><col style='width:8em'><col style='width:9%'><col style='width:12%'>"
                 "<col style='width:14%'><col style='width:15%'><col style='width:7em'></colgroup>"
                 "<tr><th>run</th><th>card</th><th>kind</th><th>artifact sha256</th><th>runtime</th><th>device</th>"
                 "<th>source</th><th>notes</th><th>when (UTC)</th></tr>")
    for run in runs:
        source = cards.get(run.card_id, {}).get("repository", "")
        sha = e(run.artifact_sha256)
        parts.append(f"<tr><td>{run.id}</td><td>{e(run.card_id)}</td><td>{run.kind}</td>"
                     f'<td><code title="{sha}">{sha[:12]}…</code></td><td>{e(run.runtime)} {e(run.runtime_version)}'
                     f"</td><td>{e(run.device)}</td><td>{short_link(source) if source else ''}</td>"
                     f"<td>{marks(run, ties)}</td><td>{e(run.created_at.replace('T', ' ')[:19])}</td></tr>")
    parts.append("</table><h2>Environment</h2><table>")
    for key, value in sorted(host.items()):
        parts.append(f"<tr><th>{e(str(key))}</th><td>{e(str(value))}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write(path, text: str) -> Path:
    """The report file, written whole or not at all."""
    return write_bytes_atomic(output_file(path, "-o", suffixes=SUFFIXES), text.encode("utf-8"))  # umask
