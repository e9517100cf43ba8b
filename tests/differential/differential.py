#!/usr/bin/env python3
"""Differential check: the same generated requests sent to occwserv and to nginx.

Usage: tests/differential/differential.py [--count N] [--seed S] [--jobs J]
                                          [--occwserv PATH] [--nginx PATH] [--show N]

Generates N requests (valid, edge-case and malformed; deterministic for a seed), starts
occwserv and nginx on 127.0.0.1 over copies of the same document root, sends every request on
a fresh connection to each, and compares two things: the class of the status (1xx..5xx, or no
answer) and whether the connection stays usable afterwards (a follow-up GET on the same
connection is answered 200). Each request comes from a named rule; disagreements are grouped by
rule. A rule listed in KNOWN is a documented difference (docs/RELIABILITY.md gives the RFC 9110
/ 9112 section that makes occwserv's answer right); any other disagreement makes the exit status 1.

Only the Python standard library is used. All traffic goes to 127.0.0.1; both servers are
started here and stopped by PID.
"""

import argparse
import collections
import concurrent.futures
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 1.0

# Documented differences: rule -> why occwserv's answer is right (docs/RELIABILITY.md has the
# same list with the figures of a run).
KNOWN = {
    "options": "RFC 9110 9.3.7: OPTIONS asks which methods a resource allows; occwserv answers 200 "
    "with Allow, nginx 405",
    "unknown-method": "RFC 9110 9.1: an unrecognised method SHOULD get 501; nginx answers 405",
    "lowercase-method": "RFC 9110 9.1: the method token is case-sensitive, so `get` is an unknown "
    "method (501); nginx calls it malformed (400)",
    "http09": "RFC 9112 3: a request-line without an HTTP-version is invalid (400); nginx answers "
    "it the HTTP/0.9 way, with no status line",
    "bad-version": "RFC 9112 2.3: HTTP-version is HTTP/DIGIT.DIGIT, so `HTTP/11` makes the request-line "
    "invalid (400, section 3); nginx reads it as major version 11 (505)",
    "encoded-slash": "RFC 3986 2.2: %2F is data, not a path separator; occwserv refuses it (400) rather "
    "than decode it into one as nginx does",
    "extra-whitespace": "RFC 9112 3: the request-line is method SP request-target SP HTTP-version; "
    "parsing other whitespace leniently is only a MAY and a smuggling risk (section 11.2)",
    "ctl-in-value": "RFC 9110 5.5: a field value is VCHAR, obs-text, SP and HTAB; occwserv rejects "
    "other control characters (400), nginx passes them",
    "bad-field-name": "RFC 9110 5.1: a field name is a token; occwserv rejects the malformed field "
    "line (400), nginx drops it silently and serves",
    "unsupported-expect": "RFC 9110 10.1.1: a server MAY answer an expectation other than "
    "100-continue with 417, as occwserv does; nginx ignores it",
    "many-headers": "RFC 6585 5: more than 100 fields is 431 for occwserv; nginx counts none",
    "long-header": "RFC 9110 5.4 / RFC 6585 5: limits differ; nginx refuses a field over 8 KiB "
    "(400), occwserv allows a 64 KiB head",
    "te-identity": "RFC 9112 6.3 (4): Transfer-Encoding whose last coding is not chunked MUST be "
    "400 and close; nginx answers 501",
    "duplicate-length": "RFC 9110 8.6: Content-Length repeated with the same value MAY be taken as "
    "one; occwserv does, nginx refuses the duplicate line (400)",
    "precondition-failed": "RFC 9112 9.3: HTTP/1.1 connections persist by default; after a 412 to a "
    "request read whole, occwserv keeps the connection, nginx closes it",
}

FILES = ["/", "/index.html", "/plain.txt", "/style.css", "/sub/", "/sub/index.html", "/noindex/file.txt",
         "/with%20space.txt", "/%C3%BCn%C3%AFc%C3%B8d%C3%A9.txt", "/big.bin", "/link-inside.html"]
MISSING = ["/missing.html", "/sub/missing", "/no/such/dir/", "/index.html/extra", "/.hidden", "/.git/config"]
DIRS_NO_SLASH = ["/sub", "/noindex"]


def prepare_root(base):
    """A copy of the fixture docroot, plus a large file; nothing outside the root to escape to."""
    root = os.path.join(base, "docroot")
    shutil.copytree(os.path.join(REPO, "tests/fixtures/docroot"), root, symlinks=True)
    rng = random.Random(7)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(256 * 1024)))
    os.chmod(base, 0o755)
    return root


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_nginx(nginx, base, root):
    run = os.path.join(base, "nginx")
    os.makedirs(os.path.join(run, "tmp"))
    port = free_port()
    conf = f"""
user root;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout 65s;
    server_tokens off;
    # RFC 9110 13.1.3 semantics (nginx's default is an exact date match).
    if_modified_since before;
    client_body_temp_path {run}/tmp/body;
    proxy_temp_path {run}/tmp/proxy;
    fastcgi_temp_path {run}/tmp/fastcgi;
    uwsgi_temp_path {run}/tmp/uwsgi;
    scgi_temp_path {run}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        index index.html;
        # occwserv's policy, so that only protocol handling is compared: no dot-files.
        location ~ /\\.(?!well-known/) {{ return 404; }}
    }}
}}
"""
    with open(os.path.join(run, "nginx.conf"), "w") as f:
        f.write(conf)
    proc = subprocess.Popen([nginx, "-p", run, "-c", os.path.join(run, "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_listening(port, proc, "nginx")
    return proc, port


def start_occwserv(binary, base, root):
    conf = os.path.join(base, "occwserv.toml")
    with open(conf, "w") as f:
        f.write(f'access_log = ""\nerror_log = "{base}/occwserv-error.log"\nheader_timeout_secs = 5\n')
    proc = subprocess.Popen([binary, "--config", conf, "--listen", "127.0.0.1:0", "--root", root,
                             "--cgi-bin", os.path.join(base, "no-cgi"), "--plugins", os.path.join(base, "no-plugins")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=base)
    line = proc.stdout.readline().decode()
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        sys.exit(f"occwserv did not start: {line!r}")
    return proc, int(m.group(1))


def wait_listening(port, proc, name):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{name} is not listening on {port}")


# ----------------------------------------------------------------------------- generation

def pick(rng, items):
    return items[rng.randrange(len(items))]


def head(method, target, version="HTTP/1.1", headers=None, host=True, eol="\r\n"):
    lines = [f"{method} {target} {version}"]
    if host:
        lines.append("Host: localhost")
    lines += headers or []
    return (eol.join(lines) + eol + eol).encode("latin-1")


def gen_valid(rng):
    """Ordinary requests a browser or tool sends."""
    kind = rng.randrange(12)
    path = pick(rng, FILES + MISSING + DIRS_NO_SLASH)
    version = pick(rng, ["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"])
    host = version == "HTTP/1.1" or rng.random() < 0.5
    extra = []
    if rng.random() < 0.3:
        extra.append(pick(rng, ["Connection: keep-alive", "Connection: close", "Connection: Keep-Alive, TE"]))
    if rng.random() < 0.5:
        extra.append(pick(rng, ["User-Agent: curl/7.88.1", "User-Agent: Mozilla/5.0 (X11; Linux x86_64)",
                                "Accept: */*", "Accept-Encoding: gzip, deflate, br", "Cookie: a=b; c=d"]))
    if kind == 0:
        return "get", head("GET", path, version, extra, host)
    if kind == 1:
        return "head", head("HEAD", path, version, extra, host)
    if kind == 2:
        q = "?" + "&".join(f"k{i}=v{rng.randrange(100)}" for i in range(rng.randrange(1, 4)))
        return "query", head("GET", path + q, version, extra, host)
    if kind == 3:
        a = rng.randrange(0, 300000)
        spec = pick(rng, [f"bytes={a}-", f"bytes=-{a % 5000 + 1}", f"bytes={a}-{a + rng.randrange(0, 9000)}",
                          "bytes=0-0", "bytes=0-1,5-6", f"bytes={a + 10**7}-"])
        return "range", head("GET", pick(rng, ["/big.bin", "/plain.txt", "/index.html"]), version,
                             extra + [f"Range: {spec}"], host)
    if kind == 4:
        cond = pick(rng, ["If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
                          "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT",
                          'If-None-Match: "nope"', "If-None-Match: *",
                          "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
                          "If-Modified-Since: not a date"])
        rule = "precondition-failed" if cond.startswith("If-Unmodified-Since") else "conditional"
        return rule, head("GET", pick(rng, FILES), version, extra + [cond], host)
    if kind == 5:
        return "dot-segments", head("GET", pick(rng, ["/sub/../plain.txt", "/./index.html", "/sub/./",
                                                      "/a/b/../../plain.txt", "//plain.txt", "/sub//index.html"]),
                                    version, extra, host)
    if kind == 6:
        return "absolute-form", head("GET", "http://localhost" + pick(rng, FILES), version, extra, host)
    if kind == 7:
        n = rng.randrange(0, 3)
        body = b"x" * n
        req = head("POST", pick(rng, FILES), "HTTP/1.1", [f"Content-Length: {n}", "Content-Type: text/plain"])
        return "post-static", req + body
    if kind == 8:
        return "delete-put", head(pick(rng, ["DELETE", "PUT", "PATCH"]), pick(rng, FILES), "HTTP/1.1",
                                  ["Content-Length: 0"])
    if kind == 9:
        return "options", head("OPTIONS", pick(rng, ["/", "/index.html"]), "HTTP/1.1")
    if kind == 10:
        return "host-forms", head("GET", pick(rng, FILES), "HTTP/1.1",
                                  [pick(rng, ["Host: localhost:80", "Host: 127.0.0.1", "Host: [::1]:8080",
                                              "Host: EXAMPLE.com", "Host: a.b-c.d"])], host=False)
    return "lf-only", head("GET", pick(rng, FILES), "HTTP/1.1", extra, eol="\n")


def gen_edge(rng):
    """Legal but unusual requests, near the limits or using rarely used syntax."""
    kind = rng.randrange(12)
    if kind == 0:
        return "leading-crlf", b"\r\n" * rng.randrange(1, 3) + head("GET", "/plain.txt")
    if kind == 1:
        return "percent-encoded", head("GET", pick(rng, ["/pl%61in.txt", "/%70lain.txt", "/sub/%69ndex.html",
                                                          "/with space.txt".replace(" ", "%20"), "/%7e"]))
    if kind == 2:
        n = rng.randrange(1, 3)
        return "many-headers", head("GET", "/plain.txt", headers=[f"X-H{i}: {i}" for i in range(90 + n * 10)])
    if kind == 3:
        size = pick(rng, [1000, 4000, 7000, 9000, 20000])
        return "long-header", head("GET", "/plain.txt", headers=[f"X-Long: {'a' * size}"])
    if kind == 4:
        size = pick(rng, [1000, 4000, 7000, 9000, 20000])
        return "long-target", head("GET", "/plain.txt?" + "q" * size)
    if kind == 5:
        body = b"hello"
        return "expect-continue", head("POST", "/plain.txt", headers=["Expect: 100-continue",
                                                                       f"Content-Length: {len(body)}"]) + body
    if kind == 6:
        return "chunked-post", head("POST", "/plain.txt", headers=["Transfer-Encoding: chunked"]) + \
            b"5\r\nhello\r\n0\r\n\r\n"
    if kind == 7:
        return "whitespace-value", head("GET", "/plain.txt", headers=["Accept:    */*   ", "X-Tab:\tv\t"])
    if kind == 8:
        return "duplicate-length", head("POST", "/plain.txt", headers=["Content-Length: 3", "Content-Length: 3"]) \
            + b"abc"
    if kind == 9:
        return "fragment", head("GET", "/plain.txt#frag")
    if kind == 10:
        return "body-on-get", head("GET", "/plain.txt", headers=["Content-Length: 4"]) + b"abcd"
    return "http10-keepalive", head("GET", "/plain.txt", "HTTP/1.0", ["Connection: keep-alive"], host=False)


def gen_malformed(rng):
    """Requests a server must refuse."""
    kind = rng.randrange(24)
    if kind == 0:
        return "no-host", head("GET", "/plain.txt", host=False)
    if kind == 1:
        return "two-hosts", head("GET", "/plain.txt", headers=["Host: other"])
    if kind == 2:
        return "bad-length", head("POST", "/plain.txt", headers=[
            "Content-Length: " + pick(rng, ["-1", "0x10", "abc", "99999999999999999999999", "1 2", "+5"])])
    if kind == 3:
        return "te-and-length", head("POST", "/plain.txt", headers=["Content-Length: 5",
                                                                     "Transfer-Encoding: chunked"]) + \
            b"0\r\n\r\n"
    if kind == 4:
        return "te-identity", head("POST", "/plain.txt", headers=["Transfer-Encoding: " +
                                                                   pick(rng, ["identity", "gzip", "chunked, gzip"])])
    if kind == 5:
        return "bad-chunk", head("POST", "/plain.txt", headers=["Transfer-Encoding: chunked"]) + \
            pick(rng, [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"-1\r\n\r\n"])
    if kind == 6:
        return "unknown-method", head(pick(rng, ["BREW", "FOO", "PROPFIND", "MKCOL"]), "/plain.txt")
    if kind == 7:
        return "lowercase-method", head(pick(rng, ["get", "Get", "head"]), "/plain.txt")
    if kind == 8:
        return "bad-version", head("GET", "/plain.txt", pick(rng, ["HTTP/2.0", "HTTP/3.0", "HTTP/1", "http/1.1",
                                                                   "HTTP/1.1.1", "HTTP/11", "HTTQ/1.1"]))
    if kind == 9:
        return "future-minor", head("GET", "/plain.txt", pick(rng, ["HTTP/1.2", "HTTP/1.9"]))
    if kind == 10:
        return "http09", b"GET /plain.txt\r\n\r\n"
    if kind == 11:
        return "space-in-target", head("GET", "/pla in.txt")
    if kind == 12:
        return "extra-whitespace", pick(rng, [b"GET  /plain.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                                              b"GET /plain.txt  HTTP/1.1\r\nHost: x\r\n\r\n",
                                              b"GET\t/plain.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                                              b"GET /plain.txt HTTP/1.1 \r\nHost: x\r\n\r\n"])
    if kind == 13:
        return "bad-field-name", head("GET", "/plain.txt", headers=[pick(rng, ["Bad Name: v", "X(y): z",
                                                                               "Host : x", ": empty", "X@Y: 1"])])
    if kind == 14:
        return "ctl-in-value", head("GET", "/plain.txt", headers=["X-Ctl: a" + chr(pick(rng, [1, 8, 0x1b, 0x7f]))
                                                                  + "b"])
    if kind == 15:
        return "nul-in-value", head("GET", "/plain.txt", headers=["X-Nul: a\x00b"])
    if kind == 16:
        return "obs-fold", head("GET", "/plain.txt", headers=["X-Fold: a", " b"])
    if kind == 17:
        return "traversal", head("GET", pick(rng, ["/../etc/passwd", "/%2e%2e/etc/passwd", "/sub/../../x",
                                                    "/..%2f..%2fetc", "/%2E%2E/%2E%2E/"]))
    if kind == 18:
        return "nul-in-path", head("GET", "/plain.txt%00.html")
    if kind == 19:
        return "encoded-slash", head("GET", pick(rng, ["/sub%2Findex.html", "/sub%2findex.html"]))
    if kind == 20:
        return "bad-escape", head("GET", pick(rng, ["/plain%zz.txt", "/plain%2.txt", "/%"]))
    if kind == 21:
        return "garbage", bytes(rng.getrandbits(8) for _ in range(rng.randrange(4, 64))) + b"\r\n\r\n"
    if kind == 22:
        return "absolute-form-bad", head("GET", pick(rng, ["http://", "http:///plain.txt", "http://a b/"]))
    return "unsupported-expect", head("GET", "/plain.txt", headers=["Expect: " + pick(rng, ["200-ok", "nothing"])])


def generate(count, seed):
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        r = rng.random()
        family, gen = ("valid", gen_valid) if r < 0.5 else ("edge", gen_edge) if r < 0.75 else \
            ("malformed", gen_malformed)
        rule, raw = gen(rng)
        cases.append((i, family, rule, raw))
    return cases


# ----------------------------------------------------------------------------- exchange

def read_head(sock, buf):
    """Reads until the end of a response head; returns (head, rest) or (None, buf)."""
    while True:
        for sep in (b"\r\n\r\n", b"\n\n"):
            at = buf.find(sep)
            if at >= 0:
                return buf[:at], buf[at + len(sep):]
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            return None, buf
        if not chunk:
            return None, buf
        buf += chunk


def read_exact(sock, buf, n):
    while len(buf) < n:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            return None
        if not chunk:
            return None
        buf += chunk
    return buf[n:]


def read_chunked(sock, buf):
    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        line, buf = buf.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            while b"\r\n\r\n" not in b"\r\n" + buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            at = (b"\r\n" + buf).find(b"\r\n\r\n")
            return buf[at + 2:]
        buf = read_exact(sock, buf, size + 2)
        if buf is None:
            return None


def read_response(sock, buf, method):
    """One response: returns (status or None, framed, close_requested, rest)."""
    while True:
        head_bytes, buf = read_head(sock, buf)
        if head_bytes is None:
            return (None if not buf else "junk"), False, True, buf
        lines = head_bytes.decode("latin-1").replace("\r\n", "\n").split("\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            return "junk", False, True, buf
        status = int(m.group(1))
        if 100 <= status < 200 and status != 101:
            continue
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                fields.setdefault(k.strip().lower(), v.strip())
        close = "close" in fields.get("connection", "").lower()
        if method == "HEAD" or status in (204, 304):
            return status, True, close, buf
        try:
            if "chunked" in fields.get("transfer-encoding", "").lower():
                rest = read_chunked(sock, buf)
            elif "content-length" in fields:
                rest = read_exact(sock, buf, int(fields["content-length"]))
            else:
                return status, False, True, b""
        except (ValueError, socket.timeout, OSError):
            rest = None
        if rest is None:
            return status, False, True, b""
        return status, True, close, rest


FOLLOW_UP = b"GET /plain.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"


def exchange(port, raw):
    """Sends one request on a fresh connection; returns (status class, connection usable)."""
    method = raw.split(b" ", 1)[0].decode("latin-1", errors="replace")
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    except OSError:
        return "refused", False
    try:
        sock.settimeout(TIMEOUT)
        try:
            sock.sendall(raw)
        except OSError:
            pass
        status, framed, close, rest = read_response(sock, b"", method)
        klass = "none" if status is None else "junk" if status == "junk" else f"{status // 100}xx"
        usable = False
        if framed and not close and not rest:
            try:
                sock.sendall(FOLLOW_UP)
                follow, _, _, _ = read_response(sock, b"", "GET")
                usable = follow == 200
            except OSError:
                usable = False
        return klass, usable
    finally:
        sock.close()


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=9112)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--occwserv", default=os.path.join(REPO, "target/debug/occwserv"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--show", type=int, default=2, help="examples shown per disagreeing rule")
    args = ap.parse_args()

    base = tempfile.mkdtemp(prefix="occwserv-differential-")
    procs = []
    try:
        root = prepare_root(base)
        nginx, nginx_port = start_nginx(args.nginx, base, root)
        procs.append(nginx)
        occ, occ_port = start_occwserv(args.occwserv, base, root)
        procs.append(occ)
        cases = generate(args.count, args.seed)
        started = time.monotonic()

        def run(case):
            _, _, _, raw = case
            return exchange(nginx_port, raw), exchange(occ_port, raw)

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run, cases))
        elapsed = time.monotonic() - started
        report(cases, results, elapsed, args)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(base, ignore_errors=True)


def report(cases, results, elapsed, args):
    by_family = collections.Counter()
    agree_family = collections.Counter()
    disagreements = collections.defaultdict(list)
    for (i, family, rule, raw), (ng, oc) in zip(cases, results):
        by_family[family] += 1
        if ng == oc:
            agree_family[family] += 1
        else:
            disagreements[rule].append((i, raw, ng, oc))
    total = len(cases)
    agreed = sum(agree_family.values())
    print(f"differential check: {total} requests (seed {args.seed}) to nginx and occwserv in {elapsed:.1f} s")
    for family in ("valid", "edge", "malformed"):
        print(f"  {family:10} {agree_family[family]:5} / {by_family[family]:5} agree")
    print(f"  {'all':10} {agreed:5} / {total:5} agree on status class and connection reuse")
    undocumented = 0
    for rule in sorted(disagreements):
        rows = disagreements[rule]
        pairs = collections.Counter((ng, oc) for _, _, ng, oc in rows)
        known = rule in KNOWN
        undocumented += 0 if known else len(rows)
        print(f"\n  rule {rule}: {len(rows)} differ{' (documented)' if known else ' (UNDOCUMENTED)'}")
        for (ng, oc), n in pairs.most_common():
            print(f"    nginx {ng[0]} usable={ng[1]!s:5}  occwserv {oc[0]} usable={oc[1]!s:5}  x{n}")
        if known:
            print(f"    why: {KNOWN[rule]}")
        for i, raw, _, _ in rows[:args.show]:
            print(f"    e.g. #{i}: {raw[:120]!r}")
    print(f"\n{undocumented} undocumented disagreements")
    sys.exit(1 if undocumented else 0)


if __name__ == "__main__":
    main()
