#!/usr/bin/env bash
# The cost of virtual hosts, in one command: the same occwserv build serves the 8 KiB page with
# one site, then with 3 sites and 20 header and redirect rules (the page is in the default
# site, so every rule is checked and none redirects it), alternating REPS times; wrk -t1 -c100.
#
#   benches/sites.sh                     # DUR=6 REPS=3
#
# Prints each run and the medians with their ratio (the issue asks >= 0.97).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DUR="${DUR:-6}"; REPS="${REPS:-3}"; PORT=18186
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 2; }
(cd "$ROOT" && cargo build --release -q -p occwserv)
WORK="$(mktemp -d)"; SRV=""
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$WORK"' EXIT
for site in a b c; do
  mkdir -p "$WORK/$site"
  python3 -c "import sys; sys.stdout.write(('occwserv benchmark page ' * 400)[:8192])" > "$WORK/$site/page8k.html"
done
printf 'access_log = ""\nroot = "%s/a"\n' "$WORK" > "$WORK/one.toml"
{
  printf 'access_log = ""\nroot = "%s/a"\n' "$WORK"
  for site in b c a; do
    printf '\n[[site]]\nnames = ["%s.example.test", "*.%s.example.test"]\nroot = "%s/%s"\n' "$site" "$site" "$WORK" "$site"
    [ "$site" = a ] && printf 'default = true\n'
    for i in 1 2 3 4; do
      printf '\n[[site.redirect]]\nfrom = "/old%s/*"\nto = "/new%s/$1"\nstatus = 301\n' "$i" "$i"
    done
    for i in 1 2; do
      printf '\n[[site.headers]]\npath = "/assets%s/*"\nset = { "Cache-Control" = "public, max-age=3600" }\n' "$i"
    done
  done
  # Two rules that match the page: every request has its headers set.
  printf '\n[[site.headers]]\npath = "/*"\nset = { "X-Frame-Options" = "DENY" }\n'
  printf '\n[[site.headers]]\npath = "/page8k.html"\nset = { "X-Content-Type-Options" = "nosniff" }\n'
} > "$WORK/three.toml"
run() {  # run CONFIG -> req/s
  "$ROOT/target/release/occwserv" --config "$1" --listen 127.0.0.1:$PORT --plugins "$WORK/none" >/dev/null 2>"$WORK/err" & SRV=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/page8k.html" && break; sleep 0.1; done
  timeout 20 wrk -t1 -c50 -d2s "http://127.0.0.1:$PORT/page8k.html" >/dev/null 2>&1 || true
  timeout $((DUR + 20)) wrk -t1 -c100 -d"${DUR}s" "http://127.0.0.1:$PORT/page8k.html" | awk '/Requests\/sec/{print $2}'
  kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
}
rules=$(grep -c '^\[\[site\.\(redirect\|headers\)\]\]' "$WORK/three.toml")
one=(); three=()
for rep in $(seq "$REPS"); do
  o=$(run "$WORK/one.toml"); t=$(run "$WORK/three.toml")
  echo "rep$rep one site $o req/s   three sites, $rules rules $t req/s"
  one+=("$o"); three+=("$t")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
mo=$(median "${one[@]}"); mt=$(median "${three[@]}")
awk -v o="$mo" -v t="$mt" 'BEGIN{printf "median: one site %.0f, three sites %.0f req/s = %.3fx\n", o, t, t/o}'
