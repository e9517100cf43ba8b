"""The game's telnet player, a real telnet client (the `telnetlib3` library, PyPI), which
negotiates options on connecting as MUD clients do.

Connects, gives NAME at the game's prompt, waits for the first room, prints READY; then
waits until WANTED appears in what the game shows (another frontend's player speaking),
prints SAW WANTED, says TEXT, waits for the game's "You say: TEXT", prints DONE and exits 0.
Any failure or the 30 s limit exits 1 with the reason and everything heard on stderr.

    python3 telnet_player.py HOST PORT NAME "WANTED" "TEXT"
"""

import asyncio
import sys

import telnetlib3

LIMIT_SECONDS = 30


async def play(host, port, name, wanted, text):
    reader, writer = await telnetlib3.open_connection(
        host, int(port), encoding="utf8", connect_minwait=0.05, connect_maxwait=1.0
    )
    heard = []

    async def until(needle):
        while needle not in "".join(heard):
            chunk = await reader.read(4096)
            if not chunk:
                raise RuntimeError(f"the game closed the connection before {needle!r}")
            heard.append(chunk)
        # What follows the needle is kept for the next wait.
        joined = "".join(heard)
        at = joined.index(needle) + len(needle)
        heard[:] = [joined[at:]]

    await until("By what name shall you be known?")
    writer.write(name + "\r\n")
    await until("The Listening Gate")
    print("READY", flush=True)
    await until(wanted)
    print("SAW " + wanted, flush=True)
    writer.write("say " + text + "\r\n")
    await until("You say: " + text)
    writer.write("quit\r\n")
    await until("You leave the world")
    writer.close()
    print("DONE", flush=True)


def main():
    host, port, name, wanted, text = sys.argv[1:6]
    try:
        asyncio.run(asyncio.wait_for(play(host, port, name, wanted, text), LIMIT_SECONDS))
    except Exception as e:  # Any failure is reported, with its kind.
        print(f"telnet player failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
