"""A real OpenSSH server on 127.0.0.1 with throwaway keys, for target tests.

The server's sessions see `fake_bin` first on PATH, where tests put stand-ins for board tools
(a `hrt_model_exec` that prints output recorded on a real RDK X5).
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Sshd:
    port: int
    user: str
    client_key: Path
    fake_bin: Path
    log: Path
    pid: int = 0

    def sessions(self) -> list[int]:
        """Every process serving a connection to this server (its per-connection sshd processes and what they
        run): killing them is a connection dropped on the board's side."""
        found, todo = [], [self.pid]
        while todo:
            parent = todo.pop()
            try:
                children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            except OSError:
                continue
            found += map(int, children)
            todo += map(int, children)
        return found

    @property
    def destination(self) -> str:
        return f"{self.user}@127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(workdir: Path):
    """Start sshd; returns (Sshd, Popen). The caller terminates the process."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        raise RuntimeError("sshd is not installed: apt-get install openssh-server (the README's test command does)")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / key)], check=True)
    (workdir / "authorized_keys").write_text((workdir / "client_key.pub").read_text())
    fake_bin = workdir / "bin"
    fake_bin.mkdir()
    port = _free_port()
    config = workdir / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {workdir / 'host_key'}
AuthorizedKeysFile {workdir / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PidFile {workdir / 'sshd.pid'}
SetEnv PATH={fake_bin}:/usr/local/bin:/usr/bin:/bin
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
    log = workdir / "sshd.log"
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=log.open("w"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.terminate()
        raise RuntimeError("sshd did not start listening within 10 s")
    return Sshd(port, getpass.getuser(), workdir / "client_key", fake_bin, log, proc.pid), proc
