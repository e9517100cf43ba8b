#!/usr/bin/env python3
"""HTTP/2 attacks from recent years, driven by Python's h2 library (and its hyperframe and
hpack), against a running occwserv. Usage: defences.py CASE PORT. Prints one JSON line of
what the client saw; every loop and every wait is bounded.

Cases: rapid_reset, continuation_flood, hpack_bomb, settings_flood, ping_flood,
zero_window_stall, even_stream_id, decreasing_stream_id, reused_stream_id.
"""
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from hpack import Encoder
from hyperframe.frame import (ContinuationFrame, Frame, HeadersFrame, PingFrame,
                              SettingsFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", "/plain.txt")]


def connect(port, timeout=10.0):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    return sock


class Raw:
    """Frames written and read by hand (hyperframe), for what the h2 state machine refuses to send."""

    def __init__(self, port, timeout=10.0):
        self.sock = connect(port, timeout)
        self.buf = b""
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())
        self.encoder = Encoder()

    def send(self, *frames):
        try:
            self.sock.sendall(b"".join(f.serialize() for f in frames))
            return True
        except OSError:
            return False

    def read(self):
        """The next frame, or None once the server has closed (or after the timeout)."""
        while True:
            if len(self.buf) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) >= 9 + length:
                    frame.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    return frame
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def outcome(self):
        """Frames until GOAWAY or close: the GOAWAY code, RST_STREAM codes and statuses seen."""
        seen = {"goaway": None, "resets": [], "closed": False}
        decoder = __import__("hpack").Decoder()
        for _ in range(100000):
            frame = self.read()
            if frame is None:
                seen["closed"] = True
                return seen
            kind = type(frame).__name__
            if kind == "GoAwayFrame":
                seen["goaway"] = frame.error_code
                seen["last_stream"] = frame.last_stream_id
            elif kind == "RstStreamFrame":
                seen["resets"].append([frame.stream_id, frame.error_code])
            elif kind == "HeadersFrame":
                fields = dict(decoder.decode(frame.data))
                seen.setdefault("statuses", []).append([frame.stream_id, fields.get(":status")])
        return seen


def rapid_reset(port):
    """CVE-2023-44487: open a stream and reset it at once, as fast as possible."""
    sock = connect(port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    seen = {"sent": 0, "refused": 0, "goaway": None}
    raw = {"buf": b""}

    def count_refused(data):
        # The h2 state machine drops RST_STREAM for streams it has reset itself: count them
        # from the frames as they came.
        raw["buf"] += data
        while len(raw["buf"]) >= 9:
            length = int.from_bytes(raw["buf"][:3], "big")
            if len(raw["buf"]) < 9 + length:
                break
            kind, body = raw["buf"][3], raw["buf"][9:9 + length]
            if kind == 3 and int.from_bytes(body[:4], "big") == 7:
                seen["refused"] += 1
            raw["buf"] = raw["buf"][9 + length:]
    for _ in range(100):
        try:
            for _ in range(50):
                stream = conn.get_next_available_stream_id()
                conn.send_headers(stream, REQUEST, end_stream=True)
                conn.reset_stream(stream)
                seen["sent"] += 1
            sock.sendall(conn.data_to_send())
        except Exception:
            break
        sock.settimeout(0.01)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                count_refused(data)
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ConnectionTerminated):
                        seen["goaway"] = int(event.error_code)
                sock.sendall(conn.data_to_send())
        except (socket.timeout, BlockingIOError):
            pass
        except Exception:
            break
        if seen["goaway"] is not None:
            break
    sock.settimeout(10)
    deadline = time.monotonic() + 10
    while seen["goaway"] is None and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except OSError:
            break
        if not data:
            break
        count_refused(data)
        try:
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    seen["goaway"] = int(event.error_code)
        except Exception:
            break
    return seen


def continuation_flood(port):
    """2024: a header block that never ends, one CONTINUATION after another."""
    raw = Raw(port)
    block = raw.encoder.encode(REQUEST)
    headers = HeadersFrame(1)
    headers.data = block
    headers.flags.add("END_STREAM")
    sent = 0
    raw.send(headers)
    for i in range(10000):
        frame = ContinuationFrame(1)
        frame.data = raw.encoder.encode([("x-flood-%d" % i, "v" * 1000)])
        if not raw.send(frame):
            break
        sent += 1
    seen = raw.outcome()
    seen["continuations_sent"] = sent
    return seen


def hpack_bomb(port):
    """One 4,000-byte field in the dynamic table, then referred to 200 times (800 KB decoded
    from a block of about 4 KB); then an ordinary request on the same connection."""
    raw = Raw(port)

    def integer(value, prefix, pattern):
        top = (1 << prefix) - 1
        if value < top:
            return bytes([pattern | value])
        out = [pattern | top]
        value -= top
        while value >= 128:
            out.append(value % 128 | 0x80)
            value //= 128
        out.append(value)
        return bytes(out)

    def string(s):
        return integer(len(s), 7, 0) + s

    block = bytes([0x82, 0x86, 0x84]) + bytes([0x01]) + string(b"localhost")
    block += bytes([0x40]) + string(b"x-bomb") + string(b"a" * 4000)
    block += bytes([0xbe]) * 200
    frame = HeadersFrame(1)
    frame.data = block
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    raw.send(frame)
    follow = HeadersFrame(3)
    follow.data = bytes([0x82, 0x86, 0x84, 0x01]) + string(b"localhost")
    follow.flags.add("END_HEADERS")
    follow.flags.add("END_STREAM")
    raw.send(follow)
    decoder = __import__("hpack").Decoder()
    seen = {"statuses": {}, "goaway": None, "block_bytes": len(block)}
    for _ in range(1000):
        frame = raw.read()
        if frame is None:
            break
        kind = type(frame).__name__
        if kind == "HeadersFrame":
            seen["statuses"][str(frame.stream_id)] = dict(decoder.decode(frame.data)).get(":status")
        if kind == "GoAwayFrame":
            seen["goaway"] = frame.error_code
            break
        if len(seen["statuses"]) == 2:
            break
    return seen


def control_flood(port, make):
    raw = Raw(port)
    sent = 0
    for _ in range(20):
        if not raw.send(*[make() for _ in range(500)]):
            break
        sent += 500
    seen = raw.outcome()
    seen["sent"] = sent
    return seen


def zero_window_stall(port):
    """A stream window of 0 that never opens, the client sending PINGs meanwhile: the idle
    timeout still ends the connection."""
    sock = connect(port, timeout=0.5)
    config = h2.config.H2Configuration(client_side=True)
    conn = h2.connection.H2Connection(config)
    conn.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                          (":path", "/big.bin")], end_stream=True)
    sock.sendall(conn.data_to_send())
    seen = {"status": None, "data_bytes": 0, "goaway": None, "closed": False, "pings": 0}
    started = time.monotonic()
    while time.monotonic() - started < 30:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            try:
                conn.ping(b"stalling")
                sock.sendall(conn.data_to_send())
                seen["pings"] += 1
            except OSError:
                seen["closed"] = True
                break
            continue
        except OSError:
            seen["closed"] = True
            break
        if not data:
            seen["closed"] = True
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                seen["status"] = dict((k.decode(), v.decode()) for k, v in event.headers)[":status"]
            if isinstance(event, h2.events.DataReceived):
                seen["data_bytes"] += len(event.data)
            if isinstance(event, h2.events.ConnectionTerminated):
                seen["goaway"] = int(event.error_code)
        try:
            sock.sendall(conn.data_to_send())
        except OSError:
            pass
    return seen


def stream_ids(port, ids):
    raw = Raw(port)
    for stream in ids:
        frame = HeadersFrame(stream)
        frame.data = raw.encoder.encode(REQUEST)
        frame.flags.add("END_HEADERS")
        frame.flags.add("END_STREAM")
        raw.send(frame)
    return raw.outcome()


def main():
    case, port = sys.argv[1], int(sys.argv[2])
    cases = {
        "rapid_reset": lambda: rapid_reset(port),
        "continuation_flood": lambda: continuation_flood(port),
        "hpack_bomb": lambda: hpack_bomb(port),
        "settings_flood": lambda: control_flood(port, lambda: SettingsFrame(0)),
        "ping_flood": lambda: control_flood(port, lambda: PingFrame(0, b"12345678")),
        "zero_window_stall": lambda: zero_window_stall(port),
        "even_stream_id": lambda: stream_ids(port, [2]),
        "decreasing_stream_id": lambda: stream_ids(port, [5, 3]),
        "reused_stream_id": lambda: stream_ids(port, [1, 1]),
    }
    print(json.dumps(cases[case]()))


if __name__ == "__main__":
    main()
