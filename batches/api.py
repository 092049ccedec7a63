"""OpenAI's Files and Batches API under /v1 (`/v1/files`, `/v1/batches`), so the official SDKs work unchanged.
Transport only: files are stored and read by `batches.formats`, jobs made and cancelled by `batches.jobs`,
results written by `batches.results`; this module checks the request and shapes the answer as OpenAI does.

Bearer auth with a personal key (no cookies, so no CSRF), errors in OpenAI's shape
(`gateway.api_responses.error_json`). Every id is looked up among the key's user's own rows: another user's
file or batch is a 404, exactly like one that doesn't exist.

The views are sync, on purpose: parsing a 200 MB multipart upload (Django spools it to disk) and reading a
file into a job's lines are long and blocking, so they run on the request's own thread, not the event loop.
Downloads stream: under ASGI Django would read a sync iterator whole into memory before sending a byte, so
content goes out through `streamed`, which pulls one chunk at a time on the request's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import wraps
from typing import Any, BinaryIO

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt

from batches import formats, jobs, results
from batches.models import BatchFile, BatchJob
from gateway import fail_closed
from gateway.api_requests import parse_body
from gateway.api_responses import error_json, error_response_parts
from gateway.keys import MISSING_KEY, authenticate, bearer_secret
from orweb import aio, body_limits
from orweb.errors import GatewayError
from orweb.money import json_usd
from orweb.text import refusal, storable

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
# OpenAI's metadata: at most 16 pairs, keys up to 64 characters, values up to 512.
METADATA_PAIRS, METADATA_KEY, METADATA_VALUE = 16, 64, 512
# Economy mode (OpenRouter's Batch API, about half the price, answered within 24 h) is asked for in the
# metadata, which OpenAI's SDKs pass through unchanged: `metadata={"orweb_economy": "true"}`. Every line must
# then name the same text-only model.
ECONOMY_KEY = "orweb_economy"
# `output_expires_after` is accepted and not applied: orweb keeps a batch's results until they are deleted.
BATCH_FIELDS = frozenset(("input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"))
BATCH_LIMIT, BATCH_MAX_LIMIT = 20, 100
FILE_LIMIT, FILE_MAX_LIMIT = 10_000, 10_000
CHUNK = 64 * 1024
# orweb's statuses without an OpenAI name: a web job validated and waiting for its Run is still
# "validating" to OpenAI's eyes, a paused one still "in_progress" (`orweb_status` and `reason` say which).
OPENAI_STATUS = {BatchJob.Status.READY: "validating", BatchJob.Status.PAUSED: "in_progress"}
# Which timestamp a finished job's `finished_at` is, in OpenAI's object.
FINISHED_AT = {
    BatchJob.Status.COMPLETED: "completed_at",
    BatchJob.Status.FAILED: "failed_at",
    BatchJob.Status.CANCELLED: "cancelled_at",
    BatchJob.Status.EXPIRED: "expired_at",
}

View = Callable[..., HttpResponse]


class Refused(Exception):
    """A request this API answers with an OpenAI error (400 unless said otherwise)."""

    def __init__(self, message: str, *, code: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.param, self.status = message, code, param, status


def _error(status: int, message: str, *, code: str, param: str | None = None) -> JsonResponse:
    return JsonResponse(error_json(message, status, code=code, param=param), status=status)


def _user_of(request: HttpRequest) -> Any:
    """The user of the request's `Authorization: Bearer` key (checked as `gateway.api` does)."""
    secret = bearer_secret(request.headers)
    if secret is None:
        raise Refused(MISSING_KEY, code="missing_api_key", status=401)
    key = authenticate(secret)
    if key is None:
        raise Refused("Invalid or revoked API key.", code="invalid_api_key", status=401)
    return key.user


def api_view(*methods: str) -> Callable[[View], View]:
    """A /v1 view for `methods`, called as `view(request, user, ...)` with the key's user; whatever it
    refuses, and a database that can't be reached, answered in OpenAI's error shape."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def run(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = _error(405, f"Use {' or '.join(methods)} here.", code="method_not_allowed")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                with fail_closed.database_reachable():
                    return view(request, _user_of(request), *args, **kwargs)
            except Refused as refused:
                return _error(refused.status, refused.message, code=refused.code, param=refused.param)
            except RequestDataTooBig:
                # Under `orweb.serve` the server refuses such a body before reading it; this is the same answer
                # under any other server, where Django's cap is the first to see it.
                message = body_limits.too_large_message(body_limits.limit_for(request.path_info))
                return _error(413, message, code="request_too_large")
            except GatewayError as error:
                status, body, headers = error_response_parts(error)
                return JsonResponse(body, status=status, headers=headers)

        return run

    return decorate


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def file_json(file: BatchFile) -> dict[str, Any]:
    """OpenAI's `file` object."""
    return {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": _unix(file.created),
        "expires_at": None,
        "filename": file.filename,
        "purpose": file.purpose,
        "status": "processed",
        "status_details": None,
    }


def batch_json(job: BatchJob) -> dict[str, Any]:
    """OpenAI's `batch` object, plus orweb's own status, the reason for a pause or failure, and the cost so
    far (USD, as `usage.cost` is in a chat completion). Invalid lines count as failed requests: each has a
    line in the error file."""
    status = OPENAI_STATUS.get(job.status, job.status)
    times = dict.fromkeys(("finalizing_at", "completed_at", "failed_at", "expired_at", "cancelled_at"))
    if field := FINISHED_AT.get(job.status):
        times[field] = _unix(job.finished_at)
    if job.status == BatchJob.Status.COMPLETED:
        times["finalizing_at"] = times["completed_at"]
    errors = None
    if job.status == BatchJob.Status.FAILED:
        failure = {"code": "batch_failed", "message": job.reason, "param": None, "line": None}
        errors = {"object": "list", "data": [failure]}
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": job.endpoint,
        "errors": errors,
        "input_file_id": job.input_file_id,
        "completion_window": job.completion_window,
        "status": status,
        "output_file_id": job.output_file_id,
        "error_file_id": job.error_file_id,
        "created_at": _unix(job.created),
        "in_progress_at": _unix(job.started_at),
        "expires_at": _unix(job.expires_at),
        "cancelling_at": _unix(job.cancelled_at),
        **times,
        "request_counts": {"total": job.total, "completed": job.completed, "failed": job.failed + job.invalid},
        "metadata": job.metadata or None,
        "model": job.default_model or None,
        "orweb_status": job.status,
        "orweb_economy": job.economy,
        "reason": job.reason or None,
        "cost": json_usd(job.cost),
    }


def _list_json(items: list[dict[str, Any]], has_more: bool) -> JsonResponse:
    return JsonResponse(
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": has_more,
        }
    )


def _page(request: HttpRequest, rows: QuerySet, *, limit: int, most: int, newest_first: bool = True) -> JsonResponse:
    """One page of `rows` (the user's own), newest first unless asked otherwise, after the row whose id is
    `after` (a cursor that is not one of the user's rows is a 400), with `has_more`."""
    text = request.GET.get("limit", str(limit))
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise Refused(f"limit must be a whole number from 1 to {most}.", code="invalid_limit", param="limit")
    limit = int(text)
    rows = rows.order_by(*(("-created", "-id") if newest_first else ("created", "id")))
    if after := request.GET.get("after"):
        cursor = rows.filter(pk=after).values_list("created", flat=True).first() if storable(after) else None
        if cursor is None:
            raise Refused(f"No object with id '{after}' to list after.", code="invalid_cursor", param="after")
        beyond = Q(created__lt=cursor) | Q(created=cursor, id__lt=after)
        if not newest_first:
            beyond = Q(created__gt=cursor) | Q(created=cursor, id__gt=after)
        rows = rows.filter(beyond)
    found = list(rows[: limit + 1])
    shape = batch_json if rows.model is BatchJob else file_json
    return _list_json([shape(row) for row in found[:limit]], len(found) > limit)


def _owned_file(user: Any, file_id: str) -> BatchFile:
    """The user's file `file_id` (an id PostgreSQL can't store is nobody's)."""
    try:
        file = jobs.get_file_for(user, file_id) if storable(file_id) else None
    except Http404:
        file = None
    if file is None:
        raise Refused(f"No such file: '{file_id}'.", code="file_not_found", param="file_id", status=404)
    return file


def _owned_job(user: Any, batch_id: str) -> BatchJob:
    """The user's batch `batch_id` (an id PostgreSQL can't store is nobody's)."""
    try:
        if storable(batch_id):
            return jobs.get_for(user, batch_id)
    except Http404:
        pass
    raise Refused(f"No such batch: '{batch_id}'.", code="batch_not_found", param="batch_id", status=404)


# Files


def _upload(request: HttpRequest, user: Any) -> HttpResponse:
    """Store a multipart upload (`file`, `purpose=batch`): Django streams the file part to a temporary
    file, and `formats.store_upload` copies it to the user's folder, checking it on the way."""
    try:
        purpose, upload = request.POST.get("purpose"), request.FILES.get("file")
    except (MultiPartParserError, TooManyFieldsSent, TooManyFilesSent) as exc:
        raise Refused(f"The upload is not a readable multipart form: {exc}", code="invalid_upload") from None
    if purpose != BatchFile.Purpose.BATCH:
        message = f"orweb stores files for the Batch API only: upload with purpose 'batch' (got {purpose!r})."
        raise Refused(message, code="invalid_purpose", param="purpose")
    if upload is None:
        message = "Send the file as the multipart/form-data field 'file'."
        raise Refused(message, code="missing_required_parameter", param="file")
    try:
        file = formats.store_upload(user, upload, purpose=BatchFile.Purpose.BATCH)
    except formats.BadFile as bad:
        raise Refused(str(bad), code="invalid_file", param="file") from None
    return JsonResponse(file_json(file))


@api_view("GET", "POST")
def files(request: HttpRequest, user: Any) -> HttpResponse:
    """`POST /v1/files` uploads a batch input file; `GET /v1/files` lists the user's files (`purpose`,
    `order`, `after`, `limit`)."""
    if request.method == "POST":
        return _upload(request, user)
    rows = BatchFile.objects.filter(user=user, deleted=False)
    if purpose := request.GET.get("purpose"):
        if purpose not in BatchFile.Purpose.values:
            message = f"purpose must be one of {', '.join(BatchFile.Purpose.values)}."
            raise Refused(message, code="invalid_purpose", param="purpose")
        rows = rows.filter(purpose=purpose)
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise Refused("order must be 'asc' or 'desc'.", code="invalid_order", param="order")
    return _page(request, rows, limit=FILE_LIMIT, most=FILE_MAX_LIMIT, newest_first=order == "desc")


@api_view("GET", "DELETE")
def file(request: HttpRequest, user: Any, file_id: str) -> HttpResponse:
    """`GET /v1/files/{id}`: the file object; `DELETE`: the file is gone from listings and downloads, and
    an uploaded file's content from the disk (a job made from it keeps its lines)."""
    found = _owned_file(user, file_id)
    if request.method == "GET":
        return JsonResponse(file_json(found))
    formats.delete_file(found)
    return JsonResponse({"id": found.id, "object": "file", "deleted": True})


def _read(stored: BinaryIO) -> Iterator[bytes]:
    with stored:
        while chunk := stored.read(CHUNK):
            yield chunk


def _grouped(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Lines joined into chunks of about CHUNK bytes: one thread hop per chunk, not per line."""
    buffer = bytearray()
    for line in lines:
        buffer += line
        if len(buffer) >= CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _content_of(found: BatchFile) -> Iterator[bytes]:
    if found.purpose == BatchFile.Purpose.BATCH:
        # Opened now: a file deleted while it downloads is still read whole.
        return _read(open(found.path, "rb"))  # noqa: SIM115 (closed by `_read`)
    job = jobs.job_of_result_file(found)
    if job is None:
        raise Refused(f"No such file: '{found.id}'.", code="file_not_found", param="file_id", status=404)
    lines = results.output_lines(job) if job.output_file_id == found.id else results.error_lines(job)
    return _grouped(lines)


@api_view("GET")
def file_content(request: HttpRequest, user: Any, file_id: str) -> HttpResponse:
    """`GET /v1/files/{id}/content`: an uploaded file as stored, or a batch's output or error file as its
    lines stand now (OpenAI's batch output format, input order). Always an attachment, never inline."""
    found = _owned_file(user, file_id)
    response = StreamingHttpResponse(aio.streamed(_content_of(found)), content_type="application/jsonl")
    response["Content-Disposition"] = content_disposition_header(True, found.filename)
    return response


# Batches


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > METADATA_PAIRS:
        message = f"metadata must be an object of at most {METADATA_PAIRS} key-value pairs."
        raise Refused(message, code="invalid_metadata", param="metadata")
    for key, text in value.items():
        if not storable(key) or (isinstance(text, str) and not storable(text)):
            raise Refused(refusal("metadata"), code="invalid_metadata", param="metadata")
        if len(key) > METADATA_KEY or not isinstance(text, str) or len(text) > METADATA_VALUE:
            message = (
                f"metadata.{key[:METADATA_KEY]}: keys must have at most {METADATA_KEY} characters and values "
                f"must be strings of at most {METADATA_VALUE}."
            )
            raise Refused(message, code="invalid_metadata", param="metadata")
    return value


def _economy(metadata: dict[str, str]) -> bool:
    value = metadata.get(ECONOMY_KEY, "false").strip().lower()
    if value not in ("true", "false"):
        message = f'metadata.{ECONOMY_KEY} must be "true" or "false" (got {value[:20]!r}).'
        raise Refused(message, code="invalid_metadata", param=f"metadata.{ECONOMY_KEY}")
    return value == "true"


def _input_file(user: Any, file_id: Any) -> BatchFile:
    if not isinstance(file_id, str) or not file_id:
        raise Refused("input_file_id is required.", code="missing_required_parameter", param="input_file_id")
    try:
        found = _owned_file(user, file_id)
    except Refused:
        raise Refused(f"No such file: '{file_id}'.", code="file_not_found", param="input_file_id") from None
    if found.purpose != BatchFile.Purpose.BATCH:
        message = (
            f"File '{file_id}' has purpose '{found.purpose}': a batch's input must be uploaded with purpose 'batch'."
        )
        raise Refused(message, code="invalid_purpose", param="input_file_id")
    return found


def _create(request: HttpRequest, user: Any) -> HttpResponse:
    body = parse_body(request.body)
    if unknown := sorted(set(body) - BATCH_FIELDS):
        raise Refused(f"Unknown parameter: '{unknown[0]}'.", code="unknown_parameter", param=unknown[0])
    if body.get("endpoint") != ENDPOINT:
        message = f"orweb runs batches of {ENDPOINT} only (got {body.get('endpoint')!r})."
        raise Refused(message, code="unsupported_endpoint", param="endpoint")
    if body.get("completion_window") != COMPLETION_WINDOW:
        message = f"completion_window must be '{COMPLETION_WINDOW}' (got {body.get('completion_window')!r})."
        raise Refused(message, code="unsupported_completion_window", param="completion_window")
    metadata = _metadata(body.get("metadata"))
    economy = _economy(metadata)
    input_file = _input_file(user, body.get("input_file_id"))
    try:
        job = jobs.create_job(user, input_file, origin=BatchJob.Origin.API, metadata=metadata, economy=economy)
    except formats.BadFile as bad:
        raise Refused(str(bad), code="invalid_file", param="input_file_id") from None
    return JsonResponse(batch_json(job))


@api_view("GET", "POST")
def batches(request: HttpRequest, user: Any) -> HttpResponse:
    """`POST /v1/batches` makes a batch of an uploaded file and starts it; `GET /v1/batches` lists the
    user's batches, newest first (`after`, `limit`)."""
    if request.method == "POST":
        return _create(request, user)
    return _page(request, jobs.for_user(user), limit=BATCH_LIMIT, most=BATCH_MAX_LIMIT)


@api_view("GET")
def batch(request: HttpRequest, user: Any, batch_id: str) -> HttpResponse:
    """`GET /v1/batches/{id}`."""
    return JsonResponse(batch_json(_owned_job(user, batch_id)))


@api_view("POST")
def cancel(request: HttpRequest, user: Any, batch_id: str) -> HttpResponse:
    """`POST /v1/batches/{id}/cancel`: nothing more is sent; lines in flight finish or are cancelled, and
    what is done stays downloadable."""
    job = _owned_job(user, batch_id)
    try:
        jobs.cancel(job)
    except jobs.BadTransition as bad:
        raise Refused(str(bad), code="invalid_state") from None
    return JsonResponse(batch_json(job))
