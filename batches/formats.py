"""Uploaded batch files: streamed to disk chunk by chunk and checked as they arrive, so memory stays flat
however big the file, and a file that isn't line-oriented text is refused before anything reads it as such.

Refused as a whole (`BadFile`): binary content (NUL bytes or a known binary signature), text that isn't
UTF-8, markup (HTML, SVG, XML) whatever its name, an empty file, and files over the size or line caps.
Line by line checks are `batches.lines`' job, when a job is made from the file.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from batches.models import BatchFile

BINARY_SIGNATURES = (b"PK\x03\x04", b"%PDF", b"\x89PNG", b"GIF8", b"\x1f\x8b", b"\xff\xd8\xff", b"BZh", b"\x7fELF")
MARKUP_STARTS = ("<",)
CSV_COLUMNS = ("prompt", "model", "system", "custom_id")


class BadFile(Exception):
    """A file refused as a whole; `message` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def store_upload(user: Any, uploaded_file: Any, *, purpose: str = BatchFile.Purpose.BATCH) -> BatchFile:
    """Stream a Django UploadedFile to the user's folder under ORWEB_BATCH_DIR, checking it on the way;
    BadFile (and nothing kept) when it is not a batch file."""
    filename = os.path.basename(str(getattr(uploaded_file, "name", "") or "batch.jsonl"))[:255]
    record = BatchFile(user=user, purpose=purpose, filename=filename)
    folder = Path(settings.ORWEB_BATCH_DIR) / str(user.pk)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / record.id
    try:
        with path.open("wb") as out:
            size, lines, first = _copy_checked(uploaded_file.chunks(), out)
        record.format = _format_of(filename, first)
        if record.format == BatchFile.Format.CSV:
            _check_csv_header(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    record.path, record.bytes, record.lines = str(path), size, lines
    record.save()
    return record


def _copy_checked(chunks: Any, out: Any) -> tuple[int, int, str]:
    """Copy every chunk to `out`; the byte count, the line count and the first non-blank text seen."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    size = lines = 0
    first = ""
    last = b"\n"
    for chunk in chunks:
        if not chunk:
            continue
        if size == 0 and chunk.startswith(BINARY_SIGNATURES):
            raise BadFile("This is a binary file (an archive, image or document), not JSONL or CSV text.")
        size += len(chunk)
        if size > settings.ORWEB_BATCH_MAX_BYTES:
            raise BadFile(f"The file is larger than {settings.ORWEB_BATCH_MAX_BYTES // (1024 * 1024)} MB.")
        if b"\x00" in chunk:
            raise BadFile("This is a binary file (it holds NUL bytes), not JSONL or CSV text.")
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as error:
            raise BadFile(
                f"The file is not UTF-8 text (bad byte at position {size - len(chunk) + error.start})."
            ) from error
        if len(first) < 64:
            first = (first + text.lstrip("\ufeff")).lstrip()[:64]
            _refuse_markup(first)
        lines += chunk.count(b"\n")
        last = chunk[-1:]
        if lines > settings.ORWEB_BATCH_MAX_LINES:
            raise BadFile(f"The file has more than {settings.ORWEB_BATCH_MAX_LINES:,} lines.")
        out.write(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise BadFile("The file is not UTF-8 text (it ends in the middle of a character).") from error
    if not first:
        raise BadFile("The file is empty.")
    lines += last != b"\n"
    if lines > settings.ORWEB_BATCH_MAX_LINES:
        raise BadFile(f"The file has more than {settings.ORWEB_BATCH_MAX_LINES:,} lines.")
    return size, lines, first


def _refuse_markup(first: str) -> None:
    if first.startswith(MARKUP_STARTS):
        lowered = first.lower()
        kind = "SVG" if "<svg" in lowered else "HTML" if ("html" in lowered or "<!doctype" in lowered) else "markup"
        raise BadFile(f"This is {kind}, not JSONL or CSV: a batch file holds one request per line.")


def _format_of(filename: str, first: str) -> str:
    if first.startswith(("{", "[")) or not filename.lower().endswith(".csv"):
        return BatchFile.Format.JSONL
    return BatchFile.Format.CSV


def _check_csv_header(path: Path) -> None:
    with path.open(encoding="utf-8-sig", newline="") as text:
        header = next(csv.reader(text), [])
    columns = [column.strip().lower() for column in header]
    if "prompt" not in columns:
        raise BadFile("The CSV has no 'prompt' column (its first row must name the columns).")
    unknown = [column for column in columns if column not in CSV_COLUMNS]
    if unknown:
        raise BadFile(f"The CSV has unknown columns: {', '.join(unknown)} (allowed: {', '.join(CSV_COLUMNS)}).")


def read_lines(file: BatchFile) -> Iterator[tuple[int, Any]]:
    """The file's lines, numbered from 1 as people count them, streamed: for JSONL the text of each line
    (blank lines skipped), for CSV a dict of each row (the header is line 1)."""
    with open(file.path, encoding="utf-8-sig", newline="") as text:
        if file.format == BatchFile.Format.CSV:
            reader = csv.DictReader(text)
            reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
            for row in reader:
                yield reader.line_num, {key: value for key, value in row.items() if key is not None}
            return
        for number, line in enumerate(text, start=1):
            if line.strip():
                yield number, line


def delete_file(file: BatchFile) -> None:
    """Mark a file deleted and remove its content (the row stays: jobs point at their input)."""
    with transaction.atomic():
        BatchFile.objects.filter(pk=file.pk).update(deleted=True, bytes=0)
        if file.path:
            Path(file.path).unlink(missing_ok=True)
    file.deleted = True
