#!/bin/sh
# The egress gateway's entry point. It runs in the host's network namespace and serves only
# on the sandboxes' bridge address. The server writes the configuration into
# /run/selfbox-egress/<deployment> (env SELFBOX_EGRESS_DIR), then creates "ready".
#
# It installs the host rules that keep sandboxes to the gateway (a sandbox on the bridge may
# reach the gateway's address on ports 53, 80 and 443, nothing else on the host: not the
# server, not the Docker API) and removes them when it stops.
#
# SELFBOX_EGRESS_EXTERNAL=1 (the compose service; the server runs with
# SELFBOX_EGRESS_GATEWAY=external): wait for "ready" as long as it takes, and exit (removing
# the rules) when its token changes or vanishes — the server restarted or stopped; the
# service's restart policy starts this again, waiting for the next configuration.
set -eu
conf=${SELFBOX_EGRESS_DIR:?}
i=0
while [ ! -e "$conf/ready" ]; do
    if [ "${SELFBOX_EGRESS_EXTERNAL:-0}" != 1 ]; then
        i=$((i + 1)); [ "$i" -le 300 ] || { echo "no configuration in $conf" >&2; exit 1; }
    fi
    sleep 0.1
done
token=$(cat "$conf/ready")
. "$conf/gateway.env"   # BRIDGE (interface), GATEWAY_IP, TAG, CHAIN
subnet=$(ip -4 -o addr show dev "$BRIDGE" | awk '{ print $4; exit }')

# The host rules, in order: a sandbox reaches the gateway's DNS and ports 80/443 and nothing
# else on the host; nothing it sends is forwarded (other sandboxes, IP literals, the LAN):
# refused at once, so code in the sandbox gets a clear error rather than a timeout; except
# direct TCP by address that a sandbox's policy allows: $CHAIN (the server writes it to
# tcp.rules, this script loads it) accepts those, their replies come back, and they leave
# with the host's address. The network stays "internal": without these rules Docker's own
# isolation drops everything forwarded (fails closed).
specs() {
    echo "INPUT -i $BRIDGE -d $GATEWAY_IP -p udp --dport 53 -j ACCEPT"
    echo "INPUT -i $BRIDGE -d $GATEWAY_IP -p tcp -m multiport --dports 53,80,443 -j ACCEPT"
    echo "INPUT -i $BRIDGE -p tcp -j REJECT --reject-with tcp-reset"
    echo "INPUT -i $BRIDGE -j REJECT --reject-with icmp-admin-prohibited"
    echo "DOCKER-USER -o $BRIDGE -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
    echo "DOCKER-USER -i $BRIDGE -p tcp -j $CHAIN"
    echo "DOCKER-USER -i $BRIDGE -j REJECT --reject-with icmp-admin-prohibited"
}
masquerade="POSTROUTING -s $subnet ! -o $BRIDGE -j MASQUERADE"
cleanup() {
    specs | while read -r spec; do
        # shellcheck disable=SC2086
        while iptables -w -D $spec -m comment --comment "$TAG" 2>/dev/null; do :; done
    done
    # shellcheck disable=SC2086
    while iptables -w -t nat -D $masquerade -m comment --comment "$TAG" 2>/dev/null; do :; done
    iptables -w -F "$CHAIN" 2>/dev/null || true
    iptables -w -X "$CHAIN" 2>/dev/null || true
}
cleanup
iptables -w -N "$CHAIN"
# shellcheck disable=SC2086
iptables -w -t nat -I $masquerade -m comment --comment "$TAG"
# -I inserts at the top of each chain: insert the rules last to first (awk, not tac: tac
# needs a writable /tmp, and the root file system is read-only; a failing first command of a
# pipeline would go unnoticed).
specs | awk '{ line[NR] = $0 } END { for (i = NR; i > 0; i--) print line[i] }' |
while read -r spec; do
    chain=${spec%% *}; rest=${spec#* }
    # shellcheck disable=SC2086
    iptables -w -I "$chain" $rest -m comment --comment "$TAG"
done
# Refuse to serve unconfined: every rule must be in place.
[ "$(iptables -w -S | grep -c -- "--comment $TAG")" -ge 7 ] || {
    echo "the host rules did not install" >&2; cleanup; exit 1; }

# The host's own addresses join the hard deny list: a name resolving to one of them (a public
# address of this machine) must not reach the host's services through the gateway.
ip -4 -o addr show | awk '{ split($4, a, "/"); print a[1] "/32" }' >> "$conf/deny.lst"

dnsmasq --keep-in-foreground --conf-file="$conf/dnsmasq.conf" &
dns=$!
haproxy -W -db -S "$conf/master.sock,mode,600" -f "$conf/haproxy.cfg" &
proxy=$!
trap 'kill "$dns" "$proxy" 2>/dev/null || true; cleanup; exit 0' TERM INT
# Load the direct-TCP chain whenever the server bumps tcp.gen (it waits for tcp.applied).
applied=""
load_tcp() {
    gen=$(cat "$conf/tcp.gen" 2>/dev/null || true)
    [ -n "$gen" ] && [ "$gen" != "$applied" ] || return 0
    if err=$(iptables-restore -w --noflush < "$conf/tcp.rules" 2>&1); then
        echo "$gen ok" > "$conf/.tcp.applied.tmp"
    else
        echo "$gen failed: $err" | tr '\n' ' ' > "$conf/.tcp.applied.tmp"
    fi
    mv -f "$conf/.tcp.applied.tmp" "$conf/tcp.applied"
    applied=$gen
}
# Either one exiting ends the gateway (the server notices and says so).
while kill -0 "$dns" 2>/dev/null && kill -0 "$proxy" 2>/dev/null; do
    if [ "$(cat "$conf/ready" 2>/dev/null || echo gone)" != "$token" ]; then
        echo "the server's configuration went away: stopping" >&2
        kill "$dns" "$proxy" 2>/dev/null || true
        cleanup
        exit 0
    fi
    load_tcp
    sleep 0.05
done
kill "$dns" "$proxy" 2>/dev/null || true
cleanup
exit 1
