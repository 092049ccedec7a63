"""The spend pages, mounted under /account/ in the project's "account" namespace (see orweb/urls.py),
beside the API-keys pages of gateway."""

from __future__ import annotations

from django.urls import path

from billing import views

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("usage/cap/", views.set_cap, name="set_cap"),
    path("usage/cap/remove/", views.remove_cap, name="remove_cap"),
    path("team/", views.team, name="team"),
    path("team.csv", views.team_csv, name="team_csv"),
    path("team/budget/", views.team_budget, name="team_budget"),
    path("alerts/<int:banner_id>/dismiss/", views.dismiss_alert, name="dismiss_alert"),
]
