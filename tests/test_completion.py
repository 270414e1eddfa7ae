"""Shell completion through click's protocol, as bash's script calls it: commands, options, card ids, targets."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def complete(*words: str) -> list[str]:
    env = dict(os.environ, COMP_WORDS=" ".join(("zoo",) + words), COMP_CWORD=str(len(words)),
               _ZOO_COMPLETE="complete_bash")
    proc = subprocess.run([sys.executable, "-c", "import zoo_cli; zoo_cli.main()"], env=env, capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("words, expected", [
    (("comp",), {"compare", "completion"}),
    (("compare", "--me"), {"--metric", "--measure"}),
    (("compare", "--metric", "f"), {"flops", "fps"}),
    (("show", "coral/mob"), {"coral/mobilenet_v2_1.0_224_quant"}),
    (("compare", "tf2"), {"axis/tf2_mobilenet_v2_1.0_224_ptq_edgetpu", "coral/tf2_mobilenet_v2_1.0_224_ptq"}),
])
def test_commands_options_and_card_ids_complete(words, expected):
    assert set(complete(*words)) == expected


def test_target_names_complete():
    from zoo.measure import targets

    targets.add("x5-desk", ssh="root@192.0.2.7", runtime="rdk-bpu")
    assert complete("bench", "rdk/mobilenetv2_224x224_nv12-x5", "--target", "x5") == ["x5-desk"]
    assert complete("target", "rm", "") == ["x5-desk"]


@pytest.mark.parametrize("shell, words", [("bash", "complete -o default -F _zoo_completion zoo"),
                                          ("zsh", "#compdef zoo"), ("fish", "complete --command zoo")])
def test_completion_prints_the_shell_script(shell, words):
    proc = subprocess.run([sys.executable, "-c", "import zoo_cli; zoo_cli.main()", "completion", shell],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and words in proc.stdout and "_ZOO_COMPLETE" in proc.stdout
