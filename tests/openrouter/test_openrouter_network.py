"""The client's own transport (httpcore's pool on plain asyncio), over real local sockets: it speaks HTTP,
streams, and fails with the httpx errors the client catches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from openrouter.network import AsyncioTransport

LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=4)


async def _serve(handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def _chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    for n in range(3):
        piece = f"data: {n}\n\n".encode()
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


@pytest.fixture
async def chunked_server() -> AsyncIterator[str]:
    async for url in _serve(_chunked):
        yield url


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    async for url in _serve(_silent):
        yield url


async def test_it_streams_a_chunked_reply(chunked_server):
    async with (
        httpx.AsyncClient(transport=AsyncioTransport(LIMITS)) as http,
        http.stream("POST", chunked_server + "/api/v1/chat/completions", content=b"{}") as response,
    ):
        lines = [line async for line in response.aiter_lines() if line]
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert lines == ["data: 0", "data: 1", "data: 2"]


async def test_a_refused_connection_is_httpx_connect_error():
    async for url in _serve(_silent):
        closed = url  # the port is free again once the server is gone
    async with httpx.AsyncClient(transport=AsyncioTransport(LIMITS)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(closed + "/")


async def test_a_silent_server_is_httpx_read_timeout(silent_server):
    async with httpx.AsyncClient(transport=AsyncioTransport(LIMITS), timeout=httpx.Timeout(0.2)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(silent_server + "/")
