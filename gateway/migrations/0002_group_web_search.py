from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="grouppolicy",
            name="allow_web_search",
            field=models.BooleanField(
                default=True, help_text="Members may use web search (OpenRouter's server tool, billed per search)."
            ),
        ),
    ]
