"""CLI wiring: exit codes, --json keys, one-line errors without tracebacks."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from zoo_cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
LIST_KEYS = {"id", "source", "name", "alias", "width", "depth", "resolution", "num_classes", "params_m", "macs_m",
             "top1", "top5", "registry", "artifacts"}
ARTIFACT_KEYS = {"file", "format", "precision", "runtime", "sha256", "sha256_prefix", "size", "urls"}


def zoo(*args: str):
    return runner.invoke(app, list(args))


def test_list_json_has_the_documented_keys():
    result = zoo("list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) >= 40
    assert {r["source"] for r in rows} >= {"paddleclas", "mindcv", "timm", "rdk"}
    for row in rows:
        assert set(row) == LIST_KEYS
        for artifact in row["artifacts"]:
            assert set(artifact) == ARTIFACT_KEYS
    coral = next(r for r in rows if r["id"] == "coral/mobilenet_v2_1.0_224_quant")
    assert coral["artifacts"][0]["sha256"].startswith("7aad0c74") and coral["artifacts"][0]["size"] == 3610798


def test_list_filters_and_sort():
    rows = json.loads(zoo("list", "*075*", "--sort", "top1", "--json").stdout)
    assert rows and all(r["width"] == 0.75 for r in rows)
    tops = [r["top1"] for r in rows if r["top1"] is not None]
    assert tops == sorted(tops, reverse=True) and rows[-1]["top1"] is None
    rows = json.loads(zoo("list", "--source", "tf-slim", "--width", "0.5", "--resolution", "160", "--json").stdout)
    assert [r["id"] for r in rows] == ["tf-slim/mobilenet_v2_0.5_160"]
    rows = json.loads(zoo("list", "--format", "rdk-hbm", "--json").stdout)
    assert {r["id"] for r in rows} == {"rdk/mobilenetv2_224x224_nv12-s100", "rdk/mobilenetv2_224x224_nv12-s600"}


def test_list_table_is_readable():
    result = zoo("list", "timm/*")
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "width", "res"]
    assert any(line.startswith("timm/mobilenetv2_100.ra_in1k") and "72.91" in line for line in lines)
    assert "7 cards" in result.stderr


def test_show_alias_says_which_card_it_picked():
    result = zoo("show", "mobilenetv2_075", "--json")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["alias"] == "mobilenetv2_075" and shown["card"]["width"] == 0.75
    assert f"picked {shown['card']['id']}" in result.stderr
    assert shown["resolved"]["note"] in result.stderr
    text = zoo("show", "mindcv/mobilenet_v2_075").stdout
    assert text.startswith("# mindcv/mobilenet_v2_075") and "mobilenet_v2_075-bd7bd4c4.ckpt" in text


def test_compare_latency_table_shows_devices_and_marks_missing():
    result = zoo("compare", "--metric", "latency")
    assert result.exit_code == 0
    header, first = result.stdout.splitlines()[:2]
    assert "latency (ms)" in header and "device" in header
    assert "yours" not in header and "claimed on" not in header  # nothing measured yet: no empty columns
    assert first.split()[0] == "1" and "NVIDIA V100" in first
    assert "no latency figure" in result.stderr
    assert result.stdout.splitlines()[-1].split()[0] == "—"


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown"])
def test_compare_formats(fmt):
    result = zoo("compare", "*075*", "--metric", "macs", "--format", fmt, "--top", "3", "--pareto")
    assert result.exit_code == 0
    if fmt == "json":
        rows = json.loads(result.stdout)
        assert [r["rank"] for r in rows] == [1, 2, 3] and "macs_m" in rows[0] and "pareto" in rows[0]
    elif fmt == "csv":
        assert result.stdout.splitlines()[0].startswith("rank,id,source,width,resolution,top1_pct")
        assert len(result.stdout.splitlines()) == 4
    else:
        assert result.stdout.splitlines()[0].replace(" ", "").startswith("|#|id|source|") and "MACs (M)" in result.stdout


def test_cards_lint_names_file_and_field(tmp_path):
    good = yaml.safe_load((ROOT / "cards/coral/mobilenet_v2_1.0_224_quant.yaml").read_text())
    bad = dict(good, width="wide")
    bad["artifacts"] = [dict(good["artifacts"][0], sha256="abc", file="../x.tflite")]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump(dict(good, id="coral/extra", colour="red")))
    result = zoo("cards", "lint", str(tmp_path))
    assert result.exit_code == 4
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"{tmp_path / 'bad.yaml'}: width:") for line in lines)
    assert any(f"{tmp_path / 'bad.yaml'}: artifacts[0].sha256:" in line for line in lines)
    assert any(f"{tmp_path / 'bad.yaml'}: artifacts[0].file:" in line for line in lines)
    assert any(f"{tmp_path / 'extra.yaml'}: colour: Extra inputs" in line for line in lines)
    report = json.loads(zoo("cards", "lint", str(tmp_path), "--json").stdout)
    assert report["valid"] == 0 and len(report["problems"]) == 4


def test_cards_lint_passes_on_the_shipped_cards():
    result = zoo("cards", "lint", str(ROOT / "cards"))
    assert result.exit_code == 0 and "0 problem(s)" in result.stderr


def test_cards_schema_is_json_schema():
    schema = json.loads(zoo("cards", "schema").stdout)
    assert schema["title"] == "Card" and "claims" in schema["properties"]


def test_registry_build_writes_the_index(tmp_path):
    shutil.copytree(ROOT / "cards" / "coral", tmp_path / "cards" / "coral")
    out = tmp_path / "index.json"
    result = zoo("registry", "build", "--cards", str(tmp_path / "cards"), "--out", str(out), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"path": str(out), "cards": 2, "signature": None, "version": None,
                                         "expires": None, "warnings": []}
    assert [c["id"] for c in json.loads(out.read_text())["cards"]] == [
        "coral/mobilenet_v2_1.0_224_quant", "coral/tf2_mobilenet_v2_1.0_224_ptq"]


def test_registry_option_adds_a_directory(tmp_path):
    card = yaml.safe_load((ROOT / "cards/coral/mobilenet_v2_1.0_224_quant.yaml").read_text())
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(dict(card, id="local/requant", source="local")))
    rows = json.loads(zoo("--registry", str(tmp_path), "list", "local/*", "--json").stdout)
    assert [(r["id"], r["registry"]) for r in rows] == [("local/requant", str(tmp_path))]


@pytest.mark.parametrize("args, code, words", [
    (["show", "mobilnetv2_075"], 3, "Did you mean 'mobilenetv2_075'"),
    (["list", "--sort", "speed"], 2, "cannot sort by 'speed'"),
    (["compare", "--metric", "accuracy", "--device", "V100"], 2, "--device applies to latency and fps"),
    (["--registry", "/nonexistent/cards", "list"], 4, "registry directory /nonexistent/cards does not exist"),
    (["compare", "--metric", "speed"], 2, "Invalid value for '--metric'"),
    (["lst"], 2, "No such command 'lst'. Did you mean 'list'?"),
    (["list", "--width", "abc"], 2, "Try 'zoo list --help'"),
])
def test_errors_are_one_line_with_exit_code_and_no_traceback(args, code, words):
    proc = subprocess.run([sys.executable, "-c", "import zoo_cli; zoo_cli.main()", *args],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("zoo: error: "), proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_bench_json_keys_and_stored(tmp_path):
    result = zoo("bench", "timm/mobilenetv2_050.lamb_in1k", "--synthetic-weights", "--iters", "5", "--seconds", "0",
                 "--warmup", "1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "fps", "peak_rss_bytes",
            "environment", "runtime", "run_id", "macs", "params", "size_bytes"} <= set(out)
    assert out["iterations"] == 5 and out["synthetic_weights"] is True
    runs = json.loads(zoo("runs", "--json").stdout)
    assert any(r.get("id") == out["run_id"] or r.get("run_id") == out["run_id"] for r in runs)


def test_inspect_json_keys():
    coral = ROOT.parent / "shared" / "data" / "coral" / "mobilenet_v2_1.0_224_quant.tflite"
    out = json.loads(zoo("inspect", str(coral), "--json").stdout)
    assert {"macs", "params", "size_bytes", "inputs", "outputs"} <= set(out)
    assert out["size_bytes"] == 3610798
    text = zoo("inspect", "timm/mobilenetv2_075", "--synthetic-weights").stdout
    assert "MACs 209.07 M" in text and "card: MACs 220.00 M" in text


def test_target_add_ls_rm(tmp_path):
    assert zoo("target", "add", "x5", "--ssh", "root@192.0.2.7", "--runtime", "rdk-bpu").exit_code == 0
    rows = json.loads(zoo("target", "ls", "--json").stdout)
    assert [(t["name"], t["ssh"], t["runtime"], t["port"]) for t in rows] == [("x5", "root@192.0.2.7", "rdk-bpu", 22)]
    again = zoo("target", "add", "x5", "--ssh", "root@192.0.2.7", "--runtime", "rdk-bpu")
    assert again.exit_code == 2 and "exists" in again.stderr
    assert zoo("target", "rm", "x5").exit_code == 0 and json.loads(zoo("target", "ls", "--json").stdout) == []


def test_compare_plot_writes_a_png(tmp_path):
    result = zoo("compare", "--metric", "latency", "--pareto", "--plot", str(tmp_path / "f.png"))
    assert result.exit_code == 0 and (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
