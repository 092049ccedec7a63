"""OpenRouter's response caching (beta): a request sent with ``X-OpenRouter-Cache: true`` whose identical
twin (same path, body, API key and streaming mode, the body saying the model and ``stream``) succeeded
before is answered again from the cache: at once, as a new generation with its own id, every usage counter
0, billed nothing. Only successful answers are kept (no errors, drops, cancelled or cut-short ones).
Entries last until ``reset()``: the simulator has no cache TTL.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request

HEADER = "x-openrouter-cache"


def response_key(request: Request, api_key: str, body: Any) -> str | None:
    """The cache key of this request, or None when it doesn't ask for response caching."""
    if request.headers.get(HEADER, "").strip().lower() != "true":
        return None
    blob = json.dumps([request.url.path, api_key, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
