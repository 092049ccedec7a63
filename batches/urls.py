"""The batch pages under /batches/."""

from __future__ import annotations

from django.urls import path

from batches import views

app_name = "batches"
urlpatterns = [
    path("", views.index, name="index"),
    path("upload", views.upload, name="upload"),
    path("all/", views.staff, name="staff"),
    path("<str:job_id>/", views.job, name="job"),
    path("<str:job_id>/run", views.run, name="run"),
    path("<str:job_id>/pause", views.pause, name="pause"),
    path("<str:job_id>/resume", views.resume, name="resume"),
    path("<str:job_id>/cancel", views.cancel, name="cancel"),
    path("<str:job_id>/results.jsonl", views.download, {"kind": "results"}, name="results"),
    path("<str:job_id>/errors.jsonl", views.download, {"kind": "errors"}, name="errors"),
    path("<str:job_id>/results.csv", views.download, {"kind": "csv"}, name="csv"),
    path("<str:job_id>/report.csv", views.download, {"kind": "report"}, name="report"),
]
