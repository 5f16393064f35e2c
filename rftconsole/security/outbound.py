"""Outbound HTTP that a user can aim (judge endpoints today): allow-listed on every connection.

Checking only the configured URL is not enough: a redirect can send the client elsewhere, and a
listed name can resolve (or re-resolve, a moment later) to an address on the private network.
So `guarded_client` returns an `httpx2.Client` that

- never follows redirects (`redirect_target` names where one pointed, for the caller's error);
- ignores proxy environment variables, which would move name resolution out of our hands;
- resolves the host itself, once per new connection, checks every address it got, and connects
  to a checked address (TLS still verifies the certificate for the name, which is also the SNI).

The address rule (`AllowList.address_allowed`): an address may be connected to when

1. it lies in an IP or CIDR entry of the list (e.g. `127.0.0.1`, `::1`, `10.0.0.0/8`), or
2. it is a public (global unicast) address and the host name is listed, or the list has `*`.

So loopback, private, shared (100.64/10), link-local (169.254.169.254, the cloud metadata
service), unique-local, multicast, reserved and unspecified addresses need an IP/CIDR entry;
IPv4 written inside IPv6 (`::ffff:a.b.c.d`, 6to4 `2002::/16`, NAT64 `64:ff9b::/96`) is judged as
the IPv4 address it carries. When any resolved address is refused the whole request is refused:
a name that answers with a mix of good and bad addresses is not to be trusted.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore2
import httpx2
from httpcore2._backends.sync import SyncStream  # the stream httpcore2's own backend returns

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ResolvedAddress = tuple[socket.AddressFamily, tuple[Any, ...]]  # (family, sockaddr)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT: private in practice


class OutboundRefused(httpcore2.ConnectError):
    """The allow-list refused a connection; the message says which host or address and why.

    A `ConnectError`, so httpx2 reports it like any failed connection; callers that want to
    tell it apart (not retry it, say why) find it with `refusal_in`.
    """


def _normal_name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _as_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def carried_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public(address: IPAddress) -> bool:
    """A global unicast address: none of loopback, private, link-local, multicast and the like."""
    address = carried_ipv4(address)
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _SHARED
    )
    return address.is_global and not special


@dataclass(frozen=True)
class AllowList:
    """A parsed allow-list: host names, IP/CIDR entries, and whether `*` is among them."""

    names: frozenset[str]
    networks: tuple[IPNetwork, ...]
    any_name: bool
    setting: str  # named in refusals, so an administrator knows what to change

    @classmethod
    def from_entries(cls, entries: Iterable[str], setting: str) -> AllowList:
        names, networks = set(), []
        for entry in (_normal_name(e) for e in entries if e.strip()):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry)
        return cls(frozenset(names - {"*"}), tuple(networks), "*" in names, setting)

    def listed_address(self, address: IPAddress) -> bool:
        forms = {address, carried_ipv4(address)}
        return any(form in network for form in forms for network in self.networks)

    def name_allowed(self, host: str) -> bool:
        """May a URL name this host? Listed, inside a listed network, or the list has `*`."""
        name = _normal_name(host)
        literal = _as_ip(name)
        if literal is not None and self.listed_address(literal):
            return True
        return self.any_name or name in self.names

    def address_allowed(self, host: str, address: IPAddress) -> bool:
        """May we connect to `address`, which `host` resolved to? See the module's rule."""
        if self.listed_address(address):
            return True
        return is_public(address) and (self.any_name or _normal_name(host) in self.names)


def judge_allow_list() -> AllowList:
    """Where judges may call: `settings.RFT_JUDGE_ALLOWED_HOSTS`, read now."""
    from django.conf import settings

    return AllowList.from_entries(settings.RFT_JUDGE_ALLOWED_HOSTS, "RFT_JUDGE_ALLOWED_HOSTS")


def resolve(host: str, port: int) -> list[ResolvedAddress]:
    """Every address the system resolver gives for `host`, in its order of preference."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise httpcore2.ConnectError(f"cannot resolve {host}: {error}") from None
    return [(family, sockaddr) for family, _, _, _, sockaddr in found]


def _address_of(sockaddr: tuple[Any, ...]) -> IPAddress:
    return ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone id


def checked_addresses(allow: AllowList, host: str, port: int) -> list[ResolvedAddress]:
    """`host` resolved once, every address checked; `OutboundRefused` if anything is refused."""
    if not allow.name_allowed(host):
        raise OutboundRefused(f"{host} is not in {allow.setting}")
    found = resolve(host, port)
    for _, sockaddr in found:
        address = _address_of(sockaddr)
        if not allow.address_allowed(host, address):
            raise OutboundRefused(
                f"{host} resolves to {address}, which is not a public address and not "
                f"listed in {allow.setting}"
            )
    return found


class GuardedBackend(httpcore2.SyncBackend):
    """Opens each TCP connection to a checked address, never to a second DNS answer."""

    def __init__(self, allow: AllowList) -> None:
        self.allow = allow

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        last: OSError | None = None
        for family, sockaddr in checked_addresses(self.allow, host, port):
            try:
                sock = _connect(family, sockaddr, timeout, local_address, socket_options or [])
            except TimeoutError as error:
                raise httpcore2.ConnectTimeout(str(error)) from error
            except OSError as error:  # this address is down: try the next checked one
                last = error
                continue
            return SyncStream(sock)
        raise httpcore2.ConnectError(str(last or f"no address for {host}"))


def _connect(
    family: socket.AddressFamily,
    sockaddr: tuple[Any, ...],
    timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[Any],
) -> socket.socket:
    """A connected socket; made by hand, as `socket.create_connection` would resolve again."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if local_address is not None:
            sock.bind((local_address, 0))
        for option in socket_options:
            sock.setsockopt(*option)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class GuardedTransport(httpx2.HTTPTransport):
    """httpx2's transport, its connection pool opening connections through `GuardedBackend`."""

    def __init__(self, allow: AllowList) -> None:
        super().__init__()
        self._pool = httpcore2.ConnectionPool(  # replaces the unused pool the parent built
            ssl_context=httpx2.create_ssl_context(),  # certificates checked for the host name
            max_connections=100,  # httpx2's defaults; a judge has at most 32 requests in flight
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow),
        )


def guarded_client(allow: AllowList, timeout: float) -> httpx2.Client:
    """An `httpx2.Client` for user-aimed URLs: allow-listed per connection, no redirects."""
    return httpx2.Client(
        transport=GuardedTransport(allow),
        follow_redirects=False,
        trust_env=False,  # an HTTP(S)_PROXY would resolve and connect where we cannot check
        timeout=timeout,
    )


def redirect_target(response: httpx2.Response) -> str | None:
    """The host a redirect answer points to (its own host for a relative one), else None."""
    if not response.is_redirect:
        return None
    target = response.request.url.join(response.headers["location"])
    return target.host or response.request.url.host


def refusal_in(error: BaseException | None) -> OutboundRefused | None:
    """The allow-list refusal behind an exception (httpx2 and openai wrap it), if any."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OutboundRefused):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
