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
             "top1", "top5", "registry", "artifacts", "shadowed"}
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


def test_compare_latency_shows_one_section_per_footing_and_a_hint():
    result = zoo("compare", "--metric", "latency")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Pixel 1 CPU (large core) · TF-Lite · fp32 · batch 1  (claimed)")
    # one basis in a section: the heading says it; no measurement: no claim beside one
    assert "latency (ms)" in lines[1] and "basis" not in lines[1] and "claimed elsewhere" not in lines[1]
    assert lines[2].split()[:2] == ["1", "tf-slim/mobilenet_v2_0.35_96"]
    v100 = lines.index(next(line for line in lines if line.startswith("NVIDIA V100")))
    assert lines[v100 + 2].split()[0] == "1"  # ranked first within its own footing only
    assert "zoo compare --metric latency --measure" in result.stderr and '--device "rdk x5"' in result.stderr
    assert "have no latency figure on these footings: shown with --wide" in result.stderr
    wide = zoo("compare", "--metric", "latency", "--wide")
    assert "device" in wide.stdout and "precision" in wide.stdout and "no figure" in wide.stdout


def test_compare_a_device_that_matches_nothing_is_one_line():
    result = zoo("compare", "--metric", "latency", "--device", "pixel 9")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "RDK X5 BPU" in result.stderr


@pytest.mark.parametrize("width", [80, 100, 120])
def test_compare_tables_fit_the_terminal_with_ids_whole(width, monkeypatch):
    from rich.console import Console

    from zoo.cli import results as results_cli

    monkeypatch.setattr(results_cli, "console", lambda: Console(width=width))  # a terminal this wide
    monkeypatch.setattr(results_cli, "piped", lambda: False)
    from zoo.results import store
    from zoo.results.records import Run

    store.record(Run(kind="eval", card_id="coral/mobilenet_v2_1.0_224_quant", artifact_file=None,
                     artifact_sha256="7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776", runtime="litert",
                     runtime_version="1", provider=None, threads=None, batch=None, device="host",
                     machine_fingerprint="x", machine={}, dataset={"path": "/d/imagenet-sample", "n_images": 200},
                     metrics={"top1": 83.0, "top5": 95.0, "n": 200, "top1_ci95": [77.2, 87.6]}))
    for metric in ("accuracy", "latency", "fps", "flops", "storage"):
        result = zoo("compare", "--metric", metric)
        out = result.stdout
        assert max(len(line) for line in out.splitlines()) <= width, metric
        assert "…" not in out, metric  # no figure or header cut short: low-value columns are left out instead
        shown = {word for line in out.splitlines() for word in line.split()}
        ranked = {r["id"] for r in json.loads(zoo("compare", "--metric", metric, "--json").stdout) if not r["missing"]}
        assert ranked and ranked <= shown, metric  # every ranked id printed whole on one line
        if metric == "accuracy":  # the longest id (56 characters) beside your top-1, its interval and verdict
            assert ("left out to fit 100 columns: MACs (M)" in result.stderr) == (width == 100)
            # every section keeps the column it ranks by, however narrow the terminal
            headers = [line for line in out.splitlines() if line.startswith(("#", "  #", "   #"))]
            assert headers and all("top-1 %" in line for line in headers), headers
    out = zoo("compare", "--metric", "accuracy", "axis/*", "coral/*").stdout
    assert "83.00†" in out and "too few images" in out
    assert ("77.2–87.6" in out) == (width > 80)  # at 80 columns your interval gives way to the claimed top-1



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
        assert result.stdout.splitlines()[0].replace(" ", "").startswith("|#|id|top-1%|MACs(M)|") 


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
                                         "expires": None, "warnings": []}  # unsigned: no version or expiry
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
    out, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["summary"]["measured"] == ["timm/mobilenetv2_050.lamb_in1k"]
    assert {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "fps", "peak_rss_bytes",
            "environment", "runtime", "run_id", "macs", "params", "size_bytes"} <= set(out)
    assert out["iterations"] == 5 and out["synthetic_weights"] is True
    runs = json.loads(zoo("runs", "--json").stdout)
    assert any(r.get("id") == out["run_id"] or r.get("run_id") == out["run_id"] for r in runs)


def test_inspect_json_keys(coral_dir):
    coral = coral_dir / "mobilenet_v2_1.0_224_quant.tflite"
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
    result = zoo("compare", "--metric", "latency", "--device", "snapdragon", "--plot", str(tmp_path / "f.png"))
    assert result.exit_code == 0 and (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- output paths: checked first, one line

def _one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()  # notes and warnings may come first; the error is one last line
    errors = [line for line in lines if "error" in line.lower()]
    assert errors == [lines[-1]] and lines[-1].startswith("zoo: error:") and "Traceback" not in result.output, \
        result.output
    return lines[-1]


def test_compare_plot_paths_that_cannot_be_written_are_one_line_and_leave_nothing(tmp_path):
    tmp_path = tmp_path / "out"  # beside ZOO_HOME
    tmp_path.mkdir()
    cases = {str(tmp_path): "is a folder", str(tmp_path / "missing" / "f.png"): "does not exist",
             str(tmp_path / ("p" * 300 + ".png")): "File name too long",
             str(tmp_path / ("p" * 250 + ".png")): "too long for the file system",
             "/proc/self/f.png": "cannot write in /proc/self"}
    for path, words in cases.items():
        assert words in _one_error_line(zoo("compare", "--plot", path)), path
    assert list(tmp_path.iterdir()) == [] and not Path(str(tmp_path) + ".png").exists()
    # A bare name gets exactly that name (matplotlib alone would have added ".png"), written atomically.
    assert zoo("compare", "--plot", str(tmp_path / "chart")).exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["chart"] and (tmp_path / "chart").read_bytes()[:4] == b"\x89PNG"


def test_convert_output_is_checked_before_any_download(tmp_path):
    for path, words in [(tmp_path / "missing" / "m.onnx", "does not exist"),
                        (tmp_path / ("m" * 300 + ".onnx"), "File name too long")]:
        line = _one_error_line(zoo("convert", "timm/mobilenetv2_100.ra_in1k", "-o", str(path)))
        assert line.startswith("zoo: error: -o/--output") and words in line


def test_cards_lint_of_an_empty_argument_or_the_whole_disk_is_one_line():
    assert "empty argument" in _one_error_line(zoo("cards", "lint", "", "/"))
    assert "it is not a card directory" in _one_error_line(zoo("cards", "lint", "/"), code=4)


@pytest.mark.parametrize("option", [["--width", "nan"], ["--width", "inf"], ["--width", "-1"], ["--resolution", "0"]])
def test_list_refuses_nonsense_widths_and_resolutions(option):
    assert f"{option[0]} " in _one_error_line(zoo("list", *option))


def test_third_party_warnings_are_one_zoo_line_without_source_lines(tmp_path, sample_dir, synthetic_onnx):
    """Pillow's DecompressionBombWarning and ONNX Runtime's C++ warnings (its own stderr) in a real process."""
    import onnx
    import numpy as np
    from PIL import Image

    model = onnx.load(str(synthetic_onnx()))
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(3, np.float32), "unused_weight"))
    onnx.save(model, str(tmp_path / "unused.onnx"))  # ORT warns that it removes the unused initializer
    data = tmp_path / "data" / "n01440764"
    data.mkdir(parents=True)
    shutil.copy(sample_dir / sorted(p.name for p in sample_dir.glob("n01440764*"))[0], data / "fish.JPEG")
    Image.new("L", (9500, 9500)).save(data / "huge.png")  # 90 M pixels: above Pillow's warning limit
    result = subprocess.run([sys.executable, "-c", "import zoo_cli; zoo_cli.main()", "eval",
                             "timm/mobilenetv2_100.ra_in1k", "--data", str(tmp_path / "data"), "--model",
                             str(tmp_path / "unused.onnx"), "--no-store", "--threads", "1", "--json"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("zoo") for line in lines), lines
    assert "Removing initializer" not in result.stderr and "warnings.warn(" not in result.stderr


def test_a_garbage_archive_is_one_error_line(tmp_path, monkeypatch):
    card = yaml.safe_load((ROOT / "cards" / "openvino" / "mobilenet-v2-1.0-224.yaml").read_text())
    card.update(id="x/garbage", source="x", name="garbage")
    for key in ("size_bytes", "other_hashes"):
        card["artifacts"][0].pop(key, None)  # trusted on first use: the bytes reach the unpacker
    (tmp_path / "cards" / "x").mkdir(parents=True)
    (tmp_path / "cards" / "x" / "garbage.yaml").write_text(yaml.safe_dump(card))
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / card["artifacts"][0]["file"]).write_bytes(b"\x1f\x8b not really gzip" * 300)
    monkeypatch.setenv("ZOO_MIRROR", str(tmp_path / "mirror"))
    line = _one_error_line(zoo("--registry", str(tmp_path / "cards"), "fetch", "x/garbage"), code=5)
    assert "not a readable tar archive" in line


@pytest.mark.parametrize("where, words", [
    ("missing/f.png", "does not exist"),
    (".", "is a folder"),
    ("plain/f.png", "does not exist"),  # a file where the folder should be
])
def test_compare_plot_into_a_bad_place_is_one_line_and_writes_nothing(tmp_path, where, words):
    (tmp_path / "plain").write_text("x")
    target = tmp_path / where if where != "." else tmp_path
    proc = subprocess.run([sys.executable, "-c", "import zoo_cli; zoo_cli.main()", "compare", "--metric", "latency",
                           "--plot", str(target)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    assert proc.stdout == "" and sorted(p.name for p in tmp_path.rglob("*")) == ["plain"]
