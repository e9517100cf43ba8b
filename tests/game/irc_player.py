"""The game's IRC player, scripted with the `irc` library (PyPI).

Connects to the IRC server, private-messages the game `look`, checks that the answer
names the room and every player in EXPECTED_HERE (so all frontends share one world),
then says TEXT and waits for the game's "You say: TEXT". Prints DONE and exits 0; any
failure or the 30 s limit exits 1 with the reason on stderr.

    python3 irc_player.py HOST PORT NICK GAME_NICK "TEXT" [EXPECTED_HERE...]
"""

import sys
import time

import irc.client

LIMIT_SECONDS = 30


def main():
    host, port, nick, game, text = sys.argv[1:6]
    expected_here = sys.argv[6:]
    heard = []
    state = {"step": "connecting", "error": None}

    def on_welcome(connection, _event):
        state["step"] = "look"
        connection.privmsg(game, "look")

    def on_privmsg(connection, event):
        if event.source.nick.lower() != game.lower():
            return
        line = event.arguments[0]
        heard.append(line)
        if state["step"] == "look" and line.startswith("Also here:"):
            missing = [name for name in expected_here if name not in line]
            if missing:
                state["error"] = f"the room lacks {missing}: {line}"
                return
            state["step"] = "say"
            connection.privmsg(game, "say " + text)
        elif state["step"] == "say" and line == "You say: " + text:
            state["step"] = "done"

    reactor = irc.client.Reactor()
    connection = reactor.server().connect(host, int(port), nick)
    connection.add_global_handler("welcome", on_welcome)
    connection.add_global_handler("privmsg", on_privmsg)
    deadline = time.monotonic() + LIMIT_SECONDS
    while state["step"] != "done" and state["error"] is None and time.monotonic() < deadline:
        reactor.process_once(0.1)
    if state["step"] != "done":
        why = state["error"] or f"stuck at {state['step']}"
        print(f"irc player failed: {why}; heard {heard}", file=sys.stderr)
        sys.exit(1)
    connection.quit("bye")
    print("DONE")


if __name__ == "__main__":
    main()
