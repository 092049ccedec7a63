"""Request bodies over their route's limit are refused by the web server with 413, before they are read.

twisted.web, under daphne, reads a whole body before the application runs, then parses a multipart form
in memory (`Request.requestReceived`), and daphne hands the whole body to the application at once: a
100 MB multipart POST without a cookie grew the web process by ~1 GB. `python -m orweb.serve` (`make run`,
docker-compose) runs daphne with this module's `Server`, whose requests
* answer 413 as soon as the headers are in when the declared `Content-Length` is over the route's limit
  (before a byte of the body is read, and instead of `100 Continue`);
* count a chunked body as it arrives and answer 413 the moment it passes the limit;
* never parse forms (Django does, streaming files to disk), and hand a body to the application a chunk at
  a time from twisted's temporary file, as the application reads it, not all at once.

After a refusal the connection half-closes and discards what the client still sends for up to
`LINGER_SECONDS`, so that a client still sending reads the 413 rather than a connection reset.

Limits per route (settings, see there): `/chat/<id>/attachments` the attachment limit, `/batches/` and
`/v1/files` the batch-file limit, the rest of `/v1/` the API's JSON limit, everything else the form limit.
/v1 gets OpenAI's JSON error shape (the same as `gateway.api_responses.error_json`), pages a short page.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import IO, Any
from urllib.parse import unquote

from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server as DaphneServer
from django.conf import settings

logger = logging.getLogger(__name__)

LINGER_SECONDS = 5
BODY_EXTENSION = "orweb.body"
ROUTES = (
    (re.compile(r"/chat/\d+/attachments\Z"), "ORWEB_MAX_ATTACHMENT_BODY"),
    (re.compile(r"/(batches/|v1/files\Z)"), "ORWEB_MAX_BATCH_BODY"),
    (re.compile(r"/v1/"), "ORWEB_MAX_API_BODY"),
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def limit_for(path: str) -> int:
    """The most bytes a request body to `path` (decoded, without the query) may have."""
    for pattern, setting in ROUTES:
        if pattern.match(path):
            return getattr(settings, setting)
    return settings.ORWEB_MAX_BODY


def _size(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):.3g} MB"
    return f"{limit / 1024:.3g} KB"


def too_large_message(limit: int) -> str:
    """What a client sent a 413 is told."""
    return f"The request body is too large: this address accepts at most {_size(limit)}."


def refusal(path: str, limit: int) -> bytes:
    """The whole 413 response for a body to `path` over `limit` bytes."""
    message = too_large_message(limit)
    if path.startswith("/v1/"):
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": "request_too_large"}
        content_type, body = "application/json", json.dumps({"error": error}).encode()
    else:
        content_type = "text/html; charset=utf-8"
        page = f"<!doctype html><title>Request too large</title><h1>Request too large</h1><p>{html.escape(message)}"
        body = page.encode()
    head = (
        "HTTP/1.1 413 Content Too Large\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "X-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'none'\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class LimitedRequest(WebRequest):
    """daphne's request, refusing a body over its route's limit and never parsing forms."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.limited_path = "/"
        self.body_limit = settings.ORWEB_MAX_BODY
        self.body_received = 0
        self.refused = False
        self.body: IO[bytes] | None = None
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    def gotLength(self, length: int | None) -> None:
        # twisted keeps the request line on the channel until the body is in; this is the one place the path
        # is known before the body is read (tests/orweb/test_body_limits_server.py fails if that changes).
        target = self.channel._path.split(b"?", 1)[0]
        self.limited_path = unquote(target.decode("ascii", "replace"))
        self.body_limit = limit_for(self.limited_path)
        if length is not None and length > self.body_limit:
            super().gotLength(0)
            self._refuse(length)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.body_received += len(data)
        if self.body_received > self.body_limit:
            self._refuse(None)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.refused:
            # A chunked body's last chunk arrived with the one that passed the limit: twisted has stopped the
            # channel's idle timeout for the request it thinks is complete; the linger needs it back.
            self.channel.setTimeout(LINGER_SECONDS)
            return
        super().requestReceived(command, path, version)

    def process(self) -> Any:
        """daphne's processing, with the body kept aside for `Server.create_application` to hand out lazily."""
        self.body, self.content = self.content, io.BytesIO()
        return super().process()

    def _refuse(self, declared: int | None) -> None:
        self.refused = True
        self.requestHeaders.removeHeader(b"Expect")
        channel = self.channel
        channel.persistent = False
        channel.dataReceived = _discard
        transport = channel.transport
        transport.write(refusal(self.limited_path, self.body_limit))
        # Half-close so the client reads the answer; a TLS transport can't, and closes once it is written.
        getattr(transport, "loseWriteConnection", transport.loseConnection)()
        channel.setTimeout(LINGER_SECONDS)
        logger.warning(
            "Refused a request body to %s from %s: %s bytes, over its limit of %s",
            self.limited_path,
            transport.getPeer(),
            declared if declared is not None else f"more than {self.body_received} (chunked)",
            self.body_limit,
        )


def _discard(data: bytes) -> None:
    """What a refused connection does with the rest of the body."""


class LimitedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = LimitedRequest
        return protocol


class Server(DaphneServer):
    """daphne's server with `LimitedRequest`s, the body handed to the application as it reads it."""

    def __init__(self, application: App, *args: Any, **kwargs: Any) -> None:
        super().__init__(_body_from_file(application), *args, **kwargs)

    @property
    def http_factory(self) -> HTTPFactory:
        return self._limited_factory

    @http_factory.setter
    def http_factory(self, daphnes: HTTPFactory) -> None:
        # daphne's `run` makes its factory and listens with it; this server listens with its own in its place.
        self._limited_factory = LimitedHTTPFactory(self)

    def create_application(self, protocol: Any, scope: Scope) -> Any:
        if isinstance(protocol, LimitedRequest) and protocol.body is not None:
            scope["extensions"] = {**scope.get("extensions", {}), BODY_EXTENSION: protocol.body}
        return super().create_application(protocol, scope)


def _body_from_file(app: App, chunk_size: int = 64 * 1024) -> App:
    """`app`, reading a request's body from the file the server left in its scope, a chunk per receive.

    The server still sends its own (now empty) `http.request`; it is skipped. The file is closed when the
    application is done with the request."""

    async def with_body(scope: Scope, receive: Receive, send: Send) -> None:
        body: IO[bytes] | None = scope.get("extensions", {}).get(BODY_EXTENSION)
        if body is None:
            return await app(scope, receive, send)
        body.seek(0)
        done = False

        async def receive_body() -> Message:
            nonlocal done
            if not done:
                chunk = body.read(chunk_size)
                done = len(chunk) < chunk_size
                return {"type": "http.request", "body": chunk, "more_body": not done}
            message = await receive()
            while message["type"] == "http.request":
                message = await receive()
            return message

        try:
            return await app(scope, receive_body, send)
        finally:
            body.close()

    return with_body
