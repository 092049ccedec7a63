"""Image output (``modalities: ["image", "text"]`` on a model whose ``output_modalities`` include ``image``):
one small deterministic PNG per reply, as a ``data:image/png;base64,...`` URL, billed at ``pricing.image``."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

from openrouter.simulator.errors import SimError
from openrouter.simulator.state import SimModel

SIZE = 16


def wants_images(body: dict[str, Any], model: SimModel) -> bool:
    """Whether the reply carries an image (404 when the model can't make one, as OpenRouter answers)."""
    modalities = body.get("modalities")
    if modalities is None:
        return False
    if not isinstance(modalities, list) or not all(m in ("text", "image", "audio") for m in modalities):
        raise SimError(400, "modalities: expected an array of 'text', 'image', 'audio'")
    if "image" not in modalities:
        return False
    if "image" not in model.output_modalities:
        raise SimError(404, "No endpoints found that support the requested output modalities: " + ", ".join(modalities))
    return True


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_data_url(seed: int) -> str:
    """A SIZE x SIZE PNG in two colours chosen by `seed`."""
    a = bytes((seed >> s) & 0xFF for s in (0, 8, 16))
    b = bytes((seed >> s) & 0xFF for s in (24, 32, 40))
    rows = b"".join(b"\x00" + b"".join(a if (x // 4 + y // 4) % 2 else b for x in range(SIZE)) for y in range(SIZE))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()
