"""Where a target board's accuracy disagrees with the host's beyond noise: an eval run on a board and the host's
eval run of the same file (artifact sha256) on the same images (dataset fingerprint), compared image by image
(each run's `per_image`, zoo.measure.accuracy.pack_per_image) with McNemar's exact test. The same int8 file can
score differently on other hardware (rounding in integer kernels, another runtime or version); this says whether
a difference is larger than the images the two runs happened to disagree on would give by chance.
"""
from __future__ import annotations

ALPHA = 0.05


def on_board(run) -> str | None:
    """The target board an eval run was measured on, or None for the host."""
    return (run.settings or {}).get("target")


def host_run_for(board_run, runs: list):
    """The host's eval of the same file on the same images with per-image predictions: the same card's where there
    is one, else another card's of the same bytes; the same runtime first; newest first (`runs` as
    store.list_runs gives them). None when there is none."""
    candidates = [r for r in runs if r.kind == "eval" and on_board(r) is None and r.metrics.get("per_image")
                  and r.artifact_sha256 == board_run.artifact_sha256
                  and r.dataset_fingerprint == board_run.dataset_fingerprint]
    candidates.sort(key=lambda r: (r.card_id != board_run.card_id, r.runtime != board_run.runtime, -(r.id or 0)))
    return candidates[0] if candidates else None


def compare_runs(board_run, host_run, alpha: float = ALPHA) -> dict:
    """One board run against one host run of the same file on the same images (see board_vs_host for the keys)."""
    from zoo.measure.accuracy import unpack_per_image
    from zoo.measure.quantize import paired_top1

    if board_run.dataset_fingerprint != host_run.dataset_fingerprint:
        raise ValueError("the two runs were not made on the same images (dataset fingerprints differ)")
    board_top1, board_hit, board_read = unpack_per_image(board_run.metrics["per_image"])
    host_top1, host_hit, host_read = unpack_per_image(host_run.metrics["per_image"])
    both = board_read & host_read  # images both sides could read
    paired = paired_top1(host_hit[both], board_hit[both])
    n, host_only, board_only, p_value = paired["n"], paired["first_only"], paired["second_only"], paired["p_value"]
    host_pct, board_pct = paired["first_top1"], paired["second_top1"]
    difference = round(board_pct - host_pct, 3) if n else None
    significant = p_value < alpha
    if not significant:
        verdict = f"the board agrees with the host within noise (p = {p_value:.3g})"
    else:
        verdict = (f"the board scores {'lower' if difference < 0 else 'higher'} than the host beyond noise "
                   f"({difference:+.2f} points, p = {p_value:.3g})")

    def side(run, pct):
        return {"run_id": run.id, "card_id": run.card_id, "device": run.device, "top1": pct,
                "runtime": run.runtime, "runtime_version": run.runtime_version, "provider": run.provider,
                "precision": run.precision}

    return {"card_id": board_run.card_id, "target": on_board(board_run), "artifact_sha256": board_run.artifact_sha256,
            "dataset_fingerprint": board_run.dataset_fingerprint, "dataset": (board_run.dataset or {}).get("path"),
            "n": n, "board": side(board_run, board_pct), "host": side(host_run, host_pct),
            "difference_points": difference, "host_only": host_only, "board_only": board_only,
            "same_top1_pct": round(100 * float((board_top1 == host_top1)[both].mean()), 3) if n else None,
            "p_value": p_value, "alpha": alpha, "significant": significant, "verdict": verdict}


def board_vs_host(runs: list, *, target: str | None = None, card_id: str | None = None,
                  alpha: float = ALPHA) -> list[dict]:
    """For the latest board eval of each (card, target, runtime, file, images) in `runs` (newest first, as
    store.list_runs gives them), its comparison with the host's run of the same file on the same images:

    {card_id, target, artifact_sha256, dataset_fingerprint, dataset (folder), n (images both runs read),
     board: {run_id, card_id, device, top1, runtime, runtime_version, provider, precision}, host: the same or
     None, difference_points (board - host top-1), host_only / board_only (images only that side got right),
     same_top1_pct (images with the same top-1 class), p_value (McNemar, exact, two-sided), alpha,
     significant (p_value < alpha), verdict (one line)}.

    Without a host run of the same file on the same images (or a run recorded before per-image predictions
    were kept), host, n and the figures are None and the verdict says so."""
    rows, seen = [], set()
    for run in runs:
        where = on_board(run)
        if run.kind != "eval" or where is None or (target and where != target) or (card_id and run.card_id != card_id):
            continue
        key = (run.card_id, where, run.runtime, run.artifact_sha256, run.dataset_fingerprint)
        if key in seen:
            continue
        seen.add(key)
        host = host_run_for(run, runs) if run.metrics.get("per_image") else None
        if host is not None:
            rows.append(compare_runs(run, host, alpha))
            continue
        rows.append({"card_id": run.card_id, "target": where, "artifact_sha256": run.artifact_sha256,
                     "dataset_fingerprint": run.dataset_fingerprint, "dataset": (run.dataset or {}).get("path"),
                     "n": None, "board": {"run_id": run.id, "card_id": run.card_id, "device": run.device,
                                          "top1": run.top1, "runtime": run.runtime,
                                          "runtime_version": run.runtime_version, "provider": run.provider,
                                          "precision": run.precision},
                     "host": None, "difference_points": None, "host_only": None, "board_only": None,
                     "same_top1_pct": None, "p_value": None, "alpha": alpha, "significant": None,
                     "verdict": _missing(run)})
    return rows


def _missing(run) -> str:
    if not run.metrics.get("per_image"):
        return "recorded before per-image predictions were kept: evaluate it again to compare"
    dataset = run.dataset or {}
    return (f"no host eval of the same file on the same images: zoo eval {run.card_id} --data "
            f"{dataset.get('path', 'DIR')} --limit {dataset.get('n_images', 'N')}")
