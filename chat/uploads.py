"""Attachments: images, PDFs and plain text files (text, Markdown, CSV). The type is decided by the file's
content, never by the browser: an image or a PDF by its first bytes, text by decoding as UTF-8 with no
control characters; the name only tells text kinds apart (and a name that claims another type than the
content is refused)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import Any

from chat.models import Attachment, Conversation

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_FILE_BYTES = MAX_IMAGE_BYTES  # the upload body limit (ORWEB_MAX_ATTACHMENT_BODY) is sized for it
TEXT_KINDS = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    "": "text/plain",
}
_CONTROL = set(range(0, 32)) - {9, 10, 12, 13}


class UploadRejected(ValueError):
    """Not an image we accept; the message is shown to the user."""


def sniff_image(head: bytes) -> str | None:
    """The MIME type of a png, jpeg, webp or gif from its magic bytes, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def validate_image(data: bytes) -> str:
    """Check size and content; return the MIME type or raise UploadRejected."""
    if not data:
        raise UploadRejected("The file is empty.")
    if len(data) > MAX_IMAGE_BYTES:
        raise UploadRejected(f"Images can be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB.")
    mime = sniff_image(data[:16])
    if mime is None:
        raise UploadRejected("Only PNG, JPEG, WebP and GIF images can be attached.")
    return mime


def store_image(user: Any, conversation: Conversation | None, name: str, uploaded: Any) -> Attachment:
    """Validate an uploaded file (a Django UploadedFile or anything with .size and .read()) and save it.

    The size is checked before reading, so an oversized upload is never read into memory whole.
    """
    size = getattr(uploaded, "size", None)
    if size is not None and size > MAX_IMAGE_BYTES:
        raise UploadRejected(f"Images can be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB.")
    data = uploaded.read(MAX_IMAGE_BYTES + 1)
    mime = validate_image(data)
    return Attachment.objects.create(
        user=user,
        conversation=conversation,
        name=(name or "image")[:200],
        mime=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )


def sniff_file(data: bytes, name: str) -> str | None:
    """The MIME type of an image, a PDF or a UTF-8 text file from its content (the name only picks the
    kind of text: plain, Markdown or CSV), else None."""
    image = sniff_image(data[:16])
    if image is not None:
        return image
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    extension = os.path.splitext(name.lower())[1]
    if extension not in TEXT_KINDS:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) in _CONTROL for c in text[:100_000]):
        return None
    return TEXT_KINDS[extension]


def store_upload(user: Any, conversation: Conversation | None, name: str, uploaded: Any) -> Attachment:
    """`store_image` for any attachment chat takes: an image, a PDF or a text file, checked by content."""
    size = getattr(uploaded, "size", None)
    limit = f"Files can be at most {MAX_FILE_BYTES // (1024 * 1024)} MB."
    if size is not None and size > MAX_FILE_BYTES:
        raise UploadRejected(limit)
    data = uploaded.read(MAX_FILE_BYTES + 1)
    if not data:
        raise UploadRejected("The file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise UploadRejected(limit)
    name = (name or "file")[:200]
    mime = sniff_file(data, name)
    if mime is None:
        raise UploadRejected(
            "Only images (PNG, JPEG, WebP, GIF), PDFs and UTF-8 text files (.txt, .md, .csv) can be attached."
        )
    return Attachment.objects.create(
        user=user,
        conversation=conversation,
        name=name,
        mime=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )


def data_url(attachment: Attachment) -> str:
    """The attachment as a `data:` URL, the form OpenRouter accepts for image input."""
    return f"data:{attachment.mime};base64,{base64.b64encode(bytes(attachment.data)).decode('ascii')}"


def download_name(name: str) -> str:
    """A safe file name for Content-Disposition: the name's letters and digits, its short extension kept."""
    stem, extension = os.path.splitext(name)
    safe_stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:80] or "file"
    return safe_stem + (extension if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", extension) else "")
