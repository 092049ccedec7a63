"""`manage.py sync_models`: sync the catalog from OpenRouter now and print what changed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from catalog.sync import sync_from_openrouter
from openrouter import OpenRouterError


class Command(BaseCommand):
    help = "Sync the model catalog from OpenRouter's /models (insert, update, reprice, mark removed)."

    def handle(self, *args, **options) -> None:
        try:
            report = sync_from_openrouter()
        except OpenRouterError as exc:
            raise CommandError(f"Could not fetch the model list: {exc}") from exc
        for model_id, reason in report.skipped:
            self.stderr.write(f"skipped {model_id}: {reason}")
        self.stdout.write(f"Catalog synced: {report.summary()}")
