"""Which limit a request body gets, by route, and what a refused one is answered (the server itself is tested
through a real process in test_body_limits_server.py)."""

from __future__ import annotations

import json

from django.urls import reverse

from chat.uploads import MAX_IMAGE_BYTES
from gateway.api_responses import error_json
from orweb.body_limits import limit_for, refusal, too_large_message


def test_forms_get_the_small_limit(settings):
    for path in ("/login/", "/nonexistent", "/chat/1/rename", "/admin/login/", "/v1"):
        assert limit_for(path) == settings.ORWEB_MAX_BODY


def test_the_api_gets_its_json_limit(settings):
    for path in (reverse("api:chat_completions"), reverse("api:models"), "/v1/batches"):
        assert limit_for(path) == settings.ORWEB_MAX_API_BODY


def test_the_attachment_upload_gets_the_attachment_limit_which_fits_an_image(settings):
    path = reverse("chat:upload_attachment", args=[42])
    assert limit_for(path) == settings.ORWEB_MAX_ATTACHMENT_BODY > MAX_IMAGE_BYTES
    assert limit_for(path + "/x") == settings.ORWEB_MAX_BODY


def test_batch_files_get_the_batch_limit(settings):
    for path in ("/batches/", "/batches/upload", "/v1/files"):
        assert limit_for(path) == settings.ORWEB_MAX_BATCH_BODY
    assert limit_for("/v1/files/file-1/content") == settings.ORWEB_MAX_API_BODY


def test_limits_follow_the_settings(settings):
    settings.ORWEB_MAX_BODY = 10
    settings.ORWEB_MAX_BATCH_BODY = 20
    assert (limit_for("/login/"), limit_for("/batches/")) == (10, 20)


def _split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body)
    return status, headers, body


def test_the_api_is_refused_in_openais_error_shape():
    status, headers, body = _split(refusal("/v1/chat/completions", 10 * 1024 * 1024))
    assert status == "HTTP/1.1 413 Content Too Large"
    assert headers["Content-Type"] == "application/json" and headers["Connection"] == "close"
    message = too_large_message(10 * 1024 * 1024)
    assert json.loads(body) == error_json(message, 413, code="request_too_large")
    assert "10 MB" in message


def test_pages_are_refused_with_a_short_page():
    status, headers, body = _split(refusal("/login/", 1024 * 1024))
    assert status.startswith("HTTP/1.1 413")
    assert headers["Content-Type"].startswith("text/html")
    assert b"at most 1 MB" in body
