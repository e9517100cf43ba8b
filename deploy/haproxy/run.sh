#!/usr/bin/env bash
# Three occwserv instances behind HAProxy, all on loopback (docs/DEPLOY.md).
#
#   deploy/haproxy/run.sh           start node1..3 and HAProxy; stop them all on SIGINT/SIGTERM
#   deploy/haproxy/run.sh node N    (re)start instance N alone, after it stopped or was killed
#
# Settings, from the environment (defaults in brackets):
#   OCCWSERV    the server binary [target/release/occwserv, else /usr/bin/occwserv]
#   PLUGINS     plug-in directory [target/release, else /usr/lib/occwserv/plugins]
#   ROOT        document root [html]            CGI_BIN   CGI programs [cgi-bin]
#   STATE       configs, logs, pids, game world [./haproxy-run]
#   FRONT_PORT  HAProxy's port [8080]           NODE_PORTS  the instances' ports ["8081 8082 8083"]
#   PROXY_PROTOCOL  "on": HAProxy sends PROXY v2 headers and the instances require them [on]
# node1 also runs the game (/ogi/game); node2 and node3 leave it out.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."

pick() { for candidate in "$@"; do [ -e "$candidate" ] && { echo "$candidate"; return; }; done; echo "$1"; }
OCCWSERV=${OCCWSERV:-$(pick target/release/occwserv /usr/bin/occwserv)}
PLUGINS=${PLUGINS:-$(pick target/release /usr/lib/occwserv/plugins)}
ROOT=${ROOT:-html}
CGI_BIN=${CGI_BIN:-cgi-bin}
STATE=${STATE:-$PWD/haproxy-run}
FRONT_PORT=${FRONT_PORT:-8080}
read -r -a PORTS <<< "${NODE_PORTS:-8081 8082 8083}"
PROXY_PROTOCOL=${PROXY_PROTOCOL:-on}
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
ROOT=$(absolute "$ROOT"); CGI_BIN=$(absolute "$CGI_BIN"); PLUGINS=$(absolute "$PLUGINS"); STATE=$(absolute "$STATE")

# Writes instance N's config and starts it in the background; its PID goes to nodeN/pid.
start_node() {
    local n=$1 port=${PORTS[$(($1 - 1))]} dir="$STATE/node$1"
    mkdir -p "$dir"
    local listen="\"127.0.0.1:$port\"" exclude='["crash", "game"]' proxy=""
    if [ "$PROXY_PROTOCOL" = on ]; then
        listen="[{ addr = \"127.0.0.1:$port\", proxy_protocol = true }]"
        proxy=$'[proxy]\ntrusted = ["127.0.0.1/32"]'
    fi
    [ "$n" = 1 ] && exclude='["crash"]'
    cat > "$dir/occwserv.toml" <<CONFIG
listen = $listen
root = "$ROOT"
cgi_bin = "$CGI_BIN"
plugins = "$PLUGINS"
access_log = "$dir/access.log"
error_log = "$dir/error.log"
$proxy

[ogi]
exclude = $exclude

[game]
state_dir = "$STATE/game"
CONFIG
    "$OCCWSERV" --config "$dir/occwserv.toml" > "$dir/stdout.log" 2>&1 < /dev/null &
    echo $! > "$dir/pid"
    # Ready once its first line says where it listens (bounded: 30 s).
    for _ in $(seq 300); do
        grep -q "^listening on" "$dir/stdout.log" 2>/dev/null && return 0
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "node$n did not start; see $dir/error.log" >&2
    return 1
}

export FRONT_ADDR="127.0.0.1:$FRONT_PORT"
export NODE1_ADDR="127.0.0.1:${PORTS[0]}" NODE2_ADDR="127.0.0.1:${PORTS[1]}" NODE3_ADDR="127.0.0.1:${PORTS[2]}"
[ "$PROXY_PROTOCOL" = on ] && export SEND_PROXY=1

if [ "${1:-}" = node ]; then
    start_node "${2:?which node: 1, 2 or 3}"
    exit 0
fi

mkdir -p "$STATE"
stop() {
    trap - INT TERM EXIT
    for pidfile in "$STATE"/haproxy.pid "$STATE"/node*/pid; do
        [ -s "$pidfile" ] && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    done
    wait || true
}
trap stop INT TERM EXIT
haproxy -c -q -f "$HERE/haproxy.cfg"
for n in 1 2 3; do start_node "$n"; done
haproxy -db -f "$HERE/haproxy.cfg" > "$STATE/haproxy.log" 2>&1 < /dev/null &
echo $! > "$STATE/haproxy.pid"
echo "HAProxy on http://$FRONT_ADDR/ in front of ${PORTS[*]}; state in $STATE"
wait "$(cat "$STATE/haproxy.pid")"
