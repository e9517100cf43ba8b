#!/usr/bin/env bash
# HTTP/2 beside nginx (`http2 on`), in one command: h2load -m10 on the 8 KiB page at 10 and
# 100 connections, over cleartext h2c (prior knowledge) and over TLS (ALPN h2, the same
# ECDSA P-256 certificate for both); access logs off; each row on occwserv, then on nginx,
# alternating REPS times, medians compared, with server CPU per request from /proc/PID/stat.
#
#   benches/h2.sh               # N=100000 REPS=3
#
# Needs h2load (nghttp2-client), nginx, openssl, curl.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${N:-100000}"; REPS="${REPS:-3}"
OURS_PORT=18290; OURS_TLS=18291; NGINX_PORT=18292; NGINX_TLS=18293
for tool in h2load nginx openssl curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
(cd "$ROOT" && cargo build --release -q -p occwserv)

WORK="$(mktemp -d)"; PIDS=()
stop_all() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; PIDS=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT
DOC="$WORK/docroot"; mkdir -p "$DOC" "$WORK/nginx/tmp"
python3 -c "import sys; sys.stdout.write(('occwserv benchmark page ' * 400)[:8192])" > "$DOC/page8k.html"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/key.pem" 2>/dev/null
openssl req -x509 -new -key "$WORK/key.pem" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 -out "$WORK/cert.pem" 2>/dev/null

printf 'access_log = ""\nmax_keep_alive_requests = 1000000\n' > "$WORK/occwserv.toml"
NGINX_USER=""; [ "$(id -u)" -eq 0 ] && NGINX_USER="user root;"
cat > "$WORK/nginx/nginx.conf" <<NGX
$NGINX_USER
worker_processes auto; worker_rlimit_nofile 20000;
pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; use epoll; }
http {
  include /etc/nginx/mime.types;
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65s; keepalive_requests 1000000; open_file_cache max=1024 inactive=60s;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  server { listen 127.0.0.1:$NGINX_PORT http2 backlog=4096; root $DOC; }
  server { listen 127.0.0.1:$NGINX_TLS ssl http2 backlog=4096; root $DOC;
           ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
           ssl_session_tickets on; ssl_session_cache shared:SSL:10m; }
}
NGX

start() {  # start NAME -> sets SRV_PID, PORT and TLS_PORT, waits until it answers over both
  case $1 in
    occwserv) "$ROOT/target/release/occwserv" --config "$WORK/occwserv.toml" --listen 127.0.0.1:$OURS_PORT \
                --tls-listen 127.0.0.1:$OURS_TLS --cert "$WORK/cert.pem" --key "$WORK/key.pem" \
                --root "$DOC" --plugins "$WORK/none" >/dev/null 2>"$WORK/occwserv.err" & SRV_PID=$!; PORT=$OURS_PORT; TLS_PORT=$OURS_TLS ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.err" & SRV_PID=$!; PORT=$NGINX_PORT; TLS_PORT=$NGINX_TLS ;;
  esac
  PIDS+=("$SRV_PID")
  for _ in $(seq 100); do
    curl -sf --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$PORT/page8k.html" \
      && curl -sfk --http2 -o /dev/null "https://127.0.0.1:$TLS_PORT/page8k.html" && return 0
    sleep 0.1
  done
  echo "$1 did not start" >&2; exit 1
}
ticks() { local total=0 p; for p in $1 $(pgrep -P "$1" || true); do total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$total"; }
HZ=$(getconf CLK_TCK)
declare -A R

one() {  # one ROW -> prints "req/s cpu_us_per_request" (h2load counts only 2xx as succeeded)
  local t0 t1 out rate secs ok url c
  case $1 in
    h2c10) url="http://127.0.0.1:$PORT/page8k.html"; c=10 ;;
    h2c100) url="http://127.0.0.1:$PORT/page8k.html"; c=100 ;;
    tls10) url="https://127.0.0.1:$TLS_PORT/page8k.html"; c=10 ;;
    tls100) url="https://127.0.0.1:$TLS_PORT/page8k.html"; c=100 ;;
  esac
  t0=$(ticks "$SRV_PID")
  out=$(h2load -c "$c" -m 10 -n "$N" "$url" 2>/dev/null)
  t1=$(ticks "$SRV_PID")
  ok=$(awk '/^requests:/{print $8}' <<<"$out")
  [ "$ok" = "$N" ] || { echo "only $ok of $N succeeded on $url" >&2; exit 1; }
  rate=$(awk '/^finished in/{gsub(",","",$4); print $4}' <<<"$out")
  awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="$rate" -v n="$N" 'BEGIN{printf "%s %.2f\n", r, t/hz*1e6/n}'
}

ROWS="h2c10 h2c100 tls10 tls100"
for rep in $(seq "$REPS"); do
  for name in occwserv nginx; do
    start "$name"
    h2load -c10 -m10 -n 5000 "http://127.0.0.1:$PORT/page8k.html" >/dev/null 2>&1 || true
    for row in $ROWS; do
      read -r rate cpu < <(one "$row")
      echo "$name $row rep$rep rate $rate cpu_us $cpu"
      R[$name,$row,rate,$rep]=$rate; R[$name,$row,cpu,$rep]=$cpu
    done
    stop_all
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "--- medians over $REPS runs (occwserv / nginx)"
for row in $ROWS; do
  o=(); n=(); oc=(); nc=()
  for rep in $(seq "$REPS"); do
    o+=("${R[occwserv,$row,rate,$rep]}"); n+=("${R[nginx,$row,rate,$rep]}")
    oc+=("${R[occwserv,$row,cpu,$rep]}"); nc+=("${R[nginx,$row,cpu,$rep]}")
  done
  mo=$(median "${o[@]}"); mn=$(median "${n[@]}"); co=$(median "${oc[@]}"); cn=$(median "${nc[@]}")
  case $row in h2c10) label="h2c  -c10  -m10  req/s";; h2c100) label="h2c  -c100 -m10  req/s";; tls10) label="h2/TLS -c10  -m10 req/s";; tls100) label="h2/TLS -c100 -m10 req/s";; esac
  awk -v l="$label" -v a="$mo" -v b="$mn" -v c="$co" -v d="$cn" \
    'BEGIN{printf "%s %10.0f / %10.0f = %.2fx   cpu us each %8.1f / %8.1f = %.2fx\n", l, a, b, a/b, c, d, c/d}'
done
