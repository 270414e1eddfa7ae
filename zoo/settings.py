"""Every environment variable and default path zoo reads, in one place.

Values are read when asked for, never frozen at import: a test (or a user's
shell) that sets ZOO_HOME after import is obeyed.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "ZOO_HOME"            # all user state: cache, lock file, results store, remote registries
ENV_OFFLINE = "ZOO_OFFLINE"      # "1": serve only from the cache, never touch the network
ENV_MIRROR = "ZOO_MIRROR"        # mirrors (base URLs or directories), separated by whitespace or ';'
ENV_REGISTRY = "ZOO_REGISTRY"    # extra card directories, separated by os.pathsep
ENV_DEBUG = "ZOO_DEBUG"          # "1": show tracebacks for errors
# Download tuning; tests shrink these so that fault injection stays fast.
ENV_RETRIES = "ZOO_RETRIES"                  # attempts per URL (default 4)
ENV_BACKOFF = "ZOO_BACKOFF"                  # first retry wait in seconds, doubled each time (default 1)
ENV_MAX_WAIT = "ZOO_MAX_WAIT"                # cap on one wait, Retry-After included (default 60)
ENV_CONNECT_TIMEOUT = "ZOO_CONNECT_TIMEOUT"  # seconds (default 10)
ENV_READ_TIMEOUT = "ZOO_READ_TIMEOUT"        # seconds without a byte before a retry (default 60)
ENV_MAX_UNPACK = "ZOO_MAX_UNPACK_BYTES"      # cap on an archive's unpacked size (default 8 GiB)

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def zoo_home() -> Path:
    """Root of all user state (default: the platform's user cache dir)."""
    value = os.environ.get(ENV_HOME)
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zoo", appauthor=False))


def offline() -> bool:
    return _flag(ENV_OFFLINE)


def debug() -> bool:
    return _flag(ENV_DEBUG)


def mirrors() -> list[str]:
    # Not os.pathsep: on POSIX that is ':', which every URL contains.
    raw = os.environ.get(ENV_MIRROR, "")
    return [m for m in raw.replace(";", " ").split() if m]


def registry_dirs() -> list[Path]:
    raw = os.environ.get(ENV_REGISTRY, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        from .errors import UsageError

        raise UsageError(f"{name}={raw!r} is not a number", f"Set {name} to a number or unset it") from None
    if value < 0:
        from .errors import UsageError

        raise UsageError(f"{name}={raw!r} is negative", f"Set {name} to a number >= 0 or unset it")
    return value


def cache_dir() -> Path:
    """Content-addressed downloads, partial files, unpacked archives and their locks."""
    return zoo_home() / "cache"


def pins_file() -> Path:
    """The trust-on-first-use lock file: sha256 pinned for artifacts whose card has none."""
    return zoo_home() / "pins.lock.json"


def remotes_dir() -> Path:
    """Remote registries: their configuration and the last good copy of each index."""
    return zoo_home() / "registries"


def retries() -> int:
    return max(1, int(_number(ENV_RETRIES, 4)))


def backoff_s() -> float:
    return _number(ENV_BACKOFF, 1.0)


def max_wait_s() -> float:
    return _number(ENV_MAX_WAIT, 60.0)


def timeouts_s() -> tuple[float, float]:
    """(connect, read) timeouts for requests."""
    return _number(ENV_CONNECT_TIMEOUT, 10.0), _number(ENV_READ_TIMEOUT, 60.0)


def max_unpack_bytes() -> int:
    return int(_number(ENV_MAX_UNPACK, 8 * 2**30))


def results_store() -> Path:
    """The SQLite results store: every eval and bench run."""
    return zoo_home() / "results.db"


def targets_file() -> Path:
    """The configured target boards (`zoo target add`)."""
    return zoo_home() / "targets.json"


def known_hosts_file() -> Path:
    """zoo's own SSH known_hosts: a board's host key is pinned on first contact."""
    return zoo_home() / "known_hosts"


def converted_dir() -> Path:
    """ONNX files converted from native weights, by source sha256 and converter version."""
    return zoo_home() / "converted"


def synthetic_dir() -> Path:
    """Architectures built with random weights (`--synthetic-weights`)."""
    return zoo_home() / "synthetic"


def quantized_dir() -> Path:
    """int8 models quantized on the user's calibration images, by what decides their bytes."""
    return zoo_home() / "quantized"
