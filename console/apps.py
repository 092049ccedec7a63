from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"

    def ready(self) -> None:
        from billing.signals import budget_changed, usage_page_sections
        from console.audit import record_budget_change
        from console.transcripts import openings_section

        budget_changed.connect(record_budget_change, dispatch_uid="console.audit.budget_changed")
        usage_page_sections.connect(openings_section, dispatch_uid="console.transcripts.openings_section")
