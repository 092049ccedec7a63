"""The one table of request parameters: what every caller of the metered path may send upstream.

`/v1` validates a request body with `check`, and admission checks `ChatRequest.params` with it again, so
chat, /v1 and batch lines all follow the same rule and nothing outside it reaches OpenRouter. A request
field is one of:

* passed upstream after validation (`PASS_THROUGH`): `temperature` (0–2), `top_p` (0–1),
  `frequency_penalty` / `presence_penalty` (-2–2), `repetition_penalty` (0–2), `min_p` / `top_a` (0–1),
  `seed` (an integer), `stop` (a string or up to 4), `tools`, `tool_choice`, `response_format`,
  `reasoning` (an object), and unchecked: `parallel_tool_calls`, `top_k`, `logit_bias`, `logprobs`,
  `top_logprobs`, `verbosity`.
* `provider`: only preferences that *narrow* routing pass (`PROVIDER_KEYS`: `allow_fallbacks`,
  `require_parameters`, `data_collection`, `zdr`, `quantizations`, `ignore`, `max_price`, `sort: "price"`).
  `order`, `only`, any other key and any other `sort` are refused (400): they pick a provider that may
  cost more than the catalog price the budget hold was computed from.
* refused (400, `REFUSED`), because honouring them would change where the request goes or who pays, and
  dropping them silently would hide that: `api_key`, `base_url`, `api_base`, `baseURL`, `url`, `endpoint`,
  `plugins` (web search and file parsing are billed per use, outside the hold), `n` other than 1.
* part of the request itself, read by whoever builds the `ChatRequest` and never passed
  on as a parameter: `model`, `models` (the fallback list, checked against policy like `model`),
  `messages`, `max_tokens` / `max_completion_tokens`, `stream`, `stream_options`, `n`.
* stripped (`STRIPPED`): `user` (the gateway sends its own stable id for the caller), `transforms` (it
  drops messages upstream, so our prompt count and context check would no longer describe what is sent),
  `route` (the gateway picks the fallback chain), `usage` (a no-op upstream), and every field not listed
  above (OpenAI fields OpenRouter ignores, such as `store`, `metadata`, `service_tier`): nothing unknown
  goes upstream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orweb.errors import InvalidRequest

Check = Callable[[str, Any], None]

_ELSEWHERE = "not accepted: orweb decides where requests go and who pays for them"
_ROUTING = (
    "not allowed here: it could route to a provider that costs more than the catalog price your budget is held at"
)

REFUSED: dict[str, str] = {
    "api_key": _ELSEWHERE,
    "base_url": _ELSEWHERE,
    "api_base": _ELSEWHERE,
    "baseURL": _ELSEWHERE,
    "url": _ELSEWHERE,
    "endpoint": _ELSEWHERE,
    "plugins": "not accepted: plugins (web search, file parsing) are billed per use, outside the budget hold",
}
STRIPPED: dict[str, str] = {
    "user": "the gateway sends its own stable id for the caller",
    "transforms": "it would drop messages the prompt count and context check were made for",
    "route": "the gateway picks the fallback chain",
    "usage": "a no-op upstream",
}
PROVIDER_KEYS = (
    "allow_fallbacks",
    "require_parameters",
    "data_collection",
    "zdr",
    "quantizations",
    "ignore",
    "max_price",
    "sort",
)
PROVIDER_SORTS = ("price",)
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def invalid(param: str, message: str) -> InvalidRequest:
    """The 400 for one field, naming it."""
    return InvalidRequest(f"Invalid '{param}': {message}", param=param)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(low: float, high: float) -> Check:
    def check(name: str, value: Any) -> None:
        if not (isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high):
            raise invalid(name, f"expected a number from {low} to {high}")

    return check


def _unchecked(name: str, value: Any) -> None:
    """Passed as given: OpenRouter validates it, and no value changes the route or the price."""


def _integer(name: str, value: Any) -> None:
    if not is_int(value):
        raise invalid(name, "expected an integer")


def _object(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise invalid(name, "expected an object")


def _stop(name: str, value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if not (isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value)):
        raise invalid(name, "expected a string or a list of up to 4 strings")


def _tools(name: str, tools: Any) -> None:
    if not isinstance(tools, list):
        raise invalid(name, "expected a list")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"{name}[{i}].type", "expected 'function'")
        tool_name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(tool_name, str) or not tool_name:
            raise invalid(f"{name}[{i}].function.name", "expected a non-empty string")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise invalid(f"{name}[{i}].function.parameters", "expected a JSON Schema object")


def _tool_choice(name: str, choice: Any) -> None:
    if choice in ("none", "auto", "required"):
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise invalid(name, "expected 'none', 'auto', 'required' or a named function")


def _response_format(name: str, value: Any) -> None:
    if not isinstance(value, dict) or value.get("type") not in RESPONSE_FORMATS:
        raise invalid(f"{name}.type", f"expected one of {', '.join(RESPONSE_FORMATS)}")
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            raise invalid(f"{name}.json_schema.name", "expected a string")


PASS_THROUGH: dict[str, Check] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "frequency_penalty": _number(-2, 2),
    "presence_penalty": _number(-2, 2),
    "seed": _integer,
    "stop": _stop,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _unchecked,
    "response_format": _response_format,
    "reasoning": _object,
    "top_k": _unchecked,
    "repetition_penalty": _number(0, 2),
    "min_p": _number(0, 1),
    "top_a": _number(0, 1),
    "logit_bias": _unchecked,
    "logprobs": _unchecked,
    "top_logprobs": _unchecked,
    "verbosity": _unchecked,
}


def _provider(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("provider", "expected an object")
    for name in value:
        if name not in PROVIDER_KEYS:
            raise invalid(f"provider.{name}", _ROUTING)
    if value.get("sort", PROVIDER_SORTS[0]) not in PROVIDER_SORTS:
        raise invalid("provider.sort", "only 'price' is allowed")
    return value


def check(fields: dict[str, Any]) -> dict[str, Any]:
    """The parameters to send upstream from `fields` (a request body, or `ChatRequest.params`): refused
    fields and invalid values raise InvalidRequest naming the field; stripped and unknown fields are
    dropped. Checking what it returned returns it unchanged."""
    for name, reason in REFUSED.items():
        if name in fields:
            raise invalid(name, reason)
    if fields.get("n", 1) != 1:
        raise invalid("n", "only n=1 is supported")
    params: dict[str, Any] = {}
    for name, check_value in PASS_THROUGH.items():
        if name in fields:
            check_value(name, fields[name])
            if fields[name] is not None:
                params[name] = fields[name]
    if "provider" in fields:
        params["provider"] = _provider(fields["provider"])
    return params
