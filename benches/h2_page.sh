#!/usr/bin/env bash
# A page of 60 assets (20 scripts, 20 style sheets, 20 images) loaded by headless Chromium
# over HTTPS with HTTP/2, from occwserv and from nginx (`http2 on`), same certificate, access
# logs off: ROUNDS loads each in a fresh browser context (new connection, nothing cached),
# alternating servers REPS times; prints each server's median load time (navigation start to
# the load event). Needs chromium, node with tests/browser's npm install, nginx, openssl.
#
#   benches/h2_page.sh          # ROUNDS=15 REPS=3
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS="${ROUNDS:-15}"; REPS="${REPS:-3}"
OURS_TLS=18391; NGINX_TLS=18393
(cd "$ROOT" && cargo build --release -q -p occwserv)
WORK="$(mktemp -d)"; PIDS=()
stop_all() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; PIDS=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT
DOC="$WORK/docroot"; mkdir -p "$DOC" "$WORK/nginx/tmp"
head=""; body=""
for i in $(seq 0 19); do
  printf 'window.scriptsRun = (window.scriptsRun || 0) + 1; // script %s\n' "$i" > "$DOC/s$i.js"
  printf '.c%s { margin: %spx; }\n' "$i" "$i" > "$DOC/c$i.css"
  printf '<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="8"><rect width="%s" height="8" fill="#%02x8040"/></svg>\n' $((8 + i)) $((8 + i)) "$i" > "$DOC/i$i.svg"
  head+="<script src=\"/s$i.js\"></script><link rel=\"stylesheet\" href=\"/c$i.css\">"
  body+="<img src=\"/i$i.svg\" alt=\"\">"
done
printf '<!doctype html><html><head><title>60 assets</title>%s</head><body>%s</body></html>\n' "$head" "$body" > "$DOC/page.html"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/key.pem" 2>/dev/null
openssl req -x509 -new -key "$WORK/key.pem" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 -out "$WORK/cert.pem" 2>/dev/null
printf 'access_log = ""\n' > "$WORK/occwserv.toml"
NGINX_USER=""; [ "$(id -u)" -eq 0 ] && NGINX_USER="user root;"
cat > "$WORK/nginx/nginx.conf" <<NGX
$NGINX_USER
worker_processes auto; pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; use epoll; }
http {
  include /etc/nginx/mime.types; access_log off; sendfile on; tcp_nopush on; tcp_nodelay on;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  server { listen 127.0.0.1:$NGINX_TLS ssl http2; root $DOC;
           ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_session_tickets on; }
}
NGX
start() {
  case $1 in
    occwserv) "$ROOT/target/release/occwserv" --config "$WORK/occwserv.toml" --listen 127.0.0.1:0 \
                --tls-listen 127.0.0.1:$OURS_TLS --cert "$WORK/cert.pem" --key "$WORK/key.pem" \
                --root "$DOC" --plugins "$WORK/none" >/dev/null 2>"$WORK/occwserv.err" & PORT=$OURS_TLS ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.err" & PORT=$NGINX_TLS ;;
  esac
  PIDS+=("$!")
  for _ in $(seq 100); do curl -sfk --http2 -o /dev/null "https://127.0.0.1:$PORT/page.html" && return 0; sleep 0.1; done
  echo "$1 did not start" >&2; exit 1
}
for rep in $(seq "$REPS"); do
  for name in occwserv nginx; do
    start "$name"
    echo "$name rep$rep $(node "$ROOT/benches/h2_page.mjs" "https://127.0.0.1:$PORT/page.html" "$ROUNDS")"
    stop_all
  done
done
