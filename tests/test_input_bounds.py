"""Files a user or a card names are checked before they are read: a device (/dev/zero), a FIFO, or a 3 GiB file
named .JPEG (sparse: it costs no disk) is refused in one line, or counted unreadable in an eval, without reading
it into memory; the CLI runs in a subprocess that reports its peak RSS."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIG = 3 * 2**30
CORAL_ID = "coral/mobilenet_v2_1.0_224_quant"

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent that forked the process (pytest's own size).
PROBE = r"""
import json, sys
sys.argv = ["zoo", *sys.argv[1:]]
import zoo_cli
code = 0
try:
    zoo_cli.main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 0
finally:
    sys.stdout.flush()
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"code": code, "mb": peak_kb / 1024}), file=sys.stderr)
"""


def zoo_cli(*args: str, env: dict | None = None, timeout: float = 120) -> dict:
    """Run the CLI in a subprocess: {code, mb (its peak RSS), seconds, stdout, stderr (without the probe's line)}."""
    full = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=timeout,
                          env=full, cwd=REPO, preexec_fn=_limit_memory)
    seconds = time.monotonic() - start
    *lines, last = done.stderr.strip().splitlines()
    return {**json.loads(last), "seconds": seconds, "stdout": done.stdout, "stderr": "\n".join(lines)}


def _limit_memory():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))  # a runaway fails instead of taking the machine


@pytest.fixture
def big_jpeg(tmp_path) -> Path:
    path = tmp_path / "n01440764_zero.JPEG"
    with open(path, "wb") as f:
        f.truncate(BIG)  # sparse: 3 GiB of zeros that take no disk
    return path


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "n01440764_fifo.JPEG"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("which", ["/dev/zero", "big", "fifo"])
def test_preprocess_refuses_what_is_not_an_image_file_before_reading_it(tmp_path, big_jpeg, fifo, which):
    image = {"/dev/zero": Path("/dev/zero"), "big": big_jpeg, "fifo": fifo}[which]
    out = tmp_path / "inputs.npz"
    result = zoo_cli("preprocess", CORAL_ID, str(image), "-o", str(out), env={"ZOO_HOME": str(tmp_path / "home")})
    assert result["code"] == 9, result
    reason = {"/dev/zero": "is a character device, not a regular file", "big": f"is {BIG} bytes, more than",
              "fifo": "is a FIFO, not a regular file"}[which]
    assert f"cannot read image {image}: the file {reason}" in result["stderr"], result["stderr"]
    assert len(result["stderr"].strip().splitlines()) == 1 and not out.exists()
    assert result["seconds"] < 30 and result["mb"] < 400, result


def test_eval_counts_a_3_gib_image_unreadable_and_measures_the_rest(tmp_path, big_jpeg, coral_dir, link_sample,
                                                                    sample_dir):
    name = sorted(p.name for p in sample_dir.glob("n01440764_*"))[0]
    data = link_sample(big_jpeg.parent, [name])
    result = zoo_cli("eval", CORAL_ID, "--data", str(data), "--no-store", "--json",
                     env={"ZOO_HOME": str(tmp_path / "home"), "ZOO_MIRROR": str(coral_dir)}, timeout=300)
    assert result["code"] == 0, result
    record = json.loads(result["stdout"].strip().splitlines()[0])
    assert record["n"] == 1 and record["unreadable"] == 1
    assert [Path(f["file"] if isinstance(f, dict) else f).name for f in record["unreadable_files"]] == [big_jpeg.name]
    assert result["mb"] < 1000, result  # the model and its lanes, never the 3 GiB


def test_registry_build_refuses_a_device_or_a_fifo_as_its_key(tmp_path):
    cards, out = REPO / "cards", tmp_path / "site" / "index.json"
    os.mkfifo(tmp_path / "key.fifo")
    for key, words in (("/dev/zero", "is a character device, not a regular file"),
                       (str(tmp_path / "key.fifo"), "is a FIFO, not a regular file")):
        result = zoo_cli("registry", "build", "--cards", str(cards), "--out", str(out), "--sign", key,
                         env={"ZOO_HOME": str(tmp_path / "home")})
        assert result["code"] == 2 and f"cannot read the private key {key} ({key} {words})" in result["stderr"], result
        assert result["seconds"] < 30 and result["mb"] < 400 and not out.exists()


def test_a_public_key_file_that_is_too_big_is_refused(tmp_path):
    from zoo.cards import remote
    from zoo.errors import UsageError

    key = tmp_path / "huge.pub"
    with open(key, "wb") as f:
        f.truncate(BIG)
    with pytest.raises(UsageError, match=f"cannot read {key} .*is {BIG} bytes, more than the 65536"):
        remote.add("acme", "https://example.org/", key=str(key))


def test_a_labels_file_that_is_a_device_or_a_fifo_is_refused(tmp_path, fifo):
    from zoo.errors import DatasetError
    from zoo.measure.datasets import read_labels

    for labels, words in ((Path("/dev/zero"), "a character device"), (fifo, "a FIFO")):
        with pytest.raises(DatasetError, match=f"labels file {labels} is not readable text .*is {words}"):
            read_labels(labels)


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
def test_a_model_file_past_any_mobilenetv2_is_refused_before_a_runtime_reads_it(tmp_path, suffix):
    from zoo.errors import UsageError
    from zoo.measure.complexity import inspect_file
    from zoo.measure.runtimes import open_runtime

    model = tmp_path / f"big{suffix}"
    with open(model, "wb") as f:
        f.truncate(BIG)
    for opening in (inspect_file, open_runtime):
        with pytest.raises(UsageError, match=f"model file {model} is {BIG} bytes, more than"):
            opening(model)
    os.symlink("/dev/zero", tmp_path / f"zero{suffix}")
    with pytest.raises(UsageError, match="is a character device, not a regular file"):
        open_runtime(tmp_path / f"zero{suffix}")
