"""Signals billing sends to the layers above it, which it may not import: the admin console records a
budget changed on the team page in its audit log by listening to `budget_changed`."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a person's or group's own budget was set, changed or removed outside the console. Arguments:
# `actor` (who), `owner` (the user or group), `before` and `after` (the Budget as it was and as it is, or
# None where there was or is none).
budget_changed = Signal()
