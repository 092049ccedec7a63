"""Signals billing sends to the layers above it, which it may not import: the admin console records a
budget changed on the team page in its audit log by listening to `budget_changed`, and adds who opened a
person's transcripts to their usage page by answering `usage_page_sections`."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a person's or group's own budget was set, changed or removed outside the console. Arguments:
# `actor` (who), `owner` (the user or group), `before` and `after` (the Budget as it was and as it is, or
# None where there was or is none).
budget_changed = Signal()

# Sent while a person's usage page is built. Argument: `request` (theirs). Each receiver returns HTML to show
# on the page (rendered from its own template), or "" for nothing.
usage_page_sections = Signal()
