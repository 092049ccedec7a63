"""One line of a batch file checked and turned into the chat body it will send, with its cost range.

Three shapes of line are read: OpenAI's batch line (`{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body": {...}}`), a simple line (`{"prompt", "model"?, "system"?, ...}`) and a CSV
row (`prompt`, `model`, `system`, `custom_id` columns). Every problem is reported for its line, in words:
bad JSON, unknown fields, no prompt or body, a duplicate `custom_id`, a model the user may not use, an image
for a text-only model, `max_tokens` beyond what the model can write. The body goes through the same checks
as a `/v1/chat/completions` request (`gateway.api_requests`) and the same policy as every call
(`gateway.policy`), so a line that passes here is refused upstream only for reasons of the moment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.pricing import estimate, worst_case
from catalog.models import CatalogModel
from gateway.api_requests import parse_chat_request
from gateway.policy import check_model_allowed, max_tokens_for, misfit, policies_of, shape_of
from gateway.types import AUTO_MODELS
from orweb.errors import GatewayError

OPENAI_FIELDS = frozenset({"custom_id", "method", "url", "body"})
SIMPLE_FIELDS = frozenset({"custom_id", "prompt", "model", "system", "temperature", "max_tokens", "top_p", "seed"})
ENDPOINT = "/v1/chat/completions"
# The low end of the estimate assumes replies this long (or max_tokens, when shorter); the high end, the
# longest reply the line allows, which is also what the metered path holds.
LOW_REPLY_TOKENS = 100
MAX_CUSTOM_ID = 200


@dataclass
class Checked:
    """A line as validated: its request (None when invalid) or the problem, and what it may cost."""

    number: int
    custom_id: str
    request: dict[str, Any] | None = None
    problem: str = ""
    cache_key: str = ""
    prompt_tokens: int = 0
    low: Decimal = Decimal(0)
    high: Decimal = Decimal(0)


class LineProblem(Exception):
    pass


@dataclass
class Checker:
    """Checks the lines of one file for one user; remembers custom_ids seen and catalog rows read."""

    user: Any
    default_model: str = ""
    default_params: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    models: dict[str, CatalogModel | None] = field(default_factory=dict)
    policies: list[Any] | None = None

    def check(self, number: int, raw: str | dict[str, Any]) -> Checked:
        """The line `number` of the file (JSONL text, or a CSV row as a dict), checked."""
        custom_id = f"line-{number}"
        try:
            custom_id, body = self._body(number, raw)
            checked = self._checked(number, custom_id, body)
        except LineProblem as problem:
            return Checked(number=number, custom_id=custom_id[:MAX_CUSTOM_ID], problem=str(problem))
        except GatewayError as error:
            return Checked(number=number, custom_id=custom_id[:MAX_CUSTOM_ID], problem=error.message)
        self.seen[custom_id] = number
        return checked

    def _body(self, number: int, raw: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if isinstance(raw, dict):
            line = {key: value for key, value in raw.items() if value not in (None, "")}
        else:
            try:
                line = json.loads(raw)
            except (json.JSONDecodeError, RecursionError, ValueError) as error:
                raise LineProblem(f"Not valid JSON: {error}") from error
            if not isinstance(line, dict):
                raise LineProblem("Each line must be a JSON object.")
        openai = "body" in line or "url" in line or "method" in line
        allowed = OPENAI_FIELDS if openai else SIMPLE_FIELDS
        unknown = sorted(set(line) - allowed)
        if unknown:
            raise LineProblem(f"Unknown field(s): {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))}).")
        custom_id = self._custom_id(number, line, required=openai)
        return custom_id, (self._openai_body(line) if openai else self._simple_body(line))

    def _custom_id(self, number: int, line: dict[str, Any], *, required: bool) -> str:
        custom_id = line.get("custom_id")
        if custom_id is None and not required:
            custom_id = f"line-{number}"
        if not isinstance(custom_id, str) or not custom_id.strip():
            raise LineProblem("Missing custom_id: each line needs a unique custom_id string.")
        if len(custom_id) > MAX_CUSTOM_ID:
            raise LineProblem(f"custom_id is longer than {MAX_CUSTOM_ID} characters.")
        if custom_id in self.seen:
            raise LineProblem(f"Duplicate custom_id {custom_id!r} (first used on line {self.seen[custom_id]}).")
        return custom_id

    def _openai_body(self, line: dict[str, Any]) -> dict[str, Any]:
        if line.get("method", "POST") != "POST":
            raise LineProblem("method must be POST.")
        if line.get("url", ENDPOINT) != ENDPOINT:
            raise LineProblem(f"url must be {ENDPOINT} (the only endpoint batches run).")
        body = line.get("body")
        if not isinstance(body, dict) or not body:
            raise LineProblem("Missing body: an object with the chat request (model, messages).")
        if body.get("stream"):
            raise LineProblem("stream is not supported in a batch.")
        return {**self.default_params, **body}

    def _simple_body(self, line: dict[str, Any]) -> dict[str, Any]:
        prompt = line.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise LineProblem("Missing prompt: a line needs a non-empty prompt (or an OpenAI batch body).")
        messages = [{"role": "user", "content": prompt}]
        if line.get("system"):
            if not isinstance(line["system"], str):
                raise LineProblem("system must be a string.")
            messages.insert(0, {"role": "system", "content": line["system"]})
        body = {**self.default_params, "messages": messages}
        for name in ("model", "temperature", "max_tokens", "top_p", "seed"):
            if name in line:
                body[name] = _number(line[name]) if name != "model" else line[name]
        return body

    def _checked(self, number: int, custom_id: str, body: dict[str, Any]) -> Checked:
        if not body.get("model"):
            if not self.default_model:
                raise LineProblem("No model: the line names none and the job has no default model.")
            body["model"] = self.default_model
        chat = parse_chat_request(body).chat
        shape = shape_of(chat.messages, chat.max_tokens, chat.params)
        request = {**chat.params, "model": chat.model, "messages": chat.messages}
        if chat.max_tokens is not None:
            request["max_tokens"] = chat.max_tokens
        if chat.fallback_models:
            request["models"] = chat.fallback_models
        checked = Checked(number=number, custom_id=custom_id, request=request, prompt_tokens=shape.prompt_tokens)
        if request.get("temperature") == 0:
            checked.cache_key = cache_key(request)
        if chat.model in AUTO_MODELS or chat.model.startswith("orweb/auto:"):
            return checked  # auto picks its model per call, within the budget: not priced ahead
        model = self._allowed(chat.model)
        problem = misfit(model, shape)
        if problem is not None:
            raise LineProblem(problem.message)
        if chat.max_tokens and model.max_completion_tokens and chat.max_tokens > model.max_completion_tokens:
            raise LineProblem(
                f"max_tokens {chat.max_tokens} is beyond what {model.id!r} can write "
                f"(at most {model.max_completion_tokens})."
            )
        most = max_tokens_for(model, shape)
        checked.high = worst_case(model, shape.prompt_tokens, most, shape.images)
        checked.low = estimate(model, shape.prompt_tokens, min(most, LOW_REPLY_TOKENS))
        return checked

    def _allowed(self, model_id: str) -> CatalogModel:
        if model_id not in self.models:
            self.models[model_id] = CatalogModel.objects.filter(pk=model_id).first()
        if self.policies is None:
            self.policies = policies_of(self.user)
        return check_model_allowed(self.user, model_id, self.models[model_id], self.policies)


def _number(value: Any) -> Any:
    """A CSV cell is text: numbers in the parameter columns are read as numbers."""
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def cache_key(request: dict[str, Any]) -> str:
    """The identity of a deterministic request (temperature 0): model, messages and every parameter."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def is_batchable(model: CatalogModel | None) -> bool:
    """Whether OpenRouter's Batch API (economy mode) serves the model: text in (no images), text out, a
    known price."""
    return (
        model is not None
        and model.price_known
        and model.prompt_price >= 0
        and "image" not in model.input_modalities
        and list(model.output_modalities) == ["text"]
    )


def batchable_ids(model_ids: list[str]) -> set[str]:
    """Which of these models the Batch API serves (the upload form offers economy mode for those)."""
    return {model.pk for model in CatalogModel.objects.filter(pk__in=model_ids) if is_batchable(model)}
