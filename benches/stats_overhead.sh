#!/usr/bin/env bash
# What collecting statistics costs: the release server with `stats = true` and `stats = false`,
# alternating (the order flips every round), wrk -t1 -c100 on the 8 KiB page over keep-alive.
# For each run: requests/s, server CPU per request (/proc/PID/stat), and the CPU per request
# of the `stats` and `recycler` threads (/proc/PID/task/*/stat). Then the medians per mode.
#
#   benches/stats_overhead.sh            # ROUNDS=10 DUR=5
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS="${ROUNDS:-10}"; DUR="${DUR:-5}"; PORT="${PORT:-18182}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 2; }
(cd "$ROOT" && cargo build --release -q -p occwserv)

WORK="$(mktemp -d)"
SERVER=""
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/docroot"
python3 -c "import sys; sys.stdout.write(('occwserv benchmark page ' * 400)[:8192])" > "$WORK/docroot/page8k.html"
cp "$ROOT/target/release/occwserv" "$WORK/occwserv"   # a later build does not change this run
TICK=$(getconf CLK_TCK)
URL="http://127.0.0.1:$PORT/page8k.html"

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
thread_cpu() {   # PID NAME: CPU ticks of the thread called NAME
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm")" = "$2" ]; then awk '{print $14 + $15}' "$t/stat"; return; fi
  done
  echo 0
}
per_request() { awk -v t="$1" -v n="$2" -v hz="$TICK" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}'; }

echo "round mode req_per_s cpu_us_per_req stats_thread_us_per_req recycler_us_per_req"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="true false"; else order="false true"; fi
  for stats in $order; do
    printf 'access_log = ""\nerror_log = "%s/error.log"\nmax_keep_alive_requests = 1000000\nstats = %s\n' \
      "$WORK" "$stats" > "$WORK/occwserv.toml"
    "$WORK/occwserv" --config "$WORK/occwserv.toml" --listen "127.0.0.1:$PORT" --root "$WORK/docroot" > /dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null "$URL" && break; sleep 0.05; done
    wrk -t1 -c100 -d1s "$URL" > /dev/null 2>&1
    c0=$(cpu "$SERVER"); s0=$(thread_cpu "$SERVER" stats); r0=$(thread_cpu "$SERVER" recycler)
    out=$(wrk -t1 -c100 -d"${DUR}s" "$URL" 2>/dev/null)
    c1=$(cpu "$SERVER"); s1=$(thread_cpu "$SERVER" stats); r1=$(thread_cpu "$SERVER" recycler)
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$round stats=$stats $rps $(per_request $((c1 - c0)) "$n") $(per_request $((s1 - s0)) "$n") $(per_request $((r1 - r0)) "$n")"
  done
done | tee "$WORK/rows"
echo "median mode req_per_s cpu_us_per_req stats_thread_us_per_req recycler_us_per_req"
for stats in true false; do
  grep " stats=$stats " "$WORK/rows" | python3 -c "
import statistics, sys
rows = [line.split() for line in sys.stdin]
print('median stats=$stats', *(round(statistics.median(float(r[i]) for r in rows), 2) for i in range(2, 6)))"
done
