"""Chat pages: transport only. Reads come from `chat.queries`, changes from `chat.conversations`.

Every view that takes an id looks it up through the requesting user, so another user's id is a 404.
State changes are POST only (CSRF-checked); streaming itself happens over the websocket.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from billing.spend import spend_summary
from chat import conversations, estimates, history, queries, surface, uploads
from chat.conversations import ChatActionError
from chat.forms import CompareForm, PresetForm, RenameForm, SettingsForm, tool_choices
from chat.models import Conversation, Preset
from gateway import policy
from orweb.htmx import HtmxHttpRequest, wants_partial
from orweb.text import refusal, storable

PAGE_SIZE = 50


def _page(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    context.setdefault("spend", spend_summary(request.user))
    return render(request, template, context, status=status)


@login_required
@require_GET
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def index(request: HtmxHttpRequest) -> HttpResponse:
    """The conversation list; a search PostgreSQL can't run (a NUL in it) is a 400 saying why, over the
    whole list."""
    q, status = request.GET.get("q", ""), 200
    if not storable(q):
        if wants_partial(request):
            return HttpResponse(refusal("A search"), status=400, content_type="text/plain; charset=utf-8")
        messages.error(request, refusal("A search"))
        q, status = "", 400
    page = Paginator(queries.conversation_list(request.user, q), PAGE_SIZE).get_page(request.GET.get("page"))
    template = "chat/index.html" + ("#results" if wants_partial(request) else "")
    return _page(request, template, {"conversations": page.object_list, "page": page, "q": q}, status=status)


def _settings_initial(request: HttpRequest) -> dict[str, Any]:
    preset_id = request.GET.get("preset", "")
    if not preset_id.isdigit():
        # "Start a chat" on a model's page names the model; one this user may not use is ignored.
        model = request.GET.get("model", "")
        return {"model": model if model in queries.model_ids(request.user) else "orweb/auto"}
    preset = queries.owned_preset(request.user, int(preset_id))
    return {name: getattr(preset, name) for name in Preset.SETTINGS}


@login_required
@require_http_methods(["GET", "POST"])
def new(request: HttpRequest) -> HttpResponse:
    allowed = queries.model_ids(request.user)
    if request.method == "POST":
        form = SettingsForm(request.POST, allowed=allowed)
        if form.is_valid():
            convo = conversations.create_conversation(request.user, **form.cleaned_data)
            return redirect("chat:conversation", pk=convo.pk)
        status = 400
    else:
        form = SettingsForm(initial=_settings_initial(request), allowed=allowed)
        status = 200
    return _page(request, "chat/new.html", _new_chat_context(request, form), status=status)


def _new_chat_context(request: HttpRequest, form: SettingsForm) -> dict[str, Any]:
    return {
        "form": form,
        "models": queries.model_choices(request.user),
        "presets": Preset.objects.filter(user=request.user),
        "chosen_tools": set(form["tools"].value() or []),
        "chosen_fallbacks": set(form["fallback_models"].value() or []),
        "web_search_allowed": policy.web_search_allowed(request.user),
    }


@login_required
@require_GET
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def conversation(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    convo = queries.owned_conversation(request.user, pk)
    if convo.compare_group:
        return redirect("chat:compare_view", group=convo.compare_group)
    partial = wants_partial(request)
    template = "chat/conversation.html" + ("#transcript" if partial else "")
    context: dict[str, Any] = {"conversation": convo, "messages_view": queries.transcript(convo)}
    if not partial:
        context["models"] = queries.model_choices(request.user)
        context["tool_choices"] = tool_choices()
        context["features"] = surface.features_of(convo.model)
        context["reasoning_choices"] = surface.REASONING_CHOICES
        context["pdf_engines"] = surface.PDF_ENGINE_CHOICES
        context["web_search_allowed"] = policy.web_search_allowed(request.user)
    return _page(request, template, context)


@login_required
@require_POST
def update_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Change the model, prompt, parameters, tools or fallbacks; they apply from the next reply on."""
    convo = queries.owned_conversation(request.user, pk)
    form = SettingsForm(request.POST, allowed=queries.model_ids(request.user))
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field.replace('_', ' ').capitalize()}: {' '.join(errors)}")
        return redirect("chat:conversation", pk=pk)
    for field, value in form.cleaned_data.items():
        setattr(convo, field, value)
    convo.save(update_fields=[*form.cleaned_data, "updated"])
    messages.success(request, "Settings saved; they apply from the next reply on.")
    return redirect("chat:conversation", pk=pk)


@login_required
@require_POST
def rename(request: HttpRequest, pk: int) -> HttpResponse:
    convo = queries.owned_conversation(request.user, pk)
    form = RenameForm(request.POST)
    if not form.is_valid():
        return HttpResponse("A title is 1 to 200 characters.", status=400)
    conversations.rename(convo, form.cleaned_data["title"])
    if request.POST.get("next") == "list":
        return redirect("chat:index")
    return redirect("chat:conversation", pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks "are you sure?", POST deletes: a link alone can never delete anything."""
    convo = queries.owned_conversation(request.user, pk)
    if request.method == "POST":
        conversations.delete(convo)
        return redirect("chat:index")
    return _page(request, "chat/confirm_delete.html", {"conversation": convo})


@login_required
@require_POST
def upload_attachment(request: HttpRequest, pk: int) -> JsonResponse:
    convo = queries.owned_conversation(request.user, pk)
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse({"error": "Choose a file to attach."}, status=400)
    try:
        attachment = uploads.store_upload(request.user, convo, upload.name, upload)
    except uploads.UploadRejected as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(
        {"id": attachment.pk, "name": attachment.name, "size": attachment.size, "mime": attachment.mime}
    )


@login_required
@require_GET
def attachment(request: HttpRequest, pk: int) -> HttpResponse:
    """An attachment (an upload, or an image a model made), to its owner only; served with its checked type,
    never sniffed, and sandboxed: images inline, files as downloads."""
    item = queries.owned_attachment(request.user, pk)
    response = HttpResponse(bytes(item.data), content_type=item.mime)
    disposition = "inline" if item.mime.startswith("image/") else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{uploads.download_name(item.name)}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
def export(request: HttpRequest, pk: int) -> HttpResponse:
    """The shown branch as a Markdown file; the models' thinking only with `?reasoning=1`."""
    convo = queries.owned_conversation(request.user, pk)
    with_reasoning = request.GET.get("reasoning") == "1"
    lines = [f"# {convo.title or 'Conversation'}", "", f"Model: {convo.model}", ""]
    for message in conversations.branch_path(convo):
        lines += [f"## {message.role}", ""]
        if with_reasoning and message.reasoning:
            lines += ["### Thinking", "", message.reasoning, "", "### Answer", ""]
        lines += [message.content, ""]
    response = HttpResponse("\n".join(lines), content_type="text/markdown; charset=utf-8")
    name = slugify(convo.title) or f"conversation-{convo.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}.md"'
    return response


@login_required
@require_POST
def save_preset(request: HttpRequest) -> HttpResponse:
    """Saved from the new-chat form (its second submit button); errors come back to that form."""
    form = PresetForm(request.POST, allowed=queries.model_ids(request.user))
    if not form.is_valid():
        return _page(request, "chat/new.html", _new_chat_context(request, form), status=400)
    preset, _ = Preset.objects.update_or_create(
        user=request.user,
        name=form.cleaned_data["name"],
        defaults={name: form.cleaned_data[name] for name in Preset.SETTINGS},
    )
    messages.success(request, f"Preset “{preset.name}” saved.")
    return redirect(f"{reverse('chat:new')}?preset={preset.pk}")


@login_required
@require_POST
def delete_preset(request: HttpRequest, pk: int) -> HttpResponse:
    queries.owned_preset(request.user, pk).delete()
    return redirect("chat:new")


@login_required
@require_http_methods(["GET", "POST"])
def compare(request: HttpRequest) -> HttpResponse:
    allowed = queries.model_ids(request.user)
    if request.method == "POST":
        form = CompareForm(request.POST, allowed=allowed)
        if form.is_valid():
            try:
                started = conversations.start_compare(
                    request.user, form.cleaned_data["prompt"], form.cleaned_data["models"]
                )
            except ChatActionError as exc:
                form.add_error("prompt", exc.message)
            else:
                return redirect("chat:compare_view", group=started[0][0].compare_group)
        status = 400
    else:
        form = CompareForm(allowed=allowed)
        status = 200
    return _page(
        request,
        "chat/compare.html",
        {
            "form": form,
            "models": queries.model_choices(request.user),
            "chosen": set(form["models"].value() or []),
        },
        status=status,
    )


@login_required
@require_GET
def compare_view(request: HttpRequest, group: str) -> HttpResponse:
    columns = Conversation.objects.filter(user=request.user, compare_group=group).order_by("pk")
    if not columns:
        raise Http404("No such comparison.")
    return _page(
        request,
        "chat/compare_run.html",
        {
            "columns": [(c, queries.transcript(c)) for c in columns],
        },
    )


@login_required
@require_POST
def keep(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Continue with this one": the column becomes a normal conversation, the other columns go."""
    convo = queries.owned_conversation(request.user, pk)
    conversations.keep_compare(convo)
    return redirect("chat:conversation", pk=pk)


def _draft_of(request: HttpRequest) -> tuple[str, list[int]] | None:
    """The composer's draft from a JSON body {content, attachments}; None if malformed."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    content, attachment_ids = body.get("content", ""), body.get("attachments", [])
    if not isinstance(content, str) or not storable(content) or len(content) > history.limit("MAX_MESSAGE_CHARS"):
        return None
    if not isinstance(attachment_ids, list) or not all(type(i) is int and 0 < i < 2**63 for i in attachment_ids):
        return None
    return content, attachment_ids


@login_required
@require_POST
def estimate(request: HttpRequest, pk: int) -> JsonResponse:
    """The composer's price before Send (chat.estimates); changes nothing, but takes a body: POST + CSRF."""
    convo = queries.owned_conversation(request.user, pk)
    draft = _draft_of(request)
    if draft is None:
        return JsonResponse({"ok": False, "text": "Send {content, attachments} as JSON."}, status=400)
    try:
        shown = estimates.for_draft(convo, request.user, *draft)
    except ChatActionError as exc:
        return JsonResponse({"ok": False, "text": exc.message}, status=404 if exc.code == "not_found" else 400)
    return JsonResponse(shown.as_json())


@login_required
@require_POST
def compare_estimate(request: HttpRequest) -> JsonResponse:
    """The compare form's price per chosen model, for its prompt."""
    allowed = queries.model_ids(request.user)
    text = request.POST.get("prompt", "")
    models = [m for m in dict.fromkeys(request.POST.getlist("models")) if m in allowed][:4]
    if not storable(text) or len(text) > history.limit("MAX_MESSAGE_CHARS"):
        return JsonResponse({"ok": False, "text": "That prompt can't be sent."}, status=400)
    found = estimates.for_compare(request.user, text, models)
    return JsonResponse({"ok": True, "models": {model: shown.as_json() for model, shown in found.items()}})
