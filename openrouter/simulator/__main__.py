"""``python -m openrouter.simulator``: serve the simulator with uvicorn."""

from __future__ import annotations

import argparse
from decimal import Decimal

import uvicorn

from openrouter.simulator import SimulatorConfig, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m openrouter.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--keys", help="comma-separated API keys to accept (default: any sk-or-...; or SIM_API_KEYS)")
    parser.add_argument("--ttft", type=float, help="seconds to first token")
    parser.add_argument("--tps", type=float, help="tokens per second (0: unpaced)")
    parser.add_argument("--tokens-per-chunk", type=int)
    parser.add_argument("--credit-limit", type=Decimal, help="USD; unlimited when omitted")
    parser.add_argument("--generation-delay", type=float, help="seconds before /generation knows a generation")
    args = parser.parse_args(argv)
    overrides = {
        name: value
        for name, value in {
            "ttft": args.ttft,
            "tps": args.tps,
            "tokens_per_chunk": args.tokens_per_chunk,
            "credit_limit": args.credit_limit,
            "generation_delay": args.generation_delay,
        }.items()
        if value is not None
    }
    if args.keys:
        overrides["keys"] = tuple(k.strip() for k in args.keys.split(",") if k.strip())
    uvicorn.run(create_app(SimulatorConfig.from_env(**overrides)), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
