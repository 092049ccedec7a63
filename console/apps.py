from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"

    def ready(self) -> None:
        from billing.signals import budget_changed
        from console.audit import record_budget_change

        budget_changed.connect(record_budget_change, dispatch_uid="console.audit.budget_changed")
