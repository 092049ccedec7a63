"""Two rollups for the console's filters by source and by API key, and token counts in the person rollup, so
those pages read rollups instead of the ledger: per day, person and source; per day, API key, model and source.

Each is filled from what already holds its sums exactly: the person rollups from the daily rollup (per day,
person, model and source), the key rollup from the ledger, the only place that knows the key. Settles wait
while it runs (the ledger and the daily rollup are locked against writes first, in the order settling takes
them), so the copy is exact even beside a running server."""

from decimal import Decimal

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

LOCK = "LOCK TABLE billing_ledgerentry, billing_dailyusage IN SHARE MODE;"

PERSON_TOKENS = """
UPDATE billing_dailypersonusage p
SET prompt_tokens = d.prompt_tokens, completion_tokens = d.completion_tokens
FROM (
    SELECT day, user_id, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens
    FROM billing_dailyusage GROUP BY day, user_id
) d
WHERE p.day = d.day AND p.user_id = d.user_id;
"""

PERSON_SOURCES = """
INSERT INTO billing_dailypersonsourceusage
    (day, user_id, source, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT day, user_id, source, sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cost)
FROM billing_dailyusage
GROUP BY day, user_id, source;
"""

KEYS = """
INSERT INTO billing_dailykeyusage
    (day, api_key_id, user_id, model, source, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT (created AT TIME ZONE 'UTC')::date, api_key_id, user_id, coalesce(nullif(served_model, ''), requested_model),
       source, count(*), count(*) FILTER (WHERE status IN ('error', 'incomplete')), sum(prompt_tokens),
       sum(completion_tokens), sum(cost)
FROM billing_ledgerentry
WHERE api_key_id IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;
"""

SOURCES = [("chat", "Chat"), ("api", "Api"), ("batch", "Batch"), ("system", "System")]


def _sums() -> list:
    return [
        ("requests", models.PositiveBigIntegerField(default=0)),
        ("errors", models.PositiveBigIntegerField(default=0)),
        ("prompt_tokens", models.PositiveBigIntegerField(default=0)),
        ("completion_tokens", models.PositiveBigIntegerField(default=0)),
        ("cost", models.DecimalField(decimal_places=10, default=Decimal(0), max_digits=20)),
    ]


def _user() -> models.ForeignKey:
    return models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL)


def _id() -> models.BigAutoField:
    return models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0010_personal_cap"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunSQL(LOCK, reverse_sql=migrations.RunSQL.noop),
        migrations.AddField(
            model_name="dailypersonusage", name="prompt_tokens", field=models.PositiveBigIntegerField(default=0)
        ),
        migrations.AddField(
            model_name="dailypersonusage", name="completion_tokens", field=models.PositiveBigIntegerField(default=0)
        ),
        migrations.RunSQL(PERSON_TOKENS, reverse_sql=migrations.RunSQL.noop),
        migrations.CreateModel(
            name="DailyPersonSourceUsage",
            fields=[
                ("id", _id()),
                ("day", models.DateField()),
                ("source", models.CharField(choices=SOURCES, max_length=10)),
                *_sums(),
                ("user", _user()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=["day", "user", "source"], name="one_person_source_rollup_row")
                ],
                "indexes": [models.Index(fields=["user", "day"], name="person_source_user_day")],
            },
        ),
        migrations.RunSQL(PERSON_SOURCES, reverse_sql=migrations.RunSQL.noop),
        migrations.CreateModel(
            name="DailyKeyUsage",
            fields=[
                ("id", _id()),
                ("day", models.DateField()),
                ("api_key_id", models.BigIntegerField()),
                ("model", models.CharField(max_length=200)),
                ("source", models.CharField(choices=SOURCES, max_length=10)),
                *_sums(),
                ("user", _user()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=["day", "api_key_id", "user", "model", "source"], name="one_key_rollup_row"
                    )
                ],
                "indexes": [models.Index(fields=["api_key_id", "day"], name="key_rollup_key_day")],
            },
        ),
        migrations.RunSQL(KEYS, reverse_sql=migrations.RunSQL.noop),
    ]
