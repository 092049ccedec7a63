"""/account/: the signed-in user's API keys and usage; for staff, the team's spend."""

from django.urls import path

from gateway import views

app_name = "account"
urlpatterns = [
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key_revoke"),
    path("usage/", views.usage, name="usage"),
    path("team/", views.team, name="team"),
    path("team.csv", views.team_csv, name="team_csv"),
    path("team/budget/", views.team_budget, name="team_budget"),
]
