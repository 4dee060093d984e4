"""The one way the hub calls a URL a tenant gave it (today: REST connectors).

An organization admin types a URL and the hub's own processes then call it, from
inside the hub's network. Without care that is a way in: to the hub's loopback,
its database and Redis, the cloud's metadata service, every private address the
hub can route to. So a tenant URL is

- refused unless it is a plain http(s) URL: no `user:pass@`, no `?` or `#` (a
  `#` would swallow the `/plugin` and `/heartbeat` the hub appends);
- resolved once per request, and refused if ANY address it resolves to is
  internal (loopback, private, link-local, unique-local, multicast, unspecified,
  reserved, shared, cloud metadata; IPv4 hidden in IPv6 is unwrapped first),
  unless the address is in `HUB_CONNECTOR_ALLOWED_NETWORKS`;
- connected to at the very address that was checked (Host header, TLS SNI and
  certificate checks still use the name), so a DNS answer that changes between
  the check and the connection (rebinding) cannot move the call inside;
- never redirected (a 3xx is returned as it is: callers refuse it);
- and every failure is a fixed text: nothing the remote side sends, and no way
  to tell a refused port from a closed or filtered one ("unreachable").

Metadata addresses are refused even inside an allowed network: allowing a
subnet of one's own services should never open the instance's credentials.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata and host-agent endpoints (AWS, ECS, GCP, Azure, Alibaba, Oracle):
# some are "public" addresses by the IANA tables, so they are named here.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.123",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "168.63.129.16",
        "100.100.100.200",
        "192.0.0.192",
    )
)
# Ranges Python's is_global still calls global (Python 3.11) but that are not
# somewhere a tenant's plugin lives.
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/8",  # IPv4-compatible and other reserved forms
        "fec0::/10",  # deprecated site-local
        "ff00::/8",
    )
)
# NAT64 hands these to the local translator, i.e. to the IPv4 address inside.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

CONNECT_TIMEOUT_SECONDS = 10.0
USER_AGENT = "plugin-hub/1"

# Short enough to keep the setting's name in a 200-character failure record.
REFUSED_INTERNAL = (
    "points at an internal address (loopback, private, link-local, metadata…), "
    "which the hub calls only in HUB_CONNECTOR_ALLOWED_NETWORKS"
)
UNREACHABLE = "unreachable"
QUERY_OR_FRAGMENT = "must not have a query (?) or fragment (#): give the base URL"


class EgressError(Exception):
    """Its text is fixed by the hub: safe to show, never from the remote side."""


class Refused(EgressError):
    """The URL or its address is not one the hub calls (permanent)."""


class Unreachable(EgressError):
    """No HTTP answer: no DNS answer, refused, reset, filtered, TLS failed."""


class TimedOut(EgressError):
    """Connected, but no (complete) answer within the timeout."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    # The body was cut at max_bytes: the answer is bigger than that.
    too_large: bool = False


# --- checks ---------------------------------------------------------------------
def url_problem(url: str) -> str | None:
    """Why a URL is not one the hub calls, judged from its text alone."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if "@" in parts.netloc:
        return "must not carry a user name or password (user:pass@)"
    if "#" in url or "?" in url:
        return QUERY_OR_FRAGMENT
    if port == 0:
        return "has no valid port"
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    return None


def address_problem(address: Address) -> str | None:
    """Why the hub does not connect to this address, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address in METADATA_ADDRESSES:
        return REFUSED_INTERNAL
    if any(address in network for network in allowed_networks()):
        return None
    for inner in _embedded_ipv4(address):
        if address_problem(inner):
            return REFUSED_INTERNAL
    if (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or any(address in network for network in _NOT_GLOBAL)
    ):
        return REFUSED_INTERNAL
    return None


def registration_problem(url: str) -> str | None:
    """The check at registration: the URL's form, and every address its host
    resolves to now. A name that does not resolve yet is accepted (a service
    may be deployed after it is registered): every call checks again."""
    if problem := url_problem(url):
        return problem
    parts = urlsplit(url)
    try:
        addresses = resolve(parts.hostname or "", _port(parts))
    except Unreachable:
        return None
    return _addresses_problem(addresses)


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n) for n in settings.HUB_CONNECTOR_ALLOWED_NETWORKS]


def _embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address delivers to (6to4, Teredo, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)
    if any(address in network for network in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _addresses_problem(addresses: list[_Target]) -> str | None:
    for target in addresses:
        if problem := address_problem(target.address):
            return problem
    return None


# --- resolving and connecting ------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    family: int
    sockaddr: tuple[str, int] | tuple[str, int, int, int]

    @property
    def address(self) -> Address:
        # A scope id (fe80::1%eth0) is not part of the address.
        return ipaddress.ip_address(self.sockaddr[0].split("%", 1)[0])


def resolve(host: str, port: int) -> list[_Target]:
    """Every address of `host` (the seam tests replace to play DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unreachable(UNREACHABLE) from exc
    targets = [
        _Target(family, sockaddr)  # type: ignore[arg-type]
        for family, _, _, _, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]
    if not targets:
        raise Unreachable(UNREACHABLE)
    return targets


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _open_socket(targets: list[_Target], timeout: float) -> socket.socket:
    for target in targets:
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        sock.settimeout(min(timeout, CONNECT_TIMEOUT_SECONDS))
        try:
            sock.connect(target.sockaddr)
        except OSError:
            sock.close()
            continue
        sock.settimeout(timeout)
        return sock
    # Refused, reset, filtered or timed out all read the same: which one it
    # was would map the ports of whatever sits at the address.
    raise Unreachable(UNREACHABLE)


class _PinnedHTTP(http.client.HTTPConnection):
    """Talks to `host` (Host header) over a socket already connected to the
    address that was checked: http.client never resolves the name itself."""

    def __init__(self, host: str, port: int, targets: list[_Target], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.targets = targets
        self.seconds = timeout

    def connect(self) -> None:
        self.sock = _open_socket(self.targets, self.seconds)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, targets: list[_Target], timeout: float):
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.targets = targets
        self.seconds = timeout

    def connect(self) -> None:
        sock = _open_socket(self.targets, self.seconds)
        try:
            # SNI and the certificate check are for the name, not the address.
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise Unreachable("TLS certificate not valid for the host") from exc
        except OSError as exc:
            sock.close()
            raise Unreachable(UNREACHABLE) from exc


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float,
    max_bytes: int,
) -> Response:
    """One HTTP request to a tenant-supplied URL, checked as the module says.
    Raises Refused, Unreachable or TimedOut (fixed texts); any status comes
    back as it is, 3xx included (not followed)."""
    if problem := url_problem(url):
        raise Refused(problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = _port(parts)
    targets = resolve(host, port)
    if problem := _addresses_problem(targets):
        raise Refused(problem)
    connection_class = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    connection = connection_class(host, port, targets, timeout)
    try:
        connection.request(
            method,
            # Percent-encoded as typed; anything else (a "ü") is encoded here,
            # http.client would refuse it.
            quote(parts.path or "/", safe="/%!$&'()*+,;=:@-._~"),
            body=body,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
        )
        response = connection.getresponse()
        raw = response.read(max_bytes + 1)
    except EgressError:
        raise
    except (UnicodeError, http.client.InvalidURL) as exc:
        raise Refused("is not a valid URL") from exc
    except TimeoutError as exc:
        raise TimedOut(f"no answer within {timeout:.0f} s") from exc
    except (OSError, http.client.HTTPException) as exc:
        # Closed mid-answer, not HTTP at all: the same fixed word.
        raise Unreachable(UNREACHABLE) from exc
    finally:
        connection.close()
    return Response(response.status, raw[:max_bytes], too_large=len(raw) > max_bytes)
