"""The spend pages, mounted under /account/ in the project's "account" namespace (see orweb/urls.py),
beside the API-keys pages of gateway."""

from __future__ import annotations

from django.urls import path

from billing import views

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("team/", views.team, name="team"),
    path("team.csv", views.team_csv, name="team_csv"),
    path("team/budget/", views.team_budget, name="team_budget"),
]
