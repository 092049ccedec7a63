"""Browser → server websocket frames, parsed and checked before any work is done for them: a frame the
database or the runner couldn't take (a NUL, a lone surrogate, an id past bigint, JSON nested past the
parser's depth) becomes BadFrame here, answered with an error frame, never an exception that would close
the socket with 1011."""

from __future__ import annotations

import json
from typing import Any

MAX_FRAME = 64 * 1024
MAX_ID = 2**63 - 1  # PostgreSQL's bigint: anything larger can't name a row
MAX_ATTACHMENTS = 32
ACTIONS = ("send", "stop", "regenerate", "edit", "continue", "switch", "resume")


class BadFrame(Exception):
    """A frame that is not a valid action: answered with an error frame of `code`."""

    def __init__(self, message: str, code: str = "bad_frame") -> None:
        super().__init__(message)
        self.code = code


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def integer(frame: dict[str, Any], key: str) -> int:
    """An id or a seq field."""
    value = frame.get(key)
    if not _is_id(value):
        raise BadFrame(f'"{key}" must be a non-negative integer (at most {MAX_ID}).')
    return value


def text(frame: dict[str, Any], key: str) -> str:
    """A string field, as PostgreSQL can store it: no NUL, no lone surrogate (JSON lets "\\ud800" in)."""
    value = frame.get(key)
    if not isinstance(value, str):
        raise BadFrame(f'"{key}" must be a string.')
    if "\x00" in value:
        raise BadFrame(f'"{key}" must not contain NUL characters.')
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadFrame(f'"{key}" is not valid Unicode text.') from None
    return value


def attachments(frame: dict[str, Any]) -> list[int]:
    """A send's attachment ids (none when absent)."""
    value = frame.get("attachments", [])
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS or not all(_is_id(a) for a in value):
        raise BadFrame(f'"attachments" must be a list of at most {MAX_ATTACHMENTS} ids.')
    return value


def parse(text_data: str) -> dict[str, Any]:
    """The frame as a JSON object, or BadFrame saying what is wrong with it."""
    if len(text_data) > MAX_FRAME:
        raise BadFrame(f"Frames are limited to {MAX_FRAME // 1024} KB.", "too_large")
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep for the parser
        raise BadFrame("That frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise BadFrame("A frame must be a JSON object.")
    if frame.get("action") not in ACTIONS:
        raise BadFrame(f"Unknown action: {str(frame.get('action'))[:40]!r}.", "unknown_action")
    return frame
