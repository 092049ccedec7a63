"""/console/: the admin area, one url module per helper area."""

from __future__ import annotations

from django.urls import include, path

app_name = "console"

urlpatterns = [
    path("", include("console.urls_spend")),
    path("", include("console.urls_people")),
]
