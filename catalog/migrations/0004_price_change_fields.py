from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0003_surface_prices"),
    ]

    operations = [
        migrations.AddField(
            model_name="pricechange",
            name="cache_write_price",
            field=models.DecimalField(blank=True, decimal_places=12, max_digits=20, null=True),
        ),
        migrations.AddField(
            model_name="pricechange",
            name="web_search_price",
            field=models.DecimalField(blank=True, decimal_places=12, max_digits=20, null=True),
        ),
    ]
