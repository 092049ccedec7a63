"""OpenRouter's error body, raised anywhere in the simulator and rendered by one handler."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class SimError(Exception):
    """An error answer: ``{"error": {"code", "message", "metadata"?}}`` with the same HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        metadata: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.metadata = metadata
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.metadata is not None:
            error["metadata"] = self.metadata
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)
