#!/usr/bin/env python3
"""Soak: mixed traffic against one occwserv for a bounded time, verifying every body.

Started by tests/soak/soak.sh MINUTES (which builds the server and plug-ins first).

Clients on keep-alive connections mix static files (small ones served from the cache, large
ones by sendfile), ranges, conditional requests, a streaming CGI program, the hello and
counter plug-ins and websocket echo sessions. Every body is checked against its expected
SHA-256 (or exact text). Meanwhile the server is sent SIGHUP every 15 s and the hello plug-in
is replaced on disk every 20 s. Every 5 s the server's resident memory, descriptors and
threads are sampled. At the end the server is stopped with SIGTERM and must exit 0.

Exit status 0 only if no request failed and no body was wrong. All traffic goes to
127.0.0.1; the server is started here and signalled only by its PID.
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    from websockets.sync.client import connect as ws_connect
except ImportError:  # tests/requirements.txt installs it
    ws_connect = None

SIZES = {"tiny.txt": 700, "small.html": 12_000, "medium.bin": 300_000, "large.bin": 4_000_000,
         "huge.bin": 16_000_000}
PERIOD = 251 * 256


def pattern_block():
    return bytes((i * 7 + i // 251) % 256 for i in range(PERIOD)) * 2


def cgi_pattern(n, block):
    """What tests/fixtures/cgi-bin/pattern.py prints for QUERY_STRING=n."""
    out = bytearray()
    while len(out) < n:
        take = min(n - len(out), 50000)
        offset = len(out) % PERIOD
        out += block[offset:offset + take]
    return bytes(out)


class Failure(Exception):
    pass


class Client:
    """One keep-alive connection that reconnects when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock, self.buf = None, b""

    def request(self, method, path, headers=()):
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *headers, "", ""]
        self.sock.sendall("\r\n".join(lines).encode())
        status, fields, body = self.read(method == "HEAD")
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, fields, body

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise Failure("connection closed mid-response")
        self.buf += chunk

    def read(self, head_only):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        if head_only or status in (204, 304):
            return status, fields, b""
        if "content-length" in fields:
            n = int(fields["content-length"])
            while len(self.buf) < n:
                self.fill()
            body, self.buf = self.buf[:n], self.buf[n:]
            return status, fields, body
        if fields.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                while b"\r\n" not in self.buf:
                    self.fill()
                line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self.fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    return status, fields, bytes(body)
        raise Failure(f"unframed response {status}")


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []

    def ok(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def fail(self, kind, why):
        with self.lock:
            self.failures.append(f"{kind}: {why}")


def worker(seed, port, files, hashes, block, stop, tally):
    rng = random.Random(seed)
    client = Client(port)
    names = list(SIZES)
    while not stop.is_set():
        kind = rng.choices(["cached", "file", "range", "conditional", "cgi", "hello", "counter", "websocket"],
                           weights=[30, 12, 10, 8, 10, 12, 6, 6])[0]
        try:
            if kind == "cached":
                name = rng.choice(["tiny.txt", "small.html"])
                status, _, body = client.request("GET", "/" + name)
                if status != 200 or hashlib.sha256(body).hexdigest() != hashes[name]:
                    raise Failure(f"/{name}: {status}, {len(body)} bytes, wrong hash")
            elif kind == "file":
                name = rng.choice(names[2:])
                status, _, body = client.request("GET", "/" + name)
                if status != 200 or hashlib.sha256(body).hexdigest() != hashes[name]:
                    raise Failure(f"/{name}: {status}, {len(body)} bytes, wrong hash")
            elif kind == "range":
                name = rng.choice(names)
                size = SIZES[name]
                start = rng.randrange(size)
                end = min(size - 1, start + rng.randrange(1, 200_000))
                status, _, body = client.request("GET", "/" + name, [f"Range: bytes={start}-{end}"])
                if status != 206 or body != files[name][start:end + 1]:
                    raise Failure(f"/{name} bytes={start}-{end}: {status}, {len(body)} bytes")
            elif kind == "conditional":
                name = rng.choice(names)
                status, fields, _ = client.request("HEAD", "/" + name)
                etag = fields.get("etag", "")
                status2, _, body = client.request("GET", "/" + name, [f"If-None-Match: {etag}"])
                if status != 200 or status2 != 304 or body:
                    raise Failure(f"/{name}: HEAD {status}, conditional GET {status2}")
            elif kind == "cgi":
                n = rng.choice([0, 1, 5000, 60_000, 250_000])
                status, _, body = client.request("GET", f"/cgi-bin/pattern.py?{n}")
                if status != 200 or body != cgi_pattern(n, block):
                    raise Failure(f"pattern.py?{n}: {status}, {len(body)} bytes")
            elif kind == "hello":
                who = f"soak{rng.randrange(1000)}"
                status, _, body = client.request("GET", f"/ogi/hello?{who}")
                if status != 200 or f"Hello, {who}!".encode() not in body:
                    raise Failure(f"hello: {status} {body[:80]!r}")
            elif kind == "counter":
                status, _, body = client.request("GET", "/ogi/counter")
                if status != 200 or not re.search(rb'id="hits">\d+<', body):
                    raise Failure(f"counter: {status} {body[:80]!r}")
            elif kind == "websocket":
                with ws_connect(f"ws://127.0.0.1:{port}/ogi/echo-ws", open_timeout=30, close_timeout=10) as ws:
                    for i in range(rng.randrange(1, 20)):
                        if i % 3 == 2:
                            message = os.urandom(rng.randrange(1, 70_000))
                        else:
                            message = f"soak message {seed} {i} " + "x" * rng.randrange(0, 2000)
                        ws.send(message)
                        if ws.recv(timeout=30) != message:
                            raise Failure("websocket echo differs")
            tally.ok(kind)
        except (Failure, OSError, ValueError, IndexError) as e:
            tally.fail(kind, repr(e))
            client.close()
        except Exception as e:  # websockets' own errors
            tally.fail(kind, repr(e))
            client.close()
    client.close()


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def install(source, target):
    tmp = target + ".new"
    shutil.copyfile(source, tmp)
    os.rename(tmp, target)


def declaration_offset(data):
    """File offset of the `.occwserv_plugin` section of an ELF64 little-endian library."""
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize = int.from_bytes(data[0x3A:0x3C], "little")
    shnum = int.from_bytes(data[0x3C:0x3E], "little")
    shstrndx = int.from_bytes(data[0x3E:0x40], "little")

    def header(i):
        at = shoff + i * shentsize
        name = int.from_bytes(data[at:at + 4], "little")
        offset = int.from_bytes(data[at + 0x18:at + 0x20], "little")
        return name, offset

    strtab = header(shstrndx)[1]
    for i in range(shnum):
        name, offset = header(i)
        end = data.index(b"\0", strtab + name)
        if data[strtab + name:end] == b".occwserv_plugin":
            return offset
    raise ValueError("no declaration section")


VERSION_AT = 8 + 4 + 4 + 8 + 4 + 4 + 96 + 64  # magic, ABI numbers, fingerprint, flags, rustc, name


def install_version(source, target, version):
    """Installs a copy of a plug-in whose declared version is `version`: different bytes, so
    the server attaches it as a new generation (a byte-identical copy is not reloaded)."""
    data = bytearray(open(source, "rb").read())
    at = declaration_offset(data) + VERSION_AT
    data[at:at + 32] = version.encode().ljust(32, b"\0")
    tmp = target + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, target)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--reload-every", type=float, default=15, help="seconds between SIGHUPs (0: none)")
    ap.add_argument("--replace-every", type=float, default=20,
                    help="seconds between replacements of the hello plug-in (0: none)")
    args = ap.parse_args()
    if not 0 < args.minutes <= 60:
        sys.exit("soak: MINUTES must be between 0 and 60")
    if ws_connect is None:
        sys.exit("soak: needs the websockets package (pip install -r tests/requirements.txt)")
    repo = args.repo
    debug = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo, "target"), "debug")
    base = tempfile.mkdtemp(prefix="occwserv-soak-")
    root = os.path.join(base, "docroot")
    shutil.copytree(os.path.join(repo, "tests/fixtures/docroot"), root, symlinks=True)
    cgi = os.path.join(base, "cgi-bin")
    shutil.copytree(os.path.join(repo, "tests/fixtures/cgi-bin"), cgi, symlinks=True)
    plugins = os.path.join(base, "plugins")
    os.mkdir(plugins)
    for stem in ["hello", "counter", "echo_ws"]:
        install(os.path.join(debug, f"lib{stem}.so"), os.path.join(plugins, f"lib{stem}.so"))
    rng = random.Random(1)
    files, hashes = {}, {}
    for name, size in SIZES.items():
        data = rng.randbytes(size)
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        files[name], hashes[name] = data, hashlib.sha256(data).hexdigest()
    config = os.path.join(base, "occwserv.toml")
    config_text = (f'access_log = "{base}/access.log"\nerror_log = "{base}/error.log"\n'
                   "[ogi]\nscan_interval_ms = 200\n")
    with open(config, "w") as f:
        f.write(config_text)
    server = subprocess.Popen([os.path.join(debug, "occwserv"), "--config", config, "--listen", "127.0.0.1:0",
                               "--root", root, "--cgi-bin", cgi, "--plugins", plugins],
                              stdout=subprocess.PIPE, cwd=base)
    line = server.stdout.readline().decode()
    port = int(re.match(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))
    threading.Thread(target=server.stdout.read, daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            c = Client(port)
            if all(c.request("GET", p)[0] == 200 for p in ["/ogi/hello", "/ogi/counter", "/ogi/echo-ws"]):
                break
        except OSError:
            pass
        time.sleep(0.1)

    tally, stop = Tally(), threading.Event()
    block = pattern_block()
    threads = [threading.Thread(target=worker, args=(i, port, files, hashes, block, stop, tally))
               for i in range(args.clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    samples, reloads, replacements = [], 0, 0
    end = started + args.minutes * 60
    never = float("inf")
    next_sample = started
    next_hup = started + args.reload_every if args.reload_every > 0 else never
    next_swap = started + args.replace_every if args.replace_every > 0 else never
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_sample:
            samples.append((now - started, *sample(server.pid)))
            next_sample += 5
        if now >= next_hup:
            os.kill(server.pid, signal.SIGHUP)
            reloads += 1
            next_hup += args.reload_every
        if now >= next_swap:
            replacements += 1
            install_version(os.path.join(debug, "libhello.so"), os.path.join(plugins, "libhello.so"),
                            f"0.1.{replacements}")
            next_swap += args.replace_every
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    samples.append((time.monotonic() - started, *sample(server.pid)))
    with open(f"/proc/{server.pid}/maps") as f:
        # The path field; a loaded copy is unlinked at once, so it reads "... (deleted)".
        paths = (line.split(maxsplit=5)[5].strip() for line in f if len(line.split(maxsplit=5)) > 5)
        hello_maps = {p.removesuffix(" (deleted)") for p in paths if "hello" in p}
    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        code = "killed after 60 s"
    elapsed = time.monotonic() - started

    total = sum(tally.counts.values())
    print(f"soak: {elapsed:.0f} s, {args.clients} clients, {total} exchanges verified "
          f"({total / elapsed:.0f}/s), {len(tally.failures)} failed")
    print("  by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.counts.items())))
    with open(os.path.join(base, "error.log")) as f:
        generations = sum(1 for line in f if "plugin hello " in line
                          and ("attached from" in line or "replaces generation" in line))
    print(f"  {reloads} SIGHUP reloads, {replacements} hello plug-in replacements ({generations} generations "
          f"attached, {len(hello_maps)} copies of the library mapped at the end); exit code after SIGTERM: {code}")
    warm = [s for s in samples if s[0] >= min(30, elapsed / 4)] or samples
    for label, index, unit in [("RSS", 1, "KiB"), ("descriptors", 2, ""), ("threads", 3, "")]:
        values = [s[index] for s in warm]
        print(f"  {label}: first {values[0]}{unit}, last {values[-1]}{unit}, min {min(values)}, max {max(values)} "
              f"(after warm-up, {len(values)} samples)")
    print("  samples (s, RSS KiB, fds, threads): " + " ".join(f"{t:.0f}/{r}/{f}/{th}" for t, r, f, th in samples))
    for failure in tally.failures[:20]:
        print(f"  FAILED {failure}")
    ok = not tally.failures and code == 0 and total > 0
    if ok:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"  logs kept in {base}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
