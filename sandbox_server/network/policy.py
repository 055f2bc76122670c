"""Egress policy: what a sandbox may connect to. I/O-free.

Two layers, checked in this order:

1. the **operator's policy** (:class:`OperatorPolicy`), which users cannot lift: a mode
   (``none``: no egress at all; ``allow-list``: only the operator's destinations; ``open``:
   the internet) and a hard deny list of addresses that is always applied — loopback,
   link-local and cloud metadata (169.254.0.0/16), RFC 1918 and the other private and
   reserved ranges (unless the operator names some as allowed), plus whatever else the
   operator adds (the Docker host, the server, the sandboxes' own network);
2. the **sandbox's policy** (:class:`EgressPolicy`), with E2B's semantics: ``allow_out`` and
   ``deny_out`` hold IPs, CIDRs and (``allow_out`` only) domains, exact or ``*.`` wildcards;
   a destination in ``allow_out`` is allowed even if ``deny_out`` also covers it (E2B: "allow
   rules take precedence"); one in ``deny_out`` only is denied; anything else is allowed
   (no ``allow_out`` = all); ``0.0.0.0/0`` means all traffic; ``allow_internet_access=False``
   is ``deny_out=["0.0.0.0/0"]``.

A domain is matched by name (the TLS SNI or HTTP Host), and the address the gateway resolves it
to must still pass the hard deny list (a name that resolves to 10.0.0.1 is refused: DNS
rebinding). An IP literal is matched by address only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..exceptions import InvalidRequest

__all__ = [
    "ALL_TRAFFIC",
    "HARD_DENY",
    "MAX_ENTRIES",
    "Destinations",
    "EgressMode",
    "EgressPolicy",
    "OperatorPolicy",
    "PolicyError",
    "Verdict",
    "decide",
    "direct_networks",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
EgressMode = Literal["none", "allow-list", "open"]

ALL_TRAFFIC = "0.0.0.0/0"
MAX_ENTRIES = 256
MAX_HEADER_RULES = 64
MAX_HEADER_BYTES = 8192

# Never reachable from a sandbox, whatever the policies say (RFC 6890 special-purpose
# registries, IPv4 and IPv6). The operator may carve named private ranges out of it.
HARD_DENY: tuple[str, ...] = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "100::/64", "2001::/23",
    "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
)

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}\.?$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
# Headers a rule may not set: they frame the request, and the gateway owns them.
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                                "upgrade", "te", "trailer", "keep-alive"})


class PolicyError(InvalidRequest):
    """A network policy that cannot be accepted; the message names the field and entry."""

    error_code = "invalid_network_policy"


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


@dataclass(frozen=True)
class Destinations:
    """A list of destinations: exact names, ``*.`` wildcard suffixes, IP networks."""

    names: frozenset[str] = frozenset()
    wildcards: frozenset[str] = frozenset()  # "example.com" for "*.example.com"
    networks: tuple[IPNetwork, ...] = ()
    entries: tuple[str, ...] = ()  # as given (normalised), for display

    @classmethod
    def parse(cls, raw: object, where: str, *, domains: bool = True) -> Destinations:
        if raw is None:
            return cls()
        if not isinstance(raw, list | tuple):
            raise PolicyError(f"{where} must be a list of IPs, CIDRs or domains", field=where)
        if len(raw) > MAX_ENTRIES:
            raise PolicyError(f"{where} has {len(raw)} entries; at most {MAX_ENTRIES}",
                              field=where)
        names: set[str] = set()
        wildcards: set[str] = set()
        networks: list[IPNetwork] = []
        entries: list[str] = []
        for item in raw:
            if not isinstance(item, str) or not item.strip():
                raise PolicyError(f"{where}: {item!r} is not an IP, CIDR or domain", field=where)
            entry = item.strip().lower()
            net = _network(entry)
            if net is not None:
                networks.append(net)
                entries.append(str(net) if "/" in entry else entry)
                continue
            if not _DOMAIN.match(entry) or len(entry) > 253:
                raise PolicyError(f"{where}: {item!r} is not an IP, CIDR or domain",
                                  field=where, entry=item[:100])
            if not domains:
                raise PolicyError(f"{where}: domains are only supported in allow_out (as in "
                                  f"E2B); {item!r} here would need an IP or CIDR",
                                  field=where, entry=item[:100])
            entry = entry.rstrip(".")
            if entry.startswith("*."):
                wildcards.add(entry[2:])
            else:
                names.add(entry)
            entries.append(entry)
        return cls(frozenset(names), frozenset(wildcards), tuple(networks), tuple(entries))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def matches_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host in self.names:
            return True
        # "*.example.com" covers a.example.com and a.b.example.com, not example.com itself.
        parts = host.split(".")
        return any(".".join(parts[i:]) in self.wildcards for i in range(1, len(parts)))

    def matches_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)

    @property
    def everything(self) -> bool:
        return any(net.prefixlen == 0 for net in self.networks)


@dataclass(frozen=True)
class HeaderRule:
    """``rules[domain] -> [{"transform": {"headers": {...}}}]``: headers the gateway sets on
    plain-HTTP requests to that domain (exact or ``*.`` wildcard)."""

    pattern: str
    headers: tuple[tuple[str, str], ...]


def _parse_rules(raw: object, where: str) -> tuple[HeaderRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where} must map domains to lists of rules", field=where)
    if len(raw) > MAX_HEADER_RULES:
        raise PolicyError(f"{where} has {len(raw)} domains; at most {MAX_HEADER_RULES}",
                          field=where)
    rules: list[HeaderRule] = []
    for pattern, items in raw.items():
        domain = str(pattern).strip().lower().rstrip(".")
        if not _DOMAIN.match(domain):
            raise PolicyError(f"{where}: {pattern!r} is not a domain", field=where)
        if not isinstance(items, list):
            raise PolicyError(f"{where}[{pattern!r}] must be a list of rules", field=where)
        headers: dict[str, str] = {}
        for item in items:
            transform = item.get("transform") if isinstance(item, Mapping) else None
            if transform is None:
                continue
            raw_headers = transform.get("headers") if isinstance(transform, Mapping) else None
            if not isinstance(raw_headers, Mapping):
                raise PolicyError(f"{where}[{pattern!r}]: transform.headers must map header "
                                  "names to values", field=where)
            for name, value in raw_headers.items():
                if not isinstance(name, str) or not _HEADER_NAME.match(name) \
                        or name.lower() in _FORBIDDEN_HEADERS:
                    raise PolicyError(f"{where}[{pattern!r}]: header {name!r} cannot be set",
                                      field=where)
                if not isinstance(value, str) or any(c in value for c in "\r\n\x00"):
                    raise PolicyError(f"{where}[{pattern!r}]: the value of {name!r} must be "
                                      "a string without line breaks", field=where)
                headers[name] = value
        if sum(len(k) + len(v) for k, v in headers.items()) > MAX_HEADER_BYTES:
            raise PolicyError(f"{where}[{pattern!r}]: headers over {MAX_HEADER_BYTES} bytes",
                              field=where)
        rules.append(HeaderRule(domain, tuple(sorted(headers.items()))))
    return tuple(rules)


@dataclass(frozen=True)
class EgressPolicy:
    """One sandbox's egress policy (E2B's ``network`` object)."""

    allow_out: Destinations | None = None  # None: not given (everything, minus deny_out)
    deny_out: Destinations = field(default_factory=Destinations)
    rules: tuple[HeaderRule, ...] = ()
    dns_servers: tuple[str, ...] | None = None  # accepted for E2B; the gateway answers DNS

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, *,
              allow_internet_access: bool | None = None, where: str = "network"
              ) -> EgressPolicy:
        raw = raw or {}
        if not isinstance(raw, Mapping):
            raise PolicyError(f"{where} must be an object", field=where)
        unsupported = sorted(k for k in ("egress_proxy",) if raw.get(k) is not None)
        if unsupported:
            raise PolicyError(f"{where}.{unsupported[0]} is not supported by selfbox "
                              "(see docs/network.md)", field=f"{where}.{unsupported[0]}")
        allow = raw.get("allow_out")
        deny = Destinations.parse(raw.get("deny_out"), f"{where}.deny_out", domains=False)
        if allow_internet_access is False and not deny.everything:
            deny = Destinations.parse([*deny.entries, ALL_TRAFFIC], f"{where}.deny_out",
                                      domains=False)
        dns = raw.get("dns_servers")
        if dns is not None and (not isinstance(dns, list) or len(dns) > 10 or not all(
                isinstance(d, str) and isinstance(_network(d), ipaddress.IPv4Network)
                and "/" not in d for d in dns)):
            raise PolicyError(f"{where}.dns_servers must be up to 10 IPv4 addresses",
                              field=f"{where}.dns_servers")
        return cls(
            allow_out=None if allow is None else Destinations.parse(allow, f"{where}.allow_out"),
            deny_out=deny,
            rules=_parse_rules(raw.get("rules"), f"{where}.rules"),
            dns_servers=None if dns is None else tuple(dns),
        )

    @property
    def internet(self) -> bool:
        """Whether anything outside ``allow_out`` is allowed (E2B's allowInternetAccess)."""
        return not self.deny_out.everything

    def headers_for(self, host: str) -> tuple[tuple[str, str], ...]:
        """Headers to add to a plain-HTTP request for ``host`` (exact rules first)."""
        host = host.lower().rstrip(".")
        merged: dict[str, str] = {}
        for rule in sorted(self.rules, key=lambda r: r.pattern.startswith("*.")):
            if Destinations.parse([rule.pattern], "rules").matches_name(host):
                for name, value in rule.headers:
                    merged.setdefault(name, value)
        return tuple(merged.items())

    def to_wire(self) -> dict[str, Any]:
        """E2B's ``SandboxNetworkInfo`` shape (also shown under /v1)."""
        out: dict[str, Any] = {"deny_out": list(self.deny_out.entries)}
        if self.allow_out is not None:
            out["allow_out"] = list(self.allow_out.entries)
        if self.rules:
            out["rules"] = {r.pattern: [{"transform": {"headers": {
                name: "***" for name, _ in r.headers}}}] for r in self.rules}
        if self.dns_servers is not None:
            out["dns_servers"] = list(self.dns_servers)
        return out


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class OperatorPolicy:
    """The deployment's policy (settings ``SELFBOX_EGRESS_*``)."""

    mode: EgressMode = "none"
    allow: Destinations = field(default_factory=Destinations)  # the allow-list mode's list
    deny: tuple[IPNetwork, ...] = ()
    private_allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, mode: EgressMode, allow: Iterable[str] = (), extra_deny: Iterable[str] = (),
              private_allowed: Iterable[str] = ()) -> OperatorPolicy:
        def nets(items: Iterable[str], where: str) -> tuple[IPNetwork, ...]:
            out = []
            for item in items:
                net = _network(item)
                if net is None:
                    raise ValueError(f"{where}: {item!r} is not an IP or CIDR")
                out.append(net)
            return tuple(out)

        return cls(
            mode=mode,
            allow=Destinations.parse(list(allow), "SELFBOX_EGRESS_OPERATOR_ALLOW"),
            deny=nets([*HARD_DENY, *extra_deny], "SELFBOX_EGRESS_EXTRA_DENY"),
            private_allowed=nets(private_allowed, "SELFBOX_EGRESS_PRIVATE_ALLOW"),
        )

    def hard_denied(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        if any(ip.version == n.version and ip in n for n in self.private_allowed):
            return False
        return any(ip.version == n.version and ip in n for n in self.deny)


def decide(operator: OperatorPolicy, policy: EgressPolicy | None, *, ip: IPAddress,
           host: str | None = None) -> Verdict:
    """May a sandbox with ``policy`` connect to ``ip`` (reached as ``host``, if by name)?"""
    if operator.mode == "none" or policy is None:
        return Verdict(False, "egress is disabled on this server (SELFBOX_EGRESS_MODE=none)")
    if operator.hard_denied(ip):
        return Verdict(False, f"{ip} is a private, local or reserved address: never "
                              "reachable from a sandbox")
    if operator.mode == "allow-list" and not (
            operator.allow.matches_ip(ip) or (host and operator.allow.matches_name(host))):
        return Verdict(False, f"{host or ip} is not on this server's allow list "
                              "(SELFBOX_EGRESS_OPERATOR_ALLOW)")
    allow = policy.allow_out
    if allow is not None and (allow.matches_ip(ip) or (host and allow.matches_name(host))):
        return Verdict(True, "allow_out")
    if policy.deny_out.matches_ip(ip):
        return Verdict(False, f"{host or ip} is denied by the sandbox's deny_out")
    return Verdict(True, "not denied")


def _subtract(nets: list[ipaddress.IPv4Network],
              holes: Iterable[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
    for hole in holes:
        kept: list[ipaddress.IPv4Network] = []
        for net in nets:
            if not net.overlaps(hole):
                kept.append(net)
            elif not net.subnet_of(hole):  # net holds the hole: keep the rest of it
                kept.extend(net.address_exclude(hole))
        nets = kept
    return nets


def _intersect(a: Iterable[ipaddress.IPv4Network],
               b: Iterable[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
    blist = list(b)
    return [x if x.subnet_of(y) else y for x in a for y in blist if x.overlaps(y)]


def direct_networks(operator: OperatorPolicy,
                    policy: EgressPolicy | None) -> tuple[ipaddress.IPv4Network, ...]:
    """The IPv4 networks a sandbox may open **any TCP port** of by address (IP literal),
    around the gateway's HTTP/TLS proxying: only what its ``allow_out`` names as IPs or CIDRs
    (``0.0.0.0/0``: every public address), bounded by the operator's allow list (in
    ``allow-list`` mode, its IPs and CIDRs) and never the hard deny list (except the private
    ranges the operator carved out). No ``allow_out`` opens no direct TCP: the open default
    covers names through the gateway, not raw connections."""
    if operator.mode == "none" or policy is None or policy.allow_out is None:
        return ()

    def v4(nets: Iterable[IPNetwork]) -> list[ipaddress.IPv4Network]:
        return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]

    allowed = v4(policy.allow_out.networks)
    if operator.mode == "allow-list":
        allowed = _intersect(allowed, v4(operator.allow.networks))
    carved = _intersect(allowed, v4(operator.private_allowed))
    allowed = _subtract(list(ipaddress.collapse_addresses(allowed)), v4(operator.deny))
    return tuple(ipaddress.collapse_addresses(allowed + carved))
