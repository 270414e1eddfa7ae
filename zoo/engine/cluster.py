"""Sweeps on a Ray cluster (the optional `ray` extra): eval shards and whole-node benches as Ray tasks.

Eval: each group of cards sharing preprocessing is split into shards of images; a task evaluates one shard for
every card of its group (each image decoded once) and returns per-image top-5 predictions, which the driver
merges in shard order into one run per card. On its node, a task first loads the validation set from the same
path and checks its fingerprint against the driver's (a shared filesystem is assumed: a node that sees other
data fails the group with one clear line), then fetches and verifies the artifacts into the node's own cache
(ZOO_HOME and mirrors as set on that node). A node lost mid-sweep: Ray runs its tasks again elsewhere
(max_retries); shards are merged by index, so nothing is counted twice and the figures equal a local run's.

Bench: one task per card, asking for every CPU of a node (so no other task shares it), placed round-robin
over the alive nodes; the run records that node's machine, so runs rank per node class.
"""
from __future__ import annotations

import math
import os
import socket
from pathlib import Path

from zoo.errors import DatasetError, UsageError, ZooError, reason

RETRIES = 3  # a task whose node died runs again elsewhere, up to this many times


def connect(address: str | None = None) -> dict:
    """Join the Ray cluster at `address` (else RAY_ADDRESS, else a new local instance); {address, nodes}."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, which is not installed",
                         'Install it with: pip install ".[ray]" (in zoo\'s clone)') from None
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address not in ("auto", "local") and not address.startswith("ray://"):
        _probe(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise UsageError(f"could not join the Ray cluster at {address or 'a new local instance'}: "
                             f"{str(error).splitlines()[0] if str(error) else type(error).__name__}",
                             "Check --ray / RAY_ADDRESS") from None
    return {"address": address or "local", "nodes": len([n for n in ray.nodes() if n["Alive"]])}


# HTTP/2's connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS) answers with a SETTINGS frame.
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
PROBE_S = 3.0  # each step of the probe: connect, a greeting, the answer to HTTP/2's preface


def _probe(address: str) -> None:
    """Refuse, in seconds and naming what answered, an address where no Ray cluster listens: ray.init would
    retry a service that is not Ray (a web server, sshd) for minutes. Ray's GCS speaks gRPC: it says nothing
    first and answers HTTP/2's preface with a SETTINGS frame."""
    host, _, port = address.rpartition(":")
    hint = "Start one with `ray start --head`, or check --ray / RAY_ADDRESS (the head's GCS port, 6379 by default)"
    try:
        conn = socket.create_connection((host or "127.0.0.1", int(port)), timeout=PROBE_S)
    except (OSError, ValueError):
        raise UsageError(f"no Ray cluster answers at {address}", hint) from None
    with conn:
        try:
            conn.settimeout(0.5)
            greeting = conn.recv(200)  # a service that speaks first (SSH, SMTP, ...) is not Ray
        except socket.timeout:
            greeting = None
        except OSError:
            greeting = b""
        answer = greeting
        if greeting is None:
            try:
                conn.settimeout(PROBE_S)
                conn.sendall(HTTP2_HELLO)
                answer = conn.recv(200)
            except (socket.timeout, OSError):
                answer = b""
    if answer is not None and len(answer) >= 9 and answer[3] == 0x04:
        return  # an HTTP/2 (gRPC) server: let Ray join it
    said = answer.decode("ascii", "replace").strip().splitlines()[0][:60] if answer and answer.strip() else ""
    what = f"a service that is not Ray answers there (it said {said!r})" if said else \
        "a service that is not Ray answers there (it closed the connection, or said nothing Ray would say)"
    raise UsageError(f"--ray {address}: {what}", hint)


def _node() -> str:
    import ray

    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


def _cause(error: BaseException) -> BaseException:
    """The task's own exception inside Ray's wrapper."""
    return getattr(error, "cause", None) or error


def _eval_shard(cards: list, data: tuple, fingerprint: str, start: int, stop: int, batch: int | None,
                provider: str | None, mirrors) -> dict:
    """On a node: evaluate images [start, stop) of the set for every (card, artifact) of one preprocessing, in
    the same accuracy pass as a local eval (zoo.measure.accuracy.evaluate_group)."""
    from zoo.artifacts.local import local_model
    from zoo.measure import accuracy

    root, labels, limit, *excluded = data
    node = _node()
    dataset = accuracy.load_data(Path(root), Path(labels) if labels else None, limit)
    if excluded and excluded[0]:  # a quantized card's calibration images, left out on the driver too
        dataset = dataset.without(excluded[0])
    if dataset.fingerprint() != fingerprint:
        raise DatasetError(f"node {node} sees different images at {root} than the driver (dataset fingerprint "
                           "differs)", "Give every node the same data at the same path (a shared filesystem)")
    members = [(card, local_model(card, artifact, mirrors=mirrors)) for card, artifact in cards]  # verified here
    done, outcomes = accuracy.evaluate_group(members, dataset, batch=batch, workers=1, provider=provider,
                                             threads=1, items=dataset.items[start:stop])
    return {"start": start, "labels": done["labels"], "unreadable": done["unreadable"], "node": node,
            "batch": done["batch"], "wall_s": done["wall_s"],
            "runtimes": [o.get("runtime") for o in outcomes], "top5": [o.get("top5") for o in outcomes],
            "errors": [reason(o["error"]) if "error" in o else None for o in outcomes]}


def eval_group(cards: list, dataset, data: tuple, fingerprint: str, *, batch: int | None, provider: str | None,
               mirrors, advance) -> list[dict]:
    """Per card of one preprocessing group: {figures, runtime, hits} or {error}; figures merged from shards
    (hits: each image's top-1 outcome, in dataset order). `data`: (root, labels, limit[, files left out])."""
    import numpy as np
    import ray

    from zoo.measure import accuracy

    n = len(dataset)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    step = batch or accuracy.CPU_BATCH
    # about two shards per CPU, a whole number of batches each (so batches are the same as a local run's)
    shard = max(step, math.ceil(n / (2 * cpus) / step) * step)
    task = ray.remote(_eval_shard).options(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)
    cards_ref = ray.put(cards)
    refs = {task.remote(cards_ref, data, fingerprint, s, min(s + shard, n), batch, provider, mirrors): s
            for s in range(0, n, shard)}
    results, pending = {}, list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                part = ray.get(ref)
                results[refs[ref]] = part
                advance(sum(len(p["labels"]) + len(p["unreadable"]) for p in results.values()) * len(cards))
    except Exception as error:  # a task failed for its own reason (not a lost node): the group fails with it
        for ref in pending:
            ray.cancel(ref)
        cause = _cause(error)
        return [{"error": cause if isinstance(cause, ZooError) else RuntimeError(reason(cause))} for _ in cards]
    parts = [results[s] for s in sorted(results)]
    labels = [label for p in parts for label in p["labels"]]
    unreadable = [name for p in parts for name in p["unreadable"]]
    wall = max(p["wall_s"] for p in parts)
    nodes = sorted({p["node"] for p in parts})
    out = []
    for i, _ in enumerate(cards):
        errors = [p["errors"][i] for p in parts if p["errors"][i]]
        if errors:
            out.append({"error": RuntimeError(errors[0])})
            continue
        top5 = np.concatenate([p["top5"][i] for p in parts])
        figures, hits = accuracy.figures(labels, top5, unreadable, n, wall, batch=parts[0]["batch"],
                                         workers=len(parts), lanes=cpus, items=dataset.items)
        figures["engine"] = {"name": "ray", "nodes": nodes, "shards": len(parts), "shared_decode": len(cards)}
        out.append({"figures": figures, "runtime": {**parts[0]["runtimes"][i], "threads": 1}, "hits": hits})
    return out


def _bench_card(card: dict, options: dict) -> dict:
    """On a node: time one card (its weights, or synthetic ones) and return the bench result."""
    from zoo.measure import latency
    from zoo.measure.choose import model_to_time

    options.pop("target", None)
    artifact, path, synthetic, note = model_to_time(card, synthetic=options.pop("synthetic"),
                                                    runtime=options.pop("runtime"), mirrors=options.pop("mirrors"))
    result = latency.bench_file(card, path, artifact=artifact, synthetic=synthetic, **options)
    result["note"], result["node"] = note, _node()
    return result


def bench_cards(cards: list[dict], options: dict, done) -> None:
    """Bench each card on a whole node (every CPU of it), round-robin over the alive nodes; done(card, result
    or exception) as each finishes."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
    refs = {}
    for i, card in enumerate(cards):
        node = nodes[i % len(nodes)]
        task = ray.remote(_bench_card).options(
            num_cpus=node["Resources"]["CPU"], max_retries=RETRIES, retry_exceptions=False,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=True))
        refs[task.remote(card, dict(options))] = card
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            try:
                done(refs[ref], ray.get(ref))
            except Exception as error:
                done(refs[ref], _cause(error))
