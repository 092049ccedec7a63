"""/v1/files through the official openai SDK against the live app: upload, retrieve, list, download,
delete; every refusal in OpenAI's error shape; another user's file is a 404 however it is asked for."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import httpx
import openai
import pytest

from batches.models import BatchFile
from tests.api.conftest import key_of, sdk

pytestmark = pytest.mark.django_db(transaction=True)

LINE = (
    b'{"custom_id": "%d", "method": "POST", "url": "/v1/chat/completions", '
    b'"body": {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "echo: %d"}]}}\n'
)
LINES = b"".join(LINE % (n, n) for n in range(3))


@pytest.fixture(autouse=True)
def _batch_dir(tmp_path, settings) -> Path:
    settings.ORWEB_BATCH_DIR = tmp_path / "batches"
    return settings.ORWEB_BATCH_DIR


@pytest.fixture
def api(live_app, catalog, owner) -> openai.OpenAI:
    return sdk(live_app, key_of(owner).secret)


def upload(client: openai.OpenAI, content: bytes = LINES, name: str = "requests.jsonl"):
    return client.files.create(file=(name, content), purpose="batch")


def error_of(raised: pytest.ExceptionInfo) -> dict:
    body = raised.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_it_stores_an_upload_and_gives_it_back(api):
    uploaded = upload(api)
    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert (uploaded.purpose, uploaded.filename, uploaded.bytes) == ("batch", "requests.jsonl", len(LINES))
    assert api.files.retrieve(uploaded.id) == uploaded
    assert api.files.content(uploaded.id).content == LINES


def test_content_is_an_attachment_never_shown_inline(api, live_app, owner):
    uploaded = upload(api, b'{"prompt": "<script>alert(1)</script>"}\n', name="page.jsonl")
    response = httpx.get(
        f"{live_app.url}/v1/files/{uploaded.id}/content",
        headers={"Authorization": f"Bearer {key_of(owner).secret}"},
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="page.jsonl"'
    assert response.headers["content-type"] == "application/jsonl"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_it_lists_the_users_files_newest_first_a_page_at_a_time(api):
    ids = [upload(api, name=f"{n}.jsonl").id for n in range(3)]
    first = api.files.list(limit=2)
    assert [f.id for f in first.data] == [ids[2], ids[1]] and first.has_more
    rest = api.files.list(limit=2, after=ids[1])
    assert [f.id for f in rest.data] == [ids[0]] and not rest.has_more
    assert [f.id for f in api.files.list(limit=2)] == ids[::-1]  # the SDK follows the pages
    assert [f.id for f in api.files.list(order="asc")] == ids
    assert list(api.files.list(purpose="batch_output")) == []


def test_a_deleted_file_is_gone_with_its_content(api):
    uploaded = upload(api)
    stored = Path(BatchFile.objects.get(pk=uploaded.id).path)
    assert stored.exists()
    deleted = api.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    assert not stored.exists()
    for call in (api.files.retrieve, api.files.content, api.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(uploaded.id)
    assert list(api.files.list()) == []


def test_only_batch_files_are_taken(api):
    with pytest.raises(openai.BadRequestError) as raised:
        api.files.create(file=("tune.jsonl", LINES), purpose="fine-tune")
    error = error_of(raised)
    assert (error["param"], error["code"]) == ("purpose", "invalid_purpose")
    assert "'batch'" in error["message"]
    assert not BatchFile.objects.exists()


def test_a_form_without_a_file_is_a_400_naming_it(live_app, catalog, owner):
    response = httpx.post(
        f"{live_app.url}/v1/files",
        headers={"Authorization": f"Bearer {key_of(owner).secret}"},
        data={"purpose": "batch"},
        files={"attachment": ("x.jsonl", LINES)},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), b'<svg xmlns="http://www.w3.org/2000/svg"></svg>\n'],
    ids=["binary", "svg"],
)
def test_a_file_that_is_not_batch_lines_is_refused_saying_why(api, content):
    with pytest.raises(openai.BadRequestError) as raised:
        upload(api, content)
    error = error_of(raised)
    assert (error["param"], error["code"]) == ("file", "invalid_file")
    assert error["message"]
    assert not BatchFile.objects.exists()


def test_a_missing_key_is_a_401(live_app, catalog):
    response = httpx.get(f"{live_app.url}/v1/files")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_a_wrong_key_is_a_401(live_app, catalog):
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(live_app, "orw-not-a-real-key-at-all").files.list()
    assert error_of(raised)["code"] == "invalid_api_key"


def test_a_method_the_address_does_not_take_is_a_405(live_app, catalog, owner):
    response = httpx.put(f"{live_app.url}/v1/files", headers={"Authorization": f"Bearer {key_of(owner).secret}"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("side", ["teammate", "outsider"])
def test_anothers_file_is_a_404_however_it_is_asked_for(live_app, catalog, owner, request, side):
    mine = sdk(live_app, key_of(owner).secret)
    theirs = sdk(live_app, key_of(request.getfixturevalue(side)).secret)
    uploaded = upload(mine)
    for call in (theirs.files.retrieve, theirs.files.content, theirs.files.delete):
        with pytest.raises(openai.NotFoundError) as raised:
            call(uploaded.id)
        assert error_of(raised)["code"] == "file_not_found"
    assert list(theirs.files.list()) == []
    with pytest.raises(openai.BadRequestError):
        theirs.files.list(after=uploaded.id)
    assert mine.files.content(uploaded.id).content == LINES


@pytest.mark.parametrize("path", ["/v1/files/file-%00", "/v1/files/file-%00/content", "/v1/batches/batch_%00"])
def test_an_id_postgresql_cannot_store_is_nobodys(live_app, catalog, owner, path):
    response = httpx.get(live_app.url + path, headers={"Authorization": f"Bearer {key_of(owner).secret}"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] in ("file_not_found", "batch_not_found")


@pytest.mark.parametrize(
    ("path", "query", "param"),
    [
        ("/v1/files", {"after": "file-\x00"}, "after"),
        ("/v1/batches", {"after": "batch_\x00"}, "after"),
        ("/v1/files", {"purpose": "batch\x00"}, "purpose"),
        ("/v1/files", {"order": "sideways"}, "order"),
    ],
)
def test_a_listing_asked_for_oddly_is_a_400_naming_the_parameter(live_app, catalog, owner, path, query, param):
    response = httpx.get(live_app.url + path, params=query, headers={"Authorization": f"Bearer {key_of(owner).secret}"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_a_big_upload_is_never_held_whole_in_memory(api, tmp_path):
    big = tmp_path / "big.jsonl"
    line = b'{"prompt": "%s"}\n' % (b"long question " * 100)
    with big.open("wb") as out:
        for _ in range(20):
            out.write(line * (1024 * 1024 // len(line)))
    size = big.stat().st_size
    tracemalloc.start()
    try:
        with big.open("rb") as source:
            uploaded = api.files.create(file=("big.jsonl", source), purpose="batch")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert uploaded.bytes == size > 20_000_000
    # About 5 MB whatever the size (buffers of a few MB each); held whole, it is several times the size.
    assert peak < size / 2, f"{peak:,} bytes at the peak for a {size:,}-byte upload (client and server)"
