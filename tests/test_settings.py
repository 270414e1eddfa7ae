"""Environment variables: every numeric one in its range or one UsageError naming it; ZOO_HOME usable or named."""
from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from zoo import settings
from zoo.errors import UsageError
from zoo_cli import app

NUMERIC = {  # variable: (reader, values that make no sense for it)
    "ZOO_RETRIES": (settings.retries, ["0", "-1", "2.5", "1000"]),
    "ZOO_BACKOFF": (settings.backoff_s, ["-1", "1e9"]),
    "ZOO_MAX_WAIT": (settings.max_wait_s, ["-0.5"]),
    "ZOO_CONNECT_TIMEOUT": (settings.timeouts_s, ["0", "-3"]),
    "ZOO_READ_TIMEOUT": (settings.timeouts_s, ["0", "-3"]),
    "ZOO_MAX_UNPACK_BYTES": (settings.max_unpack_bytes, ["0", "-1", "1.5"]),
    "ZOO_MIN_RATE": (settings.min_rate, ["-1"]),
    "ZOO_RATE_WINDOW": (settings.min_rate, ["0"]),
    "ZOO_MAX_TOFU_BYTES": (settings.max_tofu_bytes, ["0", "-5"]),
    "ZOO_STORE_WAIT": (settings.store_wait_s, ["-1", "1e9"]),
}
NOT_FINITE = ["nan", "inf", "-inf", "1e400", "NaN", "ten", ""]


@pytest.mark.parametrize("name", sorted(NUMERIC))
def test_numeric_variables_reject_nonsense_naming_the_variable_and_range(name, monkeypatch):
    read, bad = NUMERIC[name]
    for value in NOT_FINITE[:-1] + bad:
        monkeypatch.setenv(name, value)
        with pytest.raises(UsageError) as caught:
            read()
        message = caught.value.one_line()
        assert name in message and "out of range" in message and "\n" not in message, (value, message)
        assert caught.value.exit_code == 2
    monkeypatch.setenv(name, "")  # empty: the default
    read()


def test_numeric_variables_accept_sane_values(monkeypatch):
    for name, value in [("ZOO_RETRIES", "7"), ("ZOO_BACKOFF", "0"), ("ZOO_MAX_WAIT", "0.5"),
                        ("ZOO_CONNECT_TIMEOUT", "0.1"), ("ZOO_READ_TIMEOUT", "1e3"), ("ZOO_MAX_UNPACK_BYTES", "1e6"),
                        ("ZOO_MIN_RATE", "0"), ("ZOO_RATE_WINDOW", "5"), ("ZOO_MAX_TOFU_BYTES", "4096")]:
        monkeypatch.setenv(name, value)
    assert settings.retries() == 7 and settings.backoff_s() == 0 and settings.max_wait_s() == 0.5
    assert settings.timeouts_s() == (0.1, 1000.0) and settings.max_unpack_bytes() == 10**6
    assert settings.min_rate() == (0.0, 5.0) and settings.max_tofu_bytes() == 4096


@pytest.mark.parametrize("kind", ["proc", "file", "unwritable"])
def test_an_unusable_zoo_home_is_one_line_from_the_cli(kind, tmp_path, monkeypatch):
    if kind == "proc":
        home = "/proc/self/zoo"
    elif kind == "file":
        (tmp_path / "afile").write_text("x")
        home = str(tmp_path / "afile")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        home = str(locked / "zoo")
        if os.access(locked, os.W_OK):  # root ignores permissions: use a place nobody can create in
            home = "/proc/self/zoo/unwritable"
    monkeypatch.setenv("ZOO_HOME", home)
    for args in (["list"], ["runs"], ["cache", "ls"], ["fetch", "coral/mobilenet_v2_1.0_224_quant"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("zoo: error: ZOO_HOME=") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.output


def test_bad_download_settings_are_one_line_from_fetch(monkeypatch, server, make_card):
    monkeypatch.setenv("ZOO_READ_TIMEOUT", "nan")
    result = CliRunner().invoke(app, ["fetch", "coral/mobilenet_v2_1.0_224_quant"])
    assert result.exit_code == 2 and result.stderr.startswith("zoo: error: ZOO_READ_TIMEOUT='nan' is out of range")
    assert result.stderr.count("\n") == 1
