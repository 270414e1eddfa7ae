"""Hostile weights files of a few bytes to a few megabytes, written by hand (pickle opcodes, zip, protobuf wire
format), are refused by the torch-free readers in well under a second and well under 100 MB, before anything is
allocated for what they declare: pickles whose persistent id or dict key is a list or tuple DAG (exponential to
format or hash), deflate bombs, zero-stride tensors declaring gigabytes, memo bombs, a million tiny tensors.

Each file is read in a subprocess (resource limits keep a runaway off the machine) that reports the error, the
time and its peak RSS above what it had before reading."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from weights_files import ckpt_value, dag, global_, integer, pickle2, state_dict, string, tensor, torch_zip, tup
from zoo.artifacts.convert import builder, readers
from zoo.errors import ConversionError

REPO = Path(__file__).resolve().parents[1]
PLAN = builder.plan_for("timm", 1.0, 1.0, 1000)

PROBE = r"""
import json, resource, sys, time
from pathlib import Path
from zoo.artifacts.convert import builder, readers
from zoo.errors import ConversionError

limits = readers.Limits.for_plan(builder.plan_for("timm", 1.0, 1.0, 1000))
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 3 * 2**30, vm + 3 * 2**30))  # a runaway fails instead of swapping
def peak_kb():  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent that forked this process
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
base = peak_kb()
start = time.perf_counter()
try:
    pairs = readers.read(Path(sys.argv[1]), sys.argv[2], limits=limits)
    error = None
except ConversionError as exc:
    error = exc.one_line()
except MemoryError:
    error = "MemoryError"
seconds = time.perf_counter() - start
print(json.dumps({"error": error, "seconds": seconds, "mb": (peak_kb() - base) / 1024}))
"""


def refusal(path: Path, fmt: str) -> dict:
    """Read `path` in a subprocess; {error, seconds, mb}: the one-line error (None if it was read), the time the
    reading took and the peak RSS it added, in MB."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, str(path), fmt], capture_output=True, text=True,
                              timeout=60, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path.name} was still running after 60 s")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_refused_cheaply(path: Path, fmt: str, words: str) -> dict:
    result = refusal(path, fmt)
    assert result["error"] is not None and words in result["error"], result
    assert "\n" not in result["error"]
    assert result["seconds"] < 1.0 and result["mb"] < 100, result
    return result


def test_a_hand_written_state_dict_reads(tmp_path):
    """The builders above write what the reader takes: a real state dict of one tensor."""
    data = np.arange(6, dtype=np.float32)
    path = torch_zip(tmp_path / "ok.pth", pickle2(state_dict((string("w"), tensor("0", 6, (2, 3), (3, 1))))),
                     {"0": data.tobytes()})
    ((name, array),) = readers.read(path, "pth", limits=readers.Limits.for_plan(PLAN))
    assert name == "w" and array.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_a_persistent_id_that_is_a_list_dag_is_refused_without_formatting_it(tmp_path):
    path = torch_zip(tmp_path / "pid.pth", pickle2(dag(40) + b"Q"))  # str() of it is 2**40 long
    assert_refused_cheaply(path, "pth", "unsupported persistent id (a list, not a torch storage)")


def test_a_list_dag_in_a_state_dict_is_never_walked(tmp_path):
    pkl = pickle2(state_dict((string("w"), tensor("0", 1, (1,), (1,))), (string("junk"), dag(40))))
    path = torch_zip(tmp_path / "walk.pth", pkl, {"0": b"\0\0\0\0"})
    result = refusal(path, "pth")
    assert result["error"] is None and result["seconds"] < 1.0 and result["mb"] < 100, result


def test_a_tuple_dag_as_a_dict_key_is_refused_before_it_is_hashed(tmp_path):
    path = torch_zip(tmp_path / "key.pth", pickle2(b"}" + dag(40, kind=b")") + tensor("0", 1, (1,), (1,)) + b"s"),
                     {"0": b"\0\0\0\0"})
    assert_refused_cheaply(path, "pth", "a dict key in its pickle is a tuple, not a name or a number")


def test_a_deflate_bomb_in_data_pkl_is_refused_from_its_declared_size(tmp_path):
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("archive/data.pkl", "w", force_zip64=True) as member:
            for _ in range(400):
                member.write(bytes(2**20))
    assert path.stat().st_size < 2 * 2**20
    assert_refused_cheaply(path, "pth", "its data.pkl is 419430400 bytes unpacked")


def test_a_deflate_bomb_in_a_storage_is_refused_from_what_the_pickle_declares(tmp_path):
    path = tmp_path / "storage-bomb.pth"
    numel = 100 * 2**20  # 400 MB of float32
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("archive/data.pkl", pickle2(state_dict((string("w"), tensor("0", numel, (1,), (1,))))))
        with zf.open("archive/data/0", "w", force_zip64=True) as member:
            for _ in range(400):
                member.write(bytes(2**20))
    assert_refused_cheaply(path, "pth", "declares more than")


def test_a_zero_stride_tensor_declaring_a_gigabyte_is_refused(tmp_path):
    pkl = pickle2(state_dict((string("w"), tensor("0", 1, (16384, 16384), (0, 0)))))
    path = torch_zip(tmp_path / "stride.pth", pkl, {"0": b"\0\0\0\0"})
    assert_refused_cheaply(path, "pth", "a tensor of 268435456 elements views a storage of 1")


def test_a_zip_of_many_members_is_refused_from_its_end_record(tmp_path):
    path = tmp_path / "members.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle2(state_dict()))
        for i in range(5000):
            zf.writestr(f"archive/data/{i}", b"")
    assert_refused_cheaply(path, "pth", "is a zip of more than")


@pytest.mark.parametrize("body, words", [
    (b"}r\xff\xff\xff\x07", "holds no arrays"),                        # LONG_BINPUT 134217727: a memo array of 1 GB
    (b"\x96" + struct.pack("<Q", 2**40), "its pickle declares more than"),  # BYTEARRAY8 of a terabyte
    (b"\x8e" + struct.pack("<Q", 2**40), "its pickle declares more than"),  # BINBYTES8 of a terabyte
    (b"\x95" + struct.pack("<Q", 2**40), "its pickle declares more than"),  # FRAME of a terabyte
    (global_("numpy.core.multiarray", "_reconstruct") + tup(global_("numpy", "ndarray"), tup(integer(16384),
     integer(16384)), b"C\x01b") + b"R", "other than as numpy pickles it"),  # ndarray((16384, 16384)) allocates
])
def test_tiny_pdparams_bombs_are_refused(tmp_path, body, words):
    path = tmp_path / "bomb.pdparams"
    path.write_bytes(pickle2(body))
    assert path.stat().st_size < 128
    assert_refused_cheaply(path, "pdparams", words)


def test_a_paddle_array_larger_than_its_data_is_refused(tmp_path):
    # ndarray state (version, shape, dtype, fortran, data): shape [16384, 16384] over 4 bytes of data
    dtype = global_("numpy", "dtype") + tup(string("f4"), b"\x89", b"\x88") + b"R" + tup(
        integer(3), string("<"), b"N", b"N", b"N", integer(-1), integer(-1), integer(0)) + b"b"
    array = (global_("numpy.core.multiarray", "_reconstruct") + tup(global_("numpy", "ndarray"), tup(integer(0)),
             b"C\x01b") + b"R" + tup(integer(1), tup(integer(16384), integer(16384)), dtype, b"\x89", b"C\x04\0\0\0\0")
             + b"b")
    path = tmp_path / "big.pdparams"
    path.write_bytes(pickle2(b"}(" + string("w") + array + b"u"))
    assert_refused_cheaply(path, "pdparams", "an array's data does not match its shape")


# ---------------------------------------------------------------- MindSpore .ckpt

def test_a_checkpoint_of_many_tiny_tensors_is_refused_by_what_the_plan_needs(tmp_path):
    path = tmp_path / "many.ckpt"
    path.write_bytes(b"".join(ckpt_value(f"t{i}", [1], b"\0\0\0\0") for i in range(300_000)))
    assert path.stat().st_size > 8 * 2**20
    limits = readers.Limits.for_plan(PLAN)
    result = assert_refused_cheaply(path, "mindspore-ckpt", f"holds more than {limits.tensors} tensors")
    assert f"4 x what {PLAN.name} needs" in result["error"]


def test_a_checkpoint_still_reads_and_a_split_tensor_is_joined(tmp_path):
    data = np.arange(8, dtype=np.float32).tobytes()
    path = tmp_path / "ok.ckpt"
    path.write_bytes(ckpt_value("a", [2, 4], data[:16]) + ckpt_value("a", [2, 4], data[16:]) + ckpt_value("b", [1], data[:4]))
    pairs = readers.read(path, "mindspore-ckpt", limits=readers.Limits.for_plan(PLAN))
    assert [(n, a.shape) for n, a in pairs] == [("a", (2, 4)), ("b", (1,))] and pairs[0][1].ravel().tolist() == list(range(8))


# ---------------------------------------------------------------- safetensors

def test_safetensors_with_more_tensors_than_the_plan_needs_are_refused_before_loading(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "many.safetensors"
    save_file({f"t{i}": np.zeros(1, np.float32) for i in range(3000)}, str(path))
    with pytest.raises(ConversionError, match="holds more than"):
        readers.read(path, "safetensors", limits=readers.Limits.for_plan(PLAN))


def test_a_safetensors_header_declaring_a_terabyte_is_refused(tmp_path):
    path = tmp_path / "header.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(ConversionError, match="its header declares 1099511627776 bytes"):
        readers.read(path, "safetensors", limits=readers.Limits.for_plan(PLAN))
