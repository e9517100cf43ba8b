#!/usr/bin/env bash
# testssl.sh (Debian package `testssl.sh`) against occwserv's HTTPS listener, with a fresh
# test CA and an ECDSA P-256 server certificate it signs. Slow (minutes), so it is run by
# hand, not by .ci/run:
#
#   benches/testssl.sh [path/to/occwserv]     (default: target/release/occwserv, else debug)
#
# Prints testssl's full report, then a summary of what it flagged: every finding of
# severity LOW or above from its JSON output. Exits non-zero if any is left once the ones
# that come from the throwaway test CA rather than the server are set aside (a CA with no
# CRL or OCSP URI, and no CAA record for localhost), which are listed apart.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/occwserv}
[ -x "$bin" ] || bin=target/debug/occwserv
command -v testssl >/dev/null || { echo "testssl is not installed (apt install testssl.sh)" >&2; exit 2; }

dir=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

( cd "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
      -days 365 -subj "/CN=occwserv testssl CA" 2>/dev/null
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out localhost.key
  openssl req -new -key localhost.key -out localhost.csr -subj /CN=localhost
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext
  openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out localhost.pem \
      -days 365 -extfile ext 2>/dev/null )

# Free ports, picked by the kernel.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); https=$(port)
mkdir -p "$dir/root" "$dir/logs"
echo '<!DOCTYPE html><title>testssl</title>' > "$dir/root/index.html"
cat > "$dir/occwserv.toml" <<TOML
access_log = "$dir/logs/access.log"
error_log = "$dir/logs/error.log"
[tls]
cert = "$dir/localhost.pem"
key = "$dir/localhost.key"
hsts_max_age_secs = 31536000

# The response headers testssl looks for are a site's policy: set as an operator would.
[[site]]
names = ["localhost"]
root = "$dir/root"
default = true
[[site.headers]]
path = "/*"
set = { "X-Frame-Options" = "DENY", "X-Content-Type-Options" = "nosniff", "Content-Security-Policy" = "default-src 'self'", "Referrer-Policy" = "no-referrer" }
TOML
"$bin" --config "$dir/occwserv.toml" --listen "127.0.0.1:$http" --root "$dir/root" \
    --tls-listen "127.0.0.1:$https" --cert "$dir/localhost.pem" --key "$dir/localhost.key" \
    </dev/null >"$dir/server.out" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -s --cacert "$dir/ca.pem" -o /dev/null "https://localhost:$https/" && break
  sleep 0.1
done

testssl --quiet --color 0 --warnings off --add-ca "$dir/ca.pem" --jsonfile "$dir/testssl.json" \
    --ip 127.0.0.1 "https://localhost:$https/" || true

echo
echo "== findings of severity LOW or above =="
python3 - "$dir/testssl.json" <<'PY'
import json, sys
# Properties of the test CA and of "localhost", not of the server.
TEST_CA = {"cert_revocation", "DNS_CAArecord"}
findings = [f for f in json.load(open(sys.argv[1]))
            if f.get("severity") in ("LOW", "MEDIUM", "HIGH", "CRITICAL")]
for f in findings:
    tag = "  (test CA)" if f["id"] in TEST_CA else ""
    print(f"{f['severity']:8} {f['id']}: {f['finding']}{tag}")
left = [f for f in findings if f["id"] not in TEST_CA]
print(f"{len(findings)} flagged, {len(left)} of them about the server")
sys.exit(1 if left else 0)
PY
