#!/usr/bin/env bash
# Compression beside nginx, in one run (issue 14's rows; run it on a quiet machine):
#   1. a 100 KiB script with Accept-Encoding: gzip at c100: occwserv (gzip variant cached once)
#      against nginx `gzip on; gzip_comp_level 6` (compressing every time): req/s and bytes;
#   2. the same file without Accept-Encoding on occwserv (a compressed hit should cost what an
#      uncompressed cached hit costs: row 1 / row 2 >= 0.9);
#   3. Accept-Encoding: br at c100: occwserv (br variant cached) against nginx serving a
#      precompressed app.js.br with brotli_static (Debian's libnginx-mod-http-brotli-static),
#      or app.js.gz with gzip_static when that module is not installed.
#
#   benches/compression.sh             # DUR=6 REPS=3
#
# Each figure is the median of REPS wrk runs. Both servers run with access logs off.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DUR="${DUR:-6}"; REPS="${REPS:-3}"
OURS_PORT=18190; NGINX_PORT=18191
for tool in wrk nginx python3 curl gzip brotli; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y wrk nginx python3 curl brotli)" >&2; exit 2; }
done
(cd "$ROOT" && cargo build --release -q -p occwserv)

WORK="$(mktemp -d)"; PIDS=()
stop_all() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; PIDS=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT
DOC="$WORK/docroot"; mkdir -p "$DOC" "$WORK/nginx/tmp"
# The same 100 KiB script as ../shared/bench/proto.sh gzip.
python3 - "$DOC/app.js" <<'PY'
import random, sys
random.seed(7); w = ["function", "return", "const", "let", "value", "index", "render", "state", "props", "=>", "{", "}", "(", ")", ";"]
out = []
while sum(map(len, out)) < 100 * 1024:
    out.append(" ".join(random.choice(w) for _ in range(12)) + f" // {random.randint(0, 10**6)}\n")
open(sys.argv[1], "w").write("".join(out)[:100 * 1024])
PY
printf 'access_log = ""\nmax_keep_alive_requests = 1000000\n[compression]\nprecompressed = false\n' > "$WORK/occwserv.toml"

BROTLI_MODULE=/usr/lib/nginx/modules/ngx_http_brotli_static_module.so
nginx_conf() {  # nginx_conf SERVER-BLOCK-BODY [load_module line]
  local user=""; [ "$(id -u)" -eq 0 ] && user="user root;"
  cat > "$WORK/nginx/nginx.conf" <<NGX
$user
${2:-}
worker_processes auto; worker_rlimit_nofile 20000;
pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; use epoll; }
http {
  include /etc/nginx/mime.types; access_log off; sendfile on; tcp_nopush on;
  keepalive_timeout 65s; keepalive_requests 1000000; open_file_cache max=1024 inactive=60s;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp; fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  server { listen 127.0.0.1:$NGINX_PORT backlog=4096; root $DOC; $1 }
}
NGX
}
start() {  # start occwserv|nginx; waits until it answers
  case $1 in
    occwserv) "$ROOT/target/release/occwserv" --config "$WORK/occwserv.toml" --listen 127.0.0.1:$OURS_PORT \
                --root "$DOC" --plugins "$WORK/none" >/dev/null 2>"$WORK/occwserv.err" & PIDS+=("$!"); PORT=$OURS_PORT ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.err" & PIDS+=("$!"); PORT=$NGINX_PORT ;;
  esac
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/app.js" && return 0; sleep 0.1; done
  echo "$1 did not start" >&2; exit 1
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
rps() {  # rps ACCEPT-ENCODING (empty: none) -> median req/s at c100
  local header=() r=() i
  [ -n "$1" ] && header=(-H "Accept-Encoding: $1")
  for i in $(seq "$REPS"); do
    r+=("$(timeout $((DUR + 20)) wrk -t1 -c100 -d"${DUR}s" "${header[@]}" "http://127.0.0.1:$PORT/app.js" | awk '/Requests\/sec/{print $2}')")
  done
  median "${r[@]}"
}
wire() { curl -s -H "Accept-Encoding: $1" -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT/app.js"; }
coded_as() { curl -s -H "Accept-Encoding: $1" -D - -o /dev/null "http://127.0.0.1:$PORT/app.js" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding"{print $2}'; }
warm() {  # until occwserv answers in coding $1 (the cache admits and compresses once)
  for _ in $(seq 300); do [ "$(coded_as "$1")" = "$1" ] && return 0; sleep 0.1; done
  echo "occwserv never answered $1" >&2; exit 1
}

start occwserv; warm gzip; warm br
o_gzip=$(rps gzip); o_gzip_bytes=$(wire gzip); o_plain=$(rps ""); o_br=$(rps br); o_br_bytes=$(wire br)
stop_all

nginx_conf "gzip on; gzip_comp_level 6; gzip_min_length 256; gzip_types application/javascript text/javascript;"
start nginx; n_gzip=$(rps gzip); n_gzip_bytes=$(wire gzip); stop_all

if [ -f "$BROTLI_MODULE" ]; then
  brotli -q 11 -k -f -o "$DOC/app.js.br" "$DOC/app.js"
  nginx_conf "brotli_static on;" "load_module $BROTLI_MODULE;"; n_br_what="brotli_static .br"; n_br_ae=br
else
  gzip -9 -k -f -n "$DOC/app.js"
  nginx_conf "gzip_static on;"; n_br_what="gzip_static .gz"; n_br_ae=gzip
fi
start nginx; n_br=$(rps "$n_br_ae"); n_br_bytes=$(wire "$n_br_ae"); stop_all

awk -v og="$o_gzip" -v ng="$n_gzip" -v ob="$o_gzip_bytes" -v nb="$n_gzip_bytes" -v op="$o_plain" \
    -v obr="$o_br" -v nbr="$n_br" -v obb="$o_br_bytes" -v nbb="$n_br_bytes" -v what="$n_br_what" 'BEGIN{
  printf "100 KiB JS gzip c100 req/s      occwserv %9.0f  nginx gzip 6 %9.0f  = %.2fx (>= 10x)\n", og, ng, og/ng
  printf "  bytes on the wire             occwserv %9d  nginx        %9d  (<= nginx)\n", ob, nb
  printf "100 KiB JS identity c100 req/s  occwserv %9.0f  gzip/identity = %.2f (>= 0.9)\n", op, og/op
  printf "100 KiB JS br c100 req/s        occwserv %9.0f  nginx %s %9.0f = %.2fx (>= 1.0x)\n", obr, what, nbr, obr/nbr
  printf "  bytes on the wire             occwserv %9d  nginx        %9d\n", obb, nbb
}'
