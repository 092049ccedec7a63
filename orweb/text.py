"""Text on its way to PostgreSQL, which stores neither NUL (U+0000) in text or jsonb nor an unpaired
surrogate (JSON's "\\ud800" decodes to one in Python, and it has no UTF-8 form). Either makes the write
fail, and a reply whose final write fails stays "streaming" for good.

What people type is refused with a clear message (`storable`, `refusal`); what models and tools write is
kept with each such character replaced by U+FFFD (`pg_text`, `pg_json`), so one byte never costs a reply.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """Whether PostgreSQL can store `text` as it is."""
    return _UNSTORABLE.search(text) is None


def refusal(what: str) -> str:
    """The message for people whose `what` (e.g. "A search") holds a character we can't store."""
    return f"{what} can't contain a NUL character (\\x00) or an unpaired surrogate (\\ud800–\\udfff)."


def pg_text(text: str) -> str:
    """`text` with every character PostgreSQL can't store replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def pg_json(value: Any) -> Any:
    """`value` (JSON-shaped: dicts, lists, strings, numbers) with `pg_text` applied to every string in it,
    keys included: what a jsonb column can hold."""
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, dict):
        return {pg_text(str(k)): pg_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [pg_json(v) for v in value]
    return value
