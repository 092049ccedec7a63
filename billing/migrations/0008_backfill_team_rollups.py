"""Fill the team rollups (per day, model and source; per day and person) from the daily rollup, which holds
the same sums at a finer grain, and index the rollups for the console's filters by model and by person.

Settles wait while it runs (the daily rollup is locked against writes first), so the copy is exact even beside
a running server; a row already there is overwritten with the sums, never added to."""

from django.db import migrations, models

BACKFILL = """
LOCK TABLE billing_dailyusage IN SHARE MODE;

INSERT INTO billing_dailymodelusage (day, model, source, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT day, model, source, sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cost)
FROM billing_dailyusage
GROUP BY day, model, source
ON CONFLICT (day, model, source) DO UPDATE SET
    requests = excluded.requests,
    errors = excluded.errors,
    prompt_tokens = excluded.prompt_tokens,
    completion_tokens = excluded.completion_tokens,
    cost = excluded.cost;

INSERT INTO billing_dailypersonusage (day, user_id, requests, errors, cost)
SELECT day, user_id, sum(requests), sum(errors), sum(cost)
FROM billing_dailyusage
GROUP BY day, user_id
ON CONFLICT (day, user_id) DO UPDATE SET
    requests = excluded.requests,
    errors = excluded.errors,
    cost = excluded.cost;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_usage_details_and_team_rollups"),
    ]

    operations = [
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="dailyusage",
            index=models.Index(fields=["model", "day"], name="rollup_model_day"),
        ),
        migrations.AddIndex(
            model_name="dailypersonusage",
            index=models.Index(fields=["user", "day"], name="person_rollup_user_day"),
        ),
    ]
