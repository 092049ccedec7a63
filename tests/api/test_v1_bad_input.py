"""Bodies built to break a parser get a 4xx in OpenAI's error shape that says what is wrong, never a 500:
nesting 100,000 deep, an integer of 5,000 digits, NUL in an identifier, a body over the API's limit."""

from __future__ import annotations

import json

import pytest

from gateway import api

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "hi"}]


def post(client, key, raw: bytes):
    return client.post(
        "/v1/chat/completions", data=raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key.secret}"
    )


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def request(**fields) -> bytes:
    return json.dumps({"model": MODEL, "messages": HI, "max_tokens": 20, **fields}).encode()


def test_a_body_nested_100_000_deep_is_a_400_saying_so(client, catalog, owner_key):
    raw = b'{"model": "' + MODEL.encode() + b'", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = error_of(post(client, owner_key, raw), 400)
    assert "nested too deeply" in error["message"]


def test_a_schema_960_deep_that_json_can_read_is_a_400_too(client, simulator, catalog, owner_key):
    """Read, it would break encoding the upstream request: a 500."""
    schema = b'{"type": "object", "properties": {"a": ' * 480 + b'{"type": "string"}' + b"}}" * 480
    raw = request(response_format={"type": "json_schema", "json_schema": {"name": "deep", "schema": "SCHEMA"}})
    raw = raw.replace(b'"SCHEMA"', schema)
    error = error_of(post(client, owner_key, raw), 400)
    assert "nested too deeply" in error["message"]


def test_an_integer_of_5000_digits_is_a_400_saying_so(client, catalog, owner_key):
    raw = request(max_tokens=0).replace(b'"max_tokens": 0', b'"max_tokens": ' + b"7" * 5000)
    error = error_of(post(client, owner_key, raw), 400)
    assert "integer" in error["message"] and "digits" not in error["message"].split("integer", 1)[0]


@pytest.mark.parametrize("field", ["max_tokens", "seed"])
def test_an_integer_beyond_64_bits_is_a_400_naming_the_field(client, simulator, catalog, owner_key, field):
    error = error_of(post(client, owner_key, request(**{field: 10**30})), 400)
    assert error["param"] == field


def test_nan_is_not_json(client, catalog, owner_key):
    raw = request(top_k=0).replace(b'"top_k": 0', b'"top_k": NaN')
    error = error_of(post(client, owner_key, raw), 400)
    assert "NaN" in error["message"]


def test_nul_in_the_model_is_a_400_naming_it(client, catalog, owner_key):
    error = error_of(post(client, owner_key, request(model=MODEL + "\x00")), 400)
    assert error["param"] == "model" and "NUL" in error["message"]


def test_nul_in_a_fallback_model_is_a_400_naming_it(client, catalog, owner_key):
    error = error_of(post(client, owner_key, request(models=[MODEL, "x\x00"])), 400)
    assert error["param"] == "models"


def test_a_body_over_the_api_limit_is_a_413_in_openais_shape(client, catalog, owner_key, settings):
    raw = request(messages=[{"role": "user", "content": "x" * settings.ORWEB_MAX_API_BODY}])
    error = error_of(post(client, owner_key, raw), 413)
    assert error["code"] == "request_too_large"
    assert "too large" in error["message"]


def test_a_big_body_without_a_valid_key_is_refused_before_it_is_parsed(client, monkeypatch):
    parsed = []
    monkeypatch.setattr(api, "parse_body", lambda raw: parsed.append(raw) or {})
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * (api.BIG_BODY + 1)}]})
    response = client.post(
        "/v1/chat/completions", big, content_type="application/json", headers={"Authorization": "Bearer sk-wrong"}
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert parsed == []
