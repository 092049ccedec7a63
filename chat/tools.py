"""Server-side tools a conversation can switch on: their JSON schemas for the model and what they do.

Tools run inside the stream runner with arguments written by a model, so each one treats its input as
hostile: the calculator parses arithmetic with `ast` (no eval, bounded sizes), look-ups are read-only.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from catalog.models import CatalogModel
from orweb.money import plain_usd
from orweb.text import pg_text

MAX_EXPRESSION = 200
MAX_EXPONENT = 100
MAX_MAGNITUDE = Decimal("1e100")


class ToolError(Exception):
    """The tool couldn't answer; the message goes back to the model as the tool's result."""


@dataclass(frozen=True)
class Tool:
    name: str
    label: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], str]

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry for this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _evaluate(node: ast.AST) -> Decimal:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return Decimal(str(node.value))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"Exponents are limited to ±{MAX_EXPONENT}.")
        result = _BINARY[type(node.op)](left, right)
        if abs(result) > MAX_MAGNITUDE:
            raise ToolError("The result is too large.")
        return result
    raise ToolError("Only numbers, + - * / // % ** and parentheses are allowed.")


def calculate(expression: str) -> str:
    """Exact decimal arithmetic on `expression`, e.g. "(2+3)*4.5" → "22.5"."""
    expression = expression.strip().replace("^", "**")
    if not expression:
        raise ToolError("Give an expression, e.g. 2*(3+4).")
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"Expressions are limited to {MAX_EXPRESSION} characters.")
    try:
        value = _evaluate(ast.parse(expression, mode="eval"))
    except SyntaxError as exc:
        raise ToolError("That is not an arithmetic expression.") from exc
    except ZeroDivisionError as exc:
        raise ToolError("Division by zero.") from exc
    except InvalidOperation as exc:
        raise ToolError("The result is undefined.") from exc
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def _calculator(args: dict[str, Any]) -> str:
    return calculate(str(args.get("expression", "")))


def _current_time(args: dict[str, Any]) -> str:
    name = str(args.get("timezone") or "UTC")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"Unknown time zone: {name[:60]}") from exc
    return datetime.now(UTC).astimezone(zone).isoformat(timespec="seconds")


def _model_info(args: dict[str, Any]) -> str:
    model_id = str(args.get("model", "")).strip()
    model = CatalogModel.objects.filter(pk=model_id).first() if model_id else None
    if model is None:
        raise ToolError(f"No model {model_id[:100]!r} in the catalog.")

    return json.dumps(
        {
            "model": model.id,
            "name": model.name,
            "context_length": model.context_length,
            "prompt_usd_per_million_tokens": plain_usd(model.prompt_price_per_million),
            "completion_usd_per_million_tokens": plain_usd(model.completion_price_per_million),
            "image_input": model.supports_images,
            "available": model.is_available,
        }
    )


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            name="calculator",
            label="Calculator",
            description="Evaluate an arithmetic expression exactly (+ - * / // % ** and parentheses).",
            parameters={
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "e.g. (12.5*4)/3"}},
                "required": ["expression"],
            },
            run=_calculator,
        ),
        Tool(
            name="current_time",
            label="Current time",
            description="The current date and time, in an IANA time zone (default UTC).",
            parameters={
                "type": "object",
                "properties": {"timezone": {"type": "string", "description": "e.g. Europe/Paris"}},
            },
            run=_current_time,
        ),
        Tool(
            name="model_info",
            label="Model price and context",
            description="Look up an OpenRouter model's price per million tokens and context length.",
            parameters={
                "type": "object",
                "properties": {"model": {"type": "string", "description": "model id, e.g. openai/gpt-4o"}},
                "required": ["model"],
            },
            run=_model_info,
        ),
    )
}


def schemas(names: list[str]) -> list[dict[str, Any]]:
    """The `tools` request field for the enabled tool names (unknown names ignored)."""
    return [TOOLS[name].schema() for name in names if name in TOOLS]


def run_tool(name: str, arguments: str) -> str:
    """Run one call as the model asked for it. Never raises: a failure is the result the model sees. The
    result is stored with the reply, so it is made storable (a model can put NUL in a tool's arguments and
    the tool may echo it back)."""
    return pg_text(_run(name, arguments))


def run_offered(offered: Collection[str], name: str, arguments: str) -> str:
    """`run_tool` for a call a model made in a conversation: a model may ask for any tool by name, but only
    one the conversation offered (enabled) runs; any other is answered as an error."""
    if name not in offered:
        return pg_text(f"error: the tool {name[:60]!r} is not enabled in this conversation")
    return run_tool(name, arguments)


def _run(name: str, arguments: str) -> str:
    tool = TOOLS.get(name)
    if tool is None:
        return f"error: no tool named {name[:60]!r}"
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return "error: the arguments are not valid JSON"
    if not isinstance(args, dict):
        return "error: the arguments must be a JSON object"
    try:
        return tool.run(args)
    except ToolError as exc:
        return f"error: {exc}"
