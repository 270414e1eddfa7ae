"""One exception family. Each error carries a one-line message, a hint and an exit code.

Every error is also a subclass of the matching builtin, so callers that only
know Python can still catch it (a missing card is also a LookupError).
"""
from __future__ import annotations


class ZooError(Exception):
    """Base of every error zoo raises on purpose; the CLI prints it as one line."""

    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def one_line(self) -> str:
        return f"{self.message}. {self.hint}" if self.hint else self.message


class CardNotFoundError(ZooError, LookupError):
    exit_code = 3
    default_hint = "Run `zoo list` to see every card"


class InvalidCardError(ZooError, ValueError):
    exit_code = 4
    default_hint = "Fix the card and run `zoo cards lint` on it"


class UsageError(ZooError, ValueError):
    """A bad option value or argument combination."""

    exit_code = 2


class RegistryError(ZooError, RuntimeError):
    exit_code = 4
    default_hint = "Rebuild it with `zoo registry build`"


class IntegrityError(ZooError, ValueError):
    """Downloaded or cached bytes are not the bytes the card promised."""

    exit_code = 5


class DownloadError(ZooError, OSError):
    exit_code = 6


class OfflineError(ZooError, ConnectionError):
    exit_code = 7
    default_hint = "Unset ZOO_OFFLINE, or fetch it first while online"
