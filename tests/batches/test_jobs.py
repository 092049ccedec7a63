"""batches.jobs and batches.lines: a job made from a file, every bad line reported by its number, the cost
range, the status moves, ownership; batches.results: what the files hold."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404

from batches import claims, formats, jobs, results
from batches.models import BatchJob, BatchLine
from billing.budgets import set_budget
from gateway.models import GroupPolicy

pytestmark = pytest.mark.django_db
MINI = "openai/gpt-4o-mini"
TEXT_ONLY = "openai/gpt-3.5-turbo"  # no image input; writes at most 4096 tokens
IMAGE = [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
]


@pytest.fixture(autouse=True)
def _batch_dir(settings, tmp_path):
    settings.ORWEB_BATCH_DIR = str(tmp_path / "batches")


def openai_line(custom_id: str, content, model: str = MINI, **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": content}], **body},
    }


def upload(user, rows: list, name: str = "in.jsonl"):
    text = "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n"
    return formats.store_upload(user, SimpleUploadedFile(name, text.encode()))


def make_job(user, rows: list, *, origin: str = "web", name: str = "in.jsonl", **options) -> BatchJob:
    return jobs.create_job(user, upload(user, rows, name), origin=origin, **options)


def problems(job: BatchJob) -> dict[int, str]:
    return dict(BatchLine.objects.filter(job=job, status="invalid").values_list("number", "problem"))


def test_each_bad_line_is_reported_by_its_number(catalog, owner, team_group):
    GroupPolicy.objects.create(group=team_group, allowed_models=[MINI, TEXT_ONLY])
    job = make_job(
        owner,
        [
            openai_line("a", "fine"),
            '{"custom_id": "b", "body": ',
            openai_line("c", "x") | {"priority": "high"},
            {"custom_id": "d", "method": "POST", "url": "/v1/chat/completions"},
            {"model": MINI},
            openai_line("a", "again"),
            openai_line("f", "x", model="anthropic/claude-sonnet-4"),
            openai_line("g", IMAGE, model=TEXT_ONLY),
            openai_line("h", "x", model=TEXT_ONLY, max_tokens=5000),
            openai_line("i", "x", model="nobody/no-such-model"),
            {"prompt": "simple and fine", "model": TEXT_ONLY},
        ],
    )
    found = problems(job)
    assert sorted(found) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert found[2].startswith("Not valid JSON")
    assert "Unknown field(s): priority" in found[3]
    assert found[4].startswith("Missing body")
    assert found[5].startswith("Missing prompt")
    assert found[6] == "Duplicate custom_id 'a' (first used on line 1)."
    assert "not allowed to use the model 'anthropic/claude-sonnet-4'" in found[7]
    assert "does not accept images" in found[8]
    assert "max_tokens 5000 is beyond" in found[9]
    assert "not available" in found[10]
    assert (job.status, job.total, job.valid, job.invalid) == ("ready", 11, 2, 9)


def test_a_line_without_a_model_takes_the_default_or_is_reported(catalog, owner):
    without = make_job(owner, [{"prompt": "hi"}])
    assert "No model" in problems(without)[1]
    job = make_job(owner, [{"prompt": "hi"}], default_model=MINI, default_params={"temperature": 0.5})
    line = BatchLine.objects.get(job=job)
    assert line.request == {"temperature": 0.5, "model": MINI, "messages": [{"role": "user", "content": "hi"}]}
    assert line.custom_id == "line-1"


def test_csv_rows_become_requests(catalog, owner):
    job = make_job(owner, ["prompt,system,custom_id", "Hello,Be brief,q1", ",,q2"], name="in.csv", default_model=MINI)
    line = BatchLine.objects.get(job=job, number=2)
    assert line.custom_id == "q1"
    assert line.request["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hello"},
    ]
    assert problems(job) == {3: "Missing prompt: a line needs a non-empty prompt (or an OpenAI batch body)."}


def test_the_estimate_is_a_range_that_counts_identical_deterministic_lines_once(catalog, owner):
    line = {"prompt": "hello", "model": MINI, "temperature": 0, "max_tokens": 100}
    once = make_job(owner, [line])
    twice = make_job(owner, [line, line | {"custom_id": "other"}])
    assert Decimal(0) < once.estimate_low < once.estimate_high
    assert (twice.estimate_low, twice.estimate_high) == (once.estimate_low, once.estimate_high)
    keys = set(BatchLine.objects.filter(job=twice).values_list("cache_key", flat=True))
    assert len(keys) == 1 and len(keys.pop()) == 64


def test_the_estimate_says_whether_it_fits_the_budget(catalog, owner):
    job = make_job(owner, [{"prompt": "hello", "model": MINI, "max_tokens": 1000}])
    assert jobs.estimate(job)[2:] == (True, None)
    set_budget(user=owner, amount=Decimal("0.0001"))
    low, high, fits, remaining = jobs.estimate(job)
    assert (fits, remaining) == (False, Decimal("0.0001")) and high > remaining


def test_a_web_job_waits_for_run_and_moves_through_its_life(catalog, owner, django_capture_on_commit_callbacks):
    job = make_job(owner, [{"prompt": "hi", "model": MINI}])
    assert job.status == "ready"
    with pytest.raises(jobs.BadTransition):
        jobs.pause(job)
    with django_capture_on_commit_callbacks() as sent:
        jobs.start(job)
    assert job.status == "in_progress" and job.started_at and job.expires_at and len(sent) == 1
    with pytest.raises(jobs.BadTransition):
        jobs.start(job)
    jobs.pause(job, "for lunch")
    assert (job.status, job.reason) == ("paused", "for lunch")
    jobs.resume(job)
    assert (job.status, job.reason) == ("in_progress", "")
    jobs.cancel(job)
    assert job.status == "cancelled"
    assert BatchLine.objects.get(job=job).status == "cancelled"
    assert job.output_file and job.error_file
    with pytest.raises(jobs.BadTransition):
        jobs.resume(job)


def test_cancelling_waits_for_a_line_in_flight(catalog, owner):
    job = make_job(owner, [{"prompt": "hi", "model": MINI}, {"prompt": "ho", "model": MINI}], origin="api")
    [line, *_] = claims.claim(job.pk, "run", 1, 60)
    jobs.cancel(job)
    assert job.status == "cancelling"
    assert claims.settle_done(line.id, "run", response={"x": 1}, generation_id="g", cost=Decimal("0.01"))
    assert jobs.finish_cancel(job)
    job.refresh_from_db()
    assert (job.status, job.completed, job.cost) == ("cancelled", 1, Decimal("0.01"))
    assert list(BatchLine.objects.filter(job=job).values_list("status", flat=True)) == ["done", "cancelled"]


def test_an_api_job_starts_at_once_or_fails_without_valid_lines(catalog, owner):
    running = make_job(owner, [{"prompt": "hi", "model": MINI}, "not json"], origin="api")
    assert (running.status, running.valid, running.invalid) == ("in_progress", 1, 1)
    failed = make_job(owner, ["not json"], origin="api")
    assert failed.status == "failed" and failed.error_file and "No line" in failed.reason
    [error] = [json.loads(line) for line in results.error_lines(failed)]
    assert error["error"]["code"] == "invalid_request" and error["error"]["line"] == 1


def test_results_are_in_input_order_in_openais_shape(catalog, owner):
    job = make_job(owner, [{"prompt": f"q{n}", "model": MINI} for n in range(3)] + ["bad"], origin="api")
    lines = claims.claim(job.pk, "run", 3, 60)
    for line in reversed(lines):
        body = {"choices": [{"message": {"content": f"a{line.number}"}}], "usage": {"cost": 0.001}}
        claims.settle_done(line.id, "run", response=body, generation_id=f"gen-{line.number}", cost=Decimal("0.001"))
    output = [json.loads(line) for line in results.output_lines(job)]
    assert [o["custom_id"] for o in output] == ["line-1", "line-2", "line-3"]
    assert output[0]["response"] == {
        "status_code": 200,
        "request_id": "gen-1",
        "body": {"choices": [{"message": {"content": "a1"}}], "usage": {"cost": 0.001}},
    }
    assert output[0]["error"] is None and output[0]["id"].startswith("batch_req_")
    rows = b"".join(results.csv_rows(job)).decode().splitlines()
    assert rows[0].startswith("line,custom_id,status") and rows[1].startswith("1,line-1,done,openai/gpt-4o-mini,q0,a1")
    report = b"".join(results.validation_report_csv(job)).decode().splitlines()
    assert report[0] == "line,custom_id,problem" and report[1].startswith("4,line-4,Not valid JSON")


def test_progress_counts_lines(catalog, owner):
    job = make_job(owner, [{"prompt": f"q{n}", "model": MINI} for n in range(4)], origin="api")
    [line] = claims.claim(job.pk, "run", 1, 60)
    claims.settle_done(line.id, "run", response={}, generation_id="g", cost=Decimal("0.5"))
    shown = jobs.progress(job)
    assert (shown["done"], shown["failed"], shown["remaining"], shown["percent"], shown["cost"]) == (
        1,
        0,
        3,
        25.0,
        Decimal("0.5"),
    )
    assert shown["per_minute"] > 0 and shown["eta_seconds"] > 0


def test_counts_a_run_writes_after_the_job_ended_are_not_added_twice(catalog, owner):
    job = make_job(owner, [{"prompt": f"q{n}", "model": MINI} for n in range(2)], origin="api")
    for line in claims.claim(job.pk, "run", 2, 60):
        claims.settle_done(
            line.id, "run", response={}, generation_id=f"g{line.number}", cost=Decimal("0.5"), count=False
        )
    assert jobs.finish(job)  # the end counts the lines themselves
    claims.add_counts(job.pk, completed=2, failed=0, cost=Decimal("1"))  # the run's own count, arriving late
    job.refresh_from_db()
    assert (job.status, job.completed, job.failed, job.cost) == ("completed", 2, 0, Decimal("1"))


def test_jobs_and_files_are_their_owners_only(catalog, owner, teammate, outsider):
    job = make_job(owner, [{"prompt": "hi", "model": MINI}])
    assert jobs.get_for(owner, job.pk) == job
    assert jobs.get_file_for(owner, job.input_file_id) == job.input_file
    for other in (teammate, outsider):
        with pytest.raises(Http404):
            jobs.get_for(other, job.pk)
        with pytest.raises(Http404):
            jobs.get_file_for(other, job.input_file_id)
        with pytest.raises(Http404):
            jobs.create_job(other, job.input_file, origin="web")
        assert list(jobs.for_user(other)) == []


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_text(catalog, owner):
    job = make_job(
        owner,
        [
            {"custom_id": "@id", "prompt": '=HYPERLINK("http://evil.example","x")', "model": MINI},
            {"custom_id": "-2", "prompt": "\tplain", "model": MINI},
            {"custom_id": "=cmd()", "prompt": "x", "model": "nobody/none"},
        ],
        origin="api",
    )
    first, second = claims.claim(job.pk, "run", 2, 60)
    body = {"model": MINI, "choices": [{"message": {"content": "+SUM(A1:A9)"}}], "usage": {"cost": 0.001}}
    claims.settle_done(first.id, "run", response=body, generation_id="gen-1", cost=Decimal("0.001"))
    claims.settle_failed(second.id, "run", error={"code": "x", "message": "\rbroken"})
    rows = list(csv.reader(io.StringIO(b"".join(results.csv_rows(job)).decode())))
    assert rows[1][:6] == ["1", "'@id", "done", MINI, '\'=HYPERLINK("http://evil.example","x")', "'+SUM(A1:A9)"]
    assert rows[2][1] == "'-2" and rows[2][4] == "'\tplain" and rows[2][8] == "'\rbroken"
    report = list(csv.reader(io.StringIO(b"".join(results.validation_report_csv(job)).decode())))
    assert report[1][:2] == ["3", "'=cmd()"]
