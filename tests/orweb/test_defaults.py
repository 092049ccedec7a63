"""Safe defaults: orweb's own error pages (no URL list, settings or stack locals with DEBUG off, as under
`make run`), HTTPS settings with SECURE_COOKIES=1 that `check --deploy` finds nothing wrong with, and a
secret key read from a file."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import path

from orweb.devstack import ROOT

pytestmark = pytest.mark.django_db

SECRET_IN_A_LOCAL = "orw-secret-that-must-stay-in-the-frame"


def failing_view(request):
    api_key = SECRET_IN_A_LOCAL  # noqa: F841 - a debug page would show this local
    raise RuntimeError("the view failed")


urlpatterns = [path("fails/", failing_view)]


def test_an_unknown_address_gets_our_404_without_the_url_list():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.text and "Back to orweb" in response.text
    assert "URLconf" not in response.text and "admin/" not in response.text


@pytest.mark.urls(__name__)
def test_a_failing_view_gets_our_500_without_settings_or_locals():
    response = Client(raise_request_exception=False).get("/fails/")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert SECRET_IN_A_LOCAL not in response.text and "REDIS_URL" not in response.text


def test_a_host_not_allowed_gets_our_400():
    response = Client().get("/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "Bad request" in response.text


def test_a_member_at_a_staff_page_gets_our_403(owner_client):
    response = owner_client.get("/account/team/")
    assert response.status_code == 403
    assert "Your account may not open this page" in response.text


def test_a_form_without_its_csrf_token_gets_our_403():
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert "That form has expired" in response.text


def _production_env(**extra: str) -> dict[str, str]:
    # Browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process (Playwright's loop); production never does.
    ignored = {"DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    env.update(SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="orweb.example.com", DEBUG="0", **extra)
    return env


def _settings_in(env: dict[str, str], *names: str) -> dict:
    """Settings as a fresh process reads them from `env`."""
    wanted = ", ".join(f"{name!r}: getattr(settings, {name!r}, None)" for name in names)
    code = f"from django.conf import settings; import json; print(json.dumps({{{wanted}}}))"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_settings():
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(SECURE_COOKIES="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_secure_cookies_turn_on_https_only_and_hsts_and_the_proxy_header_is_opt_in():
    names = ("SESSION_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER")
    plain = _settings_in(_production_env(), *names)
    secure = _settings_in(_production_env(SECURE_COOKIES="1", PROXY_SSL_HEADER="X-Forwarded-Proto"), *names)

    assert plain == dict(zip(names, (False, False, 0, None), strict=True))
    assert secure["SESSION_COOKIE_SECURE"] and secure["SECURE_SSL_REDIRECT"]
    assert secure["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert secure["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_the_secret_key_can_come_from_a_file(tmp_path: Path):
    key_file = tmp_path / "secret-key"
    key_file.write_text("k" * 60 + "\n")
    env = _production_env(SECRET_KEY_FILE=str(key_file))
    del env["SECRET_KEY"]

    assert _settings_in(env, "SECRET_KEY") == {"SECRET_KEY": "k" * 60}


def test_without_a_key_or_debug_settings_refuse_to_load():
    env = _production_env()
    del env["SECRET_KEY"]
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "Set SECRET_KEY or SECRET_KEY_FILE" in done.stderr
