#!/usr/bin/env bash
# A real multi-node Docker Swarm on this one machine, for trying and testing selfbox's scale-out:
# the host's engine is the manager, plus SBX_SWARM_WORKERS (2) extra dockerds, each in its own
# network, mount and UTS namespace, joined as workers. See docs/scale-out.md.
#
#   scripts/swarm-dev.sh up       # bridge + namespaces + engines, swarm, images, node labels
#   scripts/swarm-dev.sh deploy   # docker stack deploy deploy/swarm/stack.yaml, wait for /healthz
#   scripts/swarm-dev.sh status   # nodes, engines, services
#   scripts/swarm-dev.sh down     # undo all of it (idempotent, safe to run twice)
#
# Root only. Everything it creates is named sbxsw-* (links, namespaces, node hostnames, iptables
# rule comment, cgroups) or lives under SBX_SWARM_DIR, so nothing else on the machine is touched; `down` ends
# only the processes recorded in (or running from) that directory, by PID.
#
# Settings (environment): SBX_SWARM_DIR (/var/lib/sbxsw), SBX_SWARM_WORKERS (2),
# SBX_SWARM_NET (100.64.213: a /24 prefix outside Docker's address pools), SBX_SWARM_IMAGES
# (the images loaded into each worker), SBX_SWARM_STACK (selfbox), SBX_SWARM_API_PORT (18000).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=sbxsw
DIR="${SBX_SWARM_DIR:-/var/lib/$PREFIX}"
WORKERS="${SBX_SWARM_WORKERS:-2}"
NET="${SBX_SWARM_NET:-100.64.213}"
IMAGES="${SBX_SWARM_IMAGES:-selfbox/runtime:latest selfbox/server:latest selfbox/socket-proxy:latest}"
STACK="${SBX_SWARM_STACK:-selfbox}"
API_PORT="${SBX_SWARM_API_PORT:-18000}"
BRIDGE=$PREFIX-br0
MANAGER_ADDR="$NET.1"
RULE_COMMENT=$PREFIX
FRESH_SWARM=0

log() { printf '[swarm-dev] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

node_name() { echo "$PREFIX-w$1"; }
node_dir() { echo "$DIR/$(node_name "$1")"; }
node_sock() { echo "$(node_dir "$1")/docker.sock"; }
node_addr() { echo "$NET.$((10 + $1))"; }
ndocker() { local i=$1; shift; docker -H "unix://$(node_sock "$i")" "$@"; }

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (it creates namespaces, links and engines)"; }

ensure_tools() {
    local missing=()
    command -v ip >/dev/null || missing+=(iproute2)
    command -v nsenter >/dev/null || missing+=(util-linux)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v curl >/dev/null || missing+=(curl)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    bash "$REPO_ROOT/scripts/ensure-docker.sh"
    command -v dockerd >/dev/null || die "dockerd is not installed"
}

# ---------------------------------------------------------------- network
net_up() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$MANAGER_ADDR/24" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
    # Docker's FORWARD policy is DROP and bridged frames go through iptables (br_netfilter):
    # let worker-to-worker traffic (VXLAN, gossip) cross our bridge, and nothing else.
    if ! iptables -C DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$RULE_COMMENT" \
            -j ACCEPT 2>/dev/null; then
        iptables -I DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$RULE_COMMENT" -j ACCEPT
    fi
    local i name
    for i in $(seq 1 "$WORKERS"); do
        name="$(node_name "$i")"
        [ -e "/run/netns/$name" ] || ip netns add "$name"
        if ! ip link show "$name-h" >/dev/null 2>&1; then
            ip link add "$name-h" type veth peer name "$name-n"
            ip link set "$name-n" netns "$name"
            ip -n "$name" link set "$name-n" name eth0
            ip -n "$name" addr add "$(node_addr "$i")/24" dev eth0
            ip link set "$name-h" master "$BRIDGE"
        fi
        ip link set "$name-h" up
        ip -n "$name" link set lo up
        ip -n "$name" link set eth0 up
    done
}

net_down() {
    local i name
    for i in $(seq 1 "$WORKERS"); do
        name="$(node_name "$i")"
        ip link del "$name-h" 2>/dev/null || true
        if [ -e "/run/netns/$name" ]; then ip netns del "$name" || true; fi
    done
    while iptables -D DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$RULE_COMMENT" \
            -j ACCEPT 2>/dev/null; do :; done
    ip link del "$BRIDGE" 2>/dev/null || true
}

# ---------------------------------------------------------------- worker engines
# The per-node daemon configuration: what a Swarm service spec on API 1.41 cannot say for a
# sandbox (docs/scale-out.md, "Hardening"). An operator sets the same on every sandbox node.
write_daemon_json() {  # $1: file, $2: worker index
    local runtimes="" default=""
    if command -v runsc >/dev/null 2>&1; then
        # gVisor registered; the default runtime only on the workers in SBX_SWARM_GVISOR (Swarm
        # services cannot choose a runtime). runsc's own --network=host: its netns detection is
        # wrong on this kernel (docs/scale-out.md); the task's namespace is still the task's
        # (only lo for a sandbox on a "bridge none" node, the overlay for the node's proxy).
        # --host-uds=open: the node's proxy connects to the engine's socket from inside gVisor.
        runtimes=$(printf ',\n  "runtimes": {"runsc": {"path": "%s", "runtimeArgs": ["--platform=ptrace", "--network=host", "--host-uds=open"]}}' \
            "$(command -v runsc)")
        if [[ " ${SBX_SWARM_GVISOR:-} " == *" $2 "* ]]; then default=$',\n  "default-runtime": "runsc"'; fi
    elif [ -n "${SBX_SWARM_GVISOR:-}" ]; then
        die "SBX_SWARM_GVISOR is set but runsc is not installed"
    fi
    # selfbox's own seccomp profile (Docker's default minus io_uring and the like, as a
    # single-node sandbox gets it): a service cannot name one, so the node's default is it.
    cp "$REPO_ROOT/images/seccomp/selfbox.json" "$(dirname "$1")/seccomp.json"
    cat >"$1" <<EOF
{
  "no-new-privileges": true,
  "seccomp-profile": "$(dirname "$1")/seccomp.json",
  "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 4096, "Hard": 4096}},
  "default-ipc-mode": "private",
  "default-cgroupns-mode": "private",
  "default-shm-size": "64M",
  "bridge": "none",
  "log-driver": "local",
  "log-opts": {"max-size": "1m", "max-file": "2"},
  "userland-proxy": false$runtimes$default
}
EOF
}

engine_pid() {  # $1: worker index; the PID of its dockerd if it is running from our directory
    local d pid
    d="$(node_dir "$1")"
    [ -s "$d/dockerd.pid" ] || return 1
    pid="$(cat "$d/dockerd.pid")"
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "--data-root $d/data" || return 1
    echo "$pid"
}

engine_up() {  # $1: worker index
    local i=$1 d name
    d="$(node_dir "$i")"
    name="$(node_name "$i")"
    if engine_pid "$i" >/dev/null; then return 0; fi
    mkdir -p "$d/data" "$d/exec" "$d/etc"
    mkdir -p /etc/docker  # the mount point of the node's own /etc/docker (a fresh host may lack it)
    write_daemon_json "$d/etc/daemon.json" "$i"
    # Own network namespace (nsenter, not `ip netns exec`: that remounts /sys and hides the
    # cgroup v1 hierarchies), own mount namespace in which /run and /etc/docker are this node's
    # (so the node's engine socket is /var/run/docker.sock for its containers, like on a real
    # host, and the host's daemon.json and key.json stay out), own hostname (the node's name).
    # Every mount it makes dies with it.
    # shellcheck disable=SC2016  # expanded by the inner sh, from its arguments
    nsenter --net="/run/netns/$name" unshare --mount --uts --propagation private \
        sh -c 'set -e
            hostname "$1"
            mount -t tmpfs -o mode=0755,size=64m sbxsw-run /run
            mount --bind "$2/etc" /etc/docker
            export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
            exec dockerd --config-file "$2/etc/daemon.json" --data-root "$2/data" \
                --exec-root "$2/exec" --pidfile "$2/exec/dockerd.pid" \
                -H "unix://$2/docker.sock" -H unix:///var/run/docker.sock \
                --cgroup-parent "/$1"' \
        sh "$name" "$d" \
        </dev/null >"$d/dockerd.log" 2>&1 &
    echo $! >"$d/dockerd.pid"
}

engine_wait() {  # $1: worker index; up to 60 s
    local i=$1
    for _ in $(seq 1 240); do
        if ndocker "$i" info >/dev/null 2>&1; then return 0; fi
        # The recorded PID (nsenter, which becomes dockerd) must still be there.
        kill -0 "$(cat "$(node_dir "$i")/dockerd.pid")" 2>/dev/null \
            || die "$(node_name "$i")'s dockerd exited: $(tail -5 "$(node_dir "$i")/dockerd.log")"
        sleep 0.25
    done
    die "$(node_name "$i")'s dockerd did not answer within 60 s (log: $(node_dir "$i")/dockerd.log)"
}

# Processes started from a worker's directory (dockerd, its containerd, shims): by PID. The
# pattern does not match its own text, so the grep never lists itself.
node_pids() {  # $1: worker index
    local d p
    d="$(node_dir "$1")"
    # shellcheck disable=SC2013  # /proc/N/cmdline paths: no spaces
    for p in $(grep -laE -- "$d/(exec|data)/" /proc/[0-9]*/cmdline 2>/dev/null); do
        p="${p#/proc/}"
        echo "${p%/cmdline}"
    done
}

engine_down() {  # $1: worker index
    local i=$1 pid pids
    if pid="$(engine_pid "$i")"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do
            [ -d "/proc/$pid" ] || break
            sleep 0.25
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    pids="$(node_pids "$i")"
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
    rm -f "$(node_dir "$i")/dockerd.pid"
}

node_cgroups() {  # $1: worker index; its cgroup directories (cgroup v1 and v2)
    local name c
    name="$(node_name "$1")"
    for c in /sys/fs/cgroup/*/"$name" /sys/fs/cgroup/"$name"; do
        [ -d "$c" ] && echo "$c"
    done
    return 0
}

cgroups_down() {  # $1: worker index
    local pids c
    # Container processes outlive a killed engine and shim (a crashed node): they are in the
    # node's cgroups, which only this script's engine creates.
    for _ in $(seq 1 20); do
        # shellcheck disable=SC2046
        pids="$(cat $(find $(node_cgroups "$1") -name cgroup.procs 2>/dev/null) /dev/null 2>/dev/null | sort -u)"
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.1
    done
    for c in $(node_cgroups "$1"); do
        find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

# ---------------------------------------------------------------- swarm
swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }

manager_up() {
    local state
    state="$(swarm_state)"
    if [ -f "$DIR/manager.node" ]; then
        [ "$state" = active ] && return 0
        rm -f "$DIR/manager.node"
    fi
    [ "$state" = inactive ] \
        || die "the host's engine is already in a swarm (state: $state) that this script did not create; leaving it alone"
    docker network inspect docker_gwbridge >/dev/null 2>&1 || touch "$DIR/manager.gwbridge"
    docker swarm init --advertise-addr "$MANAGER_ADDR" --listen-addr "$MANAGER_ADDR:2377" >/dev/null
    FRESH_SWARM=1
    docker info --format '{{.Swarm.NodeID}}' >"$DIR/manager.node"
    # Sandboxes are one-shot (never restarted empty); keep few old tasks around.
    docker swarm update --task-history-limit 2 >/dev/null
}

worker_join() {  # $1: worker index
    local i=$1 state
    state="$(ndocker "$i" info --format '{{.Swarm.LocalNodeState}}')"
    if [ "$state" != inactive ]; then
        # Still in the swarm of an earlier `up` whose manager side is gone: leave it.
        [ "$FRESH_SWARM" = 1 ] || return 0
        ndocker "$i" swarm leave --force >/dev/null
    fi
    ndocker "$i" swarm join --token "$(docker swarm join-token -q worker)" \
        --advertise-addr "$(node_addr "$i")" --listen-addr "$(node_addr "$i"):2377" \
        "$MANAGER_ADDR:2377" >/dev/null
}

node_id_of() {  # $1: hostname; the Ready node of that name (a re-joined engine leaves a Down one)
    docker node ls --format '{{.ID}} {{.Hostname}} {{.Status}}' | awk -v h="$1" '$2 == h && $3 == "Ready" { print $1 }'
}

labels_up() {
    local i id
    # The manager runs no sandboxes in this dev cluster: its engine is the shared host engine
    # whose daemon configuration we may not change (no "no-new-privileges" default there).
    id="$(docker info --format '{{.Swarm.NodeID}}')"
    docker node update --label-add io.selfbox.sandbox=false --label-add io.selfbox.api=false "$id" >/dev/null
    for i in $(seq 1 "$WORKERS"); do
        id="$(node_id_of "$(node_name "$i")")"
        [ -n "$id" ] || die "$(node_name "$i") is not a Ready node"
        docker node update --label-add io.selfbox.sandbox=true --label-add io.selfbox.api=true "$id" >/dev/null
    done
}

images_up() {
    local image i missing=() archive="$DIR/images.tar" pids=()
    for image in $IMAGES; do
        docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing on the host's engine: ${missing[*]} (build them: selfbox images build / docs/scale-out.md)"
    # Only what some worker lacks (same tag, same image ID): a second `up` loads nothing.
    local wanted=() id
    for image in $IMAGES; do
        id="$(docker image inspect -f '{{.Id}}' "$image")"
        for i in $(seq 1 "$WORKERS"); do
            if [ "$(ndocker "$i" image inspect -f '{{.Id}}' "$image" 2>/dev/null)" != "$id" ]; then
                wanted+=("$image")
                break
            fi
        done
    done
    [ ${#wanted[@]} -gt 0 ] || return 0
    docker save -o "$archive" "${wanted[@]}"
    for i in $(seq 1 "$WORKERS"); do
        ndocker "$i" load -q -i "$archive" >/dev/null &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || die "docker load failed on a worker"; done
    rm -f "$archive"
}

wait_nodes_ready() {  # all 1 + WORKERS nodes Ready, up to 60 s
    local ready
    for _ in $(seq 1 240); do
        ready="$(docker node ls --format '{{.Status}}' | grep -c '^Ready$' || true)"
        [ "$ready" -ge $((WORKERS + 1)) ] && return 0
        sleep 0.25
    done
    die "only $ready of $((WORKERS + 1)) nodes are Ready after 60 s"
}

cmd_up() {
    need_root
    local t0 i
    t0="$(now)"
    ensure_tools
    mkdir -p "$DIR"
    net_up
    for i in $(seq 1 "$WORKERS"); do engine_up "$i"; done
    manager_up
    for i in $(seq 1 "$WORKERS"); do engine_wait "$i"; done
    for i in $(seq 1 "$WORKERS"); do worker_join "$i"; done
    wait_nodes_ready
    labels_up
    log "cluster up in $(elapsed "$t0") s; loading images: $IMAGES"
    t0="$(now)"
    images_up
    log "images loaded in $(elapsed "$t0") s"
    cmd_status
}

services_down() {  # every service on the swarm this script created, then their containers
    [ "$(swarm_state)" = active ] && [ -f "$DIR/manager.node" ] || return 0
    docker stack rm "$STACK" >/dev/null 2>&1 || true
    docker service ls -q | xargs -r docker service rm >/dev/null 2>&1 || true
    for _ in $(seq 1 80); do
        [ -z "$(swarm_containers)" ] && break
        sleep 0.25
    done
}

swarm_containers() {  # the swarm tasks' containers still on the manager or any worker
    local i
    docker ps -q --filter label=com.docker.swarm.service.id
    for i in $(seq 1 "$WORKERS"); do
        ndocker "$i" ps -q --filter label=com.docker.swarm.service.id 2>/dev/null || true
    done
}

worker_down() {  # $1: worker index
    if ndocker "$1" info >/dev/null 2>&1; then
        timeout 20 docker -H "unix://$(node_sock "$1")" swarm leave --force >/dev/null 2>&1 || true
    fi
    engine_down "$1"
    cgroups_down "$1"
}

cmd_down() {
    need_root
    local t0 i
    t0="$(now)"
    services_down
    log "services removed: $(elapsed "$t0") s"
    for i in $(seq 1 "$WORKERS"); do worker_down "$i" & done
    wait
    log "workers stopped: $(elapsed "$t0") s"
    if [ -f "$DIR/manager.node" ]; then
        if [ "$(swarm_state)" != inactive ]; then timeout 30 docker swarm leave --force >/dev/null; fi
        log "manager left the swarm: $(elapsed "$t0") s"
        rm -f "$DIR/manager.node"
    fi
    if [ -f "$DIR/manager.gwbridge" ]; then
        docker network rm docker_gwbridge >/dev/null 2>&1 || true
        rm -f "$DIR/manager.gwbridge"
    fi
    net_down
    log "network removed: $(elapsed "$t0") s"
    if [ -d "$DIR" ]; then
        # Mounts under DIR lived in the engines' private mount namespaces; refuse to delete
        # through one that is somehow visible here.
        if findmnt -rn -o TARGET | grep -q "^$DIR/"; then die "mounts remain under $DIR; not deleting it"; fi
        rm -rf "$DIR"
    fi
    log "down in $(elapsed "$t0") s"
}

cmd_status() {
    local i pid
    if [ "$(swarm_state)" = active ]; then
        docker node ls --format 'table {{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.ID}}'
    else
        echo "the host's engine is not in a swarm"
    fi
    for i in $(seq 1 "$WORKERS"); do
        if pid="$(engine_pid "$i")"; then
            echo "$(node_name "$i"): dockerd pid $pid, $(node_addr "$i"), DOCKER_HOST=unix://$(node_sock "$i")"
        else
            echo "$(node_name "$i"): no engine"
        fi
    done
    if [ "$(swarm_state)" = active ] && [ -n "$(docker service ls -q)" ]; then docker service ls; fi
}

stack_converged() {  # every service runs as many tasks as it wants, no rolling update on
    local line ids
    line="$(docker stack services "$STACK" --format '{{.Replicas}}' 2>/dev/null)" || return 1
    [ -n "$line" ] || return 1
    awk -F'[/ ]' '$1 != $2 { bad = 1 } END { exit bad }' <<<"$line" || return 1
    ids="$(docker stack services -q "$STACK")"
    # shellcheck disable=SC2086
    ! docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' $ids \
        | grep -q -E 'updating|rollback_started'
}

# From an API replica on the first worker: each node's proxy on the overlay, by DNS round robin.
# _ping must answer (200), a call outside the allow-list must not (403).
PROXY_CHECK='
import socket, urllib.error, urllib.request
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code
ips = sorted({a[4][0] for a in socket.getaddrinfo("tasks.socket-proxy", 2375)})
for ip in ips:
    base = "http://%s:2375/v1.41" % ip
    print("proxy %s: /_ping %s, /nodes %s, /info %s, /containers/create %s" % (
        ip, get(base + "/_ping"), get(base + "/nodes"), get(base + "/info"),
        get(base + "/containers/create")))
'

cmd_deploy() {
    need_root
    local t0 keys replicas healthy i c
    t0="$(now)"
    [ -f "$DIR/manager.node" ] || die "no dev cluster: run '$0 up' first"
    keys="${SELFBOX_API_KEYS:-$(cat "$DIR/api-key" 2>/dev/null || true)}"
    if [ -z "$keys" ]; then
        keys="sbxsw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        echo "$keys" >"$DIR/api-key"
    fi
    [ -s "$DIR/state-secret" ] || head -c 36 /dev/urandom | base64 | tr -d '\n' >"$DIR/state-secret"
    SELFBOX_STATE_SECRET="${SELFBOX_STATE_SECRET:-$(cat "$DIR/state-secret")}" SELFBOX_STACK_NAME="$STACK" \
    SELFBOX_PROXY_CONFIG_NAME="selfbox_proxy_$(sha256sum "$REPO_ROOT/images/socket-proxy/haproxy-swarm.cfg" | cut -c1-12)" \
    SELFBOX_API_KEYS="$keys" SELFBOX_API_PORT="$API_PORT" SELFBOX_API_REPLICAS="$WORKERS" \
        docker stack deploy --detach=true --resolve-image never \
            -c "$REPO_ROOT/deploy/swarm/stack.yaml" "$STACK" >/dev/null
    for _ in $(seq 1 240); do
        stack_converged && break
        sleep 0.5
    done
    stack_converged || { docker stack ps --no-trunc "$STACK" >&2; die "stack $STACK did not converge in 120 s"; }
    replicas="$WORKERS"
    for _ in $(seq 1 240); do
        healthy=0
        for i in $(seq 1 "$WORKERS"); do
            if curl -fsS -m 2 "http://$(node_addr "$i"):$API_PORT/healthz" >/dev/null 2>&1; then
                healthy=$((healthy + 1))
            fi
        done
        [ "$healthy" -ge "$replicas" ] && break
        sleep 0.5
    done
    [ "$healthy" -ge "$replicas" ] || { docker stack ps --no-trunc "$STACK" >&2; die "$healthy of $replicas API replicas answer /healthz after 120 s"; }
    log "stack $STACK deployed in $(elapsed "$t0") s"
    docker stack ps "$STACK" --filter desired-state=running --format '{{.Name}}  {{.Node}}  {{.CurrentState}}'
    for i in $(seq 1 "$WORKERS"); do
        echo "API replica on $(node_name "$i"): http://$(node_addr "$i"):$API_PORT/healthz -> $(curl -fsS -m 2 "http://$(node_addr "$i"):$API_PORT/healthz")"
    done
    c="$(ndocker 1 ps -q --filter "label=com.docker.swarm.service.name=${STACK}_api" | head -1)"
    [ -n "$c" ] && ndocker 1 exec "$c" python3 -c "$PROXY_CHECK"
    echo "endpoints: $(for i in $(seq 1 "$WORKERS"); do printf 'http://%s:%s ' "$(node_addr "$i")" "$API_PORT"; done)"
    echo "api key:   $keys"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    deploy) cmd_deploy ;;
    load) need_root; images_up ;;  # (re)load SBX_SWARM_IMAGES into the workers
    *) echo "usage: $0 up|deploy|load|status|down" >&2; exit 2 ;;
esac
