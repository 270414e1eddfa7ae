"""Every environment variable and default path zoo reads, in one place.

Values are read when asked for, never frozen at import: a test (or a user's
shell) that sets ZOO_HOME after import is obeyed.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

ENV_HOME = "ZOO_HOME"            # all user state: cache, lock file, results store, remote registries
ENV_OFFLINE = "ZOO_OFFLINE"      # "1": serve only from the cache, never touch the network
ENV_MIRROR = "ZOO_MIRROR"        # mirrors (base URLs or directories), separated by whitespace or ';'
ENV_REGISTRY = "ZOO_REGISTRY"    # extra card directories, separated by os.pathsep
ENV_DEBUG = "ZOO_DEBUG"          # "1": show tracebacks for errors
ENV_COMPLETE = "_ZOO_COMPLETE"   # set by the shell completion script (click's protocol), never by hand
# Download tuning; tests shrink these so that fault injection stays fast.
ENV_RETRIES = "ZOO_RETRIES"                  # attempts per URL (default 4)
ENV_BACKOFF = "ZOO_BACKOFF"                  # first retry wait in seconds, doubled each time (default 1)
ENV_MAX_WAIT = "ZOO_MAX_WAIT"                # cap on one wait, Retry-After included (default 60)
ENV_CONNECT_TIMEOUT = "ZOO_CONNECT_TIMEOUT"  # seconds (default 10)
ENV_READ_TIMEOUT = "ZOO_READ_TIMEOUT"        # seconds without a byte before a retry (default 60)
ENV_MAX_UNPACK = "ZOO_MAX_UNPACK_BYTES"      # cap on an archive's unpacked size (default 8 GiB)
ENV_MIN_RATE = "ZOO_MIN_RATE"                # bytes/s a download must average over ZOO_RATE_WINDOW (default 4096)
ENV_RATE_WINDOW = "ZOO_RATE_WINDOW"          # seconds over which ZOO_MIN_RATE is measured (default 30)
ENV_MAX_TOFU = "ZOO_MAX_TOFU_BYTES"          # cap on a download whose card gives no size nor sha256 (default 1 GiB)
ENV_STORE_WAIT = "ZOO_STORE_WAIT"            # seconds to wait for a results store another process holds (default 30)

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def zoo_home() -> Path:
    """Root of all user state (default: the platform's user cache dir), created on first use.

    A ZOO_HOME that is a file, cannot be created (/proc/self/zoo) or is not writable is a UsageError
    naming the variable, not a traceback from whichever command first writes there.
    """
    value = os.environ.get(ENV_HOME)
    if value:
        home = Path(value).expanduser()
    else:
        import platformdirs

        home = Path(platformdirs.user_cache_dir("zoo", appauthor=False))
    try:
        if not home.is_dir():
            home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file, /proc/self/zoo, a name longer than the file system allows
        _bad_home(home, value, exc.strerror or type(exc).__name__)
    if not os.access(home, os.W_OK | os.X_OK):
        _bad_home(home, value, "not writable")
    return home


def _bad_home(home: Path, value: str | None, why: str):
    from .errors import UsageError, excerpt

    name = f"{ENV_HOME}={excerpt(value)}" if value else f"{ENV_HOME} (default {home})"
    raise UsageError(f"{name} cannot hold zoo's files: {why}",
                     f"Set {ENV_HOME} to a writable directory (it is created when missing)")


def offline() -> bool:
    return _flag(ENV_OFFLINE)


def debug() -> bool:
    return _flag(ENV_DEBUG)


def completing() -> bool:
    """True while a shell asks for completions (`zoo completion SHELL` installs the script that sets it)."""
    return bool(os.environ.get(ENV_COMPLETE))


def mirrors() -> list[str]:
    # Not os.pathsep: on POSIX that is ':', which every URL contains.
    raw = os.environ.get(ENV_MIRROR, "")
    return [m for m in raw.replace(";", " ").split() if m]


def registry_dirs() -> list[Path]:
    raw = os.environ.get(ENV_REGISTRY, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _number(name: str, default: float, low: float, high: float, *, above: bool = False,
            whole: bool = False) -> float:
    """The variable as a finite number in [low, high] (above=True: low itself excluded), else one UsageError
    naming the variable and the range: nan, inf, 1e400 and out-of-range values never reach a socket or a sleep."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value > low if above else value >= low) and value <= high
            and (not whole or value.is_integer())):
        from .errors import UsageError

        kind = "a whole number" if whole else "a number"
        bounds = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"
        raise UsageError(f"{name}={raw!r} is out of range: it must be {kind} {bounds}",
                         f"Set {name} to {kind} {bounds}, or unset it for the default ({default:g})")
    return value


def cache_dir() -> Path:
    """Content-addressed downloads, partial files, unpacked archives and their locks."""
    return zoo_home() / "cache"


def card_dirs_cache() -> Path:
    """Validated cards of each --registry / ZOO_REGISTRY directory, keyed by its files' sizes and mtimes."""
    return zoo_home() / "card-dirs"


def catalog_dir() -> Path:
    """The merged registry as SQLite files (zoo.cards.catalog), rebuilt whenever a source of cards changes."""
    return zoo_home() / "catalog"


def pins_file() -> Path:
    """The trust-on-first-use lock file: sha256 pinned for artifacts whose card has none."""
    return zoo_home() / "pins.lock.json"


def remotes_dir() -> Path:
    """Remote registries: their configuration and the last good copy of each index."""
    return zoo_home() / "registries"


def retries() -> int:
    return int(_number(ENV_RETRIES, 4, 1, 100, whole=True))


def backoff_s() -> float:
    return _number(ENV_BACKOFF, 1.0, 0, 3600)


def max_wait_s() -> float:
    return _number(ENV_MAX_WAIT, 60.0, 0, 86400)


def timeouts_s() -> tuple[float, float]:
    """(connect, read) timeouts for requests; 0 would make every request fail at once."""
    return _number(ENV_CONNECT_TIMEOUT, 10.0, 0, 3600, above=True), _number(ENV_READ_TIMEOUT, 60.0, 0, 86400, above=True)


def max_unpack_bytes() -> int:
    return int(_number(ENV_MAX_UNPACK, 8 * 2**30, 0, 2**50, above=True, whole=True))


def min_rate() -> tuple[float, float]:
    """(bytes/s, window s): a download averaging less than that over the last window gives up on that URL.
    ZOO_MIN_RATE=0 turns the check off."""
    return _number(ENV_MIN_RATE, 4096.0, 0, 2**40), _number(ENV_RATE_WINDOW, 30.0, 0, 86400, above=True)


def max_tofu_bytes() -> int:
    """Most bytes read for an artifact whose card states neither size nor sha256 (trusted on first use)."""
    return int(_number(ENV_MAX_TOFU, 2**30, 0, 2**50, above=True, whole=True))


def results_store() -> Path:
    """The SQLite results store: every eval and bench run."""
    return zoo_home() / "results.db"


def store_wait_s() -> float:
    """How long a command waits for a results store that another process holds (locked), before it says so."""
    return _number(ENV_STORE_WAIT, 30.0, 0, 86400)


def targets_file() -> Path:
    """The configured target boards (`zoo target add`)."""
    return zoo_home() / "targets.json"


def known_hosts_file() -> Path:
    """zoo's own SSH known_hosts: a board's host key is pinned on first contact."""
    return zoo_home() / "known_hosts"


def board_evals_dir() -> Path:
    """Evals on a target board in progress: each finished batch's predictions, so a lost connection or a killed
    command goes on from there (zoo.measure.targets.evaluate)."""
    return zoo_home() / "board-evals"


def converted_dir() -> Path:
    """ONNX files converted from native weights or .tflite models (and synthetic weights), by source sha256 and
    converter version."""
    return zoo_home() / "converted"


def derived_dir() -> Path:
    """Derived cards (`zoo convert --dequantize`), one JSON card per file: the registry "derived"."""
    return zoo_home() / "derived"


def quantized_dir() -> Path:
    """int8 models quantized on the user's calibration images, by what decides their bytes."""
    return zoo_home() / "quantized"
