"""Batch pages under /batches/: upload, the user's jobs, a job's report / estimate / live progress /
downloads, and the staff overview. Transport only: files are read and checked by `batches.formats`, jobs
made and moved by `batches.jobs`, results written by `batches.results`.

Every job is looked up through `jobs.get_for(user, id)`, so another user's id is a 404 (staff too: they see
every job's owner, size, status and cost on their own page, never its content). State changes are POST
only, CSRF-checked; downloads are attachments, never shown inline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from batches import economy, formats, jobs, lines, results
from batches.forms import UploadForm
from batches.models import BatchJob, BatchLine
from gateway.policy import allowed_models
from orweb import aio
from orweb.htmx import HtmxHttpRequest, wants_partial

PAGE_SIZE = 25
STAFF_PAGE_SIZE = 50
REPORT_ROWS = 200
S = BatchJob.Status
# While a job is in one of these, its page and the job list poll for changes: every second while it moves,
# less often while paused (it can be resumed from another tab or the API); finished, it waits for the user.
ACTIVE = frozenset({S.VALIDATING, S.IN_PROGRESS, S.FINALIZING, S.CANCELLING})
POLLED = ACTIVE | {S.PAUSED}
REUPLOAD_FIELDS = ("model", "temperature", "max_tokens", "cache_across_jobs", "economy")


def _signed_out_notice(region: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """For a view whose `region` htmx polls: a poll whose session has ended gets that region saying so (and
    no longer polling) instead of the sign-in page squeezed into it; a page load still goes to sign in."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def checked(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated and wants_partial(request):
                sign_in = f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': request.get_full_path()})}"
                return render(request, "batches/signed_out.html", {"region": region, "sign_in": sign_in})
            return view(request, *args, **kwargs)

        return checked

    return decorate


def _allowed(user: Any) -> list[str]:
    return list(allowed_models(user).order_by("id").values_list("id", flat=True))


def _upload_form(user: Any, *args: Any, **kwargs: Any) -> UploadForm:
    allowed = _allowed(user)
    return UploadForm(*args, allowed=allowed, economy_models=lines.batchable_ids(allowed), **kwargs)


def _percent(job: BatchJob) -> int:
    """How much of a listed job is settled, from its counters alone (the list polls: no per-job queries)."""
    return round(100 * (job.completed + job.failed) / job.valid) if job.valid else 0


def _index_page(request: HtmxHttpRequest, form: UploadForm, status: int = 200) -> HttpResponse:
    page = Paginator(jobs.for_user(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    listed = [(job, _percent(job)) for job in page.object_list]
    context = {"form": form, "page": page, "listed": listed, "polling": any(j.status in POLLED for j, _ in listed)}
    context["webhooks"] = bool(settings.ORWEB_BATCH_WEBHOOK_SECRET)
    template = "batches/index.html" + ("#jobs" if wants_partial(request) else "")
    return render(request, template, context, status=status)


@_signed_out_notice("jobs")
@login_required
@require_GET
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def index(request: HtmxHttpRequest) -> HttpResponse:
    """The upload form and the user's jobs (htmx refreshes the list while one of them runs)."""
    initial = {name: request.GET[name] for name in REUPLOAD_FIELDS if name in request.GET}
    return _index_page(request, _upload_form(request.user, initial=initial))


@login_required
@require_POST
def upload(request: HtmxHttpRequest) -> HttpResponse:
    """Store the file (streamed to disk), validate every line, and show the job's report and estimate."""
    form = _upload_form(request.user, request.POST, request.FILES)
    if not form.is_valid():
        return _index_page(request, form, status=400)
    try:
        stored = formats.store_upload(request.user, form.cleaned_data["file"])
        job = jobs.create_job(
            request.user,
            stored,
            origin=BatchJob.Origin.WEB,
            default_model=form.cleaned_data["model"] or None,
            default_params=form.default_params(),
            cache_across_jobs=form.cleaned_data["cache_across_jobs"],
            webhook_url=form.cleaned_data["webhook_url"],
            economy=form.cleaned_data["economy"],
        )
    except formats.BadFile as exc:
        form.add_error("file", str(exc))
        return _index_page(request, form, status=400)
    return redirect("batches:job", job.id)


def _problems(job: BatchJob) -> list[BatchLine]:
    lines = job.lines.filter(status=BatchLine.Status.INVALID).order_by("number")
    return list(lines.only("number", "custom_id", "problem")[:REPORT_ROWS])


def _reupload_query(job: BatchJob) -> str:
    """The upload form's query string with this job's defaults, so a fixed file goes up the same way."""
    chosen = {
        "model": job.default_model,
        **job.default_params,
        "cache_across_jobs": job.cache_across_jobs or "",
        "economy": job.economy or "",
    }
    return urlencode({name: chosen[name] for name in REUPLOAD_FIELDS if chosen.get(name) not in (None, "")})


def _duration(seconds: float | None) -> str:
    """An ETA people read at a glance: "40 s", "12 min", "2 h 5 min"."""
    if seconds is None:
        return ""
    seconds = max(round(seconds), 1)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _live(job: BatchJob) -> dict[str, Any]:
    progress = jobs.progress(job)
    return {
        "job": job,
        "progress": progress,
        "eta": _duration(progress.get("eta_seconds")),
        "polling": job.status in ACTIVE,
        "poll_every": "1s" if job.status in ACTIVE else "5s" if job.status in POLLED else None,
        "has_results": bool(progress["done"] or progress["failed"]),
    }


@_signed_out_notice("live")
@login_required
@require_GET
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def job(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    """A job: its validation report, the estimate before it runs, and its progress (htmx polls the
    `live` partial about every second while it runs)."""
    found = jobs.get_for(request.user, job_id)
    context = _live(found)
    if wants_partial(request):
        return render(request, "batches/job.html#live", context)
    if found.status == BatchJob.Status.READY:
        low, high, fits, remaining = jobs.estimate(found)
        context["estimate"] = {"low": low, "high": high, "fits": fits, "remaining": remaining}
        if found.economy:
            cheap_low, cheap_high = economy.discounted(found)
            held = economy.held(found)
            context["economy"] = {
                "low": cheap_low,
                "high": cheap_high,
                "saving": high - cheap_high,
                "held": held,
                "hold_percent": round(economy.HOLD_RATE * 100),
            }
            context["estimate"]["fits"] = remaining is None or held <= remaining
        context["reupload"] = _reupload_query(found)
    context["problems"] = _problems(found) if found.invalid else []
    return render(request, "batches/job.html", context)


def _act(request: HttpRequest, job_id: str, action: str, done: str) -> HttpResponse:
    found = jobs.get_for(request.user, job_id)
    try:
        getattr(jobs, action)(found)
    except jobs.BadTransition as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect("batches:job", found.id)


@login_required
@require_POST
def run(request: HttpRequest, job_id: str) -> HttpResponse:
    """Run the job's valid lines (invalid ones are reported, never sent)."""
    return _act(request, job_id, "start", "Started: the valid lines are on their way.")


@login_required
@require_POST
def pause(request: HttpRequest, job_id: str) -> HttpResponse:
    return _act(request, job_id, "pause", "Paused: lines in flight finish, nothing more is sent.")


@login_required
@require_POST
def resume(request: HttpRequest, job_id: str) -> HttpResponse:
    return _act(request, job_id, "resume", "Resumed.")


@login_required
@require_POST
def cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    return _act(request, job_id, "cancel", "Cancelled: finished lines stay downloadable.")


def _attachment(chunks: Iterable[bytes], content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(aio.streamed(iter(chunks)), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def download(request: HttpRequest, job_id: str, kind: str) -> StreamingHttpResponse:
    """Results, errors, CSV or the validation report: what is done so far, in input order."""
    found = jobs.get_for(request.user, job_id)
    if kind == "results":
        return _attachment(results.output_lines(found), "application/jsonl", f"{found.id}-results.jsonl")
    if kind == "errors":
        return _attachment(results.error_lines(found), "application/jsonl", f"{found.id}-errors.jsonl")
    if kind == "csv":
        return _attachment(results.csv_rows(found), "text/csv; charset=utf-8", f"{found.id}-results.csv")
    return _attachment(results.validation_report_csv(found), "text/csv; charset=utf-8", f"{found.id}-report.csv")


@login_required
@require_GET
def staff(request: HttpRequest) -> HttpResponse:
    """Every job's owner, size, status and cost, for staff; never a file name, prompt or result."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff see everyone's batch jobs.")
    listed = BatchJob.objects.select_related("user", "input_file").only(
        "id",
        "status",
        "total",
        "valid",
        "completed",
        "failed",
        "cost",
        "created",
        "user__username",
        "input_file__bytes",
    )
    page = Paginator(listed.order_by("-created"), STAFF_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "batches/staff.html", {"page": page})
