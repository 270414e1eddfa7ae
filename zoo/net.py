"""The network side of zoo's HTTP: which addresses a URL may reach, and bounds on how long an answer may take.

Local addresses. A registry added without --allow-local may not point zoo at this machine or its network. Its
card URLs are checked when an index is accepted (is_local_url), with a host read the way the system resolver
reads it: 127.1, 2130706433, 0x7f000001, 0177.0.0.1, 0 and ::ffff:127.0.0.1 are all IP literals to it. They are
checked again when a socket is opened (session(public_only=True)): a host name is resolved and each of its
addresses checked before connecting, then the connected peer itself, so that neither a name that resolves to a
private address nor a redirect to one is reached. Written here, not taken from `advocate` (last released in
2020, for urllib3 1.x); through a proxy, the proxy resolves the name and these checks see only the proxy.

Time. requests bounds each socket operation, not an answer: a server that sends a byte of its headers every few
seconds is never timed out. deadline() shuts a session's sockets down when a block takes longer than it may,
and read_body() gives up on a body that averages less than ZOO_MIN_RATE bytes/s over a ZOO_RATE_WINDOW.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
import weakref
from contextlib import contextmanager
from urllib.parse import urlsplit

from zoo import settings

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
# NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class LocalAddressRefused(OSError):
    """A connection that would reach a loopback, private, link-local or reserved address, refused before any byte
    of the request is sent."""


class TooSlow(OSError):
    """An answer that took longer than its deadline, or a body below the rate floor."""


def literal_addresses(host: str) -> list | None:
    """The addresses an IP literal stands for, read as the system resolver reads it (inet_aton's forms for IPv4,
    IPv6 with or without a zone); None when `host` is a host name."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]


def is_local_address(address) -> bool:
    """Whether an address is not on the public internet: loopback, private, link-local, shared, reserved,
    unspecified or multicast, also when written inside an IPv6 address (mapped, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        teredo = address.teredo
        inner = [address.ipv4_mapped, address.sixtofour, teredo[1] if teredo else None]
        if address in _NAT64:
            inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(a is not None and is_local_address(a) for a in inner):
            return True
    return not address.is_global or address.is_multicast or address.is_reserved


def is_local_host(host: str) -> bool:
    """Whether a URL's host names this machine or a local network without a DNS lookup: localhost names, and IP
    literals in any spelling the resolver accepts."""
    host = (host or "").strip().rstrip(".").lower()
    if not host or host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    # An IPv6 zone comes URL-encoded (fe80::1%25eth0): the address is what precedes it.
    addresses = literal_addresses(host) or literal_addresses(host.split("%", 1)[0])
    return addresses is not None and any(is_local_address(a) for a in addresses)


def is_local_url(url: str) -> bool:
    """A file:// (or any non-http) URL, or one whose host is local (is_local_host); host names are resolved only
    when a socket is opened (session(public_only=True))."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return True
    try:
        host = parts.hostname
    except ValueError:  # a malformed [IPv6] part
        return True
    return is_local_host(host or "")


def refusal(exc: BaseException | None) -> LocalAddressRefused | None:
    """The LocalAddressRefused behind an exception that requests and urllib3 wrapped (in args, reason, cause)."""
    seen, todo = 0, [exc]
    while todo and seen < 32:
        item = todo.pop()
        seen += 1
        if isinstance(item, LocalAddressRefused):
            return item
        if isinstance(item, BaseException):
            todo += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
    return None


def _check(host: str, addresses) -> None:
    local = [str(a) for a in addresses if is_local_address(a)]
    if local:
        raise LocalAddressRefused(f"{host} resolves to {local[0]}, a loopback or private address, and the card's "
                                  "registry was not added with --allow-local")


def _guarded_adapter(sessions_sockets: weakref.WeakSet, public_only: bool):
    """A requests adapter whose connections are checked (public_only) and tracked for deadline()."""
    import requests.adapters
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Checked:
        def _new_conn(self):
            if public_only:
                try:
                    found = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
                except (OSError, UnicodeError):
                    found = []  # urllib3 reports the name that does not resolve
                _check(self._dns_host, [ipaddress.ip_address(f[4][0].split("%")[0]) for f in found])
            sock = super()._new_conn()
            if public_only:  # what was connected, whatever a second lookup answered
                try:
                    _check(self._dns_host, [ipaddress.ip_address(sock.getpeername()[0].split("%")[0])])
                except BaseException:
                    sock.close()
                    raise
            sessions_sockets.add(self)
            return sock

    class CheckedHTTP(Checked, HTTPConnection):
        pass

    class CheckedHTTPS(Checked, HTTPSConnection):
        pass

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = CheckedHTTP

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = CheckedHTTPS

    class Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

    return Adapter()


def session(*, public_only: bool = False):
    """A requests Session (proxies and CA bundle from the environment, as requests does) whose own connections are
    tracked for deadline(); public_only: they may reach only public addresses (LocalAddressRefused)."""
    import requests

    s = requests.Session()
    s.zoo_connections = weakref.WeakSet()
    adapter = _guarded_adapter(s.zoo_connections, public_only)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


@contextmanager
def deadline(session, seconds: float):
    """Shut the session's connections down if the block takes longer than `seconds` (a blocked read then ends);
    yields an Event that is set when that happened."""
    fired = threading.Event()

    def expire():
        fired.set()
        for connection in list(session.zoo_connections):
            sock = getattr(connection, "sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def header_deadline_s() -> float:
    """How long a whole status line and headers may take: the connect and read timeouts together."""
    connect, read = settings.timeouts_s()
    return connect + read


class RateFloor:
    """ZOO_MIN_RATE bytes/s over each ZOO_RATE_WINDOW of a body: check(done) raises TooSlow when the window just
    ended averaged less (a drip whose every byte beats the read timeout; ZOO_MIN_RATE=0: no floor)."""

    def __init__(self, url: str, done: int = 0):
        self.url, (self.min_rate, self.window) = url, settings.min_rate()
        self.mark_time, self.mark_done = time.monotonic(), done

    def check(self, done: int) -> None:
        now = time.monotonic()
        if now - self.mark_time >= self.window:
            rate = (done - self.mark_done) / (now - self.mark_time)
            if rate < self.min_rate:
                raise TooSlow(f"{self.url}: {rate:.0f} bytes/s over the last {now - self.mark_time:.0f} s, below "
                              f"{settings.ENV_MIN_RATE}={self.min_rate:g}")
            self.mark_time, self.mark_done = now, done


def read_body(raw, limit: int, url: str) -> bytes:
    """Up to limit + 1 bytes of a response body (the caller refuses more than limit), above the RateFloor."""
    floor, chunks, done = RateFloor(url), [], 0
    # read1: whatever has arrived, so that the rate is checked even while bytes trickle in; decoded (requests asks
    # for gzip), so the limit bounds what is parsed, as a compressed index's size would not.
    while done <= limit and (chunk := raw.read1(min(65536, limit + 1 - done), decode_content=True)):
        chunks.append(chunk)
        done += len(chunk)
        floor.check(done)
    return b"".join(chunks)
