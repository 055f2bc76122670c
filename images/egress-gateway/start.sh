#!/bin/sh
# The egress gateway's entry point. It runs in the host's network namespace and serves only
# on the sandboxes' bridge address. The server writes the configuration into
# /run/selfbox-egress/<deployment> (env SELFBOX_EGRESS_DIR), then creates "ready".
#
# It installs the host rules that keep sandboxes to the gateway (a sandbox on the bridge may
# reach the gateway's address on ports 53, 80 and 443, nothing else on the host: not the
# server, not the Docker API) and removes them when it stops.
set -eu
conf=${SELFBOX_EGRESS_DIR:?}
i=0
while [ ! -e "$conf/ready" ]; do
    i=$((i + 1)); [ "$i" -le 300 ] || { echo "no configuration in $conf" >&2; exit 1; }
    sleep 0.1
done
. "$conf/gateway.env"   # BRIDGE (interface), GATEWAY_IP, TAG

# The host rules, in order: a sandbox reaches the gateway's DNS and ports 80/443 and nothing
# else on the host; nothing it sends is forwarded (other sandboxes, IP literals, the LAN):
# refused at once, so code in the sandbox gets a clear error rather than a timeout.
specs() {
    echo "INPUT -i $BRIDGE -d $GATEWAY_IP -p udp --dport 53 -j ACCEPT"
    echo "INPUT -i $BRIDGE -d $GATEWAY_IP -p tcp -m multiport --dports 53,80,443 -j ACCEPT"
    echo "INPUT -i $BRIDGE -p tcp -j REJECT --reject-with tcp-reset"
    echo "INPUT -i $BRIDGE -j REJECT --reject-with icmp-admin-prohibited"
    echo "DOCKER-USER -i $BRIDGE -j REJECT --reject-with icmp-admin-prohibited"
}
cleanup() {
    specs | while read -r spec; do
        # shellcheck disable=SC2086
        while iptables -w -D $spec -m comment --comment "$TAG" 2>/dev/null; do :; done
    done
}
cleanup
# -I inserts at the top of each chain: insert the rules last to first.
specs | tac | while read -r spec; do
    chain=${spec%% *}; rest=${spec#* }
    # shellcheck disable=SC2086
    iptables -w -I "$chain" $rest -m comment --comment "$TAG"
done

# The host's own addresses join the hard deny list: a name resolving to one of them (a public
# address of this machine) must not reach the host's services through the gateway.
ip -4 -o addr show | awk '{ split($4, a, "/"); print a[1] "/32" }' >> "$conf/deny.lst"

dnsmasq --keep-in-foreground --conf-file="$conf/dnsmasq.conf" &
dns=$!
haproxy -W -db -S "$conf/master.sock,mode,600" -f "$conf/haproxy.cfg" &
proxy=$!
trap 'kill "$dns" "$proxy" 2>/dev/null || true; cleanup; exit 0' TERM INT
# Either one exiting ends the gateway (the server notices and says so).
while kill -0 "$dns" 2>/dev/null && kill -0 "$proxy" 2>/dev/null; do sleep 1; done
kill "$dns" "$proxy" 2>/dev/null || true
cleanup
exit 1
