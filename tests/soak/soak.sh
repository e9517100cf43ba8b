#!/usr/bin/env bash
# Soak test: tests/soak/soak.sh MINUTES [soak.py options] (at most 60 minutes).
# Builds the server and the plug-ins, then runs tests/soak/soak.py: mixed static, cached, CGI,
# plug-in and websocket traffic with every body verified, SIGHUP every 15 s, the hello
# plug-in replaced every 20 s, and the server's memory, descriptors and threads sampled every
# 5 s. Exits non-zero if any request failed or any body was wrong.
set -euo pipefail
minutes=${1:?usage: tests/soak/soak.sh MINUTES}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
cargo build --workspace --quiet
shift
exec python3 tests/soak/soak.py --minutes "$minutes" --repo "$repo" "$@"
