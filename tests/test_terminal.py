"""Card text never reaches the terminal raw: OSC sequences (title, clipboard), CR, newlines that would forge a line,
8-bit C1 controls and bidirectional overrides from a card are printed escaped by every command, in tables, headings,
notes, errors, YAML and JSON, piped or on a real pseudo-terminal."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from zoo.cli import render

pytestmark = pytest.mark.usefixtures("zoo_home")
CARDS = Path(__file__).resolve().parents[1] / "cards"
REPO = Path(__file__).resolve().parents[1]
OSC_TITLE = "\x1b]0;PWNED-TITLE\x07"
OSC_CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
FORGED = "\r\nzoo: error: forged line"
DEVICE = f"{OSC_TITLE} board{FORGED}"
# What a terminal acts on: C0 but newline, DEL, C1, bidi overrides. CR is checked separately (a pty adds its own).
ACTS = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def hostile_card() -> dict:
    card = yaml.safe_load((CARDS / "coral" / "mobilenet_v2_1.0_224_quant.yaml").read_text())
    card["id"], card["source"], card["name"] = "evil/m", "evil", f"m{OSC_CLIPBOARD}\u202egnp.exe"
    card["notes"] = "note \x9b2J (an 8-bit CSI) \x1b[2J\x1b[H (a clear screen)"
    card["artifacts"][0]["note"] = f"artifact {OSC_TITLE}"
    card["artifacts"][0]["urls"] = ["https://127.0.0.1/\x1b]0;URL-TITLE\x07/m.tflite"]
    card["claims"] = [
        {"metric": "latency_ms", "value": 3.5, "unit": "ms", "device": DEVICE, "runtime": f"rt{OSC_TITLE}",
         "batch": 1, "reference": "https://example.org/bench"},
        {"metric": "top1", "value": 71.0, "unit": "%", "protocol": f"crop{OSC_TITLE}", "note": f"top{FORGED}",
         "reference": "https://example.org/acc"},
    ]
    return card


@pytest.fixture
def evil_dir(tmp_path) -> Path:
    directory = tmp_path / "evil-cards"
    directory.mkdir()
    (directory / "m.yaml").write_text(yaml.safe_dump(hostile_card(), allow_unicode=True))
    return directory


def run_cli(*args: str):
    from typer.testing import CliRunner

    import zoo_cli

    return CliRunner().invoke(zoo_cli.app, list(args))


def assert_escaped(text: str, where: str) -> None:
    assert not ACTS.search(text), f"{where}: {ACTS.search(text).group()!r} reached the terminal: {text[:2000]!r}"
    assert "\r" not in text, f"{where}: a raw CR"
    assert not any(line.startswith("zoo: error: forged") for line in text.splitlines()), f"{where}: a forged line"


COMMANDS = [
    ("compare", "evil/*", "--metric", "latency"),
    ("compare", "evil/*", "--metric", "latency", "--wide"),
    ("compare", "evil/*", "--metric", "accuracy", "--wide"),
    ("compare", "evil/*", "--metric", "latency", "--format", "markdown"),
    ("compare", "evil/*", "--metric", "latency", "--format", "csv"),
    ("list", "evil/*"),
    ("show", "evil/m"),
    ("fetch", "evil/m"),                      # an error naming the card's URL
    ("show", "evil/m\x1b]0;ARG-TITLE\x07"),   # an error echoing what was asked
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:1] + a[2:]))
def test_card_text_is_escaped_in_every_command(evil_dir, args):
    result = run_cli("--registry", str(evil_dir), *args)
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert_escaped(text, f"zoo {' '.join(args)} {name}")
    assert "Traceback" not in result.output


def test_what_was_escaped_is_still_readable(evil_dir):
    compared = run_cli("--registry", str(evil_dir), "compare", "evil/*", "--metric", "latency")
    assert compared.exit_code == 0, compared.output
    assert "\\u001b]0;PWNED-TITLE\\u0007 board\\u000d\\u000azoo: error: forged line" in compared.stdout
    shown = run_cli("--registry", str(evil_dir), "show", "evil/m")
    assert "\\u202e" in shown.stdout and "\\x9B2J" in shown.stdout  # YAML's own escape, then ours: both visible


@pytest.mark.parametrize("args", [("compare", "evil/*", "--metric", "latency", "--json"), ("show", "evil/m", "--json"),
                                  ("list", "evil/*", "--json")])
def test_json_stays_valid_and_holds_the_exact_text(evil_dir, args):
    result = run_cli("--registry", str(evil_dir), *args)
    assert result.exit_code == 0
    assert_escaped(result.stdout, " ".join(args))
    strings, todo = [], [json.loads(result.stdout)]
    while todo:
        item = todo.pop()
        todo += item.values() if isinstance(item, dict) else item if isinstance(item, list) else []
        strings += [item] if isinstance(item, str) else []
    # The \uXXXX escapes decode to the very characters the card holds.
    assert any(OSC_TITLE in text or OSC_CLIPBOARD in text for text in strings)


def test_on_a_real_terminal_rich_output_escapes_card_text(evil_dir, tmp_path):
    """zoo compare in a pseudo-terminal: rich's own styling stays, the card's sequences do not."""
    import pty

    main, sub = pty.openpty()
    env = {**os.environ, "ZOO_REGISTRY": str(evil_dir), "COLUMNS": "160", "LINES": "50", "TERM": "xterm-256color",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", "import zoo_cli; zoo_cli.main()", "compare", "evil/*",
                                "--metric", "latency"], stdin=sub, stdout=sub, stderr=sub, env=env, cwd=tmp_path)
    os.close(sub)
    chunks, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=60)
    os.close(main)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert process.returncode == 0, out
    assert "\x1b]" not in out and "\x07" not in out and "\x9b" not in out  # no OSC, no BEL, no 8-bit CSI
    assert "\\u001b]0;PWNED-TITLE\\u0007" in out  # shown, escaped
    assert not any(line.lstrip().startswith("zoo: error: forged") for line in out.splitlines())


def test_printable_escapes_what_a_terminal_acts_on_and_nothing_else():
    assert render.printable("MobileNetV2 ✓ — 72.0 % · ×2") == "MobileNetV2 ✓ — 72.0 % · ×2"
    assert render.printable("a\x1b]0;t\x07b\r\n\tc\x9b\u202e") == "a\\u001b]0;t\\u0007b\\u000d\n\tc\\u009b\\u202e"
    assert render.printable("a\nb\tc", lines=False) == "a\\u000ab\\u0009c"


def test_an_artifact_file_name_with_control_characters_is_an_invalid_card(tmp_path):
    card = hostile_card()
    card["artifacts"][0]["file"] = "m\x1b]0;x\x07.tflite"
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(card))
    result = run_cli("cards", "lint", str(tmp_path))
    assert result.exit_code == 4 and "without control characters" in result.stderr
    assert_escaped(result.stderr, "cards lint")
