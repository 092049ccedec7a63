"""/v1/files and /v1/batches: OpenAI's Files and Batches API, for scripts with a personal key."""

from django.urls import path

from batches import api

app_name = "batch_api"
urlpatterns = [
    path("files", api.files, name="files"),
    path("files/<str:file_id>", api.file, name="file"),
    path("files/<str:file_id>/content", api.file_content, name="file_content"),
    path("batches", api.batches, name="batches"),
    path("batches/<str:batch_id>", api.batch, name="batch"),
    path("batches/<str:batch_id>/cancel", api.cancel, name="cancel"),
]
