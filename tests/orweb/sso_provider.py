"""A real OpenID provider for the single sign-on tests: oidc-provider-mock in a process of its own, serving
discovery, keys, authorize, token and userinfo with RS256-signed tokens. Its users and their claims are set
through its /users API; "approving" a sign-in is posting its authorize form as a person would."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

CLIENT_ID = "orweb-test"


@dataclass
class Provider:
    issuer: str

    def person(self, sub: str, **claims: object) -> None:
        """Creates or replaces a person at the IdP; their claims are what the next sign-in reports."""
        httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10).raise_for_status()

    def approve(self, authorize_url: str, sub: str) -> str:
        """Signs `sub` in at the IdP's authorize page; returns the callback URL it redirects to."""
        assert authorize_url.startswith(f"{self.issuer}/oauth2/authorize?"), authorize_url
        response = httpx.post(authorize_url, data={"sub": sub}, timeout=10)
        assert response.status_code == 302, response.text
        return response.headers["location"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def oidc_provider_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    port = _free_port()
    log = (tmp_path_factory.mktemp("oidc") / "provider.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    provider = Provider(issuer=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "the OIDC provider exited"
        try:
            httpx.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the OIDC provider did not start"
            time.sleep(0.05)
    yield provider
    process.terminate()
    process.wait(10)
    log.close()


@pytest.fixture
def oidc_provider(oidc_provider_server: Provider, settings) -> Provider:
    """The provider, with the app configured for it: groups from `groups`, staff from the `admins` group."""
    settings.ORWEB_OIDC_ISSUER = oidc_provider_server.issuer
    settings.ORWEB_OIDC_PROVIDER_NAME = "Acme ID"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = "test-secret"
    settings.ORWEB_OIDC_GROUPS_CLAIM = "groups"
    settings.ORWEB_OIDC_STAFF_GROUP = "admins"
    return oidc_provider_server


def callback_path(url: str) -> str:
    """The path and query of a callback URL (the test client's host is `testserver`)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
