"""/v1: the OpenAI-compatible API (plus OpenRouter's /key), for scripts with a personal key."""

from django.urls import path

from gateway import api

app_name = "api"
urlpatterns = [
    path("chat/completions", api.chat_completions, name="chat_completions"),
    path("embeddings", api.embeddings, name="embeddings"),
    path("responses", api.responses, name="responses"),
    path("models", api.models, name="models"),
    path("key", api.key, name="key"),
]
