"""`manage.py create_api_key USERNAME [--name NAME]`: a personal key for scripts; the key is the last line."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.keys import create_key


class Command(BaseCommand):
    help = "Create a personal API key for USERNAME and print it (once) as the last line of output."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="a label to recognise the key by")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        key, secret = create_key(user, name)
        self.stdout.write(f"Created key {key.name!r} ({key.prefix}…) for {username}. It is shown only once:")
        self.stdout.write(secret)
