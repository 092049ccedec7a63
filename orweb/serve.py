"""daphne on uvloop: `python -m orweb.serve [daphne's arguments]`, e.g.
`python -m orweb.serve -b 0.0.0.0 -p 8000 orweb.asgi:application`.

Twisted's asyncio reactor runs on whatever loop asyncio makes, and daphne makes its loop when
`daphne.server` is first imported; so the policy is set before that import. On uvloop a streamed reply
costs the process less per network read (bench/relay.py: daphne's CPU for 200 streams down ~10%).
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


def main() -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface

    sys.exit(CommandLineInterface.entrypoint())


if __name__ == "__main__":
    main()
