from __future__ import annotations

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self) -> None:
        """Sockets follow sign-ins: a logout, a deactivation or a deletion closes them (chat.disconnect); the
        models pages learn who may use what and what it cost (chat.catalog_wiring)."""
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save

        from chat import catalog_wiring, disconnect

        catalog_wiring.connect()
        user_logged_out.connect(disconnect.on_logged_out, dispatch_uid="chat.disconnect.logged_out")
        post_save.connect(disconnect.on_user_saved, sender=get_user_model(), dispatch_uid="chat.disconnect.saved")
        post_delete.connect(disconnect.on_user_deleted, sender=get_user_model(), dispatch_uid="chat.disconnect.deleted")
