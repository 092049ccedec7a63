"""Streaming throughput of `OpenRouterClient` against a bare httpx line reader, and the decoder's cost.

Starts the simulator in a subprocess (so it doesn't share our CPU), then reads the same stream with
(a) the client and (b) `httpx` `aiter_lines`, paced (default 2,000 tokens/s, one token per chunk) and
unpaced (as fast as the simulator writes: shows the client's overhead), and finally feeds the
pre-recorded bytes of one stream through the splitter, decoder and event builder in a loop. Last, it
reads 200 replies at 50 tokens/s at once through one client, as the chat relay does (every chunk then
arrives on its own), and reports the CPU per event on asyncio's own loop and on uvloop (what
`python -m orweb.serve` runs daphne on), and on uvloop through httpx's stock transport (the baseline
that says whether `openrouter.network` still earns its place).

    python bench/client_stream.py [--tokens 4000] [--tps 2000] [--rounds 3] [--streams 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openrouter import OpenRouterClient, TextDelta  # noqa: E402
from openrouter.sse import ChunkDecoder, EventSplitter  # noqa: E402

API_KEY = "sk-or-v1-bench"
MODEL = "openai/gpt-4o-mini"


@dataclass
class Run:
    chunks: int
    seconds: float
    cpu: float

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds


def body(tokens: int, tps: float) -> dict:
    text = f"Tell me a long story [[sim tokens={tokens} tps={tps:g}]]"
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": tokens + 100}


async def read_with_client(base_url: str, request: dict) -> Run:
    """Content chunks from the first to the end of the stream, as the orweb runner would read them."""
    async with OpenRouterClient(API_KEY, base_url) as client, client.stream(request) as events:
        chunks, first, cpu = 0, 0.0, 0.0
        async for event in events:
            if isinstance(event, TextDelta):
                if not chunks:
                    first, cpu = time.perf_counter(), time.process_time()
                chunks += 1
        return Run(chunks, time.perf_counter() - first, time.process_time() - cpu)


async def read_bare(base_url: str, request: dict) -> Run:
    """The least a reader can do: split lines, count `data:` lines carrying content."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(base_url=base_url + "/") as http,
        http.stream("POST", "chat/completions", json={**request, "stream": True}, headers=headers) as response,
    ):
        chunks, first, cpu = 0, 0.0, 0.0
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                if not chunks:
                    first, cpu = time.perf_counter(), time.process_time()
                chunks += 1
        return Run(chunks, time.perf_counter() - first, time.process_time() - cpu)


async def record(base_url: str, request: dict) -> list[bytes]:
    """The raw network reads of one stream, to replay through the decoder."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        httpx.AsyncClient(base_url=base_url + "/") as http,
        http.stream("POST", "chat/completions", json={**request, "stream": True}, headers=headers) as response,
    ):
        return [piece async for piece in response.aiter_raw()]


def decode(pieces: list[bytes]) -> int:
    """Splitter + decoder + event builder over recorded bytes: returns the number of SSE data events."""
    splitter = EventSplitter()
    decoder = ChunkDecoder(MODEL)
    count = 0
    for piece in pieces:
        for data in splitter.feed(piece):
            decoder.feed(data)
            count += 1
    decoder.end()
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("SIM_API_KEYS", None)
    args = [
        sys.executable,
        "-m",
        "openrouter.simulator",
        "--port",
        str(port),
        "--ttft",
        "0",
        "--tokens-per-chunk",
        "1",
    ]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sim/stats", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the simulator did not start")


async def concurrent_cpu(base_url: str, streams: int, tokens: int, httpx_transport: bool = False) -> float:
    """CPU µs per event while reading `streams` replies paced at 50 tokens/s at once, on the running loop;
    through the client's own transport (`openrouter.network`), or httpx's stock one as the baseline."""
    request = body(tokens, 50)
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=None)) if httpx_transport else None
    async with OpenRouterClient(API_KEY, base_url, transport=transport) as client:

        async def one() -> int:
            async with client.stream(request) as events:
                return sum([1 async for _ in events])

        await one()  # not measured: the first call loads what later ones reuse
        cpu = time.process_time()
        events = sum(await asyncio.gather(*(one() for _ in range(streams))))
        return (time.process_time() - cpu) / events * 1e6


async def compare(label: str, base_url: str, request: dict, rounds: int, tokens: int) -> None:
    readers: dict[str, Callable[[str, dict], Awaitable[Run]]] = {
        "client": read_with_client,
        "bare httpx": read_bare,
    }
    runs: dict[str, list[Run]] = {name: [] for name in readers}
    for _ in range(rounds):
        for name, reader in readers.items():
            runs[name].append(await reader(base_url, request))
    print(f"\n{label}: median of {rounds} reads of a {tokens}-token reply, 1 token per chunk")
    rates = {}
    for name, results in runs.items():
        rates[name] = statistics.median(r.chunks_per_second for r in results)
        chunks = results[0].chunks
        cpu = statistics.median(r.cpu / r.chunks * 1e6 for r in results)
        print(
            f"  {name:<11} {rates[name]:>9,.0f} tokens/s  {rates[name]:>9,.0f} chunks/s"
            f"  ({chunks} content chunks, {cpu:5.1f} µs CPU per chunk)"
        )
    print(f"  ratio client / bare: {rates['client'] / rates['bare httpx']:.3f}")


async def main(args: argparse.Namespace, base_url: str) -> None:
    await compare(f"Paced at {args.tps:,.0f} tokens/s", base_url, body(args.tokens, args.tps), args.rounds, args.tokens)
    await compare("Unpaced (as fast as the simulator writes)", base_url, body(args.tokens, 0), args.rounds, args.tokens)
    pieces = await record(base_url, body(args.tokens, args.tps))
    events = decode(pieces)
    loops = 20
    started = time.perf_counter()
    for _ in range(loops):
        decode(pieces)
    per_chunk = (time.perf_counter() - started) / (loops * events) * 1e6
    size = sum(map(len, pieces))
    print(f"\nParsing: {events} SSE events ({size:,} bytes in {len(pieces)} reads), EventSplitter + ChunkDecoder")
    print(f"  {per_chunk:.2f} µs per chunk")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--tps", type=float, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args()
    port = free_port()
    simulator = start_simulator(port)
    base_url = f"http://127.0.0.1:{port}/api/v1"
    try:
        asyncio.run(main(args, base_url))
        on_asyncio = asyncio.run(concurrent_cpu(base_url, args.streams, 250))
        on_uvloop = uvloop.run(concurrent_cpu(base_url, args.streams, 250))
        stock = uvloop.run(concurrent_cpu(base_url, args.streams, 250, httpx_transport=True))
    finally:
        simulator.terminate()
        simulator.wait()
    print(f"\n{args.streams} replies at 50 tokens/s at once (250 tokens each), CPU per event:")
    print(f"  asyncio {on_asyncio:.1f} µs, uvloop {on_uvloop:.1f} µs (ratio {on_uvloop / on_asyncio:.2f})")
    print(
        f"  on uvloop through httpx's stock transport (anyio) {stock:.1f} µs:"
        f" openrouter.network's transport costs {on_uvloop / stock:.2f}x of it"
    )


if __name__ == "__main__":
    run()
