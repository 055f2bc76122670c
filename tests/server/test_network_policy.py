"""The egress policy model (I/O-free): parsing, E2B's semantics, the operator's hard limits."""

from __future__ import annotations

import ipaddress

import pytest

from sandbox_server.network.policy import (
    Destinations,
    EgressPolicy,
    OperatorPolicy,
    PolicyError,
    decide,
)

OPEN = OperatorPolicy.build("open")
PUBLIC = ipaddress.ip_address("93.184.216.34")
OTHER = ipaddress.ip_address("1.1.1.1")


def verdict(policy: EgressPolicy | None, ip: str, host: str | None = None,
            operator: OperatorPolicy = OPEN) -> bool:
    return decide(operator, policy, ip=ipaddress.ip_address(ip), host=host).allowed


def test_no_allow_out_means_everything_public() -> None:
    policy = EgressPolicy.parse({})
    assert verdict(policy, "93.184.216.34", "example.com")
    assert verdict(policy, "1.1.1.1")
    assert policy.internet


def test_allow_list_with_deny_all_like_e2b() -> None:
    policy = EgressPolicy.parse({"allow_out": ["api.example.com", "*.pypi.org", "1.1.1.0/24"],
                                 "deny_out": ["0.0.0.0/0"]})
    assert verdict(policy, str(PUBLIC), "api.example.com")
    assert verdict(policy, str(PUBLIC), "API.Example.COM.")
    assert not verdict(policy, str(PUBLIC), "evil.example.com")
    assert not verdict(policy, str(PUBLIC), "api.example.com.evil.net")
    assert verdict(policy, str(PUBLIC), "files.pypi.org")
    assert verdict(policy, str(PUBLIC), "a.b.pypi.org")
    assert not verdict(policy, str(PUBLIC), "pypi.org")  # *. does not cover the apex
    assert not verdict(policy, str(PUBLIC), "notpypi.org")
    assert verdict(policy, "1.1.1.7")  # CIDR, by address
    assert not verdict(policy, "1.1.2.7")
    assert not policy.internet


def test_allow_takes_precedence_over_deny_as_in_e2b() -> None:
    policy = EgressPolicy.parse({"allow_out": ["8.8.8.8"], "deny_out": ["8.8.8.0/24"]})
    assert verdict(policy, "8.8.8.8")
    assert not verdict(policy, "8.8.8.9")
    assert verdict(policy, "9.9.9.9")  # neither: allowed (no deny covers it)


def test_allow_internet_access_false_is_deny_all() -> None:
    policy = EgressPolicy.parse({"allow_out": ["example.com"]}, allow_internet_access=False)
    assert policy.deny_out.entries == ("0.0.0.0/0",)
    assert verdict(policy, str(PUBLIC), "example.com")
    assert not verdict(policy, str(OTHER))
    assert not EgressPolicy.parse(None, allow_internet_access=False).internet


@pytest.mark.parametrize("ip", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "172.17.0.1",
                                "192.168.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1",
                                "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1"])
def test_hard_deny_wins_over_any_user_allow(ip: str) -> None:
    policy = EgressPolicy.parse({"allow_out": ["0.0.0.0/0", "::/0", ip, "metadata.internal"]})
    assert not verdict(policy, ip)
    # ... also when a permitted name resolves there (DNS rebinding).
    assert not verdict(policy, ip, "metadata.internal")


def test_operator_can_allow_named_private_ranges_and_deny_more() -> None:
    operator = OperatorPolicy.build("open", private_allowed=["10.20.0.0/16"],
                                    extra_deny=["93.184.216.0/24"])
    policy = EgressPolicy.parse({})
    assert verdict(policy, "10.20.1.1", operator=operator)
    assert not verdict(policy, "10.21.1.1", operator=operator)
    assert not verdict(policy, str(PUBLIC), "example.com", operator=operator)


def test_operator_allow_list_mode_bounds_what_users_may_allow() -> None:
    operator = OperatorPolicy.build("allow-list", allow=["pypi.org", "*.pythonhosted.org"])
    everything = EgressPolicy.parse({})
    assert verdict(everything, str(PUBLIC), "pypi.org", operator=operator)
    assert verdict(everything, str(PUBLIC), "files.pythonhosted.org", operator=operator)
    assert not verdict(everything, str(PUBLIC), "example.com", operator=operator)
    assert not verdict(everything, str(PUBLIC), operator=operator)
    narrower = EgressPolicy.parse({"allow_out": ["pypi.org"], "deny_out": ["0.0.0.0/0"]})
    assert not verdict(narrower, str(PUBLIC), "files.pythonhosted.org", operator=operator)


def test_mode_none_denies_everything() -> None:
    operator = OperatorPolicy.build("none")
    assert not verdict(EgressPolicy.parse({}), str(PUBLIC), "example.com", operator=operator)
    assert not verdict(None, str(PUBLIC), operator=OPEN)


@pytest.mark.parametrize(("raw", "fragment"), [
    ({"allow_out": "example.com"}, "must be a list"),
    ({"allow_out": ["exa mple.com"]}, "is not an IP, CIDR or domain"),
    ({"allow_out": ["*.*.example.com"]}, "is not an IP, CIDR or domain"),
    ({"allow_out": [""]}, "is not an IP, CIDR or domain"),
    ({"deny_out": ["example.com"]}, "only supported in allow_out"),
    ({"allow_out": ["1.2.3.4"] * 300}, "at most 256"),
    ({"dns_servers": ["not-an-ip"]}, "dns_servers"),
    ({"egress_proxy": {"address": "p:1080"}}, "egress_proxy is not supported"),
    ({"rules": {"api.example.com": [{"transform": {"headers": {"Host": "x"}}}]}},
     "cannot be set"),
    ({"rules": {"api.example.com": [{"transform": {"headers": {"X-A": "a\r\nB: c"}}}]}},
     "without line breaks"),
])
def test_bad_policies_are_refused_with_the_field_named(raw: dict, fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment) as caught:
        EgressPolicy.parse(raw)
    assert caught.value.status_code == 422


def test_header_rules_and_wire_shape_hide_secret_values() -> None:
    policy = EgressPolicy.parse({
        "allow_out": ["api.example.com"], "deny_out": ["0.0.0.0/0"],
        "rules": {"api.example.com": [{"transform": {"headers": {"Authorization": "Bearer s3"}}}],
                  "*.example.com": [{"transform": {"headers": {"X-Team": "blue",
                                                               "Authorization": "other"}}}]},
    })
    assert dict(policy.headers_for("api.example.com")) == {"Authorization": "Bearer s3",
                                                           "X-Team": "blue"}
    assert dict(policy.headers_for("www.example.com")) == {"Authorization": "other",
                                                           "X-Team": "blue"}
    assert policy.headers_for("example.org") == ()
    wire = policy.to_wire()
    assert wire["allow_out"] == ["api.example.com"]
    assert wire["deny_out"] == ["0.0.0.0/0"]
    assert "s3" not in repr(wire)  # secrets are never shown back


def test_destinations_normalise() -> None:
    dest = Destinations.parse(["1.2.3.4", "10.0.0.0/8", "Example.COM.", "*.x.org"], "t")
    assert dest.entries == ("1.2.3.4", "10.0.0.0/8", "example.com", "*.x.org")
    assert dest.matches_ip(ipaddress.ip_address("1.2.3.4"))
    assert not dest.matches_ip(ipaddress.ip_address("::1"))


def test_gateway_map_entries_of_a_sandbox() -> None:
    from sandbox_server.network.render import member_entries

    policy = EgressPolicy.parse({
        "allow_out": ["api.example.com", "*.pypi.org", "1.2.3.0/24"],
        "deny_out": ["0.0.0.0/0", "::/0"],
        "rules": {"*.example.com": [{"transform": {"headers": {"Authorization": "w"}}}],
                  "api.example.com": [{"transform": {"headers": {"authorization": "e"}}}]},
    })
    entries = member_entries("172.20.0.5", 7, policy, ["X-Other", "Authorization"])
    assert entries["slots.map"] == {"172.20.0.5": "fd00:7::"}
    assert entries["names.map"] == {"^api.example.com@172.20.0.5": "1",
                                    ".pypi.org@172.20.0.5": "1"}
    assert entries["cidr-allow.map"] == {"fd00:7::1.2.3.0/120": "1"}
    assert entries["cidr-deny.map"] == {"fd00:7::0.0.0.0/96": "1"}  # IPv6 entries: no IPv4 key
    # Exact rules first: a map_end lookup finds them before the wildcard's.
    assert list(entries["header-1.map"].items()) == [("^api.example.com@172.20.0.5", "e"),
                                                     (".example.com@172.20.0.5", "w")]


def nets(*cidrs: str) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(c) for c in cidrs)


def test_direct_tcp_only_to_explicit_allow_out_addresses() -> None:
    from sandbox_server.network.policy import direct_networks

    # Names, the open default and deny_out open no raw TCP; IPs and CIDRs in allow_out do.
    assert direct_networks(OPEN, EgressPolicy.parse({})) == ()
    assert direct_networks(OPEN, EgressPolicy.parse({"deny_out": ["1.2.3.0/24"]})) == ()
    assert direct_networks(OPEN, None) == ()
    policy = EgressPolicy.parse({"allow_out": ["pypi.org", "1.2.3.4", "5.6.0.0/16"],
                                 "deny_out": ["0.0.0.0/0"]})
    assert direct_networks(OPEN, policy) == nets("1.2.3.4/32", "5.6.0.0/16")
    assert direct_networks(OperatorPolicy.build("none"), policy) == ()


def test_direct_tcp_never_reaches_the_hard_deny_list() -> None:
    from sandbox_server.network.policy import direct_networks

    everything = EgressPolicy.parse({"allow_out": ["0.0.0.0/0", "10.1.0.0/16"]})
    allowed = direct_networks(OPEN, everything)
    for ip in ("10.1.2.3", "127.0.0.1", "169.254.169.254", "192.168.1.1", "198.18.0.1",
               "100.64.0.1", "224.0.0.1"):
        assert not any(ipaddress.ip_address(ip) in n for n in allowed), ip
    assert any(PUBLIC in n for n in allowed) and any(OTHER in n for n in allowed)
    # ... except the private ranges the operator carved out, and only as far as allowed.
    carved = OperatorPolicy.build("open", private_allowed=["10.1.2.0/24"],
                                  extra_deny=["93.184.216.0/24"])
    allowed = direct_networks(carved, everything)
    assert nets("10.1.2.0/24")[0] in allowed
    assert not any(PUBLIC in n for n in allowed)  # the operator's extra deny
    assert direct_networks(carved, EgressPolicy.parse({"allow_out": ["10.1.2.8/29"]})) \
        == nets("10.1.2.8/29")


def test_direct_tcp_in_allow_list_mode_is_bounded_by_the_operators_addresses() -> None:
    from sandbox_server.network.policy import direct_networks

    operator = OperatorPolicy.build("allow-list", allow=["pypi.org", "1.2.0.0/16"])
    policy = EgressPolicy.parse({"allow_out": ["0.0.0.0/0", "1.2.3.0/24", "9.9.9.9"]})
    assert direct_networks(operator, policy) == nets("1.2.0.0/16")
    narrow = EgressPolicy.parse({"allow_out": ["1.2.3.0/24", "9.9.9.9"]})
    assert direct_networks(operator, narrow) == nets("1.2.3.0/24")


def test_direct_tcp_chain_is_replaced_whole() -> None:
    from sandbox_server.network.render import tcp_rules

    text = tcp_rules("sbxeg-1", [("172.20.0.9", nets("1.2.3.0/24")),
                                 ("172.20.0.5", nets("5.6.7.8/32", "9.0.0.0/8"))])
    assert text.splitlines() == [
        "*filter",
        ":SBXEG-sbxeg-1 - [0:0]",  # declaring the chain flushes it, in the same transaction
        "-A SBXEG-sbxeg-1 -s 172.20.0.5/32 -d 5.6.7.8/32 ! -o sbxeg-1 -p tcp -j ACCEPT",
        "-A SBXEG-sbxeg-1 -s 172.20.0.5/32 -d 9.0.0.0/8 ! -o sbxeg-1 -p tcp -j ACCEPT",
        "-A SBXEG-sbxeg-1 -s 172.20.0.9/32 -d 1.2.3.0/24 ! -o sbxeg-1 -p tcp -j ACCEPT",
        "COMMIT",
    ]
