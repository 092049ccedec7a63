"""The suite's four people and how to act as them: a signed-in page client, a websocket through the app's
real stack (origin check, session cookie), an API key.

The personas themselves are fixtures in tests/conftest.py: `owner` and `teammate` share a group,
`outsider` is in a group of their own, `staff` runs the place (is_staff, in no group).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.test import Client

if TYPE_CHECKING:
    from django.contrib.auth.models import Group

PASSWORD = "correct-horse-battery"
SIDES = ("owner", "teammate", "outsider", "staff")


@functools.cache
def _password_hash() -> str:
    """PASSWORD hashed once per run: the real hasher takes a noticeable part of a second per user."""
    return make_password(PASSWORD)


def person(username: str, *, group: Group | None = None, **fields: Any) -> Any:
    """A user who can sign in with PASSWORD, in `group` if given."""
    user = get_user_model().objects.create(username=username, password=_password_hash(), **fields)
    if group is not None:
        user.groups.add(group)
    return user


def signed_in(user: Any) -> Client:
    """A page client with `user`'s session, as after the sign-in form."""
    client = Client()
    client.force_login(user)
    return client


def api_key(user: Any, name: str = "laptop") -> str:
    """A new personal /v1 key of `user`; returns its secret."""
    from gateway.keys import create_key

    return create_key(user, name)[1]


@contextlib.asynccontextmanager
async def websocket_as(client: Client, path: str) -> AsyncIterator[WebsocketCommunicator]:
    """A websocket opened the way a browser tab of `client`'s session opens it: through orweb's ASGI app
    (origin validated, user from the session cookie). Needs a transactional database: the app reads the
    session and the consumer its rows from other threads."""
    from orweb.asgi import application

    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected, f"{path} refused the handshake"
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def close_code(communicator: WebsocketCommunicator, timeout: float = 5) -> int | None:
    """The code the server closed the socket with, or None when it stays open."""
    if await communicator.receive_nothing(timeout=0.3):
        return None
    output = await communicator.receive_output(timeout)
    return output.get("code") if output["type"] == "websocket.close" else None


def streamed_body(response: Any) -> bytes:
    """The whole body of a streamed response, sync or async (downloads stream asynchronously under ASGI)."""
    from asgiref.sync import async_to_sync

    content = response.streaming_content
    if hasattr(content, "__aiter__"):

        async def gather() -> bytes:
            return b"".join([chunk async for chunk in content])

        return async_to_sync(gather)()
    return b"".join(content)
