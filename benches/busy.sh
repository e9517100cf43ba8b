#!/usr/bin/env bash
# Latency on a busy machine, in one command: occwserv and nginx (worker_processes auto) serve the
# same docroot one after the other in this run while `stress-ng --cpu 1` keeps one core busy for
# both. httperf opens RATE connections/s, 4 requests of the 8 KiB page each (the paper's run),
# and wrk -c100 measures keep-alive latency; each is repeated REPS times.
#
#   benches/busy.sh                      # RATE=4000 CONNS=5000 REPS=3 DUR=6
#
# Prints per run: connection time average and median (ms), wrk p99 (ms), req/s; then medians
# and the occwserv/nginx ratios.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RATE="${RATE:-4000}"; CONNS="${CONNS:-5000}"; REPS="${REPS:-3}"; DUR="${DUR:-6}"
OURS_PORT=18182; NGINX_PORT=18183

for tool in wrk nginx httperf stress-ng python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y wrk nginx httperf stress-ng)" >&2; exit 2; }
done
(cd "$ROOT" && cargo build --release -q -p occwserv)

WORK="$(mktemp -d)"
PIDS=()
stop_all() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; PIDS=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT
DOC="$WORK/docroot"; mkdir -p "$DOC" "$WORK/nginx/tmp"
python3 -c "import sys; sys.stdout.write(('occwserv benchmark page ' * 400)[:8192])" > "$DOC/page8k.html"
printf 'access_log = ""\n' > "$WORK/occwserv.toml"
NGINX_USER=""; [ "$(id -u)" -eq 0 ] && NGINX_USER="user root;"
cat > "$WORK/nginx/nginx.conf" <<NGX
$NGINX_USER
worker_processes auto;
worker_rlimit_nofile 20000;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; use epoll; }
http {
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65s; keepalive_requests 1000000; open_file_cache max=1024 inactive=60s;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  server { listen 127.0.0.1:$NGINX_PORT backlog=4096; root $DOC; }
}
NGX

start() {
  case $1 in
    occwserv) "$ROOT/target/release/occwserv" --config "$WORK/occwserv.toml" --listen 127.0.0.1:$OURS_PORT --root "$DOC" \
                --plugins "$WORK/none" >/dev/null 2>"$WORK/occwserv.err" & SRV_PID=$!; PORT=$OURS_PORT ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.err" & SRV_PID=$!; PORT=$NGINX_PORT ;;
  esac
  PIDS+=("$SRV_PID")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/page8k.html" && return 0; sleep 0.1; done
  echo "$1 did not start" >&2; exit 1
}
declare -A R
measure() {
  local name=$1 rep out
  start "$name"
  timeout 20 wrk -t1 -c50 -d2s "http://127.0.0.1:$PORT/page8k.html" >/dev/null 2>&1 || true
  for rep in $(seq "$REPS"); do
    timeout $((DUR * 3 + 60)) stress-ng --cpu 1 --timeout $((CONNS / RATE + DUR + 10))s >/dev/null 2>&1 &
    local stress=$!
    sleep 1
    out=$(timeout $((CONNS / RATE + 60)) httperf --server 127.0.0.1 --port "$PORT" --uri /page8k.html \
          --num-conns "$CONNS" --num-calls 4 --rate "$RATE" --timeout 10 2>&1)
    local avg med errs
    avg=$(awk '/^Connection time \[ms\]: min/{print $7}' <<<"$out")
    med=$(awk '/^Connection time \[ms\]: min/{print $11}' <<<"$out")
    errs=$(awk '/^Errors: total/{print $3}' <<<"$out")
    out=$(timeout $((DUR + 20)) wrk -t1 -c100 -d"${DUR}s" --latency "http://127.0.0.1:$PORT/page8k.html")
    local p99 rps
    p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    kill "$stress" 2>/dev/null || true; wait "$stress" 2>/dev/null || true
    echo "$name rep$rep httperf_conn_ms_avg $avg median $med errors $errs wrk_c100_p99_ms $p99 rps $rps"
    R[$name,avg,$rep]=$avg; R[$name,med,$rep]=$med; R[$name,p99,$rep]=$p99; R[$name,rps,$rep]=$rps
  done
  stop_all
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
measure occwserv
measure nginx
echo "--- medians over $REPS runs, one core held by stress-ng (occwserv / nginx)"
for k in avg med p99 rps; do
  o=(); n=()
  for rep in $(seq "$REPS"); do o+=("${R[occwserv,$k,$rep]}"); n+=("${R[nginx,$k,$rep]}"); done
  mo=$(median "${o[@]}"); mn=$(median "${n[@]}")
  awk -v k="$k" -v mo="$mo" -v mn="$mn" 'BEGIN{printf "%-4s %10.2f / %10.2f = %.2fx\n", k, mo, mn, (mn > 0 ? mo/mn : 0)}'
done
