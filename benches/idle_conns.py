#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, sends one GET on each and reads the answer,
writes READY_FILE, holds them idle for HOLD seconds, then sends a second GET on each to prove they
are still alive. Prints one JSON line. Every phase is bounded in time."""
import json, resource, selectors, socket, sys, time

def main():
    port, n, hold, ready = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    req = b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    socks, first_ok, second_ok = [], 0, 0
    deadline = time.monotonic() + 120
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        s = socket.socket()
        s.setblocking(True)
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            break
        socks.append(s)
    def round_trip(label):
        ok = 0
        sel = selectors.DefaultSelector()
        for s in socks:
            try:
                s.sendall(req)
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, bytearray())
            except OSError:
                pass
        end = time.monotonic() + 60
        while sel.get_map() and time.monotonic() < end:
            for key, _ in sel.select(timeout=1):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                buf = key.data
                buf.extend(data)
                if not data or (b"\r\n\r\n" in buf and len(buf) >= buf.index(b"\r\n\r\n") + 4 + 100):
                    if data:
                        ok += 1
                    sel.unregister(key.fileobj)
        for s in socks:
            s.setblocking(True)
        return ok
    first_ok = round_trip("first")
    open(ready, "w").close()
    time.sleep(hold)
    second_ok = round_trip("second")
    print(json.dumps({"n": n, "connected": len(socks), "first_ok": first_ok, "second_ok": second_ok}))

main()
