"""``file`` content parts and the ``file-parser`` plugin: what a file adds to the prompt and what it costs.

A PDF is read by one engine: ``pdf-text`` (free: its text), ``mistral-ocr`` (the same text, at $2 per
1,000 pages) or ``native`` (the model reads the pages itself, billed as input tokens; only for models with
``file`` input). Without a choice, OpenRouter uses the model's native file input when it has one, else
``mistral-ocr``. Plain text files (text/*, JSON, CSV) are read as their text. The parsed content comes back
as a ``file`` annotation; a request that sends that annotation back (on an earlier assistant message) is not
parsed, nor billed for OCR, again.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from openrouter.fees import PDF_ENGINES, data_url, is_pdf, pdf_pages
from openrouter.simulator.errors import SimError
from openrouter.simulator.state import SimModel

NATIVE_PAGE_TOKENS = 800
PAGE_TOKENS = 10
_TEXT_TYPES = ("application/json", "application/csv", "application/x-ndjson")
_SHOWN = re.compile(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj")


@dataclass
class ParsedFiles:
    """What the request's files add: prompt tokens, pages billed for OCR, the ``file`` annotations."""

    tokens: int = 0
    ocr_pages: int = 0
    pages: int = 0
    annotations: list[dict[str, Any]] = field(default_factory=list)


def file_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ``file`` part, validated (400 naming what is wrong)."""
    found = []
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(part, dict) or part.get("type") != "file":
                continue
            file = part.get("file")
            where = f"messages[{i}].content[{j}].file"
            if not isinstance(file, dict) or not isinstance(file.get("file_data"), str):
                raise SimError(400, f"{where}.file_data: expected a data URL or an https URL")
            source = file["file_data"]
            if not source.startswith("https://") and data_url(source) is None:
                raise SimError(400, f"{where}.file_data: expected a base64 data URL or an https URL")
            found.append(file)
    return found


def pdf_engine(body: dict[str, Any]) -> str | None:
    """The ``file-parser`` plugin's PDF engine, if the request names one (400 for an unknown one)."""
    for plugin in body.get("plugins") or ():
        if isinstance(plugin, dict) and plugin.get("id") == "file-parser":
            engine = (plugin.get("pdf") or {}).get("engine")
            if engine is not None and engine not in PDF_ENGINES:
                raise SimError(400, f"plugins: unknown pdf engine {engine!r}; expected one of {', '.join(PDF_ENGINES)}")
            return engine
    return None


def _known_hashes(messages: list[dict[str, Any]]) -> set[str]:
    """Files already parsed: the ``file`` annotations sent back on assistant messages."""
    return {
        annotation["file"].get("hash")
        for message in messages
        if message.get("role") == "assistant"
        for annotation in message.get("annotations") or ()
        if isinstance(annotation, dict)
        and annotation.get("type") == "file"
        and isinstance(annotation.get("file"), dict)
    }


def _pdf_text(data: bytes, pages: int) -> str:
    shown = [m.group(1).decode("latin-1").replace("\\(", "(").replace("\\)", ")") for m in _SHOWN.finditer(data)]
    return "\n".join(shown) if shown else "\n".join(f"[page {n}]" for n in range(1, pages + 1))


def parse_files(messages: list[dict[str, Any]], body: dict[str, Any], model: SimModel) -> ParsedFiles:
    """Read the request's files on this model (404 when ``native`` is asked of a model without file input)."""
    files = file_parts(messages)
    parsed = ParsedFiles()
    if not files:
        return parsed
    engine = pdf_engine(body) or ("native" if model.accepts_files else "mistral-ocr")
    if engine == "native" and not model.accepts_files:
        raise SimError(404, "No endpoints found that support native file input")
    known = _known_hashes(messages)
    for file in files:
        decoded = data_url(file["file_data"])
        data = decoded[1] if decoded else file["file_data"].encode()
        digest = hashlib.sha256(data).hexdigest()
        if decoded is None or is_pdf(data):
            pages = pdf_pages(data) if decoded else 1
            text = _pdf_text(data, pages)
            parsed.pages += pages
            if engine == "native":
                parsed.tokens += pages * NATIVE_PAGE_TOKENS
            else:
                parsed.tokens += math.ceil(len(text) / 4) + pages * PAGE_TOKENS
                if engine == "mistral-ocr" and digest not in known:
                    parsed.ocr_pages += pages
        elif decoded[0].startswith("text/") or decoded[0] in _TEXT_TYPES:
            text = data.decode("utf-8", errors="replace")
            parsed.tokens += math.ceil(len(text) / 4)
        else:
            raise SimError(400, f"Unsupported file type {decoded[0] or 'unknown'!r}: send a PDF or a text file")
        parsed.annotations.append(
            {
                "type": "file",
                "file": {
                    "hash": digest,
                    "name": file.get("filename") or "file",
                    "content": [{"type": "text", "text": text}],
                },
            }
        )
    return parsed
