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
