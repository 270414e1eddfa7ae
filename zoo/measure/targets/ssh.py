"""Run commands on a board and copy files to it with the OpenSSH client.

OpenSSH rather than a Python SSH library: it honours the user's ssh config, agents and
ProxyJump, and it is what every board's docs assume. BatchMode means a missing key fails
at once instead of prompting; the board's host key is pinned in zoo's own known_hosts.
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zoo import settings
from zoo.errors import TargetError


@dataclass(frozen=True)
class Ssh:
    destination: str          # user@host
    port: int = 22
    identity: str | None = None
    connect_timeout_s: int = 10

    def _options(self) -> list[str]:
        known_hosts = settings.known_hosts_file()
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        options = ["-p", str(self.port), "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}",
                   "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known_hosts}",
                   "-o", "LogLevel=ERROR",
                   # a board that vanishes without closing the connection (power, Wi-Fi) ends it within ~15 s
                   "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if self.identity:
            options += ["-i", str(Path(self.identity).expanduser()), "-o", "IdentitiesOnly=yes"]
        return options

    def run(self, command: str, *, timeout_s: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command on the board; TargetError when ssh itself fails (exit 255)."""
        argv = ["ssh", *self._options(), self.destination, command]
        proc = self._call(argv, timeout_s)
        if proc.returncode == 255:
            raise self.ssh_error(proc.stderr)
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise TargetError(f"{self.destination}: `{command.split()[0]}` failed with exit {proc.returncode}: "
                              f"{detail[-1] if detail else 'no output'}")
        return proc

    def open(self, command: str, stderr) -> subprocess.Popen:
        """Start a long-lived command on the board with binary pipes to its stdin and stdout (a runner);
        `stderr`: a file that collects ssh's and the command's messages."""
        argv = ["ssh", *self._options(), self.destination, command]
        try:
            return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        except FileNotFoundError:
            raise TargetError("the OpenSSH client (ssh) is not installed",
                              "Install it (Debian: apt-get install openssh-client)") from None

    def put(self, local: Path, remote: str, *, timeout_s: float = 600) -> None:
        """Copy a file by streaming it into `cat` on the board: needs neither scp nor an SFTP server there."""
        argv = ["ssh", *self._options(), self.destination, f"cat > {quote(remote)}"]
        with open(local, "rb") as source:
            proc = self._call(argv, timeout_s, stdin=source)
        if proc.returncode == 255:
            raise self.ssh_error(proc.stderr)
        if proc.returncode != 0:
            raise TargetError(f"{self.destination}: cannot write {remote} ({proc.stderr.strip() or 'no detail'})",
                              "Check the board's disk space and permissions")

    def _call(self, argv: list[str], timeout_s: float, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=stdin)
        except FileNotFoundError:
            raise TargetError("the OpenSSH client (ssh) is not installed",
                              "Install it (Debian: apt-get install openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.destination}: no answer within {timeout_s:.0f} s",
                              "Check the board is up, or raise the timeout") from None

    def ssh_error(self, stderr: str) -> TargetError:
        """ssh's own failure (exit 255) as one line saying what to do."""
        text = stderr.strip()
        where = f"{self.destination} port {self.port}"
        if "Permission denied" in text or "Too many authentication failures" in text:
            return TargetError(f"{where}: authentication failed",
                               "Give the key the board accepts with --identity FILE, or add yours to its "
                               "~/.ssh/authorized_keys")
        if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
            return TargetError(f"{where}: the board's host key changed since zoo first connected",
                               f"If the board was reinstalled, remove its line from {settings.known_hosts_file()}")
        last = text.splitlines()[-1] if text else "ssh exited 255"
        return TargetError(f"{where}: unreachable ({last})", "Check the address, port and network")


def quote(path: str) -> str:
    return shlex.quote(path)
