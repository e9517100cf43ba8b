#!/usr/bin/env bash
# The load benchmark, in one command: occwserv and nginx (worker_processes auto) serve the same
# docroot, one after the other in this run; wrk measures the 8 KiB page over keep-alive at each
# connection count, /proc/PID/stat gives server CPU time per request, and IDLE_N idle keep-alive
# connections are held while wrk measures active throughput and RSS per idle connection.
#
#   benches/load.sh          # DUR=6 RUNS="page8k.html:10 page8k.html:100 page8k.html:1000 small.txt:100"
#                            # IDLE_N=10000 REPS=3
#
# Prints one row per measurement and the occwserv/nginx ratios (medians over REPS).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DUR="${DUR:-6}"; RUNS="${RUNS:-page8k.html:10 page8k.html:100 page8k.html:1000 small.txt:100}"; IDLE_N="${IDLE_N:-10000}"; REPS="${REPS:-3}"; HOLD="${HOLD:-8}"
OURS_PORT=18180; NGINX_PORT=18181

for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y wrk nginx python3)" >&2; exit 2; }
done
(cd "$ROOT" && cargo build --release -q -p occwserv)

WORK="$(mktemp -d)"; trap 'stop_all; rm -rf "$WORK"' EXIT
DOC="$WORK/docroot"; mkdir -p "$DOC" "$WORK/nginx/tmp"
python3 -c "import sys; sys.stdout.write(('occwserv benchmark page ' * 400)[:8192])" > "$DOC/page8k.html"
head -c 100 "$DOC/page8k.html" > "$DOC/small.txt"

printf 'access_log = ""\nmax_keep_alive_requests = 1000000\n' > "$WORK/occwserv.toml"
NGINX_USER=""; [ "$(id -u)" -eq 0 ] && NGINX_USER="user root;"   # the docroot is in a private temp dir
cat > "$WORK/nginx/nginx.conf" <<NGX
$NGINX_USER
worker_processes auto;
worker_rlimit_nofile 20000;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; use epoll; }
http {
  include /etc/nginx/mime.types;
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65s; keepalive_requests 1000000; open_file_cache max=1024 inactive=60s;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  server { listen 127.0.0.1:$NGINX_PORT backlog=4096; root $DOC; }
}
NGX

PIDS=()
stop_all() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; PIDS=(); }
start() {  # start NAME -> sets SRV_PID, waits until it answers
  case $1 in
    occwserv) "$ROOT/target/release/occwserv" --config "$WORK/occwserv.toml" --listen 127.0.0.1:$OURS_PORT --root "$DOC" \
                --plugins "$WORK/none" >/dev/null 2>"$WORK/occwserv.err" & SRV_PID=$!; PORT=$OURS_PORT ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.err" & SRV_PID=$!; PORT=$NGINX_PORT ;;
  esac
  PIDS+=("$SRV_PID")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/small.txt" && return 0; sleep 0.1; done
  echo "$1 did not start" >&2; exit 1
}
ticks() {  # CPU ticks (utime+stime) of a process and its children
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
  echo "$total"
}
rss_kib() { local total=0 p; for p in $1 $(pgrep -P "$1" || true); do total=$((total + $(awk '/VmRSS/{print $2}' "/proc/$p/status"))); done; echo "$total"; }
HZ=$(getconf CLK_TCK)
declare -A R

measure() {  # measure NAME
  local name=$1 run c page rep rps t0 t1
  start "$name"
  timeout 20 wrk -t1 -c50 -d2s "http://127.0.0.1:$PORT/page8k.html" >/dev/null 2>&1 || true
  for run in $RUNS; do
    page=${run%%:*}; c=${run##*:}
    for rep in $(seq "$REPS"); do
      t0=$(ticks "$SRV_PID")
      rps=$(timeout $((DUR + 20)) wrk -t1 -c"$c" -d"${DUR}s" "http://127.0.0.1:$PORT/$page" | awk '/Requests\/sec/{print $2}')
      t1=$(ticks "$SRV_PID")
      local cpu_us; cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="$rps" -v d="$DUR" 'BEGIN{printf "%.2f", t/hz*1e6/(r*d)}')
      echo "$name $page c$c rep$rep rps $rps cpu_us_per_req $cpu_us"
      R[$name,$run,rps,$rep]=$rps; R[$name,$run,cpu,$rep]=$cpu_us
    done
  done
  # Idle connections held while a few active clients are measured.
  local base; base=$(rss_kib "$SRV_PID")
  python3 "$ROOT/benches/idle_conns.py" "$PORT" "$IDLE_N" "$HOLD" "$WORK/ready.$name" > "$WORK/idle.$name.json" &
  local holder=$!
  for _ in $(seq 1200); do [ -e "$WORK/ready.$name" ] && break; sleep 0.1; done
  local threads; threads=$(ls "/proc/$SRV_PID/task" | wc -l)
  rps=$(timeout 20 wrk -t1 -c10 -d4s "http://127.0.0.1:$PORT/page8k.html" | awk '/Requests\/sec/{print $2}')
  local held; held=$(rss_kib "$SRV_PID")
  wait "$holder"
  local per; per=$(awk -v a="$base" -v b="$held" -v n="$IDLE_N" 'BEGIN{printf "%.2f", (b-a)/n}')
  echo "$name idle$IDLE_N active_rps $rps rss_base_kib $base rss_held_kib $held kib_per_idle_conn $per threads $threads $(cat "$WORK/idle.$name.json")"
  R[$name,idle,rps]=$rps; R[$name,idle,kib]=$per
  stop_all
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
measure occwserv
measure nginx
echo "--- medians over $REPS runs (occwserv / nginx)"
for run in $RUNS; do
  o=(); n=(); oc=(); nc=()
  for rep in $(seq "$REPS"); do o+=("${R[occwserv,$run,rps,$rep]}"); n+=("${R[nginx,$run,rps,$rep]}"); oc+=("${R[occwserv,$run,cpu,$rep]}"); nc+=("${R[nginx,$run,cpu,$rep]}"); done
  mo=$(median "${o[@]}"); mn=$(median "${n[@]}"); co=$(median "${oc[@]}"); cn=$(median "${nc[@]}")
  awk -v r="$run" -v mo="$mo" -v mn="$mn" -v co="$co" -v cn="$cn" 'BEGIN{printf "%-20s req/s %9.0f / %9.0f = %.2fx   cpu us/req %6.2f / %6.2f = %.2fx\n", r, mo, mn, mo/mn, co, cn, co/cn}'
done
awk -v a="${R[occwserv,idle,rps]}" -v b="${R[nginx,idle,rps]}" -v ka="${R[occwserv,idle,kib]}" -v kb="${R[nginx,idle,kib]}" -v n="$IDLE_N" \
  'BEGIN{printf "%d idle: active req/s %9.0f / %9.0f = %.2fx   KiB per idle conn %.2f / %.2f\n", n, a, b, a/b, ka, kb}'
