#!/usr/bin/env bash
# Builds the Debian package (and `cargo install --path .`) and checks it as an installer would see it: the files it puts
# down (dpkg -x into an empty root), its conffile, the systemd units (systemd-analyze
# verify), the logrotate snippet (logrotate -d), and the installed server answering on
# 127.0.0.1 with the installed config, site and plug-ins. Run by .ci/run; needs cargo-deb.
#
#   deploy/debian/check.sh [--no-build]   (--no-build: use the .deb already in target/debian)
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "deploy/debian/check.sh: $*" >&2; exit 1; }

if [ "${1:-}" != --no-build ]; then
    cargo build --release --workspace
    cargo deb --no-build --output target/debian/
fi
deb=$(ls -t target/debian/occwserv_*.deb | head -n1)
echo "checking $deb"

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
root="$work/root"
dpkg -x "$deb" "$root"
dpkg-deb -e "$deb" "$work/control"

# The layout.
for file in usr/bin/occwserv etc/occwserv/occwserv.toml etc/logrotate.d/occwserv \
    lib/systemd/system/occwserv.service lib/systemd/system/occwserv.socket \
    var/www/html/index.html var/www/html/error404.html usr/share/doc/occwserv/DEPLOY.md; do
    [ -f "$root/$file" ] || fail "/$file is not in the package"
done
[ -x "$root/usr/bin/occwserv" ] || fail "/usr/bin/occwserv is not executable"
for plugin in hello counter once finger echo_ws game; do
    [ -f "$root/usr/lib/occwserv/plugins/lib$plugin.so" ] || fail "plug-in $plugin is not installed"
done
installed=$(cd "$root/usr/lib/occwserv/plugins" && ls)
[ "$(echo "$installed" | wc -l)" -eq 6 ] || fail "unexpected plug-ins: $installed"
if find "$root" -name '*crash*' | grep -q .; then fail "the crash plug-in is in the package"; fi
grep -qx /etc/occwserv/occwserv.toml "$work/control/conffiles" || fail "the config is not a conffile"
grep -q /var/lib/occwserv "$work/control/postinst" || fail "postinst does not make /var/lib/occwserv"
grep -q '^user = "www-data"' "$root/etc/occwserv/occwserv.toml" || fail "the config does not drop to www-data"

# `cargo install --path .` puts the same server in place (reusing the release build).
cargo install --quiet --locked --path . --root "$work/cargo"
(cd "$work" && "$work/cargo/bin/occwserv" --help > "$work/help") || fail "the cargo-installed server does not run"
grep -q -- --plugins "$work/help" || fail "the cargo-installed server prints no usage"

# The units, with their commands pointed at the unpacked files.
mkdir -p "$work/units"
for unit in occwserv.service occwserv.socket; do
    sed -e "s#/usr/bin/occwserv#$root/usr/bin/occwserv#g" -e "s#/etc/occwserv/#$root/etc/occwserv/#g" \
        "$root/lib/systemd/system/$unit" > "$work/units/$unit"
done
systemd-analyze verify "$work/units/occwserv.service" "$work/units/occwserv.socket"
grep -qx 'Type=notify' "$root/lib/systemd/system/occwserv.service" || fail "the service is not Type=notify"
grep -qx 'ListenStream=80' "$root/lib/systemd/system/occwserv.socket" || fail "the socket is not on port 80"

# The logrotate snippet, as logrotate reads it (debug mode rotates nothing).
logrotate -d -s "$work/logrotate.state" "$root/etc/logrotate.d/occwserv" 2> "$work/logrotate.out" \
    || { cat "$work/logrotate.out" >&2; fail "logrotate refuses the snippet"; }
grep -q 'rotating pattern: /var/log/occwserv/\*.log' "$work/logrotate.out" || fail "logrotate reads no pattern"

# The installed config, moved under the unpacked root, passes `occwserv --check` (www-data
# and all). The installed server then starts from an empty directory (not a checkout). It runs as whoever runs this check, so the privilege drop
# (tested on its own) is left out; 127.0.0.1:0 replaces port 80.
mkdir -p "$root/var/log/occwserv" "$root/var/lib/occwserv/game" "$work/cwd"
sed -e "s#\"/var/#\"$root/var/#g" -e "s#\"/usr/lib/occwserv/#\"$root/usr/lib/occwserv/#g" \
    "$root/etc/occwserv/occwserv.toml" > "$work/checked.toml"
"$root/usr/bin/occwserv" --check --config "$work/checked.toml" || fail "occwserv --check refuses the installed config"
sed -e '/^user = /d' -e '/^group = /d' "$work/checked.toml" > "$work/occwserv.toml"
(cd "$work/cwd" && exec "$root/usr/bin/occwserv" --config "$work/occwserv.toml" --listen 127.0.0.1:0 \
    > "$work/stdout" 2>&1 < /dev/null) &
server=$!
addr=""
for _ in $(seq 300); do
    addr=$(sed -n 's/^listening on //p' "$work/stdout" | head -n1)
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/stdout" "$root/var/log/occwserv/error.log" >&2 || true; fail "the installed server did not start"; }
    sleep 0.1
done
[ -n "$addr" ] || fail "the installed server did not report its address"
get() { curl -s -o "$work/body" -w '%{http_code}' "http://$addr$1"; }
[ "$(get /)" = 200 ] && cmp -s "$work/body" html/index.html || fail "/ is not the bundled site"
status=""
for _ in $(seq 100); do
    status=$(get /ogi/hello)
    [ "$status" = 200 ] && break
    sleep 0.1
done
[ "$status" = 200 ] || fail "/ogi/hello answers $status from the installed plug-ins"
[ "$(get /ogi/game)" = 200 ] || fail "the game does not answer"
[ "$(get /ogi/crash)" = 404 ] || fail "/ogi/crash is served"
logged=no
for _ in $(seq 100); do
    grep -q 'GET /ogi/hello' "$root/var/log/occwserv/access.log" 2>/dev/null && { logged=yes; break; }
    sleep 0.1
done
[ "$logged" = yes ] || fail "no access log line in /var/log/occwserv/access.log"
echo "the package is complete: $deb"
