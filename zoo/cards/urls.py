"""Which URLs a card or a registry may name (kept free of pydantic: `zoo list` imports it)."""
from __future__ import annotations

from urllib.parse import urlsplit

from zoo.errors import excerpt


def _is_loopback(host: str) -> bool:
    from zoo.net import LOCAL_NAMES, literal_addresses  # here: only a card with an http URL needs it

    if host.rstrip(".").lower() in LOCAL_NAMES:
        return True
    addresses = literal_addresses(host)  # 127.1, 2130706433, ... as the resolver reads them
    return bool(addresses) and all(a.is_loopback for a in addresses)


def check_url(value: str) -> str:
    """The value when it is a URL zoo may fetch from; ValueError naming the rule otherwise."""
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return value  # loopback mirrors (tests, a local cache server)
    if parts.scheme == "file" and parts.path:
        return value  # a mirror directory
    raise ValueError(f"must be an https URL (http only on loopback, or file://), got {excerpt(value)}")
