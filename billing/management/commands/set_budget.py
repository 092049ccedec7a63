"""`python manage.py set_budget USERNAME AMOUNT_USD [--period month|week|day] [--alert-percent N]`
or `--group NAME AMOUNT_USD`: set a budget from the command line."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.budgets import set_budget
from billing.models import Period


class Command(BaseCommand):
    help = "Set the spending budget of a user (or, with --group, of a group) in USD per period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", nargs="+", metavar="[USERNAME] AMOUNT_USD")
        parser.add_argument("--group", metavar="NAME", help="set the budget of this group instead of a user")
        parser.add_argument("--period", choices=Period.values, default=Period.MONTH)
        parser.add_argument("--alert-percent", type=int, default=None)

    def handle(
        self,
        *args: Any,
        target: list[str],
        group: str | None,
        period: str,
        alert_percent: int | None,
        **options: Any,
    ) -> None:
        expected = 1 if group else 2
        if len(target) != expected:
            usage = "--group NAME AMOUNT_USD" if group else "USERNAME AMOUNT_USD"
            raise CommandError(f"Expected {usage}.")
        try:
            amount = Decimal(target[-1])
        except InvalidOperation as exc:
            raise CommandError(f"{target[-1]!r} is not an amount of USD.") from exc
        if group:
            owner = Group.objects.filter(name=group).first()
            if owner is None:
                raise CommandError(f"No group named {group!r}.")
            kwargs: dict[str, Any] = {"group": owner}
        else:
            user = get_user_model().objects.filter(username=target[0]).first()
            if user is None:
                raise CommandError(f"No user named {target[0]!r}.")
            kwargs = {"user": user}
        try:
            budget = set_budget(**kwargs, amount=amount, period=period, alert_percent=alert_percent)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Set the {budget.label}: ${budget.limit_usd} (alert at {budget.alert_percent}%).")
