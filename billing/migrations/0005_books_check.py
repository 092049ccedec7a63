"""Books that balance: one row per UTC day with the ledger's total beside OpenRouter's usage_daily."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_ledger_api_key_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="BooksCheck",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField(unique=True)),
                ("ledger", models.DecimalField(decimal_places=10, max_digits=20)),
                ("openrouter", models.DecimalField(decimal_places=10, max_digits=20)),
                ("checked_at", models.DateTimeField()),
                ("over_checks", models.PositiveIntegerField(default=0)),
                ("alerted_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
    ]
