"""/v1/batches through the official openai SDK against the live app, no worker running: each refusal of a
bad create with its own message, the batch object in OpenAI's shape, listing by pages, cancelling, and
another user's batch answering 404. The runs themselves are in test_api_sdk.py, with a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from batches.models import BatchFile, BatchJob
from orweb.celery import app as celery_app
from tests.api.conftest import key_of, sdk

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai/gpt-4o-mini"
TEXT = "meta-llama/llama-3.1-8b-instruct"
LINE = (
    b'{"custom_id": "%d", "method": "POST", "url": "/v1/chat/completions", '
    b'"body": {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "echo: line %d"}]}}\n'
)
GOOD = b"".join(LINE % (n, n) for n in range(3))
BAD = b'{"custom_id": "broken", "method": "POST", "url": "/v1/chat/completions", "body": \n'


@pytest.fixture(autouse=True)
def _batch_dir(tmp_path, settings) -> Path:
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"
    return settings.ORWEB_BATCH_DIR


@pytest.fixture(autouse=True)
def _no_tasks_left() -> Iterator[None]:
    """No worker runs here: the runs these batches enqueue are dropped, so no later test's worker finds them."""
    yield
    with celery_app.connection_for_write() as connection:
        for queue in ("celery", "batches"):
            connection.default_channel.queue_purge(queue)


@pytest.fixture
def api(live_app, catalog, owner) -> openai.OpenAI:
    return sdk(live_app, key_of(owner).secret)


def create(client: openai.OpenAI, content: bytes = GOOD, **fields):
    uploaded = client.files.create(file=("requests.jsonl", content), purpose="batch")
    return client.batches.create(
        **{"input_file_id": uploaded.id, "endpoint": "/v1/chat/completions", "completion_window": "24h", **fields}
    )


def error_of(raised: pytest.ExceptionInfo) -> dict:
    body = raised.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_it_makes_a_batch_of_a_file_and_starts_it(api, owner):
    batch = create(api, metadata={"project": "reviews"})
    assert batch.id.startswith("batch_") and batch.object == "batch"
    assert batch.status == "in_progress" and batch.in_progress_at >= batch.created_at
    assert (batch.endpoint, batch.completion_window) == ("/v1/chat/completions", "24h")
    assert batch.request_counts.total == 3 and batch.request_counts.failed == 0
    assert batch.metadata == {"project": "reviews"}
    job = BatchJob.objects.get(pk=batch.id)
    assert (job.user, job.origin, job.input_file_id) == (owner, "api", batch.input_file_id)
    assert api.batches.retrieve(batch.id).id == batch.id


def test_bad_lines_count_as_failed_requests(api):
    batch = create(api, GOOD + BAD)
    assert (batch.request_counts.total, batch.request_counts.failed) == (4, 1)
    assert batch.status == "in_progress"


@pytest.mark.parametrize(
    ("fields", "param", "code", "says"),
    [
        ({"endpoint": "/v1/embeddings"}, "endpoint", "unsupported_endpoint", "/v1/chat/completions only"),
        ({"completion_window": "1h"}, "completion_window", "unsupported_completion_window", "'24h'"),
        ({"metadata": {"k": 5}}, "metadata", "invalid_metadata", "strings"),
        ({"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata", "invalid_metadata", "16"),
        ({"metadata": {"k": "a\x00b"}}, "metadata", "invalid_metadata", "NUL"),
        ({"extra_body": {"priority": "high"}}, "priority", "unknown_parameter", "priority"),
        ({"metadata": {"orweb_economy": "maybe"}}, "metadata.orweb_economy", "invalid_metadata", '"true" or'),
    ],
    ids=["endpoint", "window", "metadata-value", "metadata-size", "metadata-nul", "unknown-field", "economy"],
)
def test_a_bad_create_is_a_400_saying_what(api, fields, param, code, says):
    with pytest.raises(openai.BadRequestError) as raised:
        create(api, **fields)
    error = error_of(raised)
    assert (error["param"], error["code"]) == (param, code)
    assert says in error["message"]
    assert not BatchJob.objects.exists()


def test_an_unknown_input_file_is_a_400(api):
    with pytest.raises(openai.BadRequestError) as raised:
        api.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    error = error_of(raised)
    assert (error["param"], error["code"]) == ("input_file_id", "file_not_found")
    assert "file-nope" in error["message"]


def test_an_output_file_is_not_an_input(api, owner):
    output = BatchFile.objects.create(user=owner, purpose="batch_output", filename="out.jsonl")
    with pytest.raises(openai.BadRequestError) as raised:
        api.batches.create(input_file_id=output.id, endpoint="/v1/chat/completions", completion_window="24h")
    error = error_of(raised)
    assert (error["param"], error["code"]) == ("input_file_id", "invalid_purpose")
    assert "purpose 'batch'" in error["message"]


def test_a_deleted_file_is_not_an_input(api):
    uploaded = api.files.create(file=("requests.jsonl", GOOD), purpose="batch")
    api.files.delete(uploaded.id)
    with pytest.raises(openai.BadRequestError) as raised:
        api.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert error_of(raised)["code"] == "file_not_found"


def test_a_body_that_is_not_json_is_a_400(live_app, catalog, owner):
    response = httpx.post(
        f"{live_app.url}/v1/batches",
        headers={"Authorization": f"Bearer {key_of(owner).secret}", "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_it_lists_the_users_batches_newest_first_a_page_at_a_time(api):
    ids = [create(api).id for _ in range(3)]
    first = api.batches.list(limit=2)
    assert [b.id for b in first.data] == [ids[2], ids[1]] and first.has_more
    rest = api.batches.list(limit=2, after=ids[1])
    assert [b.id for b in rest.data] == [ids[0]] and not rest.has_more
    assert [b.id for b in api.batches.list(limit=2)] == ids[::-1]  # the SDK follows the pages


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_a_limit_out_of_range_is_a_400(live_app, catalog, owner, limit):
    response = httpx.get(
        f"{live_app.url}/v1/batches",
        params={"limit": limit},
        headers={"Authorization": f"Bearer {key_of(owner).secret}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "limit"


def test_cancelling_stops_a_batch(api):
    batch = create(api)
    cancelled = api.batches.cancel(batch.id)
    assert cancelled.id == batch.id and cancelled.status in ("cancelling", "cancelled")
    assert cancelled.cancelling_at is not None
    assert BatchJob.objects.get(pk=batch.id).status == cancelled.status


def test_a_finished_batch_cannot_be_cancelled(api):
    batch = create(api)
    BatchJob.objects.filter(pk=batch.id).update(status="completed")
    with pytest.raises(openai.BadRequestError) as raised:
        api.batches.cancel(batch.id)
    assert error_of(raised)["code"] == "invalid_state"
    assert BatchJob.objects.get(pk=batch.id).status == "completed"


def test_a_batch_paused_by_orweb_is_in_progress_to_openai_with_the_reason(api):
    batch = create(api)
    BatchJob.objects.filter(pk=batch.id).update(status="paused", reason="Your budget ran out.")
    seen = api.batches.retrieve(batch.id)
    assert seen.status == "in_progress"
    assert (seen.model_extra["orweb_status"], seen.model_extra["reason"]) == ("paused", "Your budget ran out.")


def text_line(n: int, model: str = TEXT) -> bytes:
    return LINE.replace(MODEL.encode(), model.encode()) % (n, n)


def test_economy_mode_is_asked_for_in_the_metadata_and_sends_the_lines_model(api):
    batch = create(api, text_line(0) + text_line(1), metadata={"orweb_economy": "true"})
    assert batch.status == "in_progress" and batch.to_dict()["orweb_economy"] is True
    job = BatchJob.objects.get(pk=batch.id)
    assert (job.economy, job.default_model) == (True, TEXT)
    assert not BatchJob.objects.get(pk=create(api, text_line(0)).id).economy


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (text_line(0) + text_line(1, "meta-llama/llama-3.3-70b-instruct"), "these lines name 2"),
        (GOOD, f"text-only models OpenRouter's Batch API serves, not {MODEL}"),
    ],
    ids=["two-models", "image-model"],
)
def test_an_economy_batch_its_lines_cant_go_through_the_batch_api_fails_saying_why(api, content, says):
    batch = create(api, content, metadata={"orweb_economy": "true"})
    assert batch.status == "failed" and says in batch.errors.data[0].message
    assert BatchJob.objects.get(pk=batch.id).remote_state == ""


def test_a_failed_batch_says_why_in_errors(api):
    batch = create(api)
    BatchJob.objects.filter(pk=batch.id).update(status="failed", reason="The input file could not be read.")
    seen = api.batches.retrieve(batch.id)
    assert seen.status == "failed"
    assert [e.message for e in seen.errors.data] == ["The input file could not be read."]


@pytest.mark.parametrize("side", ["teammate", "outsider"])
def test_anothers_batch_is_a_404_however_it_is_asked_for(live_app, catalog, owner, request, side):
    mine = sdk(live_app, key_of(owner).secret)
    theirs = sdk(live_app, key_of(request.getfixturevalue(side)).secret)
    batch = create(mine)
    for call in (theirs.batches.retrieve, theirs.batches.cancel):
        with pytest.raises(openai.NotFoundError) as raised:
            call(batch.id)
        assert error_of(raised)["code"] == "batch_not_found"
    assert list(theirs.batches.list()) == []
    with pytest.raises(openai.BadRequestError) as raised:
        theirs.batches.create(
            input_file_id=batch.input_file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert error_of(raised)["code"] == "file_not_found"
    assert mine.batches.retrieve(batch.id).status == "in_progress"
