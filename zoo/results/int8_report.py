"""HTML sections for `zoo report` about int8: the quantization doctor's report on a quantized card, and a bench
run's ONNX Runtime profile. Self-contained (escaped text, plain tables that report.STYLE already styles), so
report.build only has to append them:

    from zoo.measure.doctor import saved
    from zoo.results.int8_report import doctor_section, profile_section
    parts += [doctor_section(report) for report in map(saved, quantized_cards) if report]
    parts += [profile_section(run.card_id, run.metrics["profile"], run.id) for run in runs
              if run.kind == "bench" and run.metrics.get("profile")]
"""
from __future__ import annotations

import html

LAYERS = 10


def _row(cells, header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{html.escape('—' if c is None else str(c))}</{tag}>" for c in cells) + "</tr>"


def _table(headers: list[str], rows: list[list]) -> str:
    return "<table>" + _row(headers, header=True) + "".join(_row(r) for r in rows) + "</table>"


def _num(value, digits: int = 2):
    return None if value is None else f"{value:.{digits}f}"


def doctor_section(report: dict, layers: int = LAYERS) -> str:
    """The doctor's report (zoo.engine.quantize.doctor): the worst layers, each --max-drop try, what became the card."""
    e = html.escape
    o = report["options"]
    parts = [f"<h3>{e(report['id'])}: layer by layer against {e(report['parent'])}</h3>",
             f"<p class=note>{e(o['format'])} ({e(o['activations'])} activations, "
             f"{'per-channel' if o['per_channel'] else 'per-tensor'} {e(o['weights'])} weights), {e(o['method'])}; "
             f"{report['images']} calibration images on this host's int8 kernels. Format: {e(o['reason'])}. "
             "dB lost: the layer's input SQNR less its output's (the noise the layer adds), worst first.</p>",
             _table(["#", "node", "layer", "dB lost", "SQNR dB", "cosine"],
                    [[r["index"], r["node"], r["what"], _num(r["lost_db"], 1), _num(r["sqnr_db"], 1),
                      _num(r["cosine"], 4)] for r in report["layers"][:layers]])]
    if report.get("tries"):
        held = report["held_out"]
        parts.append(f"<p>--max-drop {report['max_drop']:g} points, top-1 on {held['n']} held-out images of "
                     f"{e(str(held['root']))}; speed-up: float p50 / int8 p50 at batch 1, interleaved rounds.</p>")
        parts.append(_table(["try", "layers in float", "top-1 %", "drop (points)", "drop 95% CI", "speed-up"],
                            [[t["try"], ", ".join(t["keep_float"]) or "none", _num(t["top1"]),
                              f"{t['drop_points']:+.2f}",
                              f"{t['drop_ci95'][0]:+.2f} to {t['drop_ci95'][1]:+.2f}" if t.get("drop_ci95") else None,
                              f"{t['speedup']:.2f}x"] for t in report["tries"]]))
        best = report["tries"][report["chosen"]]
        said = "it fits" if report["met"] else "no try fitted: it has the least drop"
        parts.append(f"<p>The card is try {best['try']}: {len(best['keep_float'])} layer(s) in float, drop "
                     f"{best['drop_points']:+.2f} points, {best['speedup']:.2f}x float's speed; {said}.</p>")
    return "\n".join(parts)


def profile_section(card_id: str, profile: dict, run_id: int | None = None, nodes: int = 8) -> str:
    """A bench run's profile (zoo.measure.profile): int8 beside float per operator family, per type, slowest nodes."""
    e = html.escape
    parts = [f"<h3>Where the time goes: {e(card_id)}" + (f" (run {run_id})" if run_id is not None else "") + "</h3>",
             f"<p class=note>ONNX Runtime's profile, {profile['runs']} runs, batch {profile['batch']}, "
             f"{profile.get('threads') or 'default'} thread(s): run {profile['run_ms']:.3f} ms, kernels "
             f"{profile['kernel_ms']:.3f} ms.</p>"]
    if profile.get("vs_float"):
        parts.append(_table(["family", "int8 ms", "float ms", "int8/float"],
                            [[r["family"], _num(r["int8_ms"], 3), _num(r["float_ms"], 3), _num(r["ratio"])]
                             for r in profile["vs_float"]]))
    parts.append(_table(["op", "family", "ms", "share", "calls"],
                        [[r["op"], r["family"], _num(r["ms"], 3), f"{100 * r['share']:.1f}%", r["calls"]]
                         for r in profile["by_op"]]))
    parts.append(_table(["node", "op", "ms", "share", "output"],
                        [[r["node"], r["op"], _num(r["ms"], 3), f"{100 * r['share']:.1f}%",
                          "x".join(map(str, r["output_shape"])) if r.get("output_shape") else None]
                         for r in profile["by_node"][:nodes]]))
    return "\n".join(parts)
