#!/bin/sh
# Runs every fuzz target for a bounded time: fuzz/run.sh SECONDS [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a toolchain that accepts -Z flags: the
# nightly toolchain when rustup has one, otherwise the stable one with RUSTC_BOOTSTRAP=1.
# Each target starts from its committed seeds (fuzz/corpus/TARGET, never written to) and
# keeps what it learns in fuzz/target/corpus/TARGET. A crash leaves its input in
# fuzz/artifacts/TARGET/; the other targets still run, and the script then exits non-zero.
set -eu
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ "$#" -eq 0 ]; then
    set -- request_head chunked_body pipeline path_normalize range_header cgi_response plugin_declaration site_input tls_first_flight
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo="cargo +nightly"
else
    cargo="cargo"
    RUSTC_BOOTSTRAP=1
    export RUSTC_BOOTSTRAP
fi
# Release build with debug assertions and AddressSanitizer (cargo-fuzz's defaults); the
# targets run one at a time, each on one core.
for target in "$@"; do
    $cargo fuzz build "$target"
done
crashed=""
for target in "$@"; do
    mkdir -p "target/corpus/$target"
    case "$target" in
        # Inputs past 4 KiB reach the chunk-line and header limits.
        chunked_body | pipeline) max_len=9000 ;;
        *) max_len=4096 ;;
    esac
    echo "== $target: ${seconds}s"
    if ! $cargo fuzz run "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1; then
        crashed="$crashed $target"
    fi
done
if [ -n "$crashed" ]; then
    echo "fuzz: failures in:$crashed (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
