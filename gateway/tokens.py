"""Token estimates for holds and for streams that ended without usage.

o200k_base (through bpe_openai, an offline tiktoken-compatible encoder) is an approximation: every
provider tokenizes differently. Holds add a margin on top (`billing.pricing.PROMPT_MARGIN`), and reported
usage always wins over these numbers once it arrives.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import bpe_openai

from openrouter.fees import data_url, is_pdf, pdf_pages

PER_MESSAGE_OVERHEAD = 4
IMAGE_ALLOWANCE = 1000
# A parsed PDF page as prompt text: a dense page of text is 600-900 tokens; OCR of a scan or a page read
# natively as images may be more.
PDF_PAGE_ALLOWANCE = 1500


@cache
def _encoding() -> Any:
    return bpe_openai.get_encoding("o200k_base")


ENCODE_SLICE = 500_000


def count_text_tokens(text: str) -> int:
    """Tokens in plain text, counted in slices: the encoder refuses a million characters at once."""
    if not text:
        return 0
    encoding = _encoding()
    return sum(len(encoding.encode(text[i : i + ENCODE_SLICE])) for i in range(0, len(text), ENCODE_SLICE))


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Tokens of a chat prompt: text parts, tool calls, a fixed allowance per image, overhead per message."""
    total = 0
    for message in messages:
        total += PER_MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            total += count_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    total += count_text_tokens(str(part.get("text") or ""))
                elif part.get("type") in ("image_url", "input_image"):
                    total += IMAGE_ALLOWANCE
                elif part.get("type") == "file":
                    total += count_file_tokens(part)
                else:
                    total += count_text_tokens(json.dumps(part, default=str))
        for call in message.get("tool_calls") or []:
            total += count_text_tokens(json.dumps(call.get("function", {}) if isinstance(call, dict) else call))
    return total


def count_file_tokens(part: dict[str, Any]) -> int:
    """A `file` part as the model reads it: a PDF by its pages, a text file by its text, else its JSON."""
    file = part.get("file")
    decoded = data_url(file.get("file_data")) if isinstance(file, dict) else None
    if decoded is not None:
        media_type, data = decoded
        if is_pdf(data):
            return pdf_pages(data) * PDF_PAGE_ALLOWANCE
        if media_type.startswith("text/") or media_type in ("application/json", "application/csv"):
            return count_text_tokens(data.decode("utf-8", errors="replace"))
    return count_text_tokens(json.dumps(part, default=str))


def count_tools_tokens(tools: Any) -> int:
    """Tool definitions are part of the prompt too."""
    return count_text_tokens(json.dumps(tools, default=str)) if tools else 0
