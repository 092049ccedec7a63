"""`/v1/embeddings`: an OpenAI embeddings body checked and turned into the gateway's request, and the
upstream `POST /embeddings` body made from what admission let through.

Each input is one user message of the request, so policy, the token count, the rate limit and the hold
treat it like any other call (an embedding model has no output to hold for; its prompt price is the cost).
"""

from __future__ import annotations

from typing import Any

from gateway import params
from gateway.params import invalid, is_int
from gateway.types import ChatRequest

MAX_INPUTS = 2048
ENCODINGS = ("float", "base64")


def parse_embeddings_request(body: dict[str, Any]) -> ChatRequest:
    """Validate `{model, input: str | [str], dimensions?, encoding_format?, provider?}` (400 naming the field)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or "\x00" in model:
        raise invalid("model", "required: an embedding model id such as 'openai/text-embedding-3-small'")
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) and text for text in inputs):
        raise invalid("input", "expected a non-empty string or a non-empty list of non-empty strings")
    if len(inputs) > MAX_INPUTS:
        raise invalid("input", f"at most {MAX_INPUTS} inputs in one request")
    dimensions = body.get("dimensions")
    if dimensions is not None and not (is_int(dimensions) and 1 <= dimensions <= 4096):
        raise invalid("dimensions", "expected an integer from 1 to 4096")
    if body.get("encoding_format", "float") not in ENCODINGS:
        raise invalid("encoding_format", f"expected one of {', '.join(ENCODINGS)}")
    passed = params.check({name: body[name] for name in ("provider",) if name in body})
    for name in ("dimensions", "encoding_format"):
        if body.get(name) is not None:
            passed[name] = body[name]
    return ChatRequest(
        model=model.strip(),
        messages=[{"role": "user", "content": text} for text in inputs],
        max_tokens=1,
        params=passed,
        endpoint="embeddings",
    )


def embeddings_body(admitted: dict[str, Any]) -> dict[str, Any]:
    """The upstream body from the admitted one (its messages are the inputs)."""
    body = {
        name: admitted[name]
        for name in ("model", "user", "provider", "dimensions", "encoding_format")
        if name in admitted
    }
    body["input"] = [message["content"] for message in admitted["messages"]]
    return body
