"""Downloads from /v1/files/{id}/content stream: pulled a chunk at a time as the client reads, each chunk
made on the request's one thread (so the paged reads of a job's lines share a connection), the whole file
in input order however many pages and chunks it takes."""

from __future__ import annotations

import json
import threading
import warnings

import httpx
import pytest
from asgiref.sync import ThreadSensitiveContext, async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile

from batches import formats, jobs
from batches.models import BatchFile, BatchJob, BatchLine
from orweb.aio import streamed
from tests.api.conftest import key_of

LINES = 1_200  # more than one page of lines (batches.results) and more than one 64 KB chunk


def test_a_download_is_pulled_a_chunk_at_a_time_on_one_thread():
    made: list[int] = []
    closed: list[bool] = []

    def chunks():
        try:
            for n in range(3):
                made.append(threading.get_ident())
                yield b"%d" % n
        finally:
            closed.append(True)

    async def read_two() -> list[bytes]:
        async with ThreadSensitiveContext():
            stream = streamed(chunks())
            first = await anext(stream)
            assert len(made) == 1  # nothing made ahead of the client
            second = await anext(stream)
            await stream.aclose()  # the client went away
            return [first, second]

    assert async_to_sync(read_two)() == [b"0", b"1"]
    assert len(made) == 2 and len(set(made)) == 1
    assert closed == [True]


@pytest.mark.django_db(transaction=True)
def test_an_output_file_of_many_pages_downloads_whole_in_input_order(live_app, catalog, owner, settings, tmp_path):
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"
    rows = (
        json.dumps(
            {
                "custom_id": f"row-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"question {n}"}]},
            }
        )
        for n in range(LINES)
    )
    upload = SimpleUploadedFile("many.jsonl", ("\n".join(rows) + "\n").encode())
    job = jobs.create_job(owner, formats.store_upload(owner, upload), origin="web")
    answer = {"object": "chat.completion", "choices": [{"message": {"role": "assistant", "content": "x" * 40}}]}
    BatchLine.objects.filter(job=job).update(status="done", response=answer)
    output = BatchFile.objects.create(user=owner, purpose="batch_output", filename="many_output.jsonl")
    BatchJob.objects.filter(pk=job.pk).update(status="completed", output_file=output)

    # Django warns when it has to read a sync iterator whole before sending (the server is in this process).
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with httpx.stream(
            "GET",
            f"{live_app.url}/v1/files/{output.id}/content",
            headers={"Authorization": f"Bearer {key_of(owner).secret}"},
            timeout=30,
        ) as response:
            assert response.status_code == 200
            chunks = list(response.iter_raw())
    assert not [w for w in warned if "consume synchronous iterators" in str(w.message)]
    records = [json.loads(line) for line in b"".join(chunks).splitlines()]
    assert [record["custom_id"] for record in records] == [f"row-{n}" for n in range(LINES)]
    assert all(record["response"]["body"] == answer for record in records)
