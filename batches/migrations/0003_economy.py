# Economy mode: a job's lines sent through OpenRouter's Batch API, each line held until it settles.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('batches', '0002_job_end_notice'),
    ]

    operations = [
        migrations.AddField(
            model_name='batchjob',
            name='economy',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='batchjob',
            name='remote_state',
            field=models.CharField(blank=True, max_length=12),
        ),
        migrations.AddField(
            model_name='batchjob',
            name='remote_id',
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name='batchjob',
            name='remote_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='batchline',
            name='hold_id',
            field=models.UUIDField(blank=True, null=True),
        ),
    ]
