"""Property-based fuzzing of the CLI's arguments (hypothesis), in-process through zoo_cli.main.

Every generated command line must end in exit 0 or a documented exit code, with an error printed as
exactly one last stderr line starting `zoo: error:`, and never a traceback. The runs are offline
(ZOO_OFFLINE=1: no download), derandomized (the same examples on every run) and bounded: the whole
file takes well under 40 s. Benches time a tiny synthetic model built once.
"""
from __future__ import annotations

import contextlib
import io
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo.errors
import zoo_cli

# 0, click's usage errors (2), Ctrl-C (130), and the code of every ZooError (README "Exit codes").
DOCUMENTED_CODES = {0, 2, 130} | {cls.exit_code for cls in vars(zoo.errors).values()
                                  if isinstance(cls, type) and issubclass(cls, zoo.errors.ZooError)}
FUZZ = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

CARDS = ["coral/mobilenet_v2_1.0_224_quant", "timm/mobilenetv2_075", "mobilenetv2_075", "tf-slim/mobilenet_v2_0.5_160",
         "rdk/mobilenetv2_224x224_nv12-x5", "nosuch/card", "*075*", "timm/*", "", "/", "..", "x@y@z", "a" * 300]
junk_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)
word = st.one_of(st.sampled_from(CARDS), junk_text)
number = st.one_of(st.sampled_from(["nan", "inf", "-inf", "1e400", "-1", "0", "0.5", "1", "3", "100000",
                                    "99999999999999999999", "", "x", "1e-300"]),
                   st.integers(-10, 10**7).map(str), st.floats(allow_nan=True).map(str))
paths = st.sampled_from(["", "/", ".", "/proc/self/zoo", "/nonexistent/x", "/dev/null", "PLOT", "PLOT/missing/x.png",
                         "a" * 300, "FILE_EMPTY", "FILE_GARBAGE"])


def _options(table: dict) -> st.SearchStrategy[list[str]]:
    """Some of the command's options, each with a value from its strategy (None: a flag), in any order."""
    def one(name):
        value = table[name]
        return st.just([name]) if value is None else value.map(lambda v: [name, v])

    return st.lists(st.sampled_from(sorted(table)), max_size=4).flatmap(
        lambda names: st.tuples(*[one(n) for n in names]) if names else st.just(())
    ).map(lambda groups: [token for group in groups for token in group])


def _command(name: list[str], positional, table: dict, extra=st.lists(junk_text, max_size=1)):
    positionals = st.just([]) if positional is None else st.lists(positional, max_size=2)
    return st.tuples(st.just(name), positionals, _options(table), extra).map(
        lambda parts: parts[0] + parts[1] + parts[2] + parts[3])


CHEAP = st.one_of(
    _command(["list"], word, {"--source": word, "--width": number, "--resolution": number, "--format": word,
                              "--sort": st.sampled_from(["id", "top1", "size", "nosuch", ""]), "--json": None}),
    _command(["show"], word, {"--json": None}),
    _command(["compare"], word, {"--metric": st.sampled_from(["accuracy", "latency", "fps", "macs", "nosuch"]),
                                 "--device": word, "--top": number, "--pareto": None,
                                 "--format": st.sampled_from(["table", "csv", "json", "markdown", "x"]),
                                 "--json": None}),
    _command(["fetch"], word, {"-j": number, "--all": None, "--mirror": st.one_of(word, paths),
                               "--require-hashes": None, "--json": None, "-q": None, "--force": None}),
    _command(["inspect"], st.one_of(word, paths), {"--json": None, "--mirror": word}),
    _command(["cards", "lint"], st.sampled_from(["", "/nonexistent", "FILE_EMPTY", "FILE_GARBAGE", "cards/coral"]),
             {"--json": None}),
    _command(["runs"], None, {"--card": word, "--kind": word, "--limit": number, "--json": None}),
    _command(["eval"], word, {"--data": paths, "--labels": paths, "--limit": number, "--batch": number,
                              "--workers": number, "--threads": number, "--provider": word, "--model": paths,
                              "--no-store": None, "--json": None}),
    st.lists(st.one_of(junk_text, st.sampled_from(["--registry", "--version", "--help", "cache", "registry",
                                                    "target", "-x", "--"])), max_size=4),
)
BENCH = _command(["bench", "timm/mobilenetv2_075", "--synthetic-weights", "--seconds", "0"], None,
                 {"--iters": st.sampled_from(["1", "2", "0", "-1", "x", "99999999999999999999999"]),
                  "--warmup": st.sampled_from(["0", "1", "-1", "nan"]), "--batch": number, "--threads": number,
                  "--runtime": word, "--provider": word, "--json": None})


@pytest.fixture
def fuzz_env(zoo_home, tmp_path, monkeypatch):
    """Offline, with a few real files the path strategies name."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    (tmp_path / "plots").mkdir()
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "garbage.onnx").write_bytes(b"\x00garbage\xff" * 50)
    return {"PLOT": str(tmp_path / "plots"), "FILE_EMPTY": str(tmp_path / "empty.onnx"),
            "FILE_GARBAGE": str(tmp_path / "garbage.onnx")}


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """zoo_cli.main() on args, as `zoo ARGS` would run it: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["zoo", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                zoo_cli.main()
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def check(args: list[str], env: dict) -> None:
    args = [env.get(a, a.replace("PLOT", env["PLOT"]) if a.startswith("PLOT") else a) for a in args]
    code, out, err = run_cli(args)  # an exception escaping main() fails the example with its args
    assert "Traceback" not in out + err, (args, err)
    assert code in DOCUMENTED_CODES, (args, code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("zoo: error:")]
    if code == 0:
        assert errors == [], (args, err)
    else:
        assert errors == [lines[-1]], (args, code, err)


@settings(max_examples=120, **FUZZ)
@given(args=CHEAP)
def test_cli_arguments_end_in_a_documented_code_and_one_error_line(fuzz_env, args):
    check(args, fuzz_env)


@settings(max_examples=12, **FUZZ)
@given(args=BENCH)
def test_bench_arguments_end_in_a_documented_code_and_one_error_line(fuzz_env, args):
    check(args, fuzz_env)
