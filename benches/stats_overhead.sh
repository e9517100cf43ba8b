#!/usr/bin/env bash
# What collecting statistics costs: two release servers, one with `[stats] enabled = true` and one
# with `enabled = false`, both running, measured in turn (the order flips every round) by
# wrk -t1 -c100 on the 8 KiB page over keep-alive, so background load on a shared machine hits
# both alike. Each run prints requests/s, server CPU per request (/proc/PID/stat) and the CPU
# per request of the `stats` and `recycler` threads (/proc/PID/task/*/stat); then the medians
# per mode and the median of the per-round ratios.
#
#   benches/stats_overhead.sh       # ROUNDS=20 DUR=3; OCCWSERV=path uses a built binary
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS="${ROUNDS:-20}"; DUR="${DUR:-3}"; PORT_ON="${PORT_ON:-18182}"; PORT_OFF="${PORT_OFF:-18183}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 2; }
if [ -z "${OCCWSERV:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p occwserv)
  OCCWSERV="$ROOT/target/release/occwserv"
fi

WORK="$(mktemp -d)"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/docroot"
python3 -c "import sys; sys.stdout.write(('occwserv benchmark page ' * 400)[:8192])" > "$WORK/docroot/page8k.html"
cp "$OCCWSERV" "$WORK/occwserv"   # a later build does not change this run
TICK=$(getconf CLK_TCK)

start() {   # MODE PORT: starts a server, prints its PID
  printf 'access_log = ""\nerror_log = "%s/error-%s.log"\nmax_keep_alive_requests = 1000000\n[stats]\nenabled = %s\n' \
    "$WORK" "$1" "$1" > "$WORK/$1.toml"
  "$WORK/occwserv" --config "$WORK/$1.toml" --listen "127.0.0.1:$2" --root "$WORK/docroot" > /dev/null 2>&1 &
  echo $!
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
thread_cpu() {   # PID NAME: CPU ticks of the thread called NAME
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm")" = "$2" ]; then awk '{print $14 + $15}' "$t/stat"; return; fi
  done
  echo 0
}
per_request() { awk -v t="$1" -v n="$2" -v hz="$TICK" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}'; }

ON=$(start true "$PORT_ON"); PIDS+=("$ON")
OFF=$(start false "$PORT_OFF"); PIDS+=("$OFF")
for port in "$PORT_ON" "$PORT_OFF"; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/page8k.html" && break; sleep 0.05; done
  wrk -t1 -c100 -d1s "http://127.0.0.1:$port/page8k.html" > /dev/null 2>&1
done

measure() {   # ROUND MODE PID PORT
  local c0 s0 r0 c1 s1 r1 out rps n
  c0=$(cpu "$3"); s0=$(thread_cpu "$3" stats); r0=$(thread_cpu "$3" recycler)
  out=$(wrk -t1 -c100 -d"${DUR}s" "http://127.0.0.1:$4/page8k.html" 2>/dev/null)
  c1=$(cpu "$3"); s1=$(thread_cpu "$3" stats); r1=$(thread_cpu "$3" recycler)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$1 stats=$2 $rps $(per_request $((c1 - c0)) "$n") $(per_request $((s1 - s0)) "$n") $(per_request $((r1 - r0)) "$n")"
}

echo "round mode req_per_s cpu_us_per_req stats_thread_us_per_req recycler_us_per_req"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    measure "$round" true "$ON" "$PORT_ON"; measure "$round" false "$OFF" "$PORT_OFF"
  else
    measure "$round" false "$OFF" "$PORT_OFF"; measure "$round" true "$ON" "$PORT_ON"
  fi
done | tee "$WORK/rows"
python3 - "$WORK/rows" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for mode in ("stats=true", "stats=false"):
    mine = [r for r in rows if r[1] == mode]
    print("median", mode, *(round(statistics.median(float(r[i]) for r in mine), 2) for i in range(2, 6)))
by_round = {}
for r in rows:
    by_round.setdefault(r[0], {})[r[1]] = float(r[2])
ratios = [m["stats=true"] / m["stats=false"] for m in by_round.values() if len(m) == 2]
print("median ratio of req/s, stats=true / stats=false:", round(statistics.median(ratios), 3))
PY
