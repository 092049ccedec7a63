"""batches.formats: uploads streamed to disk, and files that aren't line-oriented text refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from batches import formats
from batches.models import BatchFile

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _batch_dir(settings, tmp_path):
    settings.ORWEB_BATCH_DIR = str(tmp_path / "batches")


class Chunked(SimpleUploadedFile):
    """An upload that arrives in small chunks, as a big one would."""

    def chunks(self, chunk_size=None):
        yield from super().chunks(7)


def store(owner, content: bytes, name: str = "in.jsonl") -> BatchFile:
    return formats.store_upload(owner, Chunked(name, content))


def test_it_streams_a_jsonl_file_to_the_owners_folder(owner, settings):
    content = b'{"prompt": "one"}\n{"prompt": "two"}\n'
    file = store(owner, content)
    assert file.id.startswith("file-") and len(file.id) == 5 + 24
    assert (file.bytes, file.lines, file.format, file.purpose) == (len(content), 2, "jsonl", "batch")
    assert Path(file.path).read_bytes() == content
    assert Path(file.path).parent == Path(settings.ORWEB_BATCH_DIR) / str(owner.pk)


def test_it_reads_csv_by_its_header(owner):
    file = store(owner, b"prompt,model\nhello,openai/gpt-4o-mini\n", "in.csv")
    assert file.format == "csv"
    assert list(formats.read_lines(file)) == [(2, {"prompt": "hello", "model": "openai/gpt-4o-mini"})]


def test_a_last_line_without_newline_counts(owner):
    assert store(owner, b'{"prompt": "a"}\n{"prompt": "b"}').lines == 2


@pytest.mark.parametrize(
    ("content", "name", "said"),
    [
        (b"PK\x03\x04rest of a zip", "in.jsonl", "binary"),
        (b'{"prompt": "a"}\x00\n', "in.jsonl", "NUL"),
        (b'{"prompt": "caf\xe9"}\n', "in.jsonl", "not UTF-8"),
        (b'{"prompt": "\xe2\x82', "in.jsonl", "not UTF-8"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "in.jsonl", "HTML"),
        (b'  <svg xmlns="http://www.w3.org/2000/svg"></svg>', "in.jsonl", "SVG"),
        (b"\n\n  \n", "in.jsonl", "empty"),
        (b"question,answer\nx,y\n", "in.csv", "no 'prompt' column"),
        (b"prompt,colour\nx,y\n", "in.csv", "unknown columns: colour"),
    ],
)
def test_it_refuses_what_is_not_a_batch_file(owner, settings, content, name, said):
    with pytest.raises(formats.BadFile) as refused:
        store(owner, content, name)
    assert said in refused.value.message
    assert not BatchFile.objects.exists()
    assert list((Path(settings.ORWEB_BATCH_DIR) / str(owner.pk)).iterdir()) == []


def test_it_refuses_a_file_over_the_size_cap(owner, settings):
    settings.ORWEB_BATCH_MAX_BYTES = 40
    with pytest.raises(formats.BadFile, match="larger than"):
        store(owner, b'{"prompt": "a"}\n' * 3)


def test_it_refuses_a_file_over_the_line_cap(owner, settings):
    settings.ORWEB_BATCH_MAX_LINES = 2
    with pytest.raises(formats.BadFile, match="more than 2 lines"):
        store(owner, b'{"prompt": "a"}\n' * 3)


def test_deleting_a_file_removes_its_content(owner):
    file = store(owner, b'{"prompt": "a"}\n')
    formats.delete_file(file)
    file.refresh_from_db()
    assert file.deleted and not Path(file.path).exists()
