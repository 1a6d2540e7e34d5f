"""Behind a proxy: the client address and scheme from `Forwarded` or `X-Forwarded-*`.

`--proxy-headers` makes the server believe these headers, but only from peers
listed in `--forwarded-allow-ips` (addresses or networks, `*` for any; uvicorn's
names and default, 127.0.0.1). Whether a connection's peer is trusted is
decided once per connection; only a trusted connection looks at the headers.

Which address is the client: a chain of proxies appends to the list, so the
list is read from the right, skipping the proxies we trust, and the first
address that is not one of them is the client (all trusted: the leftmost).
RFC 7239 `Forwarded` wins over `X-Forwarded-For`/`-Proto` when both are there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

#: The schemes a proxy may report.
SCHEMES = frozenset(("http", "https"))

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The peers whose forwarding headers are believed (`--forwarded-allow-ips`)."""

    def __init__(self, allowed: str) -> None:
        self.everyone = False
        self.networks: list[_Network] = []
        #: Entries that are not addresses (e.g. "unix:" for unix-socket peers).
        self.names: set[str] = set()
        for entry in (part.strip() for part in allowed.split(",")):
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.add(entry)

    def __contains__(self, host: str | None) -> bool:
        if self.everyone:
            return True
        if host is None:  # a unix-socket peer
            return "unix:" in self.names
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in self.names
        return any(address in network for network in self.networks)

    def client_of(self, chain: Sequence[str]) -> str | None:
        """The client in a forwarding chain (see the module docstring); None if it is empty."""
        for host in reversed(chain):
            if host not in self:
                return host
        return chain[0] if chain else None


def forwarded(
    headers: Sequence[tuple[bytes, bytes]],
    trusted: TrustedProxies,
    client: tuple[str, int] | None,
    scheme: str,
) -> tuple[tuple[str, int] | None, str]:
    """The (client, scheme) a trusted proxy reports in `headers`; unchanged when it reports none."""
    forwarded_values: list[bytes] = []
    forwarded_for: list[bytes] = []
    forwarded_proto: bytes | None = None
    for name, value in headers:
        if name == b"forwarded":
            forwarded_values.append(value)
        elif name == b"x-forwarded-for":
            forwarded_for.append(value)
        elif name == b"x-forwarded-proto":
            forwarded_proto = value
    if forwarded_values:
        return _from_forwarded(b",".join(forwarded_values), trusted, client, scheme)
    if forwarded_proto is not None:
        # A chain of proxies may list one scheme each: the last is the nearest one's.
        proto = forwarded_proto.decode("latin-1").split(",")[-1].strip().lower()
        if proto in SCHEMES:
            scheme = proto
    if forwarded_for:
        chain = [host.strip() for host in b",".join(forwarded_for).decode("latin-1").split(",")]
        host = trusted.client_of([host for host in chain if host])
        if host is not None:
            client = (host, 0)
    return client, scheme


def _from_forwarded(
    value: bytes, trusted: TrustedProxies, client: tuple[str, int] | None, scheme: str
) -> tuple[tuple[str, int] | None, str]:
    """RFC 7239 §4: `for=...;proto=...` elements separated by commas."""
    elements = [_parameters(element) for element in value.decode("latin-1").split(",")]
    if not elements:
        return client, scheme
    nodes = [_node(element.get("for", "")) for element in elements]
    chosen = 0
    for index in range(len(nodes) - 1, -1, -1):
        if nodes[index][0] not in trusted or not nodes[index][0]:
            chosen = index
            break
    proto = elements[chosen].get("proto", "").lower()
    if proto in SCHEMES:
        scheme = proto
    address, port = nodes[chosen]
    if address:
        client = (address, port)
    return client, scheme


def _parameters(element: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for pair in element.split(";"):
        name, equals, value = pair.partition("=")
        if equals:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            parameters[name.strip().lower()] = value
    return parameters


def _node(node: str) -> tuple[str, int]:
    """(address, port) of a `for=` node: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`.

    Obfuscated (`_hidden`) and `unknown` nodes give ("", 0): the peer is kept.
    """
    if node.startswith("["):
        address, _, rest = node[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif node.count(":") == 1:
        address, _, port = node.partition(":")
    else:
        address, port = node, ""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "", 0
    return address, int(port) if port.isdigit() else 0
