"""The one table of request parameters: what every caller of the metered path may send upstream.

`/v1` validates a request body with `check`, and admission checks `ChatRequest.params` with it again, so
chat, /v1 and batch lines all follow the same rule and nothing outside it reaches OpenRouter. A request
field is one of:

* passed upstream after validation (`PASS_THROUGH`): `temperature` (0–2), `top_p` (0–1),
  `frequency_penalty` / `presence_penalty` (-2–2), `repetition_penalty` (0–2), `min_p` / `top_a` (0–1),
  `seed` (an integer), `stop` (a string or up to 4), `tools`, `tool_choice`, `response_format`,
  `reasoning` (an object), `modalities` (`text`, `image`), `cache_control` (`{"type": "ephemeral", "ttl"?}`),
  `session_id` / `prompt_cache_key` (strings), `image_config` (an object), `dimensions` (embeddings: an
  integer), and unchecked: `encoding_format`,
  `parallel_tool_calls`, `top_k`, `logit_bias`, `logprobs`, `top_logprobs`, `verbosity`.
* `provider`: routing preferences pass (`PROVIDER_KEYS`, `sort` one of `PROVIDER_SORTS`), `order` and `only`
  included: when they (or a `:nitro` / `:floor` variant) may pick a dearer provider (`widens_routing`),
  admission sends `provider.max_price` no higher than the prices the budget hold was computed from
  (`capped_provider`), so no provider OpenRouter picks can cost more than was held.
* `plugins`: `file-parser` (with `pdf.engine` one of `openrouter.fees.PDF_ENGINES`) and `web`, whose
  per-use fees the hold covers (`gateway.fees`); any other plugin is refused (400). Who may search the
  web at all (the `web` plugin or the `openrouter:web_search` tool) is policy's to say
  (`gateway.policy.check_web_search`).
* refused (400, `REFUSED`), because honouring them would change where the request goes or who pays, and
  dropping them silently would hide that: `api_key`, `base_url`, `api_base`, `baseURL`, `url`, `endpoint`,
  `n` other than 1.
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
from decimal import Decimal, InvalidOperation
from typing import Any

from openrouter.fees import PDF_ENGINES, WEB_SEARCH_TOOL
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
    "order",
    "only",
    "preferred_max_latency",
    "preferred_min_throughput",
)
PROVIDER_SORTS = ("price", "throughput", "latency")
MAX_PRICE_KEYS = ("prompt", "completion", "request", "image")
PLUGINS = ("file-parser", "web")
MODALITIES = ("text", "image")
CACHE_TTLS = ("5m", "1h")
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
        if isinstance(tool, dict) and tool.get("type") == WEB_SEARCH_TOOL:
            _web_search(f"{name}[{i}]", tool)
            continue
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"{name}[{i}].type", f"expected 'function' or '{WEB_SEARCH_TOOL}'")
        tool_name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(tool_name, str) or not tool_name:
            raise invalid(f"{name}[{i}].function.name", "expected a non-empty string")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise invalid(f"{name}[{i}].function.parameters", "expected a JSON Schema object")


def _web_search(name: str, options: dict[str, Any]) -> None:
    """The web search server tool (or the `web` plugin): `max_results` a small count, a known engine."""
    results = options.get("max_results")
    if results is not None and not (is_int(results) and 1 <= results <= MAX_SEARCH_RESULTS):
        raise invalid(f"{name}.max_results", f"expected an integer from 1 to {MAX_SEARCH_RESULTS}")
    if options.get("engine") not in (None, "native", "exa"):
        raise invalid(f"{name}.engine", "expected 'native' or 'exa'")


MAX_SEARCH_RESULTS = 25


def _plugins(name: str, plugins: Any) -> None:
    if not isinstance(plugins, list):
        raise invalid(name, "expected a list")
    for i, plugin in enumerate(plugins):
        plugin_id = plugin.get("id") if isinstance(plugin, dict) else None
        if plugin_id not in PLUGINS:
            raise invalid(
                f"{name}[{i}].id", f"expected one of {', '.join(PLUGINS)} (others are billed outside the hold)"
            )
        if plugin_id == "web":
            _web_search(f"{name}[{i}]", plugin)
            continue
        pdf = plugin.get("pdf", {})
        if not isinstance(pdf, dict) or pdf.get("engine", PDF_ENGINES[0]) not in PDF_ENGINES:
            raise invalid(f"{name}[{i}].pdf.engine", f"expected one of {', '.join(PDF_ENGINES)}")


def _modalities(name: str, value: Any) -> None:
    if not (isinstance(value, list) and value and all(m in MODALITIES for m in value)):
        raise invalid(name, f"expected a list of {', '.join(MODALITIES)}")


def check_cache_control(name: str, value: Any) -> None:
    """`{"type": "ephemeral", "ttl"?: "5m" | "1h"}`, top level or on a content part."""
    if not isinstance(value, dict) or value.get("type") != "ephemeral":
        raise invalid(f"{name}.type", "expected 'ephemeral'")
    if value.get("ttl", CACHE_TTLS[0]) not in CACHE_TTLS:
        raise invalid(f"{name}.ttl", f"expected one of {', '.join(CACHE_TTLS)}")


def _string(name: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > 256:
        raise invalid(name, "expected a string of at most 256 characters")


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
    "plugins": _plugins,
    "modalities": _modalities,
    "cache_control": check_cache_control,
    "session_id": _string,
    "prompt_cache_key": _string,
    "image_config": _object,
    "dimensions": _integer,
    "encoding_format": _unchecked,
}


def _provider(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("provider", "expected an object")
    for name in value:
        if name not in PROVIDER_KEYS:
            raise invalid(f"provider.{name}", _ROUTING)
    if value.get("sort", PROVIDER_SORTS[0]) not in PROVIDER_SORTS:
        raise invalid("provider.sort", f"expected one of {', '.join(PROVIDER_SORTS)}")
    for name in ("order", "only", "ignore"):
        names = value.get(name, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise invalid(f"provider.{name}", "expected a list of provider names")
    max_price = value.get("max_price", {})
    if not isinstance(max_price, dict) or any(k not in MAX_PRICE_KEYS for k in max_price):
        raise invalid("provider.max_price", f"expected an object with {', '.join(MAX_PRICE_KEYS)}")
    for name, price in max_price.items():
        if _usd(price) is None:
            raise invalid(f"provider.max_price.{name}", "expected a non-negative number of USD per million tokens")
    return value


def _usd(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def widens_routing(provider: dict[str, Any] | None) -> bool:
    """Whether routing preferences may pick a provider dearer than the default, cheapest-first choice."""
    if not provider:
        return False
    widening = ("order", "only", "preferred_max_latency", "preferred_min_throughput")
    return any(name in provider for name in widening) or provider.get("sort", "price") != "price"


def capped_provider(provider: dict[str, Any] | None, held: dict[str, Decimal]) -> dict[str, Any]:
    """`provider` with `max_price` lowered to `held` (USD per million tokens, per request, per image) where it
    is higher or unset: OpenRouter refuses every provider above it, so none can cost more than the hold."""
    provider = dict(provider or {})
    asked = {name: _usd(price) for name, price in (provider.get("max_price") or {}).items()}
    provider["max_price"] = {
        name: min(limit, asked_price) if (asked_price := asked.get(name)) is not None else limit
        for name, limit in held.items()
    }
    return provider


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
