"""CSV cells for files people open in a spreadsheet, shared by every app that writes one."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: Any) -> str:
    """`value` as a cell a spreadsheet shows as text: one starting with = + - @ tab or CR would be read as a
    formula (a downloaded prompt or model answer could run one), so it gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
