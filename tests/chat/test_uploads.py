"""Uploads are images by their bytes, not their name, and small enough."""

from __future__ import annotations

import base64
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.uploads import MAX_IMAGE_BYTES, UploadRejected, data_url, sniff_image, store_image, validate_image

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"hello, world", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", None),
    ],
)
def test_it_sniffs_the_type_from_content(head, mime):
    assert sniff_image(head) == mime


def test_it_refuses_text_named_png():
    with pytest.raises(UploadRejected):
        validate_image(b"just some text, not an image")


def test_it_refuses_oversized_and_empty_files():
    with pytest.raises(UploadRejected, match="5 MB"):
        validate_image(PNG + b"\0" * MAX_IMAGE_BYTES)
    with pytest.raises(UploadRejected):
        validate_image(b"")


@pytest.mark.django_db
def test_it_stores_an_image_and_makes_a_data_url(owner):
    attachment = store_image(owner, None, "dot.png", SimpleUploadedFile("dot.png", PNG))
    assert (attachment.mime, attachment.size) == ("image/png", len(PNG))
    assert data_url(attachment) == "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.mark.django_db
def test_it_refuses_a_text_file_named_png_when_storing(owner):
    with pytest.raises(UploadRejected):
        store_image(owner, None, "cat.png", SimpleUploadedFile("cat.png", b"not an image", "image/png"))


@pytest.mark.django_db
def test_it_checks_the_size_before_reading(owner):
    class Huge(io.BytesIO):
        size = MAX_IMAGE_BYTES + 1

        def read(self, *args):
            raise AssertionError("read an oversized upload")

    with pytest.raises(UploadRejected):
        store_image(owner, None, "big.png", Huge())


PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n%%EOF\n"


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("report.pdf", PDF, "application/pdf"),
        ("scan", PDF, "application/pdf"),  # the content decides, not the name
        ("notes.md", "# Notes\n\n- café\n".encode(), "text/markdown"),
        ("table.csv", b"a,b\n1,2\n", "text/csv"),
        ("readme.txt", b"plain words\n", "text/plain"),
        ("dot.png", PNG, "image/png"),
    ],
)
@pytest.mark.django_db
def test_it_stores_pdfs_text_files_and_images_by_their_content(owner, name, data, mime):
    from chat.uploads import store_upload

    assert store_upload(owner, None, name, SimpleUploadedFile(name, data)).mime == mime


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("report.pdf", b"plain words pretending to be a pdf"),  # the name claims what the content isn't
        ("notes.md", b"\xff\xfe not utf-8"),
        ("run.txt", b"\x7fELF\x02\x01\x01\x00binary"),
        ("page.html", b"<script>alert(1)</script>"),
        ("empty.txt", b""),
    ],
)
@pytest.mark.django_db
def test_it_refuses_what_is_not_an_image_a_pdf_or_utf8_text(owner, name, data):
    from chat.uploads import store_upload

    with pytest.raises(UploadRejected):
        store_upload(owner, None, name, SimpleUploadedFile(name, data))


def test_download_names_keep_only_safe_characters():
    from chat.uploads import download_name

    assert download_name('re"port\r\n.pdf') == "re-port.pdf"
    assert download_name("../../etc/passwd") == "etc-passwd"
    assert download_name("x.tar.gz") == "x-tar.gz"
