"""The ledger names a gateway API key by id only (no foreign key): billing no longer depends on gateway,
and a ledger row outlives the key it names. Only the FK constraint is dropped: the column `api_key_id`,
its index and every value stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_ledger_hold"),
        ("gateway", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterField(
                    model_name="ledgerentry",
                    name="api_key",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        db_constraint=False,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to="gateway.apikey",
                    ),
                ),
            ],
            state_operations=[
                migrations.RemoveField(model_name="ledgerentry", name="api_key"),
                migrations.AddField(
                    model_name="ledgerentry",
                    name="api_key_id",
                    field=models.BigIntegerField(blank=True, db_index=True, null=True),
                ),
            ],
        ),
    ]
