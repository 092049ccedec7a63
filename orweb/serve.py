"""daphne on uvloop with two database threads: `python -m orweb.serve [daphne's arguments]`, e.g.
`python -m orweb.serve -b 0.0.0.0 -p 8000 orweb.asgi:application`.

Twisted's asyncio reactor runs on whatever loop asyncio makes, and daphne makes its loop when
`daphne.server` is first imported; so the policy is set before that import. On uvloop a streamed reply
costs the process less per network read (bench/relay.py: daphne's CPU for 200 streams down ~10%).

The loop's thread pool runs every database hop (orweb.aio.db, the gateway's admission and settling).
Those threads hold the GIL while Django and psycopg build and read queries, and the event loop, which
relays every stream, then waits for it: with asyncio's default pool (cores + 4 threads) a burst of
replies starting or ending together stalled every other reply's frames by 150-200 ms; with two, by
60-80 ms, and the replies started no later (bench/relay.py, 200 streams). ASGI_THREADS (daphne's own
setting) overrides it; a database far away may want more.

The server is daphne's with request bodies limited per route (orweb.body_limits): one over its limit is
refused with 413 before it is read, and forms are never parsed in the server's memory.
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvloop

DATABASE_THREADS = 2


def main() -> None:
    os.environ.setdefault("ASGI_THREADS", str(DATABASE_THREADS))
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface

    from orweb.body_limits import Server

    cli = CommandLineInterface()
    cli.server_class = Server
    sys.exit(cli.run(sys.argv[1:]))


if __name__ == "__main__":
    main()
