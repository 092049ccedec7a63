"""What a finished reply keeps besides its text, worked out in the hop that writes it: what the prompt
cache saved, why `orweb/auto*` chose its model, and the images the model made (stored as the reply's
attachments and served by our own view, never linked as a model's data: URL)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from catalog import quality
from catalog.models import CatalogModel, QualityRank
from chat import surface, uploads
from chat.models import Attachment, Message
from openrouter.fees import data_url

log = logging.getLogger(__name__)

MAX_IMAGES = 8


@dataclass(frozen=True)
class Extras:
    cache_saved: Decimal
    auto_reason: str


def auto_reason(requested: str, model: CatalogModel | None) -> str:
    """Why `orweb/auto[:mode]` answered with `model`, in words ("" when the reply didn't ask auto)."""
    if not requested.startswith("orweb/auto") or model is None:
        return ""
    mode = requested.partition(":")[2] or "quality"
    if mode == "cost":
        return f"{requested} chose {model.pk}: the cheapest worst case of the models that fit this message"
    if mode == "speed":
        return f"{requested} chose {model.pk}: the fastest measured of the models that fit (unmeasured ones by price)"
    rank = QualityRank.objects.filter(model=model).values_list("rank", flat=True).first()
    if rank is not None:
        return f"{requested} chose {model.pk}: ranked {rank} in your admins' quality order among the models that fit"
    return f"{requested} chose {model.pk}: {quality.why_default(model)}"


def extras(requested: str, served: str, user: Any, cached_tokens: int, cache_write_tokens: int) -> Extras:
    model = CatalogModel.objects.filter(pk=served).first() if served else None
    saved = Decimal(0)
    if model is not None and (cached_tokens or cache_write_tokens):
        saved = surface.cache_saving(
            model.prompt_price, model.cache_read_price, model.cache_write_price, cached_tokens, cache_write_tokens
        )
    return Extras(saved, auto_reason(requested, model))


def store_images(message: Message, user: Any, urls: list[str]) -> list[Attachment]:
    """The images of `urls` (data: URLs from the model), checked by content like an upload, as attachments
    of `message`; anything that isn't a png, jpeg, webp or gif is dropped (and logged)."""
    stored = []
    for n, url in enumerate(urls[:MAX_IMAGES], start=1):
        decoded = data_url(url)
        try:
            if decoded is None:
                raise uploads.UploadRejected("not a base64 data: URL")
            mime = uploads.validate_image(decoded[1])
        except uploads.UploadRejected as exc:
            log.warning("dropped image %s of message %s: %s", n, message.pk, exc)
            continue
        data = decoded[1]
        stored.append(
            Attachment.objects.create(
                user=user,
                conversation_id=message.conversation_id,
                name=f"image-{message.pk}-{n}.{mime.partition('/')[2]}",
                mime=mime,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                data=data,
            )
        )
    if stored:
        message.attachments.add(*stored)
    return stored
