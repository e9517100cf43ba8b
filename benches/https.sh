#!/usr/bin/env bash
# HTTPS beside nginx, in one command: both servers get the same ECDSA P-256 certificate,
# session tickets on, access logs off; each row is measured on occwserv, then on nginx,
# alternating REPS times, and the medians are compared.
#
#   benches/https.sh            # DUR=5 REPS=3
#
# Rows: the 8 KiB page over HTTPS keep-alive at 100 connections (wrk), req/s and server CPU
# per request; full handshakes (a new connection per request, no resumption: ab -n 3000 -c 20),
# req/s and server CPU per handshake; a 1 MiB file over HTTPS keep-alive at 10 connections.
# Server CPU comes from /proc/PID/stat (process and children). Needs wrk, ab
# (apache2-utils), nginx, openssl, curl.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DUR="${DUR:-5}"; REPS="${REPS:-3}"
OURS_PORT=18280; NGINX_PORT=18281
for tool in wrk ab nginx openssl curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
(cd "$ROOT" && cargo build --release -q -p occwserv)

WORK="$(mktemp -d)"; PIDS=()
stop_all() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; PIDS=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT
DOC="$WORK/docroot"; mkdir -p "$DOC" "$WORK/nginx/tmp"
python3 -c "import sys; sys.stdout.write(('occwserv benchmark page ' * 400)[:8192])" > "$DOC/page8k.html"
head -c $((1024 * 1024)) /dev/urandom > "$DOC/1m.bin"
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
  server { listen 127.0.0.1:$NGINX_PORT ssl backlog=4096; root $DOC;
           ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
           ssl_session_tickets on; ssl_session_cache shared:SSL:10m; }
}
NGX

start() {  # start NAME -> sets SRV_PID and PORT, waits until it answers over HTTPS
  case $1 in
    occwserv) "$ROOT/target/release/occwserv" --config "$WORK/occwserv.toml" --listen 127.0.0.1:0 \
                --tls-listen 127.0.0.1:$OURS_PORT --cert "$WORK/cert.pem" --key "$WORK/key.pem" \
                --root "$DOC" --plugins "$WORK/none" >/dev/null 2>"$WORK/occwserv.err" & SRV_PID=$!; PORT=$OURS_PORT ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.err" & SRV_PID=$!; PORT=$NGINX_PORT ;;
  esac
  PIDS+=("$SRV_PID")
  for _ in $(seq 100); do curl -sfk -o /dev/null "https://127.0.0.1:$PORT/page8k.html" && return 0; sleep 0.1; done
  echo "$1 did not start" >&2; exit 1
}
ticks() { local total=0 p; for p in $1 $(pgrep -P "$1" || true); do total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$total"; }
HZ=$(getconf CLK_TCK)
declare -A R

one() {  # one NAME ROW -> prints "rate cpu_us_per_unit"
  local t0 t1 rate secs
  t0=$(ticks "$SRV_PID")
  case $2 in
    ka8k) rate=$(wrk -t1 -c100 -d"${DUR}s" "https://127.0.0.1:$PORT/page8k.html" | awk '/Requests\/sec/{print $2}'); secs=$DUR ;;
    hs) local out; out=$(ab -q -n 3000 -c 20 "https://127.0.0.1:$PORT/page8k.html" 2>/dev/null)
        rate=$(awk '/^Requests per second/{print $4}' <<<"$out"); secs=$(awk '/^Time taken for tests/{print $5}' <<<"$out") ;;
    big) rate=$(wrk -t1 -c10 -d"${DUR}s" "https://127.0.0.1:$PORT/1m.bin" | awk '/Requests\/sec/{print $2}'); secs=$DUR ;;
  esac
  t1=$(ticks "$SRV_PID")
  awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="$rate" -v d="$secs" 'BEGIN{printf "%s %.2f\n", r, t/hz*1e6/(r*d)}'
}

ROWS="ka8k hs big"
for rep in $(seq "$REPS"); do
  for name in occwserv nginx; do
    start "$name"
    wrk -t1 -c20 -d1s "https://127.0.0.1:$PORT/page8k.html" >/dev/null 2>&1 || true
    for row in $ROWS; do
      read -r rate cpu < <(one "$name" "$row")
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
  case $row in ka8k) label="8 KiB keep-alive c100   req/s";; hs) label="full handshake c20       conn/s";; big) label="1 MiB keep-alive c10    req/s";; esac
  awk -v l="$label" -v a="$mo" -v b="$mn" -v c="$co" -v d="$cn" \
    'BEGIN{printf "%s %10.0f / %10.0f = %.2fx   cpu us each %8.1f / %8.1f = %.2fx\n", l, a, b, a/b, c, d, c/d}'
done
