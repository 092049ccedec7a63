"""A job's results as files, made from its lines when downloaded (nothing is stored twice), in input order,
with what is done so far while the job runs.

JSONL in OpenAI's batch output format, one object per line: `{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}`; the body is the `chat.completion` with `usage.cost` (0 for an answer
copied from the cache, and `"cached": true` beside it). Lines that failed or were invalid or cancelled go to
the error file instead. CSV for people: one row per line with its answer, cost and status, every text
cell formula-safe (a prompt or an answer starting with "=" is shown as text, not run by the spreadsheet).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from batches.models import BatchJob, BatchLine
from orweb.money import plain_usd
from orweb.spreadsheet import text_cell

CHUNK = 500
L = BatchLine.Status


def _lines(job: BatchJob, statuses: Iterable[str]) -> Iterator[BatchLine]:
    """The job's lines in these statuses, in input order, read in pages by number (flat memory)."""
    after = 0
    while True:
        page = list(
            BatchLine.objects.filter(job=job, status__in=list(statuses), number__gt=after).order_by("number")[:CHUNK]
        )
        yield from page
        if len(page) < CHUNK:
            return
        after = page[-1].number


def output_record(line: BatchLine) -> dict[str, Any]:
    """One line of the output file."""
    record: dict[str, Any] = {
        "id": f"batch_req_{line.job_id.removeprefix('batch_')}_{line.number}",
        "custom_id": line.custom_id,
        "response": {
            "status_code": 200,
            "request_id": line.generation_id or f"line-{line.number}",
            "body": line.response,
        },
        "error": None,
    }
    if line.cached:
        record["cached"] = True
    return record


def error_record(line: BatchLine) -> dict[str, Any]:
    """One line of the error file: the request's failure, or why it was never sent."""
    error = line.error or {"code": "error", "message": "The request failed."}
    status = error.get("status")
    return {
        "id": f"batch_req_{line.job_id.removeprefix('batch_')}_{line.number}",
        "custom_id": line.custom_id,
        "response": None
        if status is None
        else {"status_code": status, "request_id": line.generation_id or None, "body": {"error": error}},
        "error": {"code": error.get("code"), "message": error.get("message"), "line": line.number},
    }


def _jsonl(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for record in records:
        yield json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def output_lines(job: BatchJob) -> Iterator[bytes]:
    """The output file: every line done so far."""
    return _jsonl(output_record(line) for line in _lines(job, [L.DONE]))


def error_lines(job: BatchJob) -> Iterator[bytes]:
    """The error file: every line that failed, was invalid or was cancelled, so far."""
    return _jsonl(error_record(line) for line in _lines(job, [L.FAILED, L.INVALID, L.CANCELLED]))


def _csv(rows: Iterator[list[Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


def _answer(line: BatchLine) -> str:
    choices = (line.response or {}).get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or ""


def _prompt(line: BatchLine) -> str:
    messages = (line.request or {}).get("messages") or []
    content = messages[-1].get("content") if messages else ""
    return content if isinstance(content, str) else json.dumps(content)


def csv_rows(job: BatchJob) -> Iterator[bytes]:
    """The results for people: line, custom_id, status, model, prompt, answer, cost, cached, error."""

    def rows() -> Iterator[list[Any]]:
        yield ["line", "custom_id", "status", "model", "prompt", "answer", "cost_usd", "cached", "error"]
        for line in _lines(job, L.values):
            error = (line.error or {}).get("message", "") if line.status != L.DONE else ""
            model = (line.response or {}).get("model") or (line.request or {}).get("model", "")
            cost = plain_usd(line.cost) if line.status == L.DONE else ""
            texts = [line.custom_id, line.status, model, _prompt(line), _answer(line)]
            yield [line.number, *map(text_cell, texts), cost, line.cached, text_cell(error)]

    return _csv(rows())


def validation_report_csv(job: BatchJob) -> Iterator[bytes]:
    """Every invalid line of the file with its number and the problem found."""

    def rows() -> Iterator[list[Any]]:
        yield ["line", "custom_id", "problem"]
        for line in _lines(job, [L.INVALID]):
            yield [line.number, text_cell(line.custom_id), text_cell(line.problem)]

    return _csv(rows())
