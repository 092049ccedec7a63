"""The signed-in user's API keys, mounted under /account/ in the project's "account" namespace (see
orweb/urls.py), beside billing's spend pages."""

from __future__ import annotations

from django.urls import path

from gateway import views

urlpatterns = [
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key_revoke"),
]
