"""The egress gateway's configuration, rendered from policies (no I/O).

The gateway is Debian's HAProxy and dnsmasq, serving only on the sandboxes' bridge address:

* dnsmasq answers **every** name with the gateway's address: a sandbox never learns a real IP,
  so a name it may not reach gives it nothing to connect to directly;
* HAProxy takes port 443 in TCP mode and routes by the TLS SNI (no interception: the TLS
  session is the sandbox's, end to end) and port 80 in HTTP mode and routes by Host; it
  checks the name against the sandbox's allow map (keyed by the sandbox's address, changed
  live with ``add map``/``del map`` over the runtime socket), resolves the name itself with
  the operator's DNS servers, refuses addresses on the hard deny list (rebinding, metadata,
  private ranges, IP literals) and connects to the address it resolved.

Map keys: ``^<name>@<sandbox ip>`` for an exact name, ``.<suffix>@<sandbox ip>`` for
``*.<suffix>``; the request's key is ``^<name>@<source ip>`` matched with ``map_end``, so an
exact entry matches only itself and a wildcard entry only names below its suffix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .policy import EgressPolicy, IPNetwork, OperatorPolicy

__all__ = [
    "GatewayFiles",
    "header_map",
    "map_files",
    "member_entries",
    "name_entries",
    "render",
    "tcp_chain",
    "tcp_rules",
]

NAMES_MAP = "names.map"  # per-sandbox allowed names
SLOTS_MAP = "slots.map"  # sandbox address -> its CIDR prefix (also: "a known sandbox")
CIDR_ALLOW_MAP = "cidr-allow.map"  # the sandboxes' allow_out CIDRs, per slot
CIDR_DENY_MAP = "cidr-deny.map"  # the sandboxes' deny_out CIDRs, per slot
OPERATOR_MAP = "operator.map"  # allow-list mode: the operator's names
DENY_LIST = "deny.lst"  # the hard deny list (CIDRs)
PRIVATE_ALLOW_LIST = "private-allow.lst"
TCP_RULES = "tcp.rules"  # direct TCP by address: the gateway's chain, iptables-restore input
TCP_GENERATION = "tcp.gen"  # bumped after each write of TCP_RULES
TCP_APPLIED = "tcp.applied"  # "<generation> ok" (or the error) once the gateway loaded it


@dataclass(frozen=True)
class GatewayFiles:
    haproxy_cfg: str
    dnsmasq_conf: str
    resolv_conf: str  # mounted as the sandboxes' /etc/resolv.conf
    static: dict[str, str]  # file name -> content (lists and initial maps)


def name_entries(ip: str, policy: EgressPolicy) -> list[str]:
    """The allow-map keys of one sandbox (its allowed names)."""
    allow = policy.allow_out
    if allow is None:
        return []
    keys = [f"^{name}@{ip}" for name in sorted(allow.names)]
    keys += [f".{suffix}@{ip}" for suffix in sorted(allow.wildcards)]
    return keys


def header_map(index: int) -> str:
    return f"header-{index}.map"


def _slot_prefix(slot: int) -> str:
    # A sandbox's CIDR entries live under its own IPv6 prefix, fd00:<slot>::/96, with the
    # IPv4 destination in the last 32 bits: one map_ip lookup of "fd00:<slot>::<dst>" finds
    # the longest matching CIDR of that sandbox only.
    return f"fd00:{slot:x}::"


def _cidr_keys(slot: int, networks: Iterable[IPNetwork]) -> list[str]:
    prefix = _slot_prefix(slot)
    return [f"{prefix}{net.network_address}/{96 + net.prefixlen}" for net in networks
            if net.version == 4]


def member_entries(ip: str, slot: int, policy: EgressPolicy,
                   header_names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Every map entry of one sandbox: map file name -> {key: value}. The gateway adds,
    changes and removes them live; exact header rules come before wildcard ones (the first
    match of a ``map_end`` lookup wins)."""
    entries: dict[str, dict[str, str]] = {
        SLOTS_MAP: {ip: _slot_prefix(slot)},
        NAMES_MAP: {key: "1" for key in name_entries(ip, policy)},
        CIDR_ALLOW_MAP: {key: "1" for key in _cidr_keys(
            slot, policy.allow_out.networks if policy.allow_out is not None else ())},
        CIDR_DENY_MAP: {key: "1" for key in _cidr_keys(slot, policy.deny_out.networks)},
    }
    slots = {name.lower(): i for i, name in enumerate(header_names)}
    for rule in sorted(policy.rules, key=lambda r: r.pattern.startswith("*.")):
        key = (f".{rule.pattern[2:]}@{ip}" if rule.pattern.startswith("*.")
               else f"^{rule.pattern}@{ip}")
        for name, value in rule.headers:
            entries.setdefault(header_map(slots[name.lower()]), {}).setdefault(key, value)
    return entries


def map_files(header_names: Sequence[str]) -> list[str]:
    return [SLOTS_MAP, NAMES_MAP, CIDR_ALLOW_MAP, CIDR_DENY_MAP,
            *(header_map(i) for i in range(len(header_names)))]


def render(*, gateway_ip: str, directory: str, operator: OperatorPolicy,
           upstream_dns: Iterable[str], header_names: Sequence[str] = (),
           socket_uid: int = 0) -> GatewayFiles:
    """``socket_uid``: who may use the runtime socket (the server's uid; the gateway runs as
    root, and under compose the server does not)."""
    d = directory
    nameservers = [s if ":" in s else f"{s}:53" for s in upstream_dns]
    resolvers = "\n".join(f"    nameserver dns{i} {s}" for i, s in enumerate(nameservers)) \
        or "    parse-resolv-conf"
    allow_list_mode = operator.mode == "allow-list"
    operator_check_tls = (f"    tcp-request content reject if !{{ str(^),concat(,sess.host,),"
                          f"map_end({d}/{OPERATOR_MAP}) -m found }}\n"
                          if allow_list_mode else "")
    operator_check_http = (f"    http-request deny deny_status 403 content-type text/plain "
                           f"lf-string \"selfbox egress: %[var(txn.host)] is not on this "
                           f"server's allow list\\n\" unless {{ str(^),concat(,txn.host,),"
                           f"map_end({d}/{OPERATOR_MAP}) -m found }}\n"
                           if allow_list_mode else "")
    text = "content-type text/plain lf-string"
    deny = f"deny_status 403 {text}"
    refused = ("selfbox egress: %[var(txn.host)] is not allowed by this sandbox's network "
               "policy\\n")
    unresolved = "selfbox egress: %[var(txn.host)] does not resolve\\n"
    private = "selfbox egress: %[var(txn.host)] resolves to a private or reserved address\\n"
    # One map per header name the operator allows rules to set: values change live, like
    # the allow maps (set-header takes a fixed name, so the names are fixed at start).
    headers = "".join(
        f"    http-request set-header {name} %[var(txn.key),map_end({d}/{header_map(i)})] "
        f"if {{ var(txn.key),map_end({d}/{header_map(i)}) -m found }}\n"
        for i, name in enumerate(header_names))
    haproxy = f"""# Generated by selfbox (sandbox_server/network/render.py); do not edit.
global
    stats socket {d}/haproxy.sock mode 600 uid {socket_uid} level admin
    log stdout format raw local0 info
    maxconn 4096
    hard-stop-after 5s

defaults
    log global
    option dontlognull
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout tunnel 3600s
    timeout http-request 10s

resolvers upstream
{resolvers}
    accepted_payload_size 1232
    resolve_retries 2
    timeout resolve 1s
    timeout retry 1s
    hold valid 10s
    hold nx 2s

frontend tls
    mode tcp
    bind {gateway_ip}:443
    log-format "egress tls %ci %[var(sess.host)] %[var(sess.dstip)] %ts %B"
    tcp-request inspect-delay 5s
    tcp-request content reject unless {{ req.ssl_hello_type 1 }}
    tcp-request content set-var(sess.host) req.ssl_sni,lower
    tcp-request content set-var(sess.srcip) src
    tcp-request content reject unless {{ var(sess.host) -m found }}
    tcp-request content set-var(sess.key) str(^),concat(,sess.host,@),concat(,sess.srcip,)
    acl known_src src,map_ip({d}/{SLOTS_MAP}) -m found
    acl name_allowed var(sess.key),map_end({d}/{NAMES_MAP}) -m found
    acl dst_denied var(sess.dstip) -m ip -f {d}/{DENY_LIST}
    acl dst_private_ok var(sess.dstip) -m ip -f {d}/{PRIVATE_ALLOW_LIST}
    acl cidr_allowed var(sess.ckey),map_ip({d}/{CIDR_ALLOW_MAP}) -m found
    acl cidr_denied var(sess.ckey),map_ip({d}/{CIDR_DENY_MAP}) -m found
    tcp-request content reject unless known_src
{operator_check_tls}    tcp-request content do-resolve(sess.dstip,upstream,ipv4) var(sess.host)
    tcp-request content reject unless {{ var(sess.dstip) -m found }}
    tcp-request content reject if dst_denied !dst_private_ok
    tcp-request content set-var(sess.ckey) src,map_ip({d}/{SLOTS_MAP}),concat(,sess.dstip,)
    tcp-request content reject if !name_allowed !cidr_allowed cidr_denied
    tcp-request content set-dst var(sess.dstip)
    default_backend tls_out

backend tls_out
    mode tcp
    server upstream 0.0.0.0:443

frontend http
    mode http
    bind {gateway_ip}:80
    log-format "egress http %ci %[var(txn.host)] %[var(txn.dstip)] %ST %B"
    http-request set-var(txn.host) req.hdr(host),field(1,:),lower
    http-request set-var(txn.srcip) src
    http-request set-var(txn.key) str(^),concat(,txn.host,@),concat(,txn.srcip,)
    acl known_src src,map_ip({d}/{SLOTS_MAP}) -m found
    acl name_allowed var(txn.key),map_end({d}/{NAMES_MAP}) -m found
    acl dst_found var(txn.dstip) -m found
    acl dst_denied var(txn.dstip) -m ip -f {d}/{DENY_LIST}
    acl dst_private_ok var(txn.dstip) -m ip -f {d}/{PRIVATE_ALLOW_LIST}
    acl cidr_allowed var(txn.ckey),map_ip({d}/{CIDR_ALLOW_MAP}) -m found
    acl cidr_denied var(txn.ckey),map_ip({d}/{CIDR_DENY_MAP}) -m found
    http-request deny {deny} "{refused}" unless known_src
{operator_check_http}    http-request do-resolve(txn.dstip,upstream,ipv4) var(txn.host)
    http-request deny deny_status 502 {text} "{unresolved}" unless dst_found
    http-request deny {deny} "{private}" if dst_denied !dst_private_ok
    http-request set-var(txn.ckey) src,map_ip({d}/{SLOTS_MAP}),concat(,txn.dstip,)
    http-request deny {deny} "{refused}" if !name_allowed !cidr_allowed cidr_denied
    http-request set-dst var(txn.dstip)
    # Header rules (the sandbox's `rules`): set here, so a secret never enters the sandbox.
{headers}    default_backend http_out

backend http_out
    mode http
    # Every request is checked and routed on its own (one keep-alive connection may carry
    # requests for several Hosts): never reuse a server connection for another request.
    http-reuse never
    server upstream 0.0.0.0:80
"""
    dnsmasq = f"""# Generated by selfbox; do not edit.
# Every name is the gateway: the sandbox never learns a real address.
port=53
listen-address={gateway_ip}
bind-interfaces
no-resolv
no-hosts
user=root
group=root
pid-file=
address=/#/{gateway_ip}
log-facility=-
"""
    static = {
        DENY_LIST: "\n".join(str(n) for n in operator.deny if n.version == 4) + "\n",
        PRIVATE_ALLOW_LIST: "\n".join(str(n) for n in operator.private_allowed
                                      if n.version == 4) + "\n",
        **{name: "" for name in map_files(header_names)},
        OPERATOR_MAP: "".join(f"^{n} 1\n" for n in sorted(operator.allow.names))
        + "".join(f".{w} 1\n" for w in sorted(operator.allow.wildcards)),
    }
    return GatewayFiles(haproxy, dnsmasq, f"nameserver {gateway_ip}\noptions ndots:0\n", static)


def tcp_chain(bridge: str) -> str:
    # iptables chain names: at most 28 characters; the bridge name is unique per deployment.
    return f"SBXEG-{bridge}"


def tcp_rules(bridge: str,
              members: Iterable[tuple[str, Sequence[ipaddress.IPv4Network]]]) -> str:
    """The gateway's direct-TCP chain, whole (``iptables-restore --noflush`` replaces it in
    one transaction): each sandbox address may open TCP to its own networks (already bounded
    by the operator's policy and the hard deny list, :func:`.policy.direct_networks`) and to
    nothing on its own bridge (other sandboxes). Everything else falls through to the
    gateway's reject."""
    chain = tcp_chain(bridge)
    lines = ["*filter", f":{chain} - [0:0]"]
    for ip, networks in sorted(members):
        lines += [f"-A {chain} -s {ip}/32 -d {net} ! -o {bridge} -p tcp -j ACCEPT"
                  for net in networks]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
