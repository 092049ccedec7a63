"""Reading one streamed call: `EventStream` turns the open response into events, lazily, with a
content-idle timeout that keep-alive comments can't hold off."""

from __future__ import annotations

import asyncio
from collections import deque

import httpx

from openrouter.errors import IdleTimeout, IncompleteStream, OpenRouterError
from openrouter.events import Event, StreamError
from openrouter.responses_stream import ResponsesDecoder
from openrouter.sse import ChunkDecoder, EventSplitter

GENERATION_HEADER = "x-generation-id"

Attempts = list[tuple[str, OpenRouterError]]
"""Every failed try of a call, in order, as (model, error); the model is "" for calls without one."""


class EventStream:
    """The events of one streamed completion, read lazily from the open response.

    Each read waits at most `idle_timeout` for the next SSE event that carries data: comments are
    consumed inside that wait, so keep-alives cannot keep a stalled stream alive. One watchdog timer per
    stream enforces it, moved only when it fires early, instead of a timeout scope around every read;
    it cancels the task reading, so iterate the events from one task (the first read may be another's).
    """

    def __init__(
        self,
        response: httpx.Response,
        model: str,
        idle_timeout: float,
        api_key: str,
        attempts: Attempts,
        decoder: type[ChunkDecoder] | type[ResponsesDecoder] = ChunkDecoder,
    ) -> None:
        self.attempts = attempts
        self._response = response
        encoded = "content-encoding" in response.headers
        self._pieces = response.aiter_bytes() if encoded else response.aiter_raw()
        self._splitter = EventSplitter()
        self._decoder = decoder(model, response.headers.get(GENERATION_HEADER))
        self._idle_timeout = idle_timeout
        self._api_key = api_key
        self._pending: deque[Event] = deque()
        self._loop = asyncio.get_running_loop()
        self._deadline = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._reading = False
        self._expired = False

    @property
    def model(self) -> str:
        """The model that answers (from the first chunk; the requested one until then)."""
        return self._decoder.model

    @property
    def provider(self) -> str | None:
        return self._decoder.provider

    @property
    def generation_id(self) -> str | None:
        return self._decoder.generation_id

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        pending = self._pending
        while not pending:
            if self._decoder.over:
                raise StopAsyncIteration
            if self._task is None:
                self._task = asyncio.current_task()
            pending.extend(await self._read())
        return pending.popleft()

    async def aclose(self) -> None:
        """Close the connection: how a stopped stream stops the provider generating (and billing)."""
        self._disarm()
        await self._pieces.aclose()
        await self._response.aclose()

    async def _read_first(self) -> None:
        """Read until the first events; a failure before any chunk is raised, so it can be retried."""
        self._task = asyncio.current_task()
        while not self._pending and not self._decoder.over:
            self._pending.extend(await self._read())
        self._task = None
        last = self._pending[-1] if self._pending else None
        if isinstance(last, StreamError) and not self._decoder.started:
            raise last.error

    async def _read(self) -> list[Event]:
        """The events of the next network reads that complete at least one data event."""
        decoder = self._decoder
        self._deadline = self._loop.time() + self._idle_timeout
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._deadline, self._on_watchdog)
        self._reading = True
        try:
            datas: list[bytes] = []
            while not datas:
                datas = self._splitter.feed(await anext(self._pieces))
        except StopAsyncIteration:
            events = decoder.end()
        except asyncio.CancelledError:
            if not self._expired or self._task is None or self._task.uncancel():
                raise
            self._expired = False
            events = decoder.end(IdleTimeout(f"No content for {self._idle_timeout:g} seconds"))
        except httpx.TimeoutException:
            events = decoder.end(IdleTimeout("The stream timed out"))
        except httpx.TransportError as exc:
            events = decoder.end(IncompleteStream(f"The stream broke off: {exc}"))
        else:
            events = []
            for data in datas:
                events += decoder.feed(data)
                if decoder.over:
                    break
        finally:
            self._reading = False
        if decoder.over:
            self._disarm()
            if events and isinstance(events[-1], StreamError):
                events[-1].error.redact(self._api_key)
        return events

    def _on_watchdog(self) -> None:
        """Cancel the read in progress if it has waited `idle_timeout`; else come back when it would have."""
        self._watchdog = None
        if not self._reading or self._task is None:
            return  # not reading: the next read sets the deadline and the watchdog again
        if self._loop.time() < self._deadline:
            self._watchdog = self._loop.call_at(self._deadline, self._on_watchdog)
            return
        self._expired = True
        self._task.cancel()

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
