"""Image attachments: the type is decided by the file's first bytes, never by its name or the browser."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from chat.models import Attachment, Conversation

MAX_IMAGE_BYTES = 5 * 1024 * 1024


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


def data_url(attachment: Attachment) -> str:
    """The attachment as a `data:` URL, the form OpenRouter accepts for image input."""
    return f"data:{attachment.mime};base64,{base64.b64encode(bytes(attachment.data)).decode('ascii')}"
