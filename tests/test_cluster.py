"""Sweeps on a real Ray cluster on this machine (ray.cluster_utils.Cluster: a head and a worker node): results
equal a local run's, a node removed mid-sweep costs nothing, a node seeing other data fails clearly, benches
run on whole nodes; and the one-line errors when Ray is missing or a cluster does not answer."""
from __future__ import annotations

import os
import sys

import pytest

import zoo
from zoo.errors import DatasetError, UsageError
from zoo.results import store

CORAL = ["coral/mobilenet_v2_1.0_224_quant", "coral/tf2_mobilenet_v2_1.0_224_ptq"]


@pytest.fixture
def images(sample_dir, tmp_path, link_sample):
    return link_sample(tmp_path / "images", sorted(p.name for p in sample_dir.glob("*.JPEG"))[:48])


@pytest.fixture
def cluster(zoo_home, coral_dir, monkeypatch):
    """A head and a worker node of one CPU each; started after ZOO_HOME and the mirror are set, so that every
    node's workers inherit them (each node's cache is this test's)."""
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("ZOO_MIRROR", str(coral_dir))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(zoo.__path__[0].rsplit("/", 1)[0]),
                                                      os.environ.get("PYTHONPATH", "")]))
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = made.add_node(num_cpus=1)
    ray.init(address=made.address, log_to_driver=False, configure_logging=False)
    made.wait_for_nodes()
    try:
        yield made, worker
    finally:
        ray.shutdown()
        made.shutdown()


def test_a_sweep_on_two_nodes_equals_a_local_one_even_when_a_node_is_lost(cluster, images):
    made, worker = cluster
    from zoo.engine.cluster import connect

    assert connect(made.address)["nodes"] == 2  # zoo's check of what answers there lets a real Ray cluster in
    local = zoo.eval_sweep(CORAL, images, store=False)
    removed = []

    def lose_the_worker(event):
        if event["event"] == "advance" and not removed:
            made.remove_node(worker)  # mid-sweep: its tasks run again on the head
            removed.append(event["done"])

    remote = zoo.eval_sweep(CORAL, images, ray=True, progress=lose_the_worker)
    assert removed and remote["measured"] == CORAL and remote["failed"] == []
    for mine, theirs in zip(local["records"], remote["records"]):
        ours, ray_result = mine["result"], theirs["result"]
        assert ray_result["n"] == ours["n"] == 48 and ray_result["unreadable"] == 0  # nothing lost or counted twice
        assert ray_result["per_class"] == ours["per_class"]  # one image per class: the per-image hits agree
        assert (ray_result["top1"], ray_result["top5"]) == (ours["top1"], ours["top5"])
        assert ray_result["engine"]["name"] == "ray" and ray_result["engine"]["nodes"]
    runs = store.list_runs(kind="eval")
    assert sorted(r.card_id for r in runs) == CORAL and all(r.metrics["engine"]["name"] == "ray" for r in runs)
    # resumable on Ray too: the same sweep reuses what is stored
    assert zoo.eval_sweep(CORAL, images, ray=True)["reused"] == CORAL

    # a node that sees other data at the same path: the group fails with one clear line, nothing stored
    from zoo.engine import cluster as engine
    from zoo.measure.accuracy import load_data

    dataset = load_data(images)
    outcome = engine.eval_group([(zoo.get(CORAL[0]), zoo.get(CORAL[0])["artifacts"][0])], dataset,
                                (str(images), None, None), "0" * 64, batch=None, provider=None, mirrors=None,
                                advance=lambda done: None)
    assert isinstance(outcome[0]["error"], DatasetError)
    assert "sees different images at" in outcome[0]["error"].one_line()

    bench = zoo.bench_sweep([CORAL[1]], iters=3, seconds=0, warmup=0, ray=True)
    (record,) = bench["records"]
    assert record["status"] == "measured" and record["result"]["node"] and record["result"]["iterations"] == 3


def test_ray_errors_are_one_line(zoo_home, images, monkeypatch):
    with pytest.raises(UsageError, match="no Ray cluster answers at 127.0.0.1:9"):
        zoo.eval_sweep(CORAL, images, ray="127.0.0.1:9")
    monkeypatch.setitem(sys.modules, "ray", None)  # the extra not installed
    with pytest.raises(UsageError, match="--ray needs Ray, which is not installed"):
        zoo.bench_sweep(CORAL, ray=True)
    assert not store.store_path().exists()
