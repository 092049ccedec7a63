"""Who may call which model, and whether a request fits the model it is sent to.

- Admins (staff or superusers) may call every callable model.
- A member of groups that have a GroupPolicy may call the union of what those policies allow: the
  explicit `allowed_models` list, plus, for `allow_by_rule` policies, every model whose prompt and
  completion prices are both within `max_price_per_million` and that has every `required_capabilities`
  entry ("tools", "image" or another input modality, or any supported parameter name).
- A user in no group with a policy may call everything callable when `ORWEB_DEFAULT_ALLOW_ALL` is true
  (the default: a small team starts open and adds policies to restrict), and nothing otherwise.
- Web search (the `openrouter:web_search` tool or the `web` plugin) is for users with at least one group
  whose policy allows it (`allow_web_search`), for admins, and for users in no group with a policy; and for
  nobody when `ORWEB_ALLOW_WEB_SEARCH` is false. The deprecated `:online` variant is refused for everyone:
  its search would not be seen by the hold, so callers are pointed at the tool.

"Callable" means available upstream and with a known price: a model priced as unknown can't be held
against a budget, so nobody may call it until an admin sets a price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from billing.pricing import NO_FEES, Fees
from catalog.models import CatalogModel
from gateway.fees import request_fees
from gateway.models import GroupPolicy
from gateway.tokens import count_prompt_tokens, count_tools_tokens
from orweb.errors import InvalidRequest, ModelNotAllowed, ModelUnavailable

MODALITIES = ("image", "file", "audio", "video", "text")


@dataclass(frozen=True)
class Shape:
    """What a request needs from a model: prompt size, output size, images, tools, per-use fees."""

    prompt_tokens: int
    max_tokens: int | None
    images: int
    uses_tools: bool
    fees: Fees = NO_FEES
    embeddings: bool = False

    @property
    def has_images(self) -> bool:
        return self.images > 0


def shape_of(messages: Any, max_tokens: Any, params: dict[str, Any], *, embeddings: bool = False) -> Shape:
    """Validate the parts of a request the gateway relies on, and measure it."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list of messages.", param="messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest("Every message needs a `role`.", param="messages")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0):
        raise InvalidRequest("`max_tokens` must be a positive integer.", param="max_tokens")
    tools = [tool for tool in params.get("tools") or () if not _server_tool(tool)]
    images = sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") in ("image_url", "input_image")
    )
    prompt_tokens = count_prompt_tokens(messages) + count_tools_tokens(tools)
    return Shape(
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        images=images,
        uses_tools=bool(tools),
        fees=request_fees(messages, params, prompt_tokens),
        embeddings=embeddings,
    )


def _server_tool(tool: Any) -> bool:
    """OpenRouter's own tools (`openrouter:web_search`) run upstream: the model needs no tool support."""
    return isinstance(tool, dict) and str(tool.get("type", "")).startswith("openrouter:")


def is_unrestricted(user: Any) -> bool:
    return bool(user.is_staff or user.is_superuser)


def _policy_q(policy: GroupPolicy) -> Q:
    allowed = Q(pk__in=list(policy.allowed_models or []))
    if not policy.allow_by_rule:
        return allowed
    rule = Q()
    cap = policy.price_cap_per_token
    if cap is not None:
        rule &= Q(prompt_price__lte=cap, completion_price__lte=cap)
    for capability in policy.required_capabilities or []:
        if capability in MODALITIES:
            rule &= Q(input_modalities__contains=[capability])
        else:
            rule &= Q(supported_parameters__contains=[capability])
    return allowed | rule


def policies_of(user: Any) -> list[GroupPolicy]:
    """The policies of the user's groups (none are read for admins: they are unrestricted)."""
    if is_unrestricted(user):
        return []
    return list(GroupPolicy.objects.filter(group__user=user))


def allowed_models(user: Any, policies: list[GroupPolicy] | None = None) -> QuerySet[CatalogModel]:
    """Every model this user may call now (for pickers, /v1/models, and the gateway's own check).

    `policies`, when given, are the user's `policies_of` already read (one query less per model checked).
    """
    models = CatalogModel.objects.callable()
    if is_unrestricted(user):
        return models
    if policies is None:
        policies = policies_of(user)
    if not policies:
        return models if getattr(settings, "ORWEB_DEFAULT_ALLOW_ALL", True) else models.none()
    union = Q(pk__in=[])
    for policy in policies:
        union |= _policy_q(policy)
    return models.filter(union)


def policy_allows(policy: GroupPolicy, model: CatalogModel) -> bool:
    """`_policy_q` for one callable model already read: whether this policy lets it through."""
    if model.pk in (policy.allowed_models or []):
        return True
    if not policy.allow_by_rule:
        return False
    cap = policy.price_cap_per_token
    if cap is not None and not (model.prompt_price <= cap and model.completion_price <= cap):
        return False
    for capability in policy.required_capabilities or []:
        offered = model.input_modalities if capability in MODALITIES else model.supported_parameters
        if not isinstance(offered, list) or capability not in offered:
            return False
    return True


def check_model_allowed(
    user: Any, model_id: str, model: CatalogModel | None, policies: list[GroupPolicy] | None = None
) -> CatalogModel:
    """The model's catalog row (`model`, None when not in the catalog) if this user may call it;
    ModelUnavailable / ModelNotAllowed otherwise. `policies`: the user's `policies_of`, when already read."""
    if model is None or not model.is_available:
        raise ModelUnavailable(f"The model {model_id!r} is not available.", param="model")
    if not model.price_known:
        raise ModelUnavailable(
            f"The model {model_id!r} has no known price; an admin must set one before it can be used.",
            param="model",
        )
    if is_unrestricted(user):
        return model
    if policies is None:
        policies = policies_of(user)
    if policies:
        allowed = any(policy_allows(policy, model) for policy in policies)
    else:
        allowed = getattr(settings, "ORWEB_DEFAULT_ALLOW_ALL", True)
    if not allowed:
        raise ModelNotAllowed(f"You are not allowed to use the model {model_id!r}.", param="model")
    return model


def web_search_allowed(user: Any, policies: list[GroupPolicy] | None = None) -> bool:
    """Whether this user may search the web (the chat page hides its switch when not). `policies`: the
    user's `policies_of`, when already read."""
    if not getattr(settings, "ORWEB_ALLOW_WEB_SEARCH", True):
        return False
    if is_unrestricted(user):
        return True
    if policies is None:
        policies = policies_of(user)
    if not policies:
        return bool(getattr(settings, "ORWEB_DEFAULT_ALLOW_ALL", True))
    return any(policy.allow_web_search for policy in policies)


def check_web_search(user: Any, model_ids: list[str], shape: Shape, policies: list[GroupPolicy] | None = None) -> None:
    """Refuse, before anything is held or sent, a request that searches the web when this user may not
    (ModelNotAllowed, 403), and any `:online` model id (InvalidRequest, 400: use the tool instead)."""
    for model_id in model_ids:
        if model_id.endswith(":online"):
            raise InvalidRequest(
                f"The ':online' variant ({model_id!r}) is not accepted: ask for web search with "
                'tools: [{"type": "openrouter:web_search"}] instead.',
                param="model",
            )
    if not shape.fees.web_searches or web_search_allowed(user, policies):
        return
    if not getattr(settings, "ORWEB_ALLOW_WEB_SEARCH", True):
        raise ModelNotAllowed("Web search is turned off for this workspace.")
    raise ModelNotAllowed("Web search is turned off for you: none of your groups' policies allows it.")


def misfit(model: CatalogModel, shape: Shape) -> InvalidRequest | None:
    """Why this request can't go to this model (embeddings or not, images, tools, context), or None if it fits."""
    makes_embeddings = "embeddings" in (model.output_modalities or [])
    if makes_embeddings and not shape.embeddings:
        return InvalidRequest(f"The model {model.id!r} makes embeddings: use /v1/embeddings.", param="model")
    if shape.embeddings and not makes_embeddings:
        return InvalidRequest(f"The model {model.id!r} is not an embedding model.", param="model")
    if shape.has_images and not model.supports_images:
        return InvalidRequest(f"The model {model.id!r} does not accept images.", param="messages")
    if shape.uses_tools and not model.supports_tools:
        return InvalidRequest(f"The model {model.id!r} does not support tools.", param="tools")
    try:
        max_tokens_for(model, shape)
    except InvalidRequest as error:
        return error
    return None


def max_tokens_for(model: CatalogModel, shape: Shape) -> int:
    """The `max_tokens` to send: the caller's value (or the default) capped by the model's output limit.

    Without an explicit value the default also shrinks to fit the context window; an explicit value
    that doesn't fit is an error naming `max_tokens`. Embeddings have no output (and each input is checked
    against the context upstream, where a refusal costs nothing).
    """
    if shape.embeddings:
        return 1
    wanted = shape.max_tokens or settings.OPENROUTER_DEFAULT_MAX_TOKENS
    if model.max_completion_tokens:
        wanted = min(wanted, model.max_completion_tokens)
    if model.context_length:
        room = model.context_length - shape.prompt_tokens
        if room <= 0:
            raise InvalidRequest(
                f"The prompt (about {shape.prompt_tokens} tokens) does not fit the context of "
                f"{model.id!r} ({model.context_length} tokens).",
                param="messages",
            )
        if wanted > room:
            if shape.max_tokens is not None:
                raise InvalidRequest(
                    f"The prompt (about {shape.prompt_tokens} tokens) plus max_tokens ({wanted}) exceeds the "
                    f"context of {model.id!r} ({model.context_length} tokens).",
                    param="max_tokens",
                )
            wanted = room
    return wanted


def check_fits(model: CatalogModel, shape: Shape) -> int:
    """Raise InvalidRequest if the request doesn't fit the model; return the max_tokens to send."""
    error = misfit(model, shape)
    if error is not None:
        raise error
    return max_tokens_for(model, shape)
