#!/usr/bin/env bash
# CGI throughput, occwserv against lighttpd mod_cgi, side by side in one run.
#
#   benches/cgi_vs_lighttpd.sh [ROUNDS] [SECONDS]     (defaults: 3 rounds of 5 s per measurement)
#
# Both servers run at once on the shared bench docroot (../shared/bench/gen_docroot.sh:
# cgi-bin/hello.sh and the compiled cgi-bin/hello-c, each a 200-byte answer with its own
# Content-Length). Each round measures wrk -t1 -c10 against hello.sh and hello-c on both
# servers, alternating, so load from elsewhere on the box falls on both alike; the medians and
# the occwserv/lighttpd ratios are printed at the end, with the CPU time the server process
# itself spent per request (its programs' time excluded), which other load hardly changes.
# occwserv runs without an access log, like the lighttpd configuration. Needs a release build,
# lighttpd, wrk and gcc; all traffic goes to 127.0.0.1; both servers are stopped by PID.
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_EACH=${2:-5}
HERE="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$HERE/../shared/bench"
WORK="$(mktemp -d)"
OCC_PORT=18510
LIGHTTPD_PORT=18511

"$BENCH/gen_docroot.sh" "$WORK/docroot" >/dev/null
sed -e "s#@PORT@#$LIGHTTPD_PORT#; s#@DOCROOT@#$WORK/docroot#; s#@RUNDIR@#$WORK#" \
  "$BENCH/conf/lighttpd.conf.in" > "$WORK/lighttpd.conf"
printf 'access_log = ""\nerror_log = "%s/occwserv-error.log"\n' "$WORK" > "$WORK/occwserv.toml"
cp "$HERE/target/release/occwserv" "$WORK/occwserv"

"$WORK/occwserv" --config "$WORK/occwserv.toml" --listen "127.0.0.1:$OCC_PORT" \
  --root "$WORK/docroot" --cgi-bin "$WORK/docroot/cgi-bin" > "$WORK/occwserv.out" 2>&1 &
OCC_PID=$!
lighttpd -D -f "$WORK/lighttpd.conf" > "$WORK/lighttpd.out" 2>&1 &
LIGHTTPD_PID=$!
trap 'kill $OCC_PID $LIGHTTPD_PID 2>/dev/null; wait $OCC_PID $LIGHTTPD_PID 2>/dev/null; rm -rf "$WORK"' EXIT

for port in $OCC_PORT $LIGHTTPD_PORT; do
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/cgi-bin/hello-c" && break
    sleep 0.05
  done
  for path in /cgi-bin/hello.sh /cgi-bin/hello-c; do
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "http://127.0.0.1:$port$path")
    [ "$got" = "200 200" ] || { echo "port $port $path answered '$got'" >&2; exit 1; }
  done
done

# CPU ticks the server process itself has used (its programs' time is not counted).
own_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

results="$WORK/results.tsv"
for round in $(seq "$ROUNDS"); do
  for path in /cgi-bin/hello.sh /cgi-bin/hello-c; do
    for server in occwserv lighttpd; do
      port=$([ $server = occwserv ] && echo $OCC_PORT || echo $LIGHTTPD_PORT)
      pid=$([ $server = occwserv ] && echo $OCC_PID || echo $LIGHTTPD_PID)
      ticks_before=$(own_ticks "$pid")
      out=$(timeout -k 5 $((SECONDS_EACH + 30)) wrk -t1 -c10 -d"${SECONDS_EACH}s" --timeout 5s --latency \
        "http://127.0.0.1:$port$path")
      rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
      bad=$(awk '/Non-2xx/{s+=$NF} /Socket errors:/{gsub(",","");s+=$4+$6+$8+$10} END{print s+0}' <<<"$out")
      ticks=$(( $(own_ticks "$pid") - ticks_before ))
      requests=$(awk '/requests in/{print $1}' <<<"$out")
      cpu_us=$(awk -v t="$ticks" -v hz="$HZ" -v n="$requests" 'BEGIN{printf "%.0f", (n > 0) ? t / hz * 1e6 / n : 0}')
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$server" "$path" "$rps" "${bad:-0}" "$cpu_us" | tee -a "$results"
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
median = {}
for path in ("/cgi-bin/hello.sh", "/cgi-bin/hello-c"):
    for server in ("occwserv", "lighttpd"):
        values = [float(r[3]) for r in rows if r[1] == server and r[2] == path]
        errors = sum(int(float(r[4])) for r in rows if r[1] == server and r[2] == path)
        cpu = statistics.median(float(r[5]) for r in rows if r[1] == server and r[2] == path)
        median[(server, path)] = statistics.median(values)
        print(f"{server:9} {path:18} median {median[(server, path)]:8.0f} req/s  "
              f"(rounds: {', '.join(f'{v:.0f}' for v in values)}; errors {errors}); "
              f"server's own CPU {cpu:.0f} us/request")
    print(f"ratio occwserv/lighttpd {path}: {median[('occwserv', path)] / median[('lighttpd', path)]:.2f}x")
PY
