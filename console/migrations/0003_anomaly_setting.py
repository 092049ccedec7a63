from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0002_spend_anomalies"),
    ]

    operations = [
        migrations.CreateModel(
            name="AnomalySetting",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False),
                ),
                ("factor", models.DecimalField(decimal_places=2, max_digits=6)),
                ("changed_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "constraints": [models.CheckConstraint(condition=models.Q(("id", 1)), name="one_anomaly_setting")],
            },
        ),
    ]
