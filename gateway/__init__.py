"""The metered path: every model call in orweb goes through `complete` or `stream` (see gateway.service).

The names are re-exported lazily: Django imports this package while loading apps, before models exist.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MeteredStream",
    "allowed_models",
    "complete",
    "complete_with_key",
    "resolve_model_for",
    "stream",
    "stream_with_key",
]


def __getattr__(name: str) -> Any:
    if name == "allowed_models":
        from gateway import policy

        return policy.allowed_models
    if name in __all__:
        from gateway import service

        return getattr(service, name)
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
