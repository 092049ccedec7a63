"""Request bodies through the real web server (`python -m orweb.serve`, as `make run` and docker-compose start
it), on a raw socket: one over its route's limit is answered 413 before it is read, a chunked one the
moment it passes the limit, and neither, nor a large body that is accepted, grows the process."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from tests.api.conftest import key_of
from tests.faults.conftest import WebProcess, server_env

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
BOUNDARY = "orwebtestboundary"


@pytest.fixture
def web(simulator, settings, tmp_path: Path) -> Iterator[WebProcess]:
    journal = tmp_path / "journal"
    journal.mkdir()
    settings.ORWEB_JOURNAL_DIR = str(journal)
    server = WebProcess(server_env(simulator, settings, journal))
    server.start()
    yield server
    server.stop()


def _status_line(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


class Memory:
    """The server's peak resident memory during a block, over what it held before (the kernel's high-water
    mark, reset first: /proc/<pid>/clear_refs)."""

    def __init__(self, web: WebProcess) -> None:
        assert web.process is not None
        self.pid = web.process.pid

    def __enter__(self) -> Memory:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.before = _status_line(self.pid, "VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.growth = _status_line(self.pid, "VmHWM") - self.before


def multipart(size: int) -> tuple[bytes, Iterator[bytes], int]:
    """(Content-Type, the chunks, total length) of a form holding one file of `size` bytes."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for start in range(0, size, MB):
            yield b"x" * min(MB, size - start)
        yield tail

    return f"multipart/form-data; boundary={BOUNDARY}".encode(), chunks(), len(head) + size + len(tail)


def exchange(web: WebProcess, head: bytes, body: Iterable[bytes] = ()) -> tuple[int, dict[str, str], bytes]:
    """Send a request as a client would (the whole body, unless the server closes its side), read the answer."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=60) as sock:
        sock.sendall(head)
        try:
            for chunk in body:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    status, _, rest = answer.partition(b"\r\n")
    header_block, _, content = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in header_block.split(b"\r\n") if line)
    if headers.get("transfer-encoding") == "chunked":
        content = _unchunked(content)
    return int(status.split()[1]), headers, content


def _unchunked(content: bytes) -> bytes:
    whole = b""
    while True:
        size, _, content = content.partition(b"\r\n")
        if not int(size, 16):
            return whole
        whole, content = whole + content[: int(size, 16)], content[int(size, 16) + 2 :]


def request_head(path: str, content_type: bytes, length: int | None, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Type: {content_type.decode()}"]
    lines += extra
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("path", ["/login/", "/nonexistent", "/v1/models"])
def test_a_100_mb_multipart_post_without_a_cookie_is_a_413_and_costs_no_memory(web, path):
    content_type, chunks, length = multipart(100 * MB)
    with Memory(web) as memory:
        status, headers, body = exchange(web, request_head(path, content_type, length), chunks)
    assert status == 413
    assert memory.growth < 50 * MB
    if path.startswith("/v1/"):
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "request_too_large"


def test_the_413_comes_as_soon_as_the_headers_are_in_without_a_100_continue(web):
    head = request_head("/login/", b"application/x-www-form-urlencoded", 100 * MB, "Expect: 100-continue")
    status, headers, body = exchange(web, head)
    assert status == 413
    assert b"at most 1 MB" in body


def test_a_chunked_body_is_refused_once_it_passes_the_limit(web):
    content_type, chunks, _ = multipart(100 * MB)
    framed = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    with Memory(web) as memory:
        status, _, _ = exchange(web, request_head("/login/", content_type, None), [*framed, b"0\r\n\r\n"])
    assert status == 413
    assert memory.growth < 50 * MB


def test_bodies_within_the_limit_reach_django(web):
    form = b"username=a&password=b"
    status, _, _ = exchange(web, request_head("/login/", b"application/x-www-form-urlencoded", len(form)), [form])
    assert status == 403  # Django's CSRF check: the body got through to the application


def test_an_attachment_upload_may_be_larger_than_a_form(web, settings):
    content_type, chunks, length = multipart(3 * MB)
    assert settings.ORWEB_MAX_BODY < length < settings.ORWEB_MAX_ATTACHMENT_BODY
    status, _, _ = exchange(web, request_head("/chat/1/attachments", content_type, length), chunks)
    assert status == 403  # Django's CSRF check: not refused by the server


def test_a_large_accepted_upload_is_never_held_in_memory(web, settings):
    content_type, chunks, length = multipart(100 * MB)
    assert length < settings.ORWEB_MAX_BATCH_BODY
    with Memory(web) as memory:
        status, _, _ = exchange(web, request_head("/batches/", content_type, length), chunks)
    assert status == 403  # no CSRF token: refused after Django read the whole body (to disk, not memory)
    assert memory.growth < 50 * MB


def test_the_api_answers_a_bad_body_with_a_400_through_the_server(web, catalog, owner):
    body = b'{"model": "openai/gpt-4o-mini", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    head = request_head(
        "/v1/chat/completions", b"application/json", len(body), f"Authorization: Bearer {key_of(owner).secret}"
    )
    status, _, answer = exchange(web, head, [body])
    assert status == 400
    assert "nested too deeply" in json.loads(answer)["error"]["message"]


def test_the_api_gets_a_whole_body_through_the_server(web, catalog, owner):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * (2 * MB)}}
    message = {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}
    body = json.dumps({"model": "openai/gpt-4o-mini", "messages": [message], "max_tokens": 20}).encode()
    head = request_head(
        "/v1/chat/completions", b"application/json", len(body), f"Authorization: Bearer {key_of(owner).secret}"
    )
    status, _, answer = exchange(web, head, [body])
    assert status == 200, answer  # a body cut short would not be JSON
    assert json.loads(answer)["object"] == "chat.completion"
