"""Spend explorer, a person's page and the models page."""

from __future__ import annotations

from django.urls import path

from console import views_spend

urlpatterns = [
    path("", views_spend.explorer, name="explorer"),
    path("spend.csv", views_spend.explorer_csv, name="explorer_csv"),
    path("spend-rows.csv", views_spend.explorer_rows_csv, name="explorer_rows_csv"),
    path("person/<str:username>/", views_spend.person, name="person"),
    path("person/<str:username>/keys/<int:key_id>/revoke/", views_spend.revoke_key, name="revoke_key"),
    path("person/<str:username>/transcript/", views_spend.transcript, name="transcript"),
    path("models/", views_spend.models, name="models"),
    path("anomalies/", views_spend.anomalies, name="anomalies"),
    path("anomalies/factor/", views_spend.anomaly_factor, name="anomaly_factor"),
]
