"""OpenRouter's published per-use fees that `/models` doesn't list, and what decides them.

Shared by the simulator (which bills them) and the budget hold (which must cover them), because both
follow the same published price list: the web search server tool's Exa engine ($0.007 a search including
10 results, $0.001 for each result beyond), the `mistral-ocr` file parser ($2 per 1,000 pages), Anthropic's
one-hour cache writes (2x the prompt price; `pricing.input_cache_write` is the five-minute price).
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal

EXA_SEARCH = Decimal("0.007")
EXA_RESULTS_INCLUDED = 10
EXA_EXTRA_RESULT = Decimal("0.001")
DEFAULT_SEARCH_RESULTS = 5
OCR_PAGE = Decimal("0.002")
LONG_CACHE_WRITE = Decimal(2)
PDF_ENGINES = ("pdf-text", "mistral-ocr", "native")
WEB_SEARCH_TOOL = "openrouter:web_search"

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*?;base64,(.*)", re.DOTALL)
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", re.DOTALL)


def exa_search_fee(results: int) -> Decimal:
    """One Exa search returning up to `results` results."""
    return EXA_SEARCH + EXA_EXTRA_RESULT * max(0, results - EXA_RESULTS_INCLUDED)


def data_url(url: object) -> tuple[str, bytes] | None:
    """(media type, bytes) of a base64 `data:` URL; None for anything else (or bad base64)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return None
    try:
        return (match.group(1) or "").lower(), base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None


def is_pdf(data: bytes) -> bool:
    return data.startswith(b"%PDF-")


def pdf_pages(data: bytes) -> int:
    """Pages of a PDF: its page objects, or its page tree's count when object streams hide them (at least 1)."""
    counted = len(_PAGE.findall(data))
    declared = max((int(a or b) for a, b in _COUNT.findall(data)), default=0)
    return max(counted, declared, 1)
