"""One exception family. Each error carries a one-line message, a hint and an exit code.

Every error is also a subclass of the matching builtin, so callers that only
know Python can still catch it (a missing card is also a LookupError).
"""
from __future__ import annotations


def excerpt(value, limit: int = 60) -> str:
    """A value for a one-line message: escaped (repr), and shortened, so an error never echoes a whole file."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def reason(error: BaseException) -> str:
    """One line saying why something failed: a ZooError's message and hint, else the exception's type and text."""
    return error.one_line() if isinstance(error, ZooError) else f"{type(error).__name__}: {error}"


def brief(text: str, limit: int = 160) -> str:
    """A reason short enough for one line per card: the first line, cut at `limit` characters."""
    lines = str(text).strip().splitlines()
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[:limit - 3] + "..."


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


class HashRequiredError(IntegrityError):
    """--require-hashes and the artifact has no full sha256 on its card or in the pins file."""

    default_hint = "Fetch it once without --require-hashes to pin it, or add its sha256 to the card"


class UnsafeArchiveError(IntegrityError):
    """An archive member would escape its directory, is a device or link out, or the archive is too big."""

    default_hint = "The archive was not unpacked; report the card"


class SignatureError(RegistryError):
    """A remote index whose ed25519 signature is missing or wrong."""

    default_hint = "The last good copy stays in use; check the registry's URL and key"


class DownloadError(ZooError, OSError):
    exit_code = 6


class OfflineError(ZooError, ConnectionError):
    exit_code = 7
    default_hint = "Unset ZOO_OFFLINE, or fetch it first while online"


class UnsupportedArtifactError(ZooError, RuntimeError):
    """A model file that no runtime on this host can run (an RDK .bin, a missing optional runtime)."""

    exit_code = 8
    default_hint = "Pick a card with an .onnx or .tflite artifact (`zoo list --format onnx`)"


class DatasetError(ZooError, ValueError):
    """A validation set zoo cannot read: missing or empty folder, labels that do not match the files."""

    exit_code = 9


class TargetError(ZooError, RuntimeError):
    """A target board could not be reached, logged into, or could not run the model."""

    exit_code = 8
    default_hint = "Check it with `zoo target check NAME`"


class TargetCannotRunError(TargetError, UnsupportedArtifactError):
    """A card or model file the target board cannot run (its runtime, its format): a sweep skips the card, where
    an unreachable board fails it."""


class ConversionError(ZooError, ValueError):
    """Native weights that cannot be turned into ONNX: unreadable, unsafe, or not this architecture."""

    exit_code = 10
    default_hint = "The file was not converted; check that the card describes it, or report the card"


class StorageError(ZooError, OSError):
    """A file zoo writes or keeps cannot be written or read: a full disk, a file-size limit, a read-only place,
    closed or full output, a locked or damaged results store, a damaged state file under ZOO_HOME."""

    exit_code = 11


class RunNotStored(StorageError):
    """A finished measurement the results store could not take; it was kept elsewhere (`kept`: where, or None
    when nowhere could hold it), to be stored by the next command that writes the store."""

    def __init__(self, message: str, hint: str | None = None, *, kept: str | None = None):
        super().__init__(message, hint)
        self.kept = kept


class NothingMeasured(ZooError, RuntimeError):
    """A sweep (eval, bench, quantize) in which no card was measured or reused; each card's reason is in the
    summary it carries."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, *, summary: dict | None = None):
        super().__init__(message, hint)
        self.summary = summary
