"""Chat pages under /chat/."""

from __future__ import annotations

from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.new, name="new"),
    path("<int:pk>/", views.conversation, name="conversation"),
    path("<int:pk>/rename", views.rename, name="rename"),
    path("<int:pk>/settings", views.update_settings, name="settings"),
    path("<int:pk>/delete", views.delete, name="delete"),
    path("<int:pk>/attachments", views.upload_attachment, name="upload_attachment"),
    path("<int:pk>/export.md", views.export, name="export"),
    path("<int:pk>/estimate", views.estimate, name="estimate"),
    path("<int:pk>/keep", views.keep, name="keep"),
    path("attachments/<int:pk>", views.attachment, name="attachment"),
    path("presets/", views.save_preset, name="save_preset"),
    path("presets/<int:pk>/delete", views.delete_preset, name="delete_preset"),
    path("compare/", views.compare, name="compare"),
    path("compare/estimate", views.compare_estimate, name="compare_estimate"),
    path("compare/<uuid:group>/", views.compare_view, name="compare_view"),
]
