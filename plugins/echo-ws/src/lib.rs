//! `echo-ws`: a websocket echo at `/ogi/echo-ws`. Each connection gets a fresh instance,
//! which takes the socket over and sends every text and binary message back unchanged
//! (tungstenite answers pings and closes). A plain GET gets a small page that tries it.
#![forbid(unsafe_code)]

use plugin_api::tungstenite::{Error, Message};
use plugin_api::{declare_plugin, Connection, Host, Next, Plugin};

struct EchoWs;

const PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>echo-ws</title></head><body>
<p>A websocket echo. <input id="line" value="hello"> <button id="send">send</button></p>
<pre id="log"></pre>
<script>
const log = (t) => document.getElementById("log").textContent += t + "\n";
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + location.pathname);
ws.onopen = () => log("open");
ws.onmessage = (e) => log("echo: " + e.data);
ws.onclose = () => log("closed");
document.getElementById("send").onclick = () => ws.send(document.getElementById("line").value);
</script>
</body></html>
"#;

impl Plugin for EchoWs {
    fn new(_host: &Host) -> Self {
        EchoWs
    }

    fn persist(&self) -> bool {
        false
    }

    fn handle(&mut self, conn: Connection) -> Next {
        if !conn.request().wants_websocket() {
            let _ = conn.respond(
                200,
                &[("Content-Type", "text/html; charset=utf-8")],
                PAGE.as_bytes(),
            );
            return Next::Continue;
        }
        let Ok(mut socket) = conn.upgrade_websocket() else {
            return Next::Continue;
        };
        loop {
            match socket.read() {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                    if socket.send(message).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => break,
                Err(e) => {
                    socket.get_ref().log(&format!("websocket ended: {e}"));
                    break;
                }
            }
        }
        Next::Continue
    }
}

declare_plugin!(EchoWs, name: "echo-ws", version: "0.1.0");
